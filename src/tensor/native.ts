// Loads the libtorch addon and types its surface. Everything here works on integer tensor ids;
// src/tensor/tensor.ts is the only intended user. Arguments are positional and always complete
// (null where PyTorch takes None): defaults are decided on the TS side.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngramError } from './errors.js';

type Id = number;
type OptId = Id | null;
type Dims = number[] | null;
type DCode = number;
type OptDCode = DCode | null;
type Device = string | null;

interface NativeCore {
  // handles and process-wide settings
  setErrorClass(ctor: Function): void;
  free(id: Id): void;
  freeMany(ids: Id[]): void;
  liveTensors(): number;
  heapBytes(): number;
  setReporting(on: boolean): boolean;
  reportTensors(ids: Id[]): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  setDefaultDtype(dtype: DCode): void;
  getDefaultDtype(): DCode;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  buildInfo(): { torchVersion: string; parallelInfo: string; cxx11Abi: number };

  // creation and random
  zeros(shape: number[], dtype: OptDCode, device: Device): Id;
  ones(shape: number[], dtype: OptDCode, device: Device): Id;
  empty(shape: number[], dtype: OptDCode, device: Device): Id;
  full(shape: number[], value: number | boolean, dtype: OptDCode, device: Device): Id;
  eye(n: number, m: number, dtype: OptDCode, device: Device): Id;
  arange(start: number, end: number, step: number, dtype: OptDCode, device: Device): Id;
  linspace(start: number, end: number, steps: number, dtype: OptDCode, device: Device): Id;
  scalarTensor(value: number | boolean, dtype: OptDCode, device: Device): Id;
  zerosLike(t: Id): Id;
  onesLike(t: Id): Id;
  fullLike(t: Id, value: number | boolean): Id;
  rand(shape: number[], dtype: OptDCode, device: Device): Id;
  randn(shape: number[], dtype: OptDCode, device: Device): Id;
  randint(low: number, high: number, shape: number[], dtype: OptDCode, device: Device): Id;
  randperm(n: number, dtype: OptDCode, device: Device): Id;
  randLike(t: Id): Id;
  randnLike(t: Id): Id;
  bernoulli(t: Id, p: number | null): Id;
  multinomial(probs: Id, n: number, replacement: boolean): Id;
  uniform_(t: Id, low: number, high: number): void;
  normal_(t: Id, mean: number, std: number): void;

  // data
  fromArray(data: ArrayBufferView, dtype: DCode, shape: number[]): Id;
  toArrayBuffer(t: Id): ArrayBuffer;
  externalArrayBuffer(t: Id): ArrayBuffer;
  item(t: Id): number | boolean;
  to(t: Id, dtype: OptDCode, device: Device, copy: boolean): Id;
  clone(t: Id): Id;
  copy_(t: Id, src: Id): void;
  shape(t: Id): number[];
  strides(t: Id): number[];
  dtype(t: Id): DCode;
  device(t: Id): string;
  isContiguous(t: Id): boolean;

  rsubScalar(t: Id, s: number): Id;
  rdivScalar(t: Id, s: number): Id;
  rpowScalar(t: Id, s: number): Id;
  maximum(a: Id, b: Id): Id;
  minimum(a: Id, b: Id): Id;
  atan2(a: Id, b: Id): Id;
  logicalAnd(a: Id, b: Id): Id;
  logicalOr(a: Id, b: Id): Id;
  logicalXor(a: Id, b: Id): Id;
  addcmul(t: Id, a: Id, b: Id, value: number): Id;
  addcdiv(t: Id, a: Id, b: Id, value: number): Id;
  lerp(t: Id, end: Id, weight: number): Id;
  gelu(t: Id, tanh: boolean): Id;
  softplus(t: Id, beta: number, threshold: number): Id;
  leakyRelu(t: Id, slope: number): Id;
  clamp(t: Id, min: number | null, max: number | null): Id;
  clampTensor(t: Id, min: OptId, max: OptId): Id;
  clamp_(t: Id, min: number | null, max: number | null): void;
  addScaled_(t: Id, other: Id, alpha: number): void;
  zero_(t: Id): void;
  fill_(t: Id, value: number | boolean): void;
  maskedFill_(t: Id, mask: Id, value: number | boolean): void;

  // matrix products
  matmul(a: Id, b: Id): Id;
  mm(a: Id, b: Id): Id;
  bmm(a: Id, b: Id): Id;
  baddbmm(t: Id, a: Id, b: Id, beta: number, alpha: number): Id;
  outer(a: Id, b: Id): Id;
  einsum(equation: string, ts: Id[]): Id;

  // reductions
  sum(t: Id, dims: Dims, keepdim: boolean, dtype: OptDCode): Id;
  mean(t: Id, dims: Dims, keepdim: boolean, dtype: OptDCode): Id;
  prod(t: Id, dim: number | null, keepdim: boolean): Id;
  amax(t: Id, dims: Dims, keepdim: boolean): Id;
  amin(t: Id, dims: Dims, keepdim: boolean): Id;
  maxDim(t: Id, dim: number, keepdim: boolean): [Id, Id];
  minDim(t: Id, dim: number, keepdim: boolean): [Id, Id];
  argmax(t: Id, dim: number | null, keepdim: boolean): Id;
  argmin(t: Id, dim: number | null, keepdim: boolean): Id;
  cumsum(t: Id, dim: number, dtype: OptDCode): Id;
  cumprod(t: Id, dim: number, dtype: OptDCode): Id;
  logsumexp(t: Id, dims: number[], keepdim: boolean): Id;
  var(t: Id, dims: Dims, correction: number, keepdim: boolean): Id;
  std(t: Id, dims: Dims, correction: number, keepdim: boolean): Id;
  norm(t: Id, p: number, dims: Dims, keepdim: boolean): Id;
  all(t: Id, dim: number | null, keepdim: boolean): Id;
  any(t: Id, dim: number | null, keepdim: boolean): Id;
  sort(t: Id, dim: number, descending: boolean): [Id, Id];
  argsort(t: Id, dim: number, descending: boolean): Id;
  topk(t: Id, k: number, dim: number, largest: boolean, sorted: boolean): [Id, Id];

  // shape
  reshape(t: Id, shape: number[]): Id;
  view(t: Id, shape: number[]): Id;
  permute(t: Id, dims: number[]): Id;
  transpose(t: Id, d0: number, d1: number): Id;
  contiguous(t: Id): Id;
  expand(t: Id, shape: number[]): Id;
  squeeze(t: Id, dim: number | null): Id;
  unsqueeze(t: Id, dim: number): Id;
  flatten(t: Id, start: number, end: number): Id;
  narrow(t: Id, dim: number, start: number, length: number): Id;
  slice(t: Id, dim: number, start: number | null, end: number | null, step: number): Id;
  select(t: Id, dim: number, index: number): Id;
  cat(ts: Id[], dim: number): Id;
  stack(ts: Id[], dim: number): Id;
  split(t: Id, sizes: number | number[], dim: number): Id[];
  chunk(t: Id, chunks: number, dim: number): Id[];
  unbind(t: Id, dim: number): Id[];
  repeat(t: Id, repeats: number[]): Id;
  repeatInterleave(t: Id, repeats: number, dim: number | null): Id;
  flip(t: Id, dims: number[]): Id;
  roll(t: Id, shifts: number[], dims: number[]): Id;
  unfold(t: Id, dim: number, size: number, step: number): Id;
  asStrided(t: Id, size: number[], stride: number[], storageOffset: number): Id;
  tril(t: Id, diagonal: number): Id;
  triu(t: Id, diagonal: number): Id;
  pad(t: Id, pads: number[], mode: string, value: number | null): Id;

  // indexing
  indexSelect(t: Id, dim: number, index: Id): Id;
  gather(t: Id, dim: number, index: Id): Id;
  scatter(t: Id, dim: number, index: Id, src: Id): Id;
  scatterValue(t: Id, dim: number, index: Id, value: number): Id;
  scatterAdd(t: Id, dim: number, index: Id, src: Id): Id;
  scatterReduce(t: Id, dim: number, index: Id, src: Id, reduce: string, includeSelf: boolean): Id;
  maskedFill(t: Id, mask: Id, value: number | boolean): Id;
  maskedSelect(t: Id, mask: Id): Id;
  where(cond: Id, a: Id, b: Id): Id;
  whereScalarOther(cond: Id, a: Id, b: number): Id;
  whereScalarSelf(cond: Id, a: number, b: Id): Id;
  nonzero(t: Id): Id;
  index(t: Id, indices: OptId[]): Id;
  indexPut(t: Id, indices: OptId[], values: Id, accumulate: boolean): Id;
  indexPut_(t: Id, indices: OptId[], values: Id, accumulate: boolean): void;

  // nn
  softmax(t: Id, dim: number, dtype: OptDCode): Id;
  logSoftmax(t: Id, dim: number, dtype: OptDCode): Id;
  maskedSoftmax(t: Id, mask: OptId, scale: number, dim: number): Id;
  layerNorm(x: Id, shape: number[], weight: OptId, bias: OptId, eps: number): Id;
  dropout(x: Id, p: number, train: boolean): Id;
  embedding(weight: Id, indices: Id, paddingIdx: number): Id;
  linear(x: Id, weight: Id, bias: OptId): Id;
  crossEntropy(logits: Id, target: Id, weight: OptId, reduction: string, ignoreIndex: number, labelSmoothing: number): Id;
  nllLoss(logp: Id, target: Id, weight: OptId, reduction: string, ignoreIndex: number): Id;
  mseLoss(a: Id, b: Id, reduction: string): Id;
  bceWithLogits(logits: Id, target: Id, weight: OptId, posWeight: OptId, reduction: string): Id;
  conv1d(x: Id, w: Id, b: OptId, stride: number[], padding: number[], dilation: number[], groups: number): Id;
  conv2d(x: Id, w: Id, b: OptId, stride: number[], padding: number[], dilation: number[], groups: number): Id;
  avgPool1d(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean): Id;
  maxPool1d(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean): Id;
  avgPool2d(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean): Id;
  maxPool2d(x: Id, kernel: number[], stride: number[], padding: number[], ceilMode: boolean): Id;
  adaptiveAvgPool1d(x: Id, size: number[]): Id;

  // autograd and optimisers
  requiresGrad(t: Id): boolean;
  setRequiresGrad(t: Id, on: boolean): void;
  isLeaf(t: Id): boolean;
  gradFn(t: Id): string | null;
  retainGrad(t: Id): void;
  backward(t: Id, gradient: OptId, retainGraph: boolean, createGraph: boolean): void;
  grad(t: Id): OptId;
  setGrad(t: Id, g: OptId): void;
  zeroGrad(ts: Id[]): void;
  detach(t: Id): Id;
  detach_(t: Id): void;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  autogradGrad(outputs: Id[], inputs: Id[], gradOutputs: Id[] | null, retainGraph: boolean, createGraph: boolean, allowUnused: boolean): OptId[];
  adamStep(params: Id[], expAvg: Id[], expAvgSq: Id[], step: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, decoupled: boolean): void;
  sgdStep(params: Id[], buffers: Id[], lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean): void;
  clipGradNorm(params: Id[], maxNorm: number, normType: number): number;

  // serialisation
  pickleSave(names: string[], ids: Id[]): Buffer;
  pickleLoad(bytes: Uint8Array): { names: string[]; ids: Id[] };
}

// Elementwise ops come in two forms, since ids and scalars are both JS numbers:
// name(a, b) with two tensors, nameScalar(a, s) with a tensor and a number.
export type BinaryName =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'remainder' | 'floorDivide'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
export type InplaceBinaryName = 'add_' | 'sub_' | 'mul_' | 'div_';
export type UnaryName =
  | 'neg' | 'abs' | 'sqrt' | 'rsqrt' | 'square' | 'reciprocal' | 'exp' | 'expm1' | 'log' | 'log1p' | 'log2'
  | 'sin' | 'cos' | 'tanh' | 'sigmoid' | 'logSigmoid' | 'relu' | 'silu' | 'erf' | 'floor' | 'ceil'
  | 'round' | 'trunc' | 'sign' | 'logicalNot' | 'isnan' | 'isfinite';

type Scalar = number | boolean;
export type NativeAddon = NativeCore &
  { [K in BinaryName]: (a: Id, b: Id) => Id } &
  { [K in BinaryName as `${K}Scalar`]: (a: Id, s: Scalar) => Id } &
  { [K in InplaceBinaryName]: (a: Id, b: Id) => void } &
  { [K in InplaceBinaryName as `${K}Scalar`]: (a: Id, s: Scalar) => void } &
  { [K in UnaryName]: (t: Id) => Id };

// libgomp reads OMP_WAIT_POLICY once, when it is loaded with the addon. Its default (spinning
// workers) fights OpenBLAS's threads on few cores and made training 2-3x slower in measurements
// (shared/notes/libtorch-binding.md); a user's own setting wins.
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';

function findAddon(): string {
  if (process.env.ENGRAM_ADDON) return process.env.ENGRAM_ADDON;
  // dist/src/tensor/native.js or src/tensor/native.ts: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'engram.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('engram: the native addon is not built. Run: bash scripts/setup.sh  (or npm run build:addon)');
}

export const native: NativeAddon = createRequire(import.meta.url)(findAddon());
// The addon builds every error it throws with this class (op name, kind, libtorch's message).
native.setErrorClass(EngramError);
