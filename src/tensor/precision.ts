// Mixed precision: `withPrecision('bf16', fn)` runs fn under libtorch's autocast, so its matrix
// products (linear, matmul, bmm, baddbmm, einsum, conv1d) run in bfloat16 while the weights, their
// gradients and the optimiser state stay float32 (the master copy). Softmax, layer norm and the
// losses take float32 inputs under autocast (native/src/precision_ops.cpp, autocastFloat), and the
// models widen their logits and carried memories to float32 (widenReduced), so only the matrix
// products and the elementwise ops right after them (bias, activation) see bfloat16.
//
// Why autocast rather than explicit casts in Linear and attention: it reaches every matrix product
// of every kind, the mechanisms' own (Expire-Span's span predictor, Compressive's convolution, the
// key position products) included, without a cast at each call site; it caches the bfloat16 copy of
// each weight for the whole region (one cast per weight per training step, not per segment); and
// it has a CUDA flavour behind the same switch, so the same option applies once tensors live there.
//
// Autocast is thread-local dispatcher state, so regions are synchronous, like tidy(): never await
// inside one. Backward and the optimiser step run outside autocast (the trainer wraps them in
// withPrecision('float32', ...)): backward runs each op in the dtype its forward used anyway.
// Entering or leaving a region that changes the state clears the cast cache, so a cached weight
// copy never outlives an optimiser step.
import { readFileSync } from 'node:fs';
import { native } from './native.js';
import { codeOf } from './dtype.js';
import { configError } from './errors.js';
import { cudaAvailable } from './runtime.js';
import type { Tensor } from './tensor.js';

/** 'float32': everything in float32. 'bf16': matrix products in bfloat16, float32 master weights. */
export type Precision = 'float32' | 'bf16';
export const precisions: readonly Precision[] = ['float32', 'bf16'];
/** The device types autocast has a switch for. */
export type AutocastDevice = 'cpu' | 'cuda';

const BF16 = codeOf('bfloat16', 'withPrecision')!;

/**
 * Why bfloat16 matrix products have no fast path on this CPU, from /proc/cpuinfo's text (null:
 * unreadable, i.e. not Linux, and then assumed fine); null when they have one. oneDNN runs them on
 * AVX512-BF16 or AMX; without either they fall back to emulation or ATen's reference loops, slower
 * than float32, so bf16 would only lose.
 */
export function cpuBf16Problem(cpuinfo: string | null, mkldnn: boolean): string | null {
  if (!mkldnn) return 'this libtorch has no oneDNN (or it is disabled), which runs bfloat16 matrix products on the CPU';
  if (cpuinfo === null) return null;
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  if (flags.has('avx512_bf16') || flags.has('amx_bf16')) return null;
  return 'this CPU has neither AVX512-BF16 nor AMX-BF16, so bfloat16 matrix products would run slower than float32';
}

const problems = new Map<string, string | null>();

/**
 * ENGRAM_BF16_ANY_CPU=1 lets bf16 run on a CPU without a bfloat16 fast path: the same numerics,
 * slower than float32 (ATen's or oneDNN's emulated kernels). For checking a bf16 setup, and bf16's
 * behaviour in the tests, on a machine that cannot run it fast. Read at every check.
 */
export const BF16_ANY_CPU_ENV = 'ENGRAM_BF16_ANY_CPU';

/**
 * Why `precision` cannot run on `device` here, or null when it can (the hardware check is memoised
 * per process; ENGRAM_BF16_ANY_CPU=1 waives the CPU's).
 */
export function precisionProblem(precision: Precision, device: AutocastDevice = 'cpu'): string | null {
  if (precision === 'float32') return null;
  if (device === 'cpu' && process.env[BF16_ANY_CPU_ENV] === '1') return null;
  const key = `${precision}:${device}`;
  if (!problems.has(key)) {
    let problem: string | null;
    if (device === 'cuda') {
      // The GPU's generation (bfloat16 needs compute capability >= 8.0) is not checked: libtorch
      // reports an error at the first bfloat16 kernel that the GPU lacks.
      problem = cudaAvailable() ? null : 'no CUDA device is visible';
    } else {
      let cpuinfo: string | null = null;
      try {
        cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
      } catch {
        cpuinfo = null; // not Linux: not checked
      }
      problem = cpuBf16Problem(cpuinfo, native.mkldnnAvailable());
    }
    problems.set(key, problem);
  }
  return problems.get(key)!;
}

/**
 * Checks that `precision` names a precision and can run on `device`; returns it. The error names
 * the option (`what`, e.g. 'train.precision' or '--precision') and the fix.
 */
export function checkPrecision(precision: unknown, op: string, what = 'precision', device: AutocastDevice = 'cpu'): Precision {
  if (!precisions.includes(precision as Precision)) {
    throw configError(op, `${what} must be one of ${precisions.map((p) => `'${p}'`).join(', ')} (got ${JSON.stringify(precision)})`);
  }
  const problem = precisionProblem(precision as Precision, device);
  if (problem) {
    const waiver = device === 'cpu' ? ` (or set ${BF16_ANY_CPU_ENV}=1 to run it slowly)` : '';
    throw configError(op, `${what} '${String(precision)}' cannot run on ${device} here: ${problem}; use ${what} 'float32'${waiver}`);
  }
  return precision as Precision;
}

/** Whether autocast is on for a device type, and in which dtype (for tests and diagnostics). */
export function autocastState(device: AutocastDevice = 'cpu'): { enabled: boolean; dtype: 'bfloat16' | 'float16' } {
  const [enabled, code] = native.autocastState(device);
  return { enabled, dtype: code === BF16 ? 'bfloat16' : 'float16' };
}

/**
 * Runs fn (synchronous) at `precision`: 'bf16' under autocast in bfloat16, 'float32' with autocast
 * off (inside a bf16 region, e.g. for backward). A region that changes nothing (float32 outside any
 * region, bf16 inside bf16) just calls fn, so float32 runs do exactly what they did before.
 */
export function withPrecision<T>(precision: Precision, fn: () => T, device: AutocastDevice = 'cpu'): T {
  const on = precision === 'bf16';
  if (!on && precision !== 'float32') checkPrecision(precision, 'withPrecision');
  const [wasOn, wasCode] = native.autocastState(device);
  if (on === wasOn && (!on || wasCode === BF16)) return fn();
  if (on) checkPrecision(precision, 'withPrecision', 'precision', device);
  native.setAutocast(device, on, on ? BF16 : wasCode);
  let result: T;
  try {
    result = fn();
  } finally {
    native.setAutocast(device, wasOn, wasCode);
  }
  if (result instanceof Promise) throw configError('withPrecision', 'withPrecision() is synchronous (autocast is thread-local state); do not pass an async function');
  return result;
}

/** The autocast device type of a tensor's device ('cuda:1' -> 'cuda'); models pass a weight's. */
export function autocastDeviceOf(t: Tensor): AutocastDevice {
  return t.device.startsWith('cuda') ? 'cuda' : 'cpu';
}

/** A bfloat16 / float16 tensor as float32 (a differentiable cast); any other tensor itself. */
export function widenReduced(t: Tensor): Tensor {
  return t.dtype === 'bfloat16' || t.dtype === 'float16' ? t.float() : t;
}
