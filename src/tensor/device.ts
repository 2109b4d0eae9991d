// Device names from users (configs, --device, loadModel's option) checked once, up front, with
// errors that name the problem and the fix, instead of libtorch's error at the first tensor made.
//
//   'cpu'          the CPU
//   'cuda'         the current CUDA device (cuda:0 unless CUDA_VISIBLE_DEVICES says otherwise)
//   'cuda:N'       CUDA device N (0 <= N < cudaDeviceCount())
//   'auto'         'cuda' where this build has CUDA and a GPU is visible, else 'cpu'
import { native } from './native.js';
import { engramError, type EngramError } from './errors.js';
import type { Device } from './tensor.js';

/** What a user may ask for: a device, or 'auto'. */
export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}` | 'auto';

/** The device specs as users write them, for help texts and schemas. */
export const DEVICE_SPECS = "'cpu', 'cuda', 'cuda:N' or 'auto'";

const deviceError = (op: string, problem: string): EngramError => engramError('device', op, problem);

/** 'cuda' or 'cuda:N' (the index captured). */
const CUDA_SPEC = /^cuda(?::(\d+))?$/;

/**
 * The device a spec names, checked against this process: a malformed name is a config error; a
 * CUDA device on a build without CUDA, on a machine without a visible GPU, or an index past the
 * devices present is a device error. 'auto' picks 'cuda' when it can, else 'cpu'.
 */
export function resolveDevice(spec: string | undefined | null, op = 'resolveDevice'): Device {
  if (spec === undefined || spec === null || spec === 'cpu') return 'cpu';
  if (spec === 'meta' && checking) return 'meta';
  if (spec === 'auto') return native.cudaAvailable() ? 'cuda' : 'cpu';
  const m = CUDA_SPEC.exec(spec);
  if (!m) throw engramError('config', op, `unknown device '${spec}'; use ${DEVICE_SPECS}`);
  if (!native.buildInfo().cuda) {
    throw deviceError(op, `device '${spec}': this addon was built against a CPU-only libtorch; rebuild it against a CUDA libtorch (LIBTORCH=<pip torch folder> node scripts/build-addon.mjs --force) or use --device cpu`);
  }
  const count = native.cudaDeviceCount();
  if (count === 0) throw deviceError(op, `device '${spec}': the addon has CUDA but no GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), or use --device cpu`);
  if (m[1] !== undefined) {
    const index = Number(m[1]);
    if (index >= count) throw deviceError(op, `device '${spec}' is out of range: this machine has ${count} CUDA device(s), cuda:0 to cuda:${count - 1}`);
    return `cuda:${index}`;
  }
  return 'cuda';
}

let checking = false;

/** Whether `spec` is a device spec as users write them ('meta' too while deviceCheckMode is on). */
export function isDeviceSpec(spec: string): boolean {
  return spec === 'cpu' || spec === 'auto' || CUDA_SPEC.test(spec) || (checking && spec === 'meta');
}

/**
 * Checking device placement without a GPU: while on, 'meta' tensors (a shape and a dtype, no data)
 * stand in for a GPU, and resolveDevice accepts 'meta'. Every op then fails, as it would on CUDA,
 * when its tensor arguments are on two devices (a 0-dim CPU tensor may join any device; copies
 * between devices are allowed), ops that libtorch has no meta kernel for run on CPU zeros of the
 * same shapes, and data read from a meta tensor (item(), toArray(), a copy to the CPU) reads zeros.
 * So a model created with { device: 'meta' } trains, evaluates and decodes with every tensor's
 * placement checked and every data-dependent choice seeing zeros (native/src/device_check_ops.cpp).
 * The mode belongs to the calling thread. Returns whether it was on.
 */
export function deviceCheckMode(on: boolean): boolean {
  checking = on;
  return native.deviceCheckMode(on);
}

let nativeOn = true;

/**
 * Engram's own CPU kernels (fused attention rows, masked softmax, relative shifts, the batched
 * product, Adam's fused step, decoding's row loops) run where tensors are on the CPU; elsewhere each
 * op takes an ATen composition of the same maths. setNativeKernels(false) sends CPU tensors down
 * those compositions too (the paths a GPU takes), so that their values can be checked against the
 * kernels' on a CPU. Returns whether they were on. For tests and debugging: slower, never needed.
 */
export function setNativeKernels(on: boolean): boolean {
  nativeOn = on; // mirrored here: nativeKernelsOn is asked per op, without a native call
  return native.setNativeKernels(on);
}

/** Whether an op on `device` takes Engram's native CPU kernel (else its ATen composition). */
export function nativeKernelsOn(device: string): boolean {
  return device === 'cpu' && nativeOn;
}

/** Whether two device names are the same device ('cuda' is the current device, cuda:0 here). */
export function sameDevice(a: string, b: string): boolean {
  const norm = (d: string) => (d === 'cuda' ? 'cuda:0' : d);
  return norm(a) === norm(b);
}
