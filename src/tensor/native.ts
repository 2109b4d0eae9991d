// Loads the libtorch addon and types its surface. Everything here works on integer tensor ids;
// only src/tensor uses it (the layers above go through Tensor and the tensor layer's functions). Arguments are positional and always complete
// (null where PyTorch takes None): defaults are decided on the TS side.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngramError, engramError } from './errors.js';

type Id = number;
type OptId = Id | null;
type Dims = number[] | null;
type DCode = number;
type OptDCode = DCode | null;
type Device = string | null;

/** What the addon was built against and runs on (buildInfo() in the API). */
export interface BuildInfo {
  torchVersion: string;
  parallelInfo: string;
  cxx11Abi: number;
  /** Whether the addon was built against a libtorch with CUDA (libtorch_cuda linked). */
  cuda: boolean;
  /**
   * The OpenBLAS that libtorch's matrix products run on: its build line and the kernels it runs on
   * this CPU (OPENBLAS_CORETYPE, where set, chooses them); null for another BLAS (MKL, ...).
   */
  openblas: { config: string; core: string } | null;
  /**
   * Which library runs linear layers' float32 products on the CPU: 'aten' (libtorch's BLAS, through
   * ATen's mm) or 'onednn' (oneDNN's sgemm, where libtorch's BLAS is an OpenBLAS held to narrower
   * vectors than the processor has); ENGRAM_DENSE_MATMUL=aten|onednn decides instead.
   */
  denseProducts: 'aten' | 'onednn';
}

/**
 * Declares one export of the addon: the value is a placeholder, only the key and the type count.
 * Every native function is declared once, in coreOps or in the name lists below; the addon's
 * export list is checked against nativeOpNames by test/native-api.test.ts.
 */
const op = <F extends (...args: never[]) => unknown>(): F => undefined as unknown as F;

const coreOps = {
  // handles and process-wide settings
  setErrorClass: op<(ctor: Function) => void>(),
  free: op<(id: Id) => void>(),
  freeMany: op<(ids: Id[]) => void>(),
  liveTensors: op<() => number>(),
  heapBytes: op<() => number>(),
  setHeapRetention: op<(bytes: number, blockMax: number) => boolean>(),
  setReporting: op<(on: boolean) => boolean>(),
  reportTensors: op<(ids: Id[]) => void>(),
  setNumThreads: op<(n: number) => void>(),
  getNumThreads: op<() => number>(),
  manualSeed: op<(seed: number) => void>(),
  setDefaultDtype: op<(dtype: DCode) => void>(),
  getDefaultDtype: op<() => DCode>(),
  cudaAvailable: op<() => boolean>(),
  deviceCheckMode: op<(on: boolean) => boolean>(),
  setNativeKernels: op<(on: boolean) => boolean>(),
  cudaDeviceCount: op<() => number>(),
  cudaSynchronize: op<() => void>(),
  setAllowTF32: op<(cublas: boolean | null, cudnn: boolean | null) => [boolean, boolean]>(),
  buildInfo: op<() => BuildInfo>(),
  // mixed precision (precision_ops.cpp): deviceType 'cpu' | 'cuda'; the state is [enabled, dtype code]
  autocastState: op<(deviceType: string) => [boolean, DCode]>(),
  setAutocast: op<(deviceType: string, enabled: boolean, dtype: DCode) => [boolean, DCode]>(),
  mkldnnAvailable: op<() => boolean>(),

  // creation and random
  zeros: op<(shape: number[], dtype: OptDCode, device: Device) => Id>(),
  ones: op<(shape: number[], dtype: OptDCode, device: Device) => Id>(),
  empty: op<(shape: number[], dtype: OptDCode, device: Device) => Id>(),
  full: op<(shape: number[], value: number | boolean, dtype: OptDCode, device: Device) => Id>(),
  eye: op<(n: number, m: number, dtype: OptDCode, device: Device) => Id>(),
  arange: op<(start: number, end: number, step: number, dtype: OptDCode, device: Device) => Id>(),
  linspace: op<(start: number, end: number, steps: number, dtype: OptDCode, device: Device) => Id>(),
  scalarTensor: op<(value: number | boolean, dtype: OptDCode, device: Device) => Id>(),
  zerosLike: op<(t: Id) => Id>(),
  onesLike: op<(t: Id) => Id>(),
  fullLike: op<(t: Id, value: number | boolean) => Id>(),
  rand: op<(shape: number[], dtype: OptDCode, device: Device) => Id>(),
  randn: op<(shape: number[], dtype: OptDCode, device: Device) => Id>(),
  randint: op<(low: number, high: number, shape: number[], dtype: OptDCode, device: Device) => Id>(),
  randperm: op<(n: number, dtype: OptDCode, device: Device) => Id>(),
  randLike: op<(t: Id) => Id>(),
  randnLike: op<(t: Id) => Id>(),
  bernoulli: op<(t: Id, p: number | null) => Id>(),
  multinomial: op<(probs: Id, n: number, replacement: boolean) => Id>(),
  uniform_: op<(t: Id, low: number, high: number) => void>(),
  normal_: op<(t: Id, mean: number, std: number) => void>(),

  // data
  fromArray: op<(data: ArrayBufferView, dtype: DCode, shape: number[]) => Id>(),
  toArrayBuffer: op<(t: Id) => ArrayBuffer>(),
  externalArrayBuffer: op<(t: Id) => ArrayBuffer>(),
  item: op<(t: Id) => number | boolean>(),
  to: op<(t: Id, dtype: OptDCode, device: Device, copy: boolean) => Id>(),
  clone: op<(t: Id) => Id>(),
  setData: op<(t: Id, src: Id) => void>(),
  copy_: op<(t: Id, src: Id) => void>(),
  copyRows_: op<(buffer: Id, dim: number, at: number, src: Id) => void>(),
  shape: op<(t: Id) => number[]>(),
  strides: op<(t: Id) => number[]>(),
  dtype: op<(t: Id) => DCode>(),
  device: op<(t: Id) => string>(),
  isContiguous: op<(t: Id) => boolean>(),

  rsubScalar: op<(t: Id, s: number) => Id>(),
  rdivScalar: op<(t: Id, s: number) => Id>(),
  rpowScalar: op<(t: Id, s: number) => Id>(),
  maximum: op<(a: Id, b: Id) => Id>(),
  minimum: op<(a: Id, b: Id) => Id>(),
  atan2: op<(a: Id, b: Id) => Id>(),
  logicalAnd: op<(a: Id, b: Id) => Id>(),
  logicalOr: op<(a: Id, b: Id) => Id>(),
  logicalXor: op<(a: Id, b: Id) => Id>(),
  addcmul: op<(t: Id, a: Id, b: Id, value: number) => Id>(),
  addcdiv: op<(t: Id, a: Id, b: Id, value: number) => Id>(),
  lerp: op<(t: Id, end: Id, weight: number) => Id>(),
  gelu: op<(t: Id, tanh: boolean) => Id>(),
  softplus: op<(t: Id, beta: number, threshold: number) => Id>(),
  leakyRelu: op<(t: Id, slope: number) => Id>(),
  clamp: op<(t: Id, min: number | null, max: number | null) => Id>(),
  clampTensor: op<(t: Id, min: OptId, max: OptId) => Id>(),
  clamp_: op<(t: Id, min: number | null, max: number | null) => void>(),
  addScaled_: op<(t: Id, other: Id, alpha: number) => void>(),
  zero_: op<(t: Id) => void>(),
  fill_: op<(t: Id, value: number | boolean) => void>(),
  maskedFill_: op<(t: Id, mask: Id, value: number | boolean) => void>(),

  // matrix products
  matmul: op<(a: Id, b: Id) => Id>(),
  weightedValues: op<(weights: Id, values: Id, blocks: readonly number[] | null) => Id>(),
  bandedMatmul: op<(a: Id, b: Id, blocks: readonly number[], left: boolean) => Id>(),
  batchedMatmulKernel: op<() => 'onednn' | 'aten'>(),
  mm: op<(a: Id, b: Id) => Id>(),
  bmm: op<(a: Id, b: Id) => Id>(),
  baddbmm: op<(t: Id, a: Id, b: Id, beta: number, alpha: number) => Id>(),
  outer: op<(a: Id, b: Id) => Id>(),
  einsum: op<(equation: string, ts: Id[]) => Id>(),

  // reductions
  sum: op<(t: Id, dims: Dims, keepdim: boolean, dtype: OptDCode) => Id>(),
  mean: op<(t: Id, dims: Dims, keepdim: boolean, dtype: OptDCode) => Id>(),
  prod: op<(t: Id, dim: number | null, keepdim: boolean) => Id>(),
  amax: op<(t: Id, dims: Dims, keepdim: boolean) => Id>(),
  amin: op<(t: Id, dims: Dims, keepdim: boolean) => Id>(),
  maxDim: op<(t: Id, dim: number, keepdim: boolean) => [Id, Id]>(),
  minDim: op<(t: Id, dim: number, keepdim: boolean) => [Id, Id]>(),
  argmax: op<(t: Id, dim: number | null, keepdim: boolean) => Id>(),
  argmin: op<(t: Id, dim: number | null, keepdim: boolean) => Id>(),
  cumsum: op<(t: Id, dim: number, dtype: OptDCode) => Id>(),
  cumprod: op<(t: Id, dim: number, dtype: OptDCode) => Id>(),
  logsumexp: op<(t: Id, dims: number[], keepdim: boolean) => Id>(),
  var: op<(t: Id, dims: Dims, correction: number, keepdim: boolean) => Id>(),
  std: op<(t: Id, dims: Dims, correction: number, keepdim: boolean) => Id>(),
  norm: op<(t: Id, p: number, dims: Dims, keepdim: boolean) => Id>(),
  all: op<(t: Id, dim: number | null, keepdim: boolean) => Id>(),
  any: op<(t: Id, dim: number | null, keepdim: boolean) => Id>(),
  sort: op<(t: Id, dim: number, descending: boolean) => [Id, Id]>(),
  argsort: op<(t: Id, dim: number, descending: boolean) => Id>(),
  topk: op<(t: Id, k: number, dim: number, largest: boolean, sorted: boolean) => [Id, Id]>(),

  // shape
  reshape: op<(t: Id, shape: number[]) => Id>(),
  view: op<(t: Id, shape: number[]) => Id>(),
  permute: op<(t: Id, dims: number[]) => Id>(),
  transpose: op<(t: Id, d0: number, d1: number) => Id>(),
  contiguous: op<(t: Id) => Id>(),
  expand: op<(t: Id, shape: number[]) => Id>(),
  squeeze: op<(t: Id, dim: number | null) => Id>(),
  unsqueeze: op<(t: Id, dim: number) => Id>(),
  flatten: op<(t: Id, start: number, end: number) => Id>(),
  narrow: op<(t: Id, dim: number, start: number, length: number) => Id>(),
  slice: op<(t: Id, dim: number, start: number | null, end: number | null, step: number) => Id>(),
  select: op<(t: Id, dim: number, index: number) => Id>(),
  cat: op<(ts: Id[], dim: number) => Id>(),
  stack: op<(ts: Id[], dim: number) => Id>(),
  split: op<(t: Id, sizes: number | number[], dim: number) => Id[]>(),
  chunk: op<(t: Id, chunks: number, dim: number) => Id[]>(),
  unbind: op<(t: Id, dim: number) => Id[]>(),
  repeat: op<(t: Id, repeats: number[]) => Id>(),
  repeatInterleave: op<(t: Id, repeats: number, dim: number | null) => Id>(),
  flip: op<(t: Id, dims: number[]) => Id>(),
  roll: op<(t: Id, shifts: number[], dims: number[]) => Id>(),
  unfold: op<(t: Id, dim: number, size: number, step: number) => Id>(),
  asStrided: op<(t: Id, size: number[], stride: number[], storageOffset: number) => Id>(),
  tril: op<(t: Id, diagonal: number) => Id>(),
  triu: op<(t: Id, diagonal: number) => Id>(),
  pad: op<(t: Id, pads: number[], mode: string, value: number | null) => Id>(),

  // indexing
  indexSelect: op<(t: Id, dim: number, index: Id) => Id>(),
  gather: op<(t: Id, dim: number, index: Id) => Id>(),
  scatter: op<(t: Id, dim: number, index: Id, src: Id) => Id>(),
  scatterValue: op<(t: Id, dim: number, index: Id, value: number) => Id>(),
  scatterAdd: op<(t: Id, dim: number, index: Id, src: Id) => Id>(),
  scatterReduce: op<(t: Id, dim: number, index: Id, src: Id, reduce: string, includeSelf: boolean) => Id>(),
  maskedFill: op<(t: Id, mask: Id, value: number | boolean) => Id>(),
  maskedSelect: op<(t: Id, mask: Id) => Id>(),
  where: op<(cond: Id, a: Id, b: Id) => Id>(),
  whereScalarOther: op<(cond: Id, a: Id, b: number) => Id>(),
  whereScalarSelf: op<(cond: Id, a: number, b: Id) => Id>(),
  nonzero: op<(t: Id) => Id>(),
  index: op<(t: Id, indices: OptId[]) => Id>(),
  indexPut: op<(t: Id, indices: OptId[], values: Id, accumulate: boolean) => Id>(),
  indexPut_: op<(t: Id, indices: OptId[], values: Id, accumulate: boolean) => void>(),

  // nn
  softmax: op<(t: Id, dim: number, dtype: OptDCode) => Id>(),
  logSoftmax: op<(t: Id, dim: number, dtype: OptDCode) => Id>(),
  relShiftAdd: op<(content: OptId, x: Id) => Id>(),
  splitHeads: op<(x: Id, parts: number, heads: number) => Id[]>(),
  maskedSoftmax: op<(t: Id, mask: OptId, scale: number, dim: number) => Id>(),
  softMaskRenorm: op<(p: Id, mask: Id, eps: number, dim: number) => Id>(),
  expiringAttention: op<(content: Id, queries: Id, keyPe: Id, age: Id, spans: Id, ramp: number, nearest: number, scale: number, eps: number, positions: number) => Id>(),
  layerNorm: op<(x: Id, shape: number[], weight: OptId, bias: OptId, eps: number) => Id>(),
  dropout: op<(x: Id, p: number, train: boolean) => Id>(),
  embedding: op<(weight: Id, indices: Id, paddingIdx: number) => Id>(),
  linear: op<(x: Id, weight: Id, bias: OptId) => Id>(),
  skewAdd: op<(content: Id, x: Id, base: number, rowStride: number | null) => Id>(),
  feedForward: op<(x: Id, w1: Id, b1: Id, w2: Id, b2: Id) => Id>(),
  linearOverCat: op<(first: Id, second: Id, weight: Id, bias: OptId) => Id>(),
  attendRow: op<(q: Id, k: Id, v: Id, contentBias: OptId, positionKeys: OptId, positionBias: OptId, scale: number) => Id>(),
  expiringAttend: op<(q: Id, k: Id, v: Id, keyPe: Id, age: Id, spans: Id, ramp: number, nearest: number, scale: number, eps: number) => Id>(),
  linearRow: op<(x: Id, weight: Id, bias: OptId, minEntries: number) => Id>(),
  decoderLayerRow: op<(h: Id, weights: OptId[], pre: boolean, eps1: number, eps2: number, rowMin: number, keys: Id, values: Id, filled: number, used: number,
    scale: number, positions: 'none' | 'relative' | 'expiring', positionTensors: OptId[], ramp: number, nearest: number, expiringEps: number) => Id>(),
  crossEntropy: op<(logits: Id, target: Id, weight: OptId, reduction: string, ignoreIndex: number, labelSmoothing: number) => Id>(),
  nllLoss: op<(logp: Id, target: Id, weight: OptId, reduction: string, ignoreIndex: number) => Id>(),
  mseLoss: op<(a: Id, b: Id, reduction: string) => Id>(),
  bceWithLogits: op<(logits: Id, target: Id, weight: OptId, posWeight: OptId, reduction: string) => Id>(),
  conv1d: op<(x: Id, w: Id, b: OptId, stride: number[], padding: number[], dilation: number[], groups: number) => Id>(),
  conv2d: op<(x: Id, w: Id, b: OptId, stride: number[], padding: number[], dilation: number[], groups: number) => Id>(),
  avgPool1d: op<(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean) => Id>(),
  maxPool1d: op<(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean) => Id>(),
  avgPool2d: op<(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean) => Id>(),
  maxPool2d: op<(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean) => Id>(),
  adaptiveAvgPool1d: op<(x: Id, size: number[]) => Id>(),

  // autograd and optimisers
  requiresGrad: op<(t: Id) => boolean>(),
  setRequiresGrad: op<(t: Id, on: boolean) => void>(),
  isLeaf: op<(t: Id) => boolean>(),
  gradFn: op<(t: Id) => string | null>(),
  retainGrad: op<(t: Id) => void>(),
  backward: op<(t: Id, gradient: OptId, retainGraph: boolean, createGraph: boolean) => void>(),
  grad: op<(t: Id) => OptId>(),
  setGrad: op<(t: Id, g: OptId) => void>(),
  zeroGrad: op<(ts: Id[]) => void>(),
  detach: op<(t: Id) => Id>(),
  detach_: op<(t: Id) => void>(),
  setGradEnabled: op<(on: boolean) => boolean>(),
  isGradEnabled: op<() => boolean>(),
  autogradGrad: op<(outputs: Id[], inputs: Id[], gradOutputs: Id[] | null, retainGraph: boolean, createGraph: boolean, allowUnused: boolean) => OptId[]>(),
  adamStep: op<(params: Id[], expAvg: Id[], expAvgSq: Id[], step: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, decoupled: boolean) => void>(),
  sgdStep: op<(params: Id[], buffers: Id[], lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean) => void>(),
  clipGradNorm: op<(params: Id[], maxNorm: number, normType: number) => number>(),
  // step buffers (step_buffer_ops.cpp): rows written in place with concatenation's gradients
  stepBufferWrite: op<(data: Id, grad: Id, row: Id, token: OptId, dim: number, index: number) => Id>(),
  stepBufferRead: op<(data: Id, grad: Id, token: OptId, dim: number, start: number, length: number) => Id>(),
  // libtorch's profiler (profiler_ops.cpp): [name, calls, self µs, total µs] per op name
  profilerStart: op<(shapes: boolean) => void>(),
  profilerStop: op<(callers: number) => [string, number, number, number][]>(),

  // collectives over c10d process groups (native/src/dist_ops.cpp); groups are small ids too
  distInit: op<(backend: string, masterAddr: string, masterPort: number, rank: number, worldSize: number, timeoutMs: number) => number>(),
  distDestroy: op<(group: number) => void>(),
  distAllReduce: op<(group: number, ts: Id[], average: boolean) => void>(),
  distBroadcast: op<(group: number, ts: Id[], root: number) => void>(),
  distAllGather: op<(group: number, t: Id) => Id[]>(),
  distBarrier: op<(group: number) => void>(),
  distAllReduceGrads: op<(group: number, params: Id[], bucketBytes: number) => void>(),
  distBackends: op<() => string[]>(),
  distReducerCreate: op<(group: number, params: Id[], bucketBytes: number) => number>(),
  distReducerBegin: op<(reducer: number) => void>(),
  distReducerFinish: op<(reducer: number) => void>(),
  distReducerDestroy: op<(reducer: number) => void>(),

  // serialisation
  pickleSave: op<(names: string[], ids: Id[]) => Uint8Array>(),
  pickleLoad: op<(bytes: Uint8Array) => { names: string[]; ids: Id[] }>(),
};

// Elementwise ops come in two forms, since ids and scalars are both JS numbers:
// name(a, b) with two tensors, nameScalar(a, s) with a tensor and a number.
const binaryNames = ['add', 'sub', 'mul', 'div', 'pow', 'remainder', 'floorDivide', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
const inplaceBinaryNames = ['add_', 'sub_', 'mul_', 'div_'] as const;
const unaryNames = [
  'neg', 'abs', 'sqrt', 'rsqrt', 'square', 'reciprocal', 'exp', 'expm1', 'log', 'log1p', 'log2',
  'sin', 'cos', 'tanh', 'sigmoid', 'logSigmoid', 'relu', 'silu', 'erf', 'floor', 'ceil',
  'round', 'trunc', 'sign', 'logicalNot', 'isnan', 'isfinite',
] as const;
export type BinaryName = (typeof binaryNames)[number];
export type InplaceBinaryName = (typeof inplaceBinaryNames)[number];
export type UnaryName = (typeof unaryNames)[number];

type Scalar = number | boolean;
export type NativeAddon = typeof coreOps &
  { [K in BinaryName]: (a: Id, b: Id) => Id } &
  { [K in BinaryName as `${K}Scalar`]: (a: Id, s: Scalar) => Id } &
  { [K in InplaceBinaryName]: (a: Id, b: Id) => void } &
  { [K in InplaceBinaryName as `${K}Scalar`]: (a: Id, s: Scalar) => void } &
  { [K in UnaryName]: (t: Id) => Id };

/** Every function the addon must export, as declared above (and nothing else). */
export const nativeOpNames: readonly (keyof NativeAddon)[] = [
  ...(Object.keys(coreOps) as (keyof typeof coreOps)[]),
  ...binaryNames,
  ...binaryNames.map((n) => `${n}Scalar` as const),
  ...inplaceBinaryNames,
  ...inplaceBinaryNames.map((n) => `${n}Scalar` as const),
  ...unaryNames,
];

// libgomp reads OMP_WAIT_POLICY once, when it is loaded with the addon. Its default (spinning
// workers) fights OpenBLAS's threads on few cores and made training 2-3x slower in measurements
// (shared/notes/libtorch-binding.md); a user's own setting wins.
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
// OpenBLAS (pthreads build) reads OPENBLAS_THREAD_TIMEOUT when it is loaded: how long (2^n cycles,
// default n = 28, about 0.1 s here) its idle workers spin on sched_yield before they sleep. Between
// a training step's matrix products the spinning worker took a core from everything else (perf: a
// quarter of the step's CPU time in sched_yield), above all from the OpenMP loops of the batched
// products and Adam. n = 20 (about 0.3 ms) made SPEC §10's training 20-30 % faster on 2 cores, and
// kept cached decoding's back-to-back small products as fast as before (n ≤ 16 doubled its ms per
// token: every product then woke sleeping workers); docs/results/benchmarks.md, "OpenBLAS's idle
// workers". A user's own setting wins; a libtorch on another BLAS (MKL in pip's torch) ignores it.
process.env.OPENBLAS_THREAD_TIMEOUT ??= '20';

function findAddon(): string | null {
  if (process.env.ENGRAM_ADDON) return process.env.ENGRAM_ADDON;
  // dist/src/tensor/native.js or src/tensor/native.ts: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'engram.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

// Without a built addon the library still imports (its names, configs and schemas, the CLI's
// --help); the first native call throws. A built addon is the plain object: no indirection per op.
const addonPath = findAddon();
const notBuilt = (): never => {
  throw engramError('io', 'loadAddon', 'the native addon is not built; in your project run: npm install-scripts approve engram && npm rebuild engram ' +
    '(npm 12 and later run a package\'s install script only once approved), or node scripts/build-addon.mjs in the engram package (a checkout: bash scripts/setup.sh)');
};
export const native: NativeAddon = addonPath !== null
  ? createRequire(import.meta.url)(addonPath)
  : new Proxy({} as NativeAddon, { get: notBuilt });
if (addonPath !== null) native.setErrorClass(EngramError);
/** Whether the addon was found and loaded (else every native call throws). */
export const addonLoaded = addonPath !== null;
