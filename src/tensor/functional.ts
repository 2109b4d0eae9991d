// Neural-network functions, as torch.nn.functional: import { F } from 'engram'.
import { native } from './native.js';
import { codeOf, type DType } from './dtype.js';
import { configError } from './errors.js';
import { checkShape, checkSize } from './check.js';
import { fromId, fromIdWithShape, type Device, type Tensor } from './tensor.js';
import { arange } from './creation.js';
import { nativeKernelsOn } from './device.js';

type Reduction = 'mean' | 'sum' | 'none';
const pair = (v: number | number[]): number[] => (typeof v === 'number' ? [v] : v);

export const softmax = (x: Tensor, dim: number, dtype?: DType): Tensor => fromId(native.softmax(x.id, dim, codeOf(dtype, 'softmax')));
export const logSoftmax = (x: Tensor, dim: number, dtype?: DType): Tensor => fromId(native.logSoftmax(x.id, dim, codeOf(dtype, 'logSoftmax')));

/**
 * softmax(scale * x) along dim with positions where mask is true excluded (set to -inf first).
 * Fused, with its own backward that keeps only the output alive; fully masked rows give zeros.
 */
export function maskedSoftmax(x: Tensor, mask: Tensor | null, { scale = 1, dim = -1 } = {}): Tensor {
  return fromId(native.maskedSoftmax(x.id, mask?.id ?? null, scale, dim));
}

/**
 * Each head's weighted sum of its values, the heads side by side: weights [B, K, Tq, Tk], values
 * [B, K, Tk, D] -> [B, Tq, K·D] = weights.matmul(values).transpose(1, 2).flatten(2), written in that
 * layout by the batched product kernel (no copy forward or backward) where it runs (runtime.ts
 * batchedMatmulKernel), composed from ATen ops elsewhere. With `blocks` (a band over [Tq, Tk]),
 * of the weights times the band: the kernel skips the keys outside it (bandedMatmul).
 */
export function weightedValues(weights: Tensor, values: Tensor, blocks: RowBlocks | null = null): Tensor {
  return fromId(native.weightedValues(weights.id, values.id, blocks));
}

/**
 * A band W over a [rows, cols] matrix as row blocks, flat quadruples [r0, r1, c0, c1, ...]: block
 * i covers rows [r0, r1) and columns [c0, c1) (rows ascending and disjoint); W is 1 inside the
 * blocks, 0 elsewhere. nn/attention.ts keyBlocks makes them from a mask.
 */
export type RowBlocks = readonly number[];

/**
 * a [..., M, K] @ b [..., K, N] banded: (a b) ⊙ W with W over [M, N], or with `left` (a ⊙ W) b with W
 * over [M, K] (batch dims broadcast as matmul's). The batched product kernel computes only the
 * blocks (each a product of the block's rows and columns) and their gradients likewise: masked
 * attention's products skip the keys a mask hides from a whole block of queries. Composed as
 * matmul and a product with W where the kernel does not run.
 */
export function bandedMatmul(a: Tensor, b: Tensor, blocks: RowBlocks, { left = false } = {}): Tensor {
  return fromId(native.bandedMatmul(a.id, b.id, blocks, left));
}

/**
 * The parts of a joint projection split into heads: x [B, T, parts·heads·D] -> `parts` tensors
 * [B, heads, T, D] (attention's keys and values: parts 2), views of x, equal to
 * x.view(B, T, parts, heads, D).permute(2, 0, 3, 1, 4).unbind(0); their backward writes the
 * parts' gradients into one tensor of x's shape in one pass (autograd through those views stacks
 * the parts and then copies the stack into x's layout).
 */
export function splitHeads(x: Tensor, parts: number, heads: number): Tensor[] {
  return native.splitHeads(x.id, parts, heads).map(fromId);
}

/**
 * content + relShift(x), x and content [..., Tq, Tk] (content null: relShift(x) alone): Transformer-XL's
 * rel_shift of scores against distances Tk-1 ... 0 (nn/positions.ts relShift has the definition),
 * equal entry for entry to pad, view, slice, view and add (the wrapped entries past the causal mask
 * included), in one pass forward and one backward (a native op on the CPU in float32 and float64;
 * the composed ATen ops elsewhere).
 */
export function relShiftAdd(content: Tensor | null, x: Tensor): Tensor {
  return fromId(native.relShiftAdd(content?.id ?? null, x.id));
}

/**
 * p·mask / (Σ_dim p·mask + eps): a soft mask (broadcast to p) on attention weights p, each row
 * renormalised (Adaptive-Span's and Expire-Span's masks). Fused, with its own backward (gradients
 * for p and mask); the same values as the composed ops.
 */
export function softMaskRenorm(p: Tensor, mask: Tensor, { eps = 1e-8, dim = -1 } = {}): Tensor {
  return fromId(native.softMaskRenorm(p.id, mask.id, eps, dim));
}

/** Expire-Span's keys for expiringAttention: each key's age and span, the mask's ramp, the nearest distance seen. */
export interface ExpiringKeysInput {
  /** int64 [B, Tk]: key j's distance from the first query; query i sees it at distance age_j + i. */
  age: Tensor;
  /** [B, Tk]: each key's span e_j (float). */
  spans: Tensor;
  /** R: the soft mask falls from 1 to 0 over R distances past the span. */
  ramp: number;
  /** The nearest distance a query may see: 0 (itself) or 1. */
  nearest: number;
}

/**
 * How expiringAttention makes the key position scores q_i · keyPe[:, d_ij]: 'per-key' a dot product
 * for each key a query sees (cost ∝ the keys seen), 'table' q · keyPe for every distance (one
 * matrix product, cost ∝ P), 'auto' per key when the (query, key) cells seen, counted from the
 * spans, cost less than the table's entries.
 */
export type PositionScores = 'auto' | 'per-key' | 'table';
const positionScoresCode: Record<PositionScores, number> = { auto: 0, 'per-key': 1, table: 2 };

/**
 * Expire-Span's attention weights [B, K, Tq, Tk] from content scores [B, K, Tq, Tk] (q · kᵀ), the
 * queries q [B, K, Tq, D] and the key position table keyPe [D, P] (column d: distance d), for keys
 * at distances d_ij = age_j + i:
 *   m_ij = clamp((e_j − d_ij) / R + 1, 0, 1); blocked where d_ij < nearest or m_ij = 0;
 *   a = softmax(scale · (content + q_i · keyPe[:, clamp(d_ij, 0, P − 1)])) over the keys not blocked;
 *   weights = m·a / (Σ m·a + eps).
 * Gradients for content, queries, keyPe and spans. On the CPU one native op that keeps only the
 * weights and the row sums for backward (no distance, mask or soft-mask table of the weights' size)
 * and, for short spans, scores only the keys a query sees; on other devices the same maths composed
 * from ATen ops (composedExpiringAttention).
 */
export function expiringAttention(content: Tensor, queries: Tensor, keyPe: Tensor, keys: ExpiringKeysInput,
  { scale = 1, eps = 1e-8, positions = 'auto' as PositionScores } = {}): Tensor {
  if (!nativeKernelsOn(content.device)) return composedExpiringAttention(content, queries, keyPe, keys, { scale, eps });
  const code = positionScoresCode[positions];
  if (code === undefined) throw configError('expiringAttention', `positions must be 'auto', 'per-key' or 'table', got ${JSON.stringify(positions)}`);
  return fromId(native.expiringAttention(content.id, queries.id, keyPe.id, keys.age.id, keys.spans.id, keys.ramp, keys.nearest, scale, eps, code));
}

/**
 * Expire-Span's attention: expiringAttention's weights of q [B, K, Tq, D] against k [B, K, Tk, D]
 * (keys at distances age_j + i from query i), then Σ_j y_ij v_j (v [B, K, Tk, D]) -> [B, Tq, K·D],
 * the heads side by side as the output projection reads them. Gradients for q, k, v, keyPe and the
 * spans. On the CPU in float32 or float64 (autocast off) one native op that passes over the keys each
 * query sees and keeps u = m·a and Z per row for its backward: no [B, K, Tq, Tk] table of scores or
 * of their gradients, and the cost follows the keys seen. Otherwise q · kᵀ, expiringAttention and · v
 * (composed from ATen ops on other devices). Equal up to float rounding.
 */
export function expiringAttend(q: Tensor, k: Tensor, v: Tensor, keyPe: Tensor, keys: ExpiringKeysInput, { scale = 1, eps = 1e-8 } = {}): Tensor {
  if (!nativeKernelsOn(q.device)) return composedExpiringAttention(q.matmul(k.mT), q, keyPe, keys, { scale, eps }).matmul(v).transpose(1, 2).flatten(2);
  return fromId(native.expiringAttend(q.id, k.id, v.id, keyPe.id, keys.age.id, keys.spans.id, keys.ramp, keys.nearest, scale, eps));
}

/** One decoder layer's weights for decoderLayerRow (null where a Linear has no bias). */
export interface DecoderLayerRowWeights {
  ln1: readonly [weight: Tensor, bias: Tensor, eps: number];
  q: readonly [weight: Tensor, bias: Tensor | null];
  kv: readonly [weight: Tensor, bias: Tensor | null];
  out: readonly [weight: Tensor, bias: Tensor | null];
  ln2: readonly [weight: Tensor, bias: Tensor, eps: number];
  up: readonly [weight: Tensor, bias: Tensor | null];
  down: readonly [weight: Tensor, bias: Tensor | null];
}

/** A key/value cache's buffers [B, K, C, D] for decoderLayerRow: rows [0, filled) hold earlier rows, C > filled. */
export interface RowCacheInput {
  keys: Tensor;
  values: Tensor;
  filled: number;
  /** The newest rows attended after the new row's are written (the new row's included). */
  used: number;
}

/**
 * The attention scheme of decoderLayerRow: none, Transformer-XL's relative positions (attendRow's,
 * but positionKeys [K, D, R] may hold more distances than keys: its last `used` columns, distances
 * used-1 ... 0, are read), or expiring keys (expiringAttend's).
 */
export type LayerRowPositions = { kind: 'none' } | ({ kind: 'relative' } & RowPositions) | { kind: 'expiring'; keyPe: Tensor; keys: ExpiringKeysInput; eps?: number };

/**
 * One decoder layer (nn/decoder-layer.ts) for one new row h [B, 1, H] over a key/value cache, in one
 * native call (a decoding step's layer was ~20 calls): the row's key and value are written into row
 * `filled` of the cache buffers, the row attends to the newest `used` rows (attendRow's or
 * expiringAttend's maths), then the output projection, residuals, layer norms and feed-forward,
 * post-LN or pre-LN. No dropout and nothing recorded: for evaluation. In float32 on the CPU (no
 * autocast, no gradient) plain loops around BLAS's sgemv; otherwise the composed layer's ATen ops,
 * every projection through linearRow(rowMin). Equal to the composed layer up to float rounding.
 */
export function decoderLayerRow(h: Tensor, weights: DecoderLayerRowWeights, cache: RowCacheInput, positions: LayerRowPositions,
  { pre, scale, rowMin = 0 }: { pre: boolean; scale: number; rowMin?: number }): Tensor {
  const w = weights;
  const ids = [w.ln1[0], w.ln1[1], w.q[0], w.q[1], w.kv[0], w.kv[1], w.out[0], w.out[1], w.ln2[0], w.ln2[1], w.up[0], w.up[1], w.down[0], w.down[1]].map((t) => t?.id ?? null);
  let tensors: (Tensor | null | undefined)[] = [];
  let ramp = 0, nearest = 0, eps = 0;
  if (positions.kind === 'relative') tensors = [positions.contentBias, positions.positionKeys, positions.positionBias];
  else if (positions.kind === 'expiring') {
    tensors = [positions.keyPe, positions.keys.age, positions.keys.spans];
    ({ ramp, nearest } = positions.keys);
    eps = positions.eps ?? 1e-8;
  }
  return fromIdWithShape(native.decoderLayerRow(h.id, ids, pre, w.ln1[2], w.ln2[2], rowMin, cache.keys.id, cache.values.id, cache.filled, cache.used, scale,
    positions.kind, tensors.map((t) => t?.id ?? null), ramp, nearest, eps), h.shape); // [B, 1, H], as h
}

/** expiringAttention composed from ATen ops (the table q · keyPe, a gather by distance, maskedSoftmax, softMaskRenorm): any device. */
export function composedExpiringAttention(content: Tensor, queries: Tensor, keyPe: Tensor, { age, spans, ramp, nearest }: ExpiringKeysInput,
  { scale = 1, eps = 1e-8 } = {}): Tensor {
  const [B, K, Tq, Tk] = content.shape as [number, number, number, number];
  const P = keyPe.shape[1]!;
  const distance = age.unsqueeze(1).add(arange(0, Tq, 1, { dtype: 'int64', device: age.device as Device }).view(1, Tq, 1)); // [B, Tq, Tk]
  const soft = spans.unsqueeze(1).sub(distance.to(spans.dtype)).div(ramp).add(1).clamp(0, 1); // [B, Tq, Tk]
  const blocked = distance.lt(nearest).logicalOr(soft.le(0)); // [B, Tq, Tk]
  const byKey = queries.matmul(keyPe).gather(-1, distance.clamp(0, P - 1).unsqueeze(1).expand(B, K, Tq, Tk)); // [B, K, Tq, Tk]
  const weights = maskedSoftmax(content.add(byKey), blocked.unsqueeze(1), { scale });
  return softMaskRenorm(weights, soft.unsqueeze(1), { eps });
}

export const relu = (x: Tensor): Tensor => x.relu();
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => x.gelu(approximate);
export const silu = (x: Tensor): Tensor => x.silu();
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();
export const tanh = (x: Tensor): Tensor => x.tanh();

export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return fromId(native.layerNorm(x.id, checkShape('layerNorm', pair(normalizedShape)), weight?.id ?? null, bias?.id ?? null, eps));
}
/** Zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw configError('dropout', `p must be in [0, 1], got ${p}`);
  return fromId(native.dropout(x.id, p, training));
}
/** Rows of weight [num, dim] at integer indices; paddingIdx rows get no gradient (negative counts from the end). */
export function embedding(indices: Tensor, weight: Tensor, paddingIdx?: number): Tensor {
  // libtorch takes -1 for "none", so a negative index is resolved here, as torch.nn.functional does
  const padding = paddingIdx === undefined ? -1 : paddingIdx < 0 ? weight.shape[0]! + paddingIdx : paddingIdx;
  return fromId(native.embedding(weight.id, indices.id, padding));
}
/** x @ weight^T + bias, weight [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return fromId(native.linear(x.id, weight.id, bias?.id ?? null));
}
/**
 * content [..., Tq, Tk] plus the skewed read of x [..., Tq, W]: entry [i, j] adds x's flat entry
 * base + i·rowStride + j of its matrix (rowStride default Tk, at least Tk; the last read within the
 * Tq·W entries): the learned key positions of a sliding window (nn/positions.ts
 * skewedKeyPositions, rowStride Tk) and relative positions that see later keys (relSkew: base
 * Tq − 1, rowStride W − 1). As content.add(a strided view of x); on the CPU one native op whose
 * backward writes x's gradient in one pass (the view's backward fills zeros, then copies).
 */
export function skewAdd(content: Tensor, x: Tensor, base: number, rowStride?: number): Tensor {
  return fromId(native.skewAdd(content.id, x.id, base, rowStride ?? null));
}
/**
 * linear(relu(linear(x, w1, b1)), w2, b2): the position-wise feed-forward without dropout, x [.., in],
 * w1 [F, in], w2 [out, F]. In float32 / float64 (no autocast) one native autograd op that rectifies
 * the hidden layer in place and masks its gradient in place (two [.., F] tensors fewer than the
 * composed ops); otherwise the composed ops. Same values and gradients as the composition.
 */
export function feedForward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor): Tensor {
  return fromId(native.feedForward(x.id, w1.id, b1.id, w2.id, b2.id));
}
/**
 * linear(cat(first, second, -2), weight, bias) for first [.., P, in] and second [.., T, in]: keys
 * and values of two pieces of rows, such as a detached cache and a block's rows. The backward
 * computes the input gradient of the pieces that take one only, not of all P + T rows (one native
 * autograd op; under autocast or for other dtypes, linear over the cat). Same values and weight
 * gradient as linear(cat(...)).
 */
export function linearOverCat(first: Tensor, second: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return fromId(native.linearOverCat(first.id, second.id, weight.id, bias?.id ?? null));
}
/**
 * linear() that runs as a matrix-vector product, bias + weight x, when x [.., in] holds one row,
 * float32 on the CPU (autocast off), and the weight has at least `minEntries` entries: it reads the
 * weight in place where a 1-row sgemm packs it first. Anything else runs as linear() (the native
 * op decides, so callers need not read shapes). Equal to linear() up to float rounding.
 */
export function linearRow(x: Tensor, weight: Tensor, bias?: Tensor | null, minEntries = 0): Tensor {
  return fromId(native.linearRow(x.id, weight.id, bias?.id ?? null, minEntries));
}

/** Position terms of attendRow: per-key position vectors and the biases of Transformer-XL's relative scores. */
export interface RowPositions {
  /** u [K, D]: added to the query for the content scores. */
  contentBias?: Tensor | null;
  /** P [K, D, Tk]: key j's position vector per head (XL: W_r R for distances Tk − 1 ... 0). */
  positionKeys?: Tensor | null;
  /** w [K, D]: added to the query for the position scores. */
  positionBias?: Tensor | null;
}

/**
 * One query row's attention over keys it all sees (decoding one token over a key/value cache):
 * q [B, K, 1, D], k and v [B, K, Tk, D] ->
 *   s_j = scale · ((q + u) · k_j + (q + w) · P[:, j]),  a = softmax(s),  Σ_j a_j v_j
 * as [B, 1, K·D] (the heads side by side). One native loop per head on the CPU in float32 without
 * gradient; otherwise the same maths from ATen ops (the native op decides). Equal to the composed
 * attention up to float rounding.
 */
export function attendRow(q: Tensor, k: Tensor, v: Tensor, positions: RowPositions, scale: number): Tensor {
  return fromId(native.attendRow(q.id, k.id, v.id, positions.contentBias?.id ?? null, positions.positionKeys?.id ?? null, positions.positionBias?.id ?? null, scale));
}

export interface CrossEntropyOptions {
  weight?: Tensor;
  reduction?: Reduction;
  /** Targets equal to this contribute no loss and no gradient (default -100, as PyTorch). */
  ignoreIndex?: number;
  labelSmoothing?: number;
}
/** Cross entropy of logits [N, C] (or [N, C, d...]) against class indices [N] (or [N, d...]). */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return fromId(native.crossEntropy(logits.id, target.id, o.weight?.id ?? null, o.reduction ?? 'mean', o.ignoreIndex ?? -100, o.labelSmoothing ?? 0));
}
export function nllLoss(logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return fromId(native.nllLoss(logProbs.id, target.id, o.weight?.id ?? null, o.reduction ?? 'mean', o.ignoreIndex ?? -100));
}
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return fromId(native.mseLoss(input.id, target.id, reduction));
}
export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, o: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {}): Tensor {
  return fromId(native.bceWithLogits(logits.id, target.id, o.weight?.id ?? null, o.posWeight?.id ?? null, o.reduction ?? 'mean'));
}

export interface ConvOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}
/** 1-d convolution: x [B, Cin, L], weight [Cout, Cin/groups, K]. */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: ConvOptions = {}): Tensor {
  return fromId(native.conv1d(x.id, weight.id, bias?.id ?? null, pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.groups ?? 1));
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: ConvOptions = {}): Tensor {
  const two = (v: number | number[]) => (typeof v === 'number' ? [v, v] : v);
  return fromId(native.conv2d(x.id, weight.id, bias?.id ?? null, two(o.stride ?? 1), two(o.padding ?? 0), two(o.dilation ?? 1), o.groups ?? 1));
}

export interface PoolOptions {
  stride?: number | number[];
  padding?: number | number[];
  ceilMode?: boolean;
}
/** Average pooling over the last dim of x [B, C, L] (stride defaults to the kernel size). */
export function avgPool1d(x: Tensor, kernel: number, o: PoolOptions = {}): Tensor {
  return fromId(native.avgPool1d(x.id, [kernel], pair(o.stride ?? kernel), pair(o.padding ?? 0), o.ceilMode ?? false));
}
export function maxPool1d(x: Tensor, kernel: number, o: PoolOptions = {}): Tensor {
  return fromId(native.maxPool1d(x.id, [kernel], pair(o.stride ?? kernel), pair(o.padding ?? 0), o.ceilMode ?? false));
}
export function avgPool2d(x: Tensor, kernel: number | [number, number], o: PoolOptions = {}): Tensor {
  const k = typeof kernel === 'number' ? [kernel, kernel] : kernel;
  const two = (v: number | number[]) => (typeof v === 'number' ? [v, v] : v);
  return fromId(native.avgPool2d(x.id, k, two(o.stride ?? k), two(o.padding ?? 0), o.ceilMode ?? false));
}
export function maxPool2d(x: Tensor, kernel: number | [number, number], o: PoolOptions = {}): Tensor {
  const k = typeof kernel === 'number' ? [kernel, kernel] : kernel;
  const two = (v: number | number[]) => (typeof v === 'number' ? [v, v] : v);
  return fromId(native.maxPool2d(x.id, k, two(o.stride ?? k), two(o.padding ?? 0), o.ceilMode ?? false));
}
export function adaptiveAvgPool1d(x: Tensor, outputSize: number): Tensor {
  return fromId(native.adaptiveAvgPool1d(x.id, [checkSize('adaptiveAvgPool1d', 'outputSize', outputSize)]));
}

/**
 * Pads x; pads lists (before, after) pairs starting from the last dim, as torch.nn.functional.pad.
 * Modes: constant (with value), reflect, replicate, circular.
 */
export function pad(x: Tensor, pads: number[], mode: 'constant' | 'reflect' | 'replicate' | 'circular' = 'constant', value = 0): Tensor {
  return fromId(native.pad(x.id, pads, mode, mode === 'constant' ? value : null));
}
