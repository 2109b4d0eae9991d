// Factory functions: tensors from JS data, constants, ranges, random numbers; and the
// shape-combining functions (cat, stack, where) that take several tensors.
import { native } from './native.js';
import { codeOf, dtypeOfArray, type DType } from './dtype.js';
import { checkShape, checkSize } from './check.js';
import { dtypeError, shapeError } from './errors.js';
import { fromId, Tensor, type CreateOptions, type NestedArray, type Scalar } from './tensor.js';

function made(id: number, o: CreateOptions): Tensor {
  const t = fromId(id);
  if (o.requiresGrad) native.setRequiresGrad(id, true);
  return t;
}
const dev = (o: CreateOptions): string | null => o.device ?? null;

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0]!;
  }
  return shape;
}

// Every leaf must be a number or a boolean, every row as long as the first at its depth.
function flattenInto(data: NestedArray, shape: number[], dim: number, out: number[]): void {
  if (dim === shape.length) {
    if (Array.isArray(data)) throw shapeError('tensor', 'ragged nested array (rows of different lengths)');
    if (typeof data === 'number') out.push(data);
    else if (typeof data === 'boolean') out.push(data ? 1 : 0);
    else {
      const what = data === null || data === undefined ? String(data)
        : typeof data === 'string' ? `the string '${data as string}'`
        : typeof data === 'object' ? 'an object' : `a ${typeof data}`;
      throw dtypeError('tensor', `element ${out.length} is ${what}; tensor() takes numbers or booleans (nested arrays of them, or a TypedArray)`);
    }
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw shapeError('tensor', `ragged nested array at depth ${dim} (expected ${shape[dim]} elements)`);
  }
  for (const d of data) flattenInto(d, shape, dim + 1, out);
}

/**
 * A tensor from JS data.
 * - nested arrays of numbers: float32 unless `dtype` says otherwise (JS cannot tell 1 from 1.0,
 *   so unlike torch.tensor integers do not default to int64); of booleans: bool;
 * - a TypedArray (with an optional `shape`, default 1-d): its own dtype, copied; a TypedArray
 *   obtained from t.dataView() is aliased instead (no copy);
 * - a number: a 0-d tensor.
 */
export function tensor(data: NestedArray | ArrayBufferView, options: CreateOptions & { shape?: number[] } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    codeOf(options.dtype, 'tensor'); // an unknown dtype fails here, naming tensor(), not a later to()
    // The requested dtype names the bytes only where the array type is ambiguous (16-bit floats
    // as Uint16 bits, bool as Uint8); otherwise the array's own type does, and we convert after.
    const raw = (data instanceof Uint16Array && (options.dtype === 'float16' || options.dtype === 'bfloat16')) ||
      (data instanceof Uint8Array && options.dtype === 'bool');
    const own: DType = raw ? options.dtype! : dtypeOfArray(data, 'tensor');
    const elements = data.byteLength / (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const shape = options.shape === undefined ? [elements] : checkShape('tensor', options.shape);
    let t = fromId(native.fromArray(data, codeOf(own, 'tensor')!, shape));
    if (options.dtype && options.dtype !== own) t = convert(t, options.dtype);
    if (options.device && options.device !== 'cpu') t = moveTo(t, options.device);
    if (options.requiresGrad) native.setRequiresGrad(t.id, true);
    return t;
  }
  const shape = inferShape(data);
  const flat: number[] = [];
  flattenInto(data, shape, 0, flat);
  const isBool = flat.length > 0 && firstLeaf(data) !== undefined && typeof firstLeaf(data) === 'boolean';
  const dtype = options.dtype ?? (isBool ? 'bool' : 'float32');
  return tensor(Float64Array.from(flat), { ...options, dtype, shape });
}

function firstLeaf(data: NestedArray): Scalar | undefined {
  let d: NestedArray = data;
  while (Array.isArray(d)) {
    if (d.length === 0) return undefined;
    d = d[0]!;
  }
  return d;
}

function convert(t: Tensor, dtype: DType): Tensor {
  const out = t.to(dtype);
  t.dispose();
  return out;
}
function moveTo(t: Tensor, device: string): Tensor {
  const out = t.to({ device: device as 'cuda' });
  t.dispose();
  return out;
}

export function scalar(value: Scalar, options: CreateOptions = {}): Tensor {
  return made(native.scalarTensor(value, codeOf(options.dtype, 'scalar'), dev(options)), options);
}
export function zeros(shape: number[], options: CreateOptions = {}): Tensor {
  return made(native.zeros(checkShape('zeros', shape), codeOf(options.dtype, 'zeros'), dev(options)), options);
}
export function ones(shape: number[], options: CreateOptions = {}): Tensor {
  return made(native.ones(checkShape('ones', shape), codeOf(options.dtype, 'ones'), dev(options)), options);
}
/** Uninitialised memory: fill it before reading (e.g. through dataView()). */
export function empty(shape: number[], options: CreateOptions = {}): Tensor {
  return made(native.empty(checkShape('empty', shape), codeOf(options.dtype, 'empty'), dev(options)), options);
}
export function full(shape: number[], value: Scalar, options: CreateOptions = {}): Tensor {
  return made(native.full(checkShape('full', shape), value, codeOf(options.dtype, 'full'), dev(options)), options);
}
export function eye(n: number, m = n, options: CreateOptions = {}): Tensor {
  return made(native.eye(checkSize('eye', 'n', n), checkSize('eye', 'm', m), codeOf(options.dtype, 'eye'), dev(options)), options);
}
export const zerosLike = (t: Tensor): Tensor => fromId(native.zerosLike(t.id));
export const onesLike = (t: Tensor): Tensor => fromId(native.onesLike(t.id));
export const fullLike = (t: Tensor, value: Scalar): Tensor => fromId(native.fullLike(t.id, value));

/**
 * arange(end) or arange(start, end, step?): as torch.arange, int64 when every bound is an integer
 * (JS numbers being untyped, pass { dtype } to force floats).
 */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return made(native.arange(start, end, step, codeOf(options.dtype, 'arange'), dev(options)), options);
}
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  return made(native.linspace(start, end, checkSize('linspace', 'steps', steps), codeOf(options.dtype, 'linspace'), dev(options)), options);
}

// ---- random (seeded by manualSeed) --------------------------------------------------------------------------

export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
/** Uniform in [0, 1). */
export function rand(shape: number[], options: CreateOptions = {}): Tensor {
  return made(native.rand(checkShape('rand', shape), codeOf(options.dtype, 'rand'), dev(options)), options);
}
/** Standard normal. */
export function randn(shape: number[], options: CreateOptions = {}): Tensor {
  return made(native.randn(checkShape('randn', shape), codeOf(options.dtype, 'randn'), dev(options)), options);
}
/** Integers uniform in [low, high); int64 unless dtype says otherwise. */
export function randint(low: number, high: number, shape: number[], options: CreateOptions = {}): Tensor {
  return made(native.randint(low, high, checkShape('randint', shape), codeOf(options.dtype ?? 'int64', 'randint'), dev(options)), options);
}
export function randperm(n: number, options: CreateOptions = {}): Tensor {
  return made(native.randperm(checkSize('randperm', 'n', n), codeOf(options.dtype ?? 'int64', 'randperm'), dev(options)), options);
}
export const randLike = (t: Tensor): Tensor => fromId(native.randLike(t.id));
export const randnLike = (t: Tensor): Tensor => fromId(native.randnLike(t.id));
/** bernoulli(probs): 1 with each element's probability; bernoulli(t, p): 1 with probability p, in t's shape and dtype. */
export function bernoulli(t: Tensor, p?: number): Tensor {
  return fromId(native.bernoulli(t.id, p ?? null));
}
export function multinomial(probs: Tensor, numSamples: number, replacement = false): Tensor {
  return fromId(native.multinomial(probs.id, numSamples, replacement));
}

// ---- several tensors in, one out -----------------------------------------------------------------------------

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return fromId(native.cat(tensors.map((t) => t.id), dim));
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return fromId(native.stack(tensors.map((t) => t.id), dim));
}
/** Elementwise choice: a where cond is true, else b (either may be a number). */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number' && typeof b === 'number') {
    const bt = scalar(b);
    try {
      return fromId(native.whereScalarSelf(cond.id, a, bt.id));
    } finally {
      bt.dispose();
    }
  }
  if (typeof a === 'number') return fromId(native.whereScalarSelf(cond.id, a, (b as Tensor).id));
  if (typeof b === 'number') return fromId(native.whereScalarOther(cond.id, a.id, b));
  return fromId(native.where(cond.id, a.id, b.id));
}
/** Einstein summation, e.g. einsum('bhqd,bhkd->bhqk', q, k). */
export function einsum(equation: string, ...tensors: Tensor[]): Tensor {
  return fromId(native.einsum(equation, tensors.map((t) => t.id)));
}
