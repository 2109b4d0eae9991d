// Process-wide settings of the engine: threads, devices, build facts.
import { addonLoaded, native, type BuildInfo } from './native.js';
export type { BuildInfo } from './native.js';
import { codeOf, dtypeName, isFloating, type DType } from './dtype.js';
import { configError, dtypeError } from './errors.js';

/** Whether libtorch was built with CUDA and a GPU is visible. */
export const cudaAvailable = (): boolean => native.cudaAvailable();
export const cudaDeviceCount = (): number => native.cudaDeviceCount();
/** Waits for queued CUDA work (for timing). */
export const cudaSynchronize = (): void => native.cudaSynchronize();

/**
 * Whether float32 matrix products (`matmul`, cuBLAS) and convolutions (`cudnn`, cuDNN) may use
 * TF32 tensor cores on GPUs that have them (torch.backends.cuda.matmul.allow_tf32 and
 * torch.backends.cudnn.allow_tf32; libtorch's defaults: matmul off, cudnn on). A flag left out is
 * unchanged; returns both as they were. TF32 keeps 10 mantissa bits: turn both off to compare
 * CUDA with the CPU to float32 precision. No effect on the CPU.
 */
export function setAllowTF32(flags: { matmul?: boolean; cudnn?: boolean }): { matmul: boolean; cudnn: boolean } {
  const [matmul, cudnn] = native.setAllowTF32(flags.matmul ?? null, flags.cudnn ?? null);
  return { matmul, cudnn };
}

/** ATen's intra-op thread count (OpenBLAS keeps its own pool: OPENBLAS_NUM_THREADS). */
export const setNumThreads = (n: number): void => native.setNumThreads(n);
export const getNumThreads = (): number => native.getNumThreads();
/**
 * What runs batched float32 products on the CPU (`matmul` with two batched operands, ≥ 3 dims each):
 * 'onednn', the batch entries in parallel on ATen's threads with one oneDNN sgemm each (found in the
 * libdnnl that libtorch loaded), or 'aten' (ATen's bmm; where there is no libdnnl, or with
 * ENGRAM_BATCHED_MATMUL=aten in the environment).
 */
export const batchedMatmulKernel = (): 'onednn' | 'aten' => native.batchedMatmulKernel();

/**
 * Bytes the C heap holds now (glibc's mallinfo2): CPU tensors, activations saved for backward,
 * optimiser state, everything malloc'd. null where the C library cannot say. Sampled by the
 * trainer at the end of each forward pass (the high-water mark of a step) for its peak memory.
 */
export function heapBytes(): number | null {
  const b = native.heapBytes();
  return b < 0 ? null : b;
}

const MiB = 2 ** 20;
/** What Engram asks of glibc malloc when it loads (ENGRAM_HEAP_RETENTION unset): keep up to 1 GiB freed. */
export const DEFAULT_HEAP_RETENTION = 1024 * MiB;
/** Blocks up to this size come from malloc's heap once setHeapRetention ran (glibc's largest mmap threshold on 64-bit, HEAP_MAX_SIZE / 2). */
export const HEAP_BLOCK_MAX = 32 * MiB;
let heapRetentionBytes: number | null = null;

/**
 * How much freed memory the C heap keeps for reuse (glibc malloc, which is libtorch's CPU
 * allocator): blocks up to HEAP_BLOCK_MAX (32 MiB) come from the heap rather than a mapping of
 * their own, and up to `bytes` of free memory at the heap's top stay mapped instead of going back
 * to the OS. glibc's defaults hand a training step's freed graph back and fault every page in
 * again at the next step (docs/architecture.md, "Memory"). Engram sets DEFAULT_HEAP_RETENTION when
 * it loads unless ENGRAM_HEAP_RETENTION says otherwise (MiB, or `off`: malloc as glibc configures
 * it) or the environment already sets malloc's thresholds (MALLOC_TRIM_THRESHOLD_,
 * MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES' glibc.malloc.*_threshold). Resident memory then stays
 * at its peak less what is above `bytes`; heapBytes() counts memory in use, not memory kept.
 * Returns false where the C library is not glibc (nothing changed). Allocation only: no result
 * changes.
 */
export function setHeapRetention(bytes: number): boolean {
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 2 ** 31 - 1) {
    throw configError('setHeapRetention', `bytes must be a whole number in [0, 2^31 - 1], got ${bytes}`);
  }
  const applied = native.setHeapRetention(bytes, HEAP_BLOCK_MAX);
  if (applied) heapRetentionBytes = bytes;
  return applied;
}

/** The bytes setHeapRetention last applied, or null: malloc as glibc configures it. */
export const heapRetention = (): number | null => heapRetentionBytes;

/** The retention ENGRAM_HEAP_RETENTION and the environment ask for at load, or null for glibc's own. */
export function heapRetentionFromEnv(env: Readonly<Record<string, string | undefined>>): number | null {
  const asked = env.ENGRAM_HEAP_RETENTION?.trim();
  if (asked === 'off') return null;
  if (asked !== undefined && asked !== '') {
    const mib = Number(asked);
    if (!Number.isFinite(mib) || mib < 0 || mib * MiB > 2 ** 31 - 1) {
      throw configError('ENGRAM_HEAP_RETENTION', `must be MiB in [0, 2047] or 'off', got '${asked}'`);
    }
    return Math.round(mib * MiB);
  }
  const userMalloc = env.MALLOC_TRIM_THRESHOLD_ !== undefined || env.MALLOC_MMAP_THRESHOLD_ !== undefined ||
    /glibc\.malloc\.(trim|mmap)_threshold/.test(env.GLIBC_TUNABLES ?? '');
  return userMalloc ? null : DEFAULT_HEAP_RETENTION;
}

/**
 * The environment that gives a child process (the benchmarks' PyTorch side) this process's heap
 * settings: glibc reads MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_ when a process starts.
 */
export function heapRetentionEnv(): Record<string, string> {
  return heapRetentionBytes === null ? {} : { MALLOC_TRIM_THRESHOLD_: String(heapRetentionBytes), MALLOC_MMAP_THRESHOLD_: String(HEAP_BLOCK_MAX) };
}

// At load: a bad ENGRAM_HEAP_RETENTION is one line on stderr, not an import that throws.
if (addonLoaded) {
  let bytes: number | null = null;
  try {
    bytes = heapRetentionFromEnv(process.env);
  } catch (e) {
    process.stderr.write(`engram: ${(e as Error).message}; malloc left as glibc configures it\n`);
  }
  if (bytes !== null) setHeapRetention(bytes);
}

/** libtorch's version and threading, the C++11 ABI flag, whether the build has CUDA (libtorch_cuda linked), and the OpenBLAS kernels in use. */
export const buildInfo = (): BuildInfo => native.buildInfo();

/** The dtype of floating tensors made without one (float32 unless changed), as torch.set_default_dtype. */
export function setDefaultDtype(dtype: DType): void {
  if (!isFloating(dtype)) throw dtypeError('setDefaultDtype', `${dtype} is not a floating dtype; use float32, float64, float16 or bfloat16`);
  native.setDefaultDtype(codeOf(dtype, 'setDefaultDtype')!);
}
export const getDefaultDtype = (): DType => dtypeName(native.getDefaultDtype(), 'getDefaultDtype');
