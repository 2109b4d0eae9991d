// Process-wide settings of the engine: threads, devices, build facts.
import { native } from './native.js';
import { codeOf, dtypeName, isFloating, type DType } from './dtype.js';
import { dtypeError } from './errors.js';

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

/** libtorch's version and threading, the C++11 ABI flag, and whether the build has CUDA (libtorch_cuda linked). */
export const buildInfo = (): { torchVersion: string; parallelInfo: string; cxx11Abi: number; cuda: boolean } => native.buildInfo();

/** The dtype of floating tensors made without one (float32 unless changed), as torch.set_default_dtype. */
export function setDefaultDtype(dtype: DType): void {
  if (!isFloating(dtype)) throw dtypeError('setDefaultDtype', `${dtype} is not a floating dtype; use float32, float64, float16 or bfloat16`);
  native.setDefaultDtype(codeOf(dtype, 'setDefaultDtype')!);
}
export const getDefaultDtype = (): DType => dtypeName(native.getDefaultDtype(), 'getDefaultDtype');
