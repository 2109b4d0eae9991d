// The Tensor: a handle on a libtorch tensor with PyTorch's semantics (broadcasting, negative dims,
// type promotion) and PyTorch's names in camelCase. Compute is synchronous, as in PyTorch.
//
// Costs: one native call per op and one small JS object per result; shape, dtype and device are
// read from the native side once and cached (no op changes them in place; setData_ forgets them).
import { native } from './native.js';
import { codeOf, dtypeName, typedArrayOf, type DType, type TypedArray } from './dtype.js';
import { configError, shapeError } from './errors.js';
import { checkShape } from './check.js';
import { keep as keepTensor, track, untrack, type Tracked } from './scope.js';

export type Scalar = number | boolean;
/**
 * Where a tensor lives. 'meta' tensors have a shape and a dtype but no data (as PyTorch's): ops on
 * them check shapes and devices without computing, which the tests use to find tensors a model
 * makes on the wrong device without a GPU.
 */
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | 'meta';
/** Nested arrays of numbers or booleans, as accepted by tensor(). */
export type NestedArray = number | boolean | NestedArray[];

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

const wrap = (id: number): Tensor => new Tensor(id);
const wrapAll = (ids: number[]): Tensor[] => ids.map(wrap);
const dims = (d: number | number[] | undefined | null): number[] | null =>
  d === undefined || d === null ? null : typeof d === 'number' ? [d] : d;

export class Tensor implements Tracked {
  /** Native handle; -1 once disposed. */
  id: number;
  /** @internal scope bookkeeping (see scope.ts) */
  tracking = 0;
  #shape: number[] | undefined;
  #dtype: DType | undefined;
  #device: string | undefined;

  /**
   * @internal Tensors are made by ops and factory functions, not by this constructor. `shape`: the
   * result's shape where the op's caller knows it (spares reading it from the native side).
   */
  constructor(id: number, shape?: number[]) {
    this.id = id;
    this.#shape = shape;
    track(this);
  }

  // ---- identity and lifetime ----------------------------------------------------------------------

  get shape(): number[] {
    return (this.#shape ??= native.shape(this.id));
  }
  get dtype(): DType {
    return (this.#dtype ??= dtypeName(native.dtype(this.id), 'dtype'));
  }
  get device(): string {
    return (this.#device ??= native.device(this.id)); // only setData_ moves a tensor in place
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim?: number): number {
    if (dim === undefined) return this.numel;
    const n = this.ndim;
    const d = dim < 0 ? dim + n : dim;
    if (d < 0 || d >= n) throw shapeError('size', `dim ${dim} out of range for a ${n}-d tensor`);
    return this.shape[d]!;
  }
  strides(): number[] {
    return native.strides(this.id);
  }
  isContiguous(): boolean {
    return native.isContiguous(this.id);
  }
  get isDisposed(): boolean {
    return this.id < 0;
  }

  /** Frees the native tensor now. Using it afterwards throws; disposing twice is harmless. */
  dispose(): void {
    if (this.id < 0) return;
    untrack(this);
    native.free(this.id);
    this.id = -1;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** Keeps this tensor alive past the end of the tidy() scope it was made in. */
  keep(): this {
    return keepTensor(this);
  }

  toString(): string {
    if (this.id < 0) return 'Tensor(disposed)';
    const values = this.numel <= 64 ? ` ${JSON.stringify(this.toArray())}` : '';
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})${values}`;
  }

  // ---- data ------------------------------------------------------------------------------------------------

  /** The single value of a one-element tensor. */
  item(): number {
    return Number(native.item(this.id));
  }
  /** A copy of the elements in C order, in the TypedArray of this dtype (int64: BigInt64Array). */
  data(): TypedArray {
    return new typedArrayOf[this.dtype](native.toArrayBuffer(this.id));
  }
  /**
   * A TypedArray over this tensor's own memory, without copying: writes through it change the
   * tensor. CPU and contiguous tensors only. The memory stays valid while the array lives, even
   * after dispose(). Passing the array back to tensor() aliases the memory again (no copy).
   */
  dataView(): TypedArray {
    return new typedArrayOf[this.dtype](native.externalArrayBuffer(this.id));
  }
  /** Nested arrays of numbers (booleans for bool tensors), like PyTorch's tolist(). */
  toArray(): NestedArray {
    const t = this.dtype === 'bool' || this.dtype === 'float64' ? this : this.to('float64');
    const flat = Array.from(t.data() as Float64Array | Uint8Array, (v) => (this.dtype === 'bool' ? v !== 0 : Number(v)));
    if (t !== this) t.dispose();
    const shape = this.shape;
    if (shape.length === 0) return flat[0]!;
    const build = (dim: number, offset: number): NestedArray[] => {
      const n = shape[dim]!;
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const out: NestedArray[] = [];
      for (let i = 0; i < n; i++) out.push(dim === shape.length - 1 ? flat[offset + i]! : build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  // ---- conversion -----------------------------------------------------------------------------------------

  /** to('float64'), to('cuda'), to({ dtype, device, copy }): a new tensor unless nothing changes. */
  to(target: DType | Device | { dtype?: DType; device?: Device; copy?: boolean }): Tensor {
    const o = typeof target === 'string' ? (isDevice(target) ? { device: target } : { dtype: target as DType }) : target;
    return wrap(native.to(this.id, codeOf(o.dtype, 'to'), o.device ?? null, o.copy ?? false));
  }
  /**
   * This handle now holds src's data, as PyTorch's `t.data = src`: every holder of this Tensor
   * object sees it (how Module.to moves parameters in place). requires_grad is kept, the grad
   * dropped; src stays the caller's.
   */
  setData_(src: Tensor): this {
    native.setData(this.id, src.id);
    this.#shape = undefined;
    this.#dtype = undefined;
    this.#device = undefined;
    return this;
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  cuda(): Tensor {
    return this.to('cuda');
  }
  clone(): Tensor {
    return wrap(native.clone(this.id));
  }

  // ---- autograd -------------------------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this.id);
  }
  set requiresGrad(on: boolean) {
    native.setRequiresGrad(this.id, on);
  }
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.id, on);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.id);
  }
  /** Name of the autograd node that made this tensor, or null for leaves. */
  get gradFn(): string | null {
    return native.gradFn(this.id);
  }
  /** The accumulated gradient (a new handle on it, which the caller owns), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.id);
    return g === null ? null : wrap(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.id, g === null ? null : g.id);
  }
  /** Whether a gradient has accumulated (without making a handle on it). */
  get hasGrad(): boolean {
    // native.grad returns a new handle on the gradient; free it at once (a bare id, no JS wrapper).
    const g = native.grad(this.id);
    if (g === null) return false;
    native.free(g);
    return true;
  }
  /** Drops the accumulated gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    native.zeroGrad([this.id]);
  }
  retainGrad(): this {
    native.retainGrad(this.id);
    return this;
  }
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    const create = options.createGraph ?? false;
    native.backward(this.id, gradient ? gradient.id : null, options.retainGraph ?? create, create);
  }
  detach(): Tensor {
    return wrap(native.detach(this.id));
  }
  detach_(): this {
    native.detach_(this.id);
    return this;
  }

  // ---- elementwise ------------------------------------------------------------------------------------------

  add(other: Tensor | number, alpha?: number): Tensor {
    if (alpha !== undefined && alpha !== 1) return this.add(typeof other === 'number' ? other * alpha : other.mul(alpha));
    return typeof other === 'number' ? wrap(native.addScalar(this.id, other)) : wrap(native.add(this.id, other.id));
  }
  sub(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.subScalar(this.id, other)) : wrap(native.sub(this.id, other.id));
  }
  /** other - this */
  rsub(other: number): Tensor {
    return wrap(native.rsubScalar(this.id, other));
  }
  mul(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.mulScalar(this.id, other)) : wrap(native.mul(this.id, other.id));
  }
  div(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.divScalar(this.id, other)) : wrap(native.div(this.id, other.id));
  }
  /** other / this */
  rdiv(other: number): Tensor {
    return wrap(native.rdivScalar(this.id, other));
  }
  pow(exponent: Tensor | number): Tensor {
    return typeof exponent === 'number' ? wrap(native.powScalar(this.id, exponent)) : wrap(native.pow(this.id, exponent.id));
  }
  /** base ** this */
  rpow(base: number): Tensor {
    return wrap(native.rpowScalar(this.id, base));
  }
  remainder(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.remainderScalar(this.id, other)) : wrap(native.remainder(this.id, other.id));
  }
  floorDivide(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.floorDivideScalar(this.id, other)) : wrap(native.floorDivide(this.id, other.id));
  }
  eq(other: Tensor | Scalar): Tensor {
    return other instanceof Tensor ? wrap(native.eq(this.id, other.id)) : wrap(native.eqScalar(this.id, other));
  }
  ne(other: Tensor | Scalar): Tensor {
    return other instanceof Tensor ? wrap(native.ne(this.id, other.id)) : wrap(native.neScalar(this.id, other));
  }
  lt(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.ltScalar(this.id, other)) : wrap(native.lt(this.id, other.id));
  }
  le(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.leScalar(this.id, other)) : wrap(native.le(this.id, other.id));
  }
  gt(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.gtScalar(this.id, other)) : wrap(native.gt(this.id, other.id));
  }
  ge(other: Tensor | number): Tensor {
    return typeof other === 'number' ? wrap(native.geScalar(this.id, other)) : wrap(native.ge(this.id, other.id));
  }
  maximum(other: Tensor): Tensor {
    return wrap(native.maximum(this.id, other.id));
  }
  minimum(other: Tensor): Tensor {
    return wrap(native.minimum(this.id, other.id));
  }
  atan2(other: Tensor): Tensor {
    return wrap(native.atan2(this.id, other.id));
  }
  logicalAnd(other: Tensor): Tensor {
    return wrap(native.logicalAnd(this.id, other.id));
  }
  logicalOr(other: Tensor): Tensor {
    return wrap(native.logicalOr(this.id, other.id));
  }
  logicalXor(other: Tensor): Tensor {
    return wrap(native.logicalXor(this.id, other.id));
  }
  logicalNot(): Tensor {
    return wrap(native.logicalNot(this.id));
  }
  /** this + value * a * b */
  addcmul(a: Tensor, b: Tensor, value = 1): Tensor {
    return wrap(native.addcmul(this.id, a.id, b.id, value));
  }
  /** this + value * a / b */
  addcdiv(a: Tensor, b: Tensor, value = 1): Tensor {
    return wrap(native.addcdiv(this.id, a.id, b.id, value));
  }
  lerp(end: Tensor, weight: number): Tensor {
    return wrap(native.lerp(this.id, end.id, weight));
  }

  neg(): Tensor { return wrap(native.neg(this.id)); }
  abs(): Tensor { return wrap(native.abs(this.id)); }
  sqrt(): Tensor { return wrap(native.sqrt(this.id)); }
  rsqrt(): Tensor { return wrap(native.rsqrt(this.id)); }
  square(): Tensor { return wrap(native.square(this.id)); }
  reciprocal(): Tensor { return wrap(native.reciprocal(this.id)); }
  exp(): Tensor { return wrap(native.exp(this.id)); }
  expm1(): Tensor { return wrap(native.expm1(this.id)); }
  log(): Tensor { return wrap(native.log(this.id)); }
  log1p(): Tensor { return wrap(native.log1p(this.id)); }
  log2(): Tensor { return wrap(native.log2(this.id)); }
  sin(): Tensor { return wrap(native.sin(this.id)); }
  cos(): Tensor { return wrap(native.cos(this.id)); }
  tanh(): Tensor { return wrap(native.tanh(this.id)); }
  sigmoid(): Tensor { return wrap(native.sigmoid(this.id)); }
  logSigmoid(): Tensor { return wrap(native.logSigmoid(this.id)); }
  relu(): Tensor { return wrap(native.relu(this.id)); }
  silu(): Tensor { return wrap(native.silu(this.id)); }
  /** GELU; approximate 'tanh' for the tanh approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return wrap(native.gelu(this.id, approximate === 'tanh')); }
  softplus(beta = 1, threshold = 20): Tensor { return wrap(native.softplus(this.id, beta, threshold)); }
  leakyRelu(slope = 0.01): Tensor { return wrap(native.leakyRelu(this.id, slope)); }
  erf(): Tensor { return wrap(native.erf(this.id)); }
  floor(): Tensor { return wrap(native.floor(this.id)); }
  ceil(): Tensor { return wrap(native.ceil(this.id)); }
  round(): Tensor { return wrap(native.round(this.id)); }
  trunc(): Tensor { return wrap(native.trunc(this.id)); }
  sign(): Tensor { return wrap(native.sign(this.id)); }
  isnan(): Tensor { return wrap(native.isnan(this.id)); }
  isfinite(): Tensor { return wrap(native.isfinite(this.id)); }
  /** Clamps to [min, max]; either bound may be null (or a tensor, broadcast). */
  clamp(min: number | Tensor | null, max: number | Tensor | null = null): Tensor {
    if (min instanceof Tensor || max instanceof Tensor) {
      if (typeof min === 'number' || typeof max === 'number') {
        throw configError('clamp', 'bounds must both be tensors or both numbers');
      }
      return wrap(native.clampTensor(this.id, min?.id ?? null, max?.id ?? null));
    }
    return wrap(native.clamp(this.id, min, max));
  }
  clampMin(min: number): Tensor { return this.clamp(min, null); }
  clampMax(max: number): Tensor { return this.clamp(null, max); }

  softmax(dim: number, dtype?: DType): Tensor { return wrap(native.softmax(this.id, dim, codeOf(dtype, 'softmax'))); }
  logSoftmax(dim: number, dtype?: DType): Tensor { return wrap(native.logSoftmax(this.id, dim, codeOf(dtype, 'logSoftmax'))); }

  // ---- in place (for parameter updates and initialisation; they return this) ----------------------------------

  add_(other: Tensor | number, alpha = 1): this {
    if (typeof other === 'number') native.add_Scalar(this.id, other * alpha);
    else if (alpha === 1) native.add_(this.id, other.id);
    else native.addScaled_(this.id, other.id, alpha);
    return this;
  }
  sub_(other: Tensor | number): this {
    if (typeof other === 'number') native.sub_Scalar(this.id, other);
    else native.sub_(this.id, other.id);
    return this;
  }
  mul_(other: Tensor | number): this {
    if (typeof other === 'number') native.mul_Scalar(this.id, other);
    else native.mul_(this.id, other.id);
    return this;
  }
  div_(other: Tensor | number): this {
    if (typeof other === 'number') native.div_Scalar(this.id, other);
    else native.div_(this.id, other.id);
    return this;
  }
  clamp_(min: number | null, max: number | null = null): this {
    native.clamp_(this.id, min, max);
    return this;
  }
  zero_(): this {
    native.zero_(this.id);
    return this;
  }
  fill_(value: Scalar): this {
    native.fill_(this.id, value);
    return this;
  }
  copy_(src: Tensor): this {
    native.copy_(this.id, src.id);
    return this;
  }
  /** this.narrow(dim, at, n).copy_(src) with n = src's size along dim, in one native call. */
  copyRows_(dim: number, at: number, src: Tensor): this {
    native.copyRows_(this.id, dim, at, src.id);
    return this;
  }
  maskedFill_(mask: Tensor, value: Scalar): this {
    native.maskedFill_(this.id, mask.id, value);
    return this;
  }
  uniform_(low = 0, high = 1): this {
    native.uniform_(this.id, low, high);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.normal_(this.id, mean, std);
    return this;
  }
  indexPut_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this {
    native.indexPut_(this.id, indices.map((t) => t?.id ?? null), values.id, accumulate);
    return this;
  }

  // ---- matrix products -------------------------------------------------------------------------------------

  matmul(other: Tensor): Tensor { return wrap(native.matmul(this.id, other.id)); }
  mm(other: Tensor): Tensor { return wrap(native.mm(this.id, other.id)); }
  bmm(other: Tensor): Tensor { return wrap(native.bmm(this.id, other.id)); }
  /** beta * this + alpha * (a @ b), batched */
  baddbmm(a: Tensor, b: Tensor, { beta = 1, alpha = 1 } = {}): Tensor {
    return wrap(native.baddbmm(this.id, a.id, b.id, beta, alpha));
  }
  outer(other: Tensor): Tensor { return wrap(native.outer(this.id, other.id)); }

  // ---- reductions ------------------------------------------------------------------------------------------
  // dim: a dim, a list of dims, or omitted for all; keepdim as in PyTorch.

  sum(dim?: number | number[] | null, keepdim = false, dtype?: DType): Tensor {
    return keptAll(this, dim, keepdim, native.sum(this.id, dims(dim), keepdim, codeOf(dtype, 'sum')));
  }
  mean(dim?: number | number[] | null, keepdim = false, dtype?: DType): Tensor {
    return keptAll(this, dim, keepdim, native.mean(this.id, dims(dim), keepdim, codeOf(dtype, 'mean')));
  }
  prod(dim?: number | null, keepdim = false): Tensor {
    return keptAll(this, dim, keepdim, native.prod(this.id, dim ?? null, keepdim));
  }
  /** Maximum over everything (dim omitted) or values of the maximum along dim (see maxDim for indices). */
  max(dim?: number | number[] | null, keepdim = false): Tensor {
    return wrap(native.amax(this.id, dims(dim), keepdim));
  }
  min(dim?: number | number[] | null, keepdim = false): Tensor {
    return wrap(native.amin(this.id, dims(dim), keepdim));
  }
  /** [values, indices] of the maximum along dim. */
  maxDim(dim: number, keepdim = false): [Tensor, Tensor] {
    const [v, i] = native.maxDim(this.id, dim, keepdim);
    return [wrap(v), wrap(i)];
  }
  minDim(dim: number, keepdim = false): [Tensor, Tensor] {
    const [v, i] = native.minDim(this.id, dim, keepdim);
    return [wrap(v), wrap(i)];
  }
  argmax(dim?: number | null, keepdim = false): Tensor { return wrap(native.argmax(this.id, dim ?? null, keepdim)); }
  argmin(dim?: number | null, keepdim = false): Tensor { return wrap(native.argmin(this.id, dim ?? null, keepdim)); }
  cumsum(dim: number, dtype?: DType): Tensor { return wrap(native.cumsum(this.id, dim, codeOf(dtype, 'cumsum'))); }
  cumprod(dim: number, dtype?: DType): Tensor { return wrap(native.cumprod(this.id, dim, codeOf(dtype, 'cumprod'))); }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return wrap(native.logsumexp(this.id, dims(dim)!, keepdim));
  }
  /** Variance with Bessel's correction by default (correction 1), as PyTorch. */
  var(dim?: number | number[] | null, { correction = 1, keepdim = false } = {}): Tensor {
    return wrap(native.var(this.id, dims(dim), correction, keepdim));
  }
  std(dim?: number | number[] | null, { correction = 1, keepdim = false } = {}): Tensor {
    return wrap(native.std(this.id, dims(dim), correction, keepdim));
  }
  norm(p = 2, dim?: number | number[] | null, keepdim = false): Tensor {
    return keptAll(this, dim, keepdim, native.norm(this.id, p, dims(dim), keepdim));
  }
  all(dim?: number | null, keepdim = false): Tensor { return keptAll(this, dim, keepdim, native.all(this.id, dim ?? null, keepdim)); }
  any(dim?: number | null, keepdim = false): Tensor { return keptAll(this, dim, keepdim, native.any(this.id, dim ?? null, keepdim)); }
  /** [values, indices] sorted along dim. */
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    const [v, i] = native.sort(this.id, dim, descending);
    return [wrap(v), wrap(i)];
  }
  argsort(dim = -1, descending = false): Tensor { return wrap(native.argsort(this.id, dim, descending)); }
  /** [values, indices] of the k largest (or smallest) along dim. */
  topk(k: number, dim = -1, { largest = true, sorted = true } = {}): [Tensor, Tensor] {
    const [v, i] = native.topk(this.id, k, dim, largest, sorted);
    return [wrap(v), wrap(i)];
  }

  // ---- shape -----------------------------------------------------------------------------------------------

  reshape(...shape: number[] | [number[]]): Tensor { return wrap(native.reshape(this.id, checkShape('reshape', flatArgs(shape), 1))); }
  view(...shape: number[] | [number[]]): Tensor { return wrap(native.view(this.id, checkShape('view', flatArgs(shape), 1))); }
  permute(...order: number[] | [number[]]): Tensor { return wrap(native.permute(this.id, flatArgs(order))); }
  transpose(dim0: number, dim1: number): Tensor { return wrap(native.transpose(this.id, dim0, dim1)); }
  /** Transpose of the last two dims. */
  get mT(): Tensor { return this.transpose(-2, -1); }
  contiguous(): Tensor { return wrap(native.contiguous(this.id)); }
  /** Broadcasts size-1 dims to the given sizes (views, no copy); -1 keeps a dim's size. */
  expand(...shape: number[] | [number[]]): Tensor { return wrap(native.expand(this.id, checkShape('expand', flatArgs(shape), Infinity))); }
  expandAs(other: Tensor): Tensor { return this.expand(other.shape); }
  squeeze(dim?: number): Tensor { return wrap(native.squeeze(this.id, dim ?? null)); }
  unsqueeze(dim: number): Tensor { return wrap(native.unsqueeze(this.id, dim)); }
  flatten(startDim = 0, endDim = -1): Tensor { return wrap(native.flatten(this.id, startDim, endDim)); }
  narrow(dim: number, start: number, length: number): Tensor { return wrap(native.narrow(this.id, dim, start, length)); }
  /** Elements start, start+step, ... before end along dim (PyTorch's t[:, start:end:step]); null bounds are open. */
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return wrap(native.slice(this.id, dim, start, end, step));
  }
  /** The sub-tensor at index along dim (the dim is removed), PyTorch's t.select(dim, i). */
  select(dim: number, index: number): Tensor { return wrap(native.select(this.id, dim, index)); }
  split(sizes: number | number[], dim = 0): Tensor[] { return wrapAll(native.split(this.id, sizes, dim)); }
  chunk(chunks: number, dim = 0): Tensor[] { return wrapAll(native.chunk(this.id, chunks, dim)); }
  unbind(dim = 0): Tensor[] { return wrapAll(native.unbind(this.id, dim)); }
  repeat(...repeats: number[] | [number[]]): Tensor { return wrap(native.repeat(this.id, checkShape('repeat', flatArgs(repeats)))); }
  repeatInterleave(repeats: number, dim?: number): Tensor { return wrap(native.repeatInterleave(this.id, repeats, dim ?? null)); }
  flip(...dimsToFlip: number[] | [number[]]): Tensor { return wrap(native.flip(this.id, flatArgs(dimsToFlip))); }
  roll(shifts: number | number[], dim: number | number[]): Tensor {
    return wrap(native.roll(this.id, dims(shifts)!, dims(dim)!));
  }
  /** Sliding windows of size along dim with step (a new last dim of length size). */
  unfold(dim: number, size: number, step: number): Tensor { return wrap(native.unfold(this.id, dim, size, step)); }
  /** A view with explicit sizes, strides and storage offset (in elements), as torch.as_strided. */
  asStrided(size: number[], stride: number[], storageOffset = 0): Tensor {
    return wrap(native.asStrided(this.id, checkShape('asStrided', size), stride, storageOffset));
  }
  tril(diagonal = 0): Tensor { return wrap(native.tril(this.id, diagonal)); }
  triu(diagonal = 0): Tensor { return wrap(native.triu(this.id, diagonal)); }

  // ---- indexing --------------------------------------------------------------------------------------------

  indexSelect(dim: number, index: Tensor): Tensor { return wrap(native.indexSelect(this.id, dim, index.id)); }
  gather(dim: number, index: Tensor): Tensor { return wrap(native.gather(this.id, dim, index.id)); }
  /** Out-of-place scatter: a copy of this with src (or a value) written at index along dim. */
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    return typeof src === 'number'
      ? wrap(native.scatterValue(this.id, dim, index.id, src))
      : wrap(native.scatter(this.id, dim, index.id, src.id));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return wrap(native.scatterAdd(this.id, dim, index.id, src.id)); }
  scatterReduce(dim: number, index: Tensor, src: Tensor, reduce: 'sum' | 'prod' | 'mean' | 'amax' | 'amin', includeSelf = true): Tensor {
    return wrap(native.scatterReduce(this.id, dim, index.id, src.id, reduce, includeSelf));
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor { return wrap(native.maskedFill(this.id, mask.id, value)); }
  maskedSelect(mask: Tensor): Tensor { return wrap(native.maskedSelect(this.id, mask.id)); }
  nonzero(): Tensor { return wrap(native.nonzero(this.id)); }
  /** Advanced indexing, PyTorch's t[i0, i1, ...] with index tensors; null stands for ':'. */
  index(indices: (Tensor | null)[]): Tensor { return wrap(native.index(this.id, indices.map((t) => t?.id ?? null))); }
  indexPut(indices: (Tensor | null)[], values: Tensor, accumulate = false): Tensor {
    return wrap(native.indexPut(this.id, indices.map((t) => t?.id ?? null), values.id, accumulate));
  }
}

// libtorch's reductions over everything drop keepdim; PyTorch (and amax here) keep every dim as size 1.
function keptAll(t: Tensor, dim: unknown, keepdim: boolean, id: number): Tensor {
  if (dim != null || !keepdim || t.ndim === 0) return wrap(id);
  try {
    return wrap(native.reshape(id, t.shape.map(() => 1)));
  } finally {
    native.free(id);
  }
}

function flatArgs(args: number[] | [number[]]): number[] {
  return Array.isArray(args[0]) ? (args[0] as number[]) : (args as number[]);
}

function isDevice(s: string): s is Device {
  return s === 'cpu' || s === 'cuda' || s === 'meta' || s.startsWith('cuda:');
}

/** @internal for sibling modules: wraps a native id in a tracked Tensor. */
export const fromId = wrap;
/** @internal fromId for an op whose result is known to have `shape` (the shape is not read back). */
export const fromIdWithShape = (id: number, shape: number[]): Tensor => new Tensor(id, shape);
