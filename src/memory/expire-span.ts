// Expire-Span (Sukhbaatar et al. 2021, "Not All Memories are Created Equal"; SPEC §3): every
// memory predicts how long it should be kept, is faded out over a ramp once that time has passed,
// and is then physically removed, so attention cost follows the number of live memories, not L.
//
//   span             e_i = L · σ(w · h_i / ρ + b)        one scalar per memory per layer, all heads
//   remaining span   r_ti = e_i − (t − i)                 t a query's position, i a memory's
//   soft mask        m_ti = clamp(r_ti / R + 1, 0, 1)     1 while r ≥ 0, 0 once r ≤ −R
//   attention        logits −inf where m = 0 (and for later keys); softmax; a' = m·a / (Σ m·a + 1e-8)
//                    (F.expiringAttention: one op from each key's age and span, no per-cell tables)
//   loss             α · Σ_i e_i / T over memories on the ramp (0 < m < 1)
//   drop             after a block, memory i goes once e_i − age_i + R ≤ 0 at the next block's first
//                    query (its mask is 0 there and only falls later), never from the current block;
//                    per batch the minimum droppable count over the rows, floored to a multiple of M.
//
// Memories are identified by their age: age_i = t0 − i, the distance from the block's first query
// t0 (the block's own tokens have ages 0, −1, ..., −(M−1)); query t of the block is then at distance
// age_i + t from memory i. Ages are small exact integers (bounded by about L + R + 2M), unlike absolute
// positions, which grow without bound along a stream.
//
// Shapes: B batch, M block length (queries), C cached memories, N = C + M keys, L maximum span,
// R ramp, H hidden, P = L + R key positions.
import { z } from 'zod';
import { arange, F, widenReduced, zeros, type Device, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';

/** The options of kind 'expire-span' (config key `expireSpan`): the one place their defaults are written. */
export const expireSpanSchema = z.strictObject({
  ramp: z.number().int().positive().default(32).describe('ramp R of the soft mask, in tokens'),
  initFraction: z.number().gt(0).lt(1).default(0.1).describe('p: every initial span is p·L (b = logit(p), w = 0)'),
  preDiv: z.number().gt(0).default(1).describe("ρ: the span predictor's input is divided by it (64 for large L)"),
  lossCoef: z.number().min(0).default(1e-6).describe('α of the auxiliary loss α · Σ_i e_i / T'),
  noisy: z.boolean().default(false).describe('noisy span regularisation in training: spans clamped to u·L, u ~ U(0,1), per block'),
  drop: z.boolean().default(true).describe('physically drop expired memories (false keeps them masked, for tests)'),
  keyPositions: z.enum(['all', 'block-length']).default('all')
    .describe("'all': every key gets keyPe[:, d] at its distance d; 'block-length': only keys at distances 1 … min(L, M), as the reference code"),
});
/**
 * Expire-Span's options with their defaults filled in (keyPositions, added later, may be missing
 * from a configuration saved before it existed: read it as 'all').
 */
export type ExpireSpanOptions = Omit<z.output<typeof expireSpanSchema>, 'keyPositions'> & { keyPositions?: z.output<typeof expireSpanSchema>['keyPositions'] };
/** Expire-Span's options as a user writes them (any may be left out). */
export type ExpireSpanOptionsInput = z.input<typeof expireSpanSchema>;

/**
 * Width P of the key position table: a memory is still seen at distance e_i + R − 1 <= L + R − 1,
 * so L + R distances.
 */
export const expireSpanPositions = (maxSpan: number, o: ExpireSpanOptions): number => maxSpan + o.ramp;

/**
 * Option keyPositions 'block-length' (the reference's key positions): the columns of the key
 * position table [D, P] that are kept, 1 at distances 1 … min(L, M) and 0 elsewhere, [P] in
 * `dtype`. keyPe times it gives every other key (older ones, and the query itself) no position
 * term, and its zeroed columns no gradient.
 */
export function blockLengthColumns(positions: number, maxSpan: number, block: number, dtype: Tensor['dtype']): Tensor {
  const d = arange(0, positions, 1, { dtype: 'int64' });
  return d.ge(1).logicalAnd(d.le(Math.min(maxSpan, block))).to(dtype); // [P]
}

/** e = L · σ(x · w / ρ + b): x [B, N, H], weight [1, H], bias [1] -> spans [B, N] in (0, L). */
export function predictSpans(x: Tensor, weight: Tensor, bias: Tensor, maxSpan: number, preDiv: number): Tensor {
  // widened: under bf16 the product is bfloat16, whose 8-bit mantissa would round spans of
  // hundreds of tokens to steps of several (and with them the ramp and what is dropped)
  // (ρ = 1, the default, divides nothing: no [B, N, H] copy)
  return widenReduced(F.linear(preDiv === 1 ? x : x.div(preDiv), weight, bias)).squeeze(-1).sigmoid().mul(maxSpan); // [B, N]
}

/**
 * The span predictor of one layer, a Linear(H, 1) initialised to w = 0, b = logit(p), so that every
 * initial span is p·L whatever the memory holds.
 */
export class SpanPredictor extends Module {
  /** [1, H] */
  readonly weight: Tensor;
  /** [1] */
  readonly bias: Tensor;
  /** ρ: the input is divided by it before the linear map (large L wants ρ = 64). */
  readonly preDiv: number;

  constructor(dModel: number, readonly maxSpan: number, { initFraction, preDiv }: { initFraction: number; preDiv: number }) {
    super();
    this.preDiv = preDiv;
    this.weight = this.param('weight', () => zeros([1, dModel]));
    this.bias = this.param('bias', () => zeros([1]).add(Math.log(initFraction / (1 - initFraction))));
  }

  /** x [B, N, H] -> spans [B, N]. */
  forward(x: Tensor): Tensor {
    return predictSpans(x, this.weight, this.bias, this.maxSpan, this.preDiv);
  }
}

/**
 * Per memory, how many of a block's `queries` see it on the ramp (0 < m < 1): spans [B, N] (float),
 * ages int64 [B, N] from the first query -> [B, N] counts (float, no gradient). Query i sees memory j
 * at distance age_j + i, on the ramp while e_j − age_j < i < e_j − age_j + R; counted from those
 * bounds, not from a [B, M, N] mask.
 */
export function rampQueries(spans: Tensor, ages: Tensor, queries: number, ramp: number): Tensor {
  const remaining = spans.detach().sub(ages.to(spans.dtype)); // [B, N]: e − age, the remaining span at the first query
  const first = remaining.floor().add(1).clampMin(0); // the first query with m < 1 (i > e − age)
  const last = remaining.add(ramp).ceil().sub(1).clampMax(queries - 1); // the last query with m > 0 (i < e − age + R)
  return last.sub(first).add(1).clampMin(0); // [B, N]
}

/**
 * α · Σ_i e_i / T over the memories on the ramp (0 < m < 1), the reference's normalisation: each
 * (query, memory) cell on the ramp adds e_i / (R · M), so a memory, which stays on the ramp for
 * about R queries, adds about e_i / M over its life: α Σ_i e_i / T per token once averaged over the
 * blocks of a stream; the mean over the batch rows, as the reference's trainer. (The reference sums
 * the remaining span r_ti = e_i − (t − i) instead of e_i: the same gradient, a value offset by a
 * constant; e_i keeps the value positive and equal to SPEC's formula.)
 * spans [B, N], ages int64 [B, N] from the first of `queries` queries -> 0-d.
 */
export function spanLoss(spans: Tensor, ages: Tensor, queries: number, lossCoef: number, ramp: number): Tensor {
  return spans.mul(rampQueries(spans, ages, queries, ramp)).sum(-1).mean().mul(lossCoef / (ramp * queries));
}

/**
 * bool [B, N]: memories whose mask is 0 at the next block's first query, e_i − age'_i + R ≤ 0 with
 * age'_i = age_i + M its distance from that query. Masks only fall as queries move on (for fixed
 * spans), so such a memory will never be seen again.
 */
export function expiredMemories(spans: Tensor, ages: Tensor, block: number, ramp: number): Tensor {
  return spans.sub(ages.add(block).to(spans.dtype)).add(ramp).le(0); // [B, N]
}

/** bool [B, N]: the expired memories that may be dropped: all but the current block's M (the last M). */
export function droppableMemories(spans: Tensor, ages: Tensor, block: number, ramp: number): Tensor {
  const N = ages.shape[1]!;
  const cached = arange(0, N, 1, { dtype: 'int64', device: ages.device as Device }).lt(N - block); // [N]
  return expiredMemories(spans, ages, block, ramp).logicalAnd(cached); // [B, N]
}

/**
 * How many memories every row drops: the minimum droppable count over the rows (rows must stay the
 * same length), floored to a multiple of M (as the reference, so that cache sizes move in steps of
 * M and few distinct shapes occur).
 */
export function dropCount(droppable: Tensor, block: number): number {
  const fewest = droppable.sum(-1).min().item(); // one sync per layer and block
  return Math.floor(fewest / block) * block;
}

/**
 * int64 [B, N − count]: per row, the indices of the memories kept when `count` droppable ones go
 * (the oldest droppable ones, as they sit first), in their original order. Expired memories are not
 * necessarily the oldest, so each row is compacted: an argsort of drop · N + index (distinct keys, so
 * its order is fully determined) moves the dropped ones to the end and keeps the others in order.
 * Every row must hold at least `count` droppable memories (dropCount guarantees it).
 */
export function keptIndices(droppable: Tensor, count: number): Tensor {
  const N = droppable.shape[1]!;
  const rank = droppable.long().cumsum(-1); // [B, N]: 1 for the oldest droppable memory, 2 ...
  const dropped = droppable.logicalAnd(rank.le(count)); // [B, N]: exactly `count` per row
  const key = dropped.long().mul(N).add(arange(0, N, 1, { dtype: 'int64', device: droppable.device as Device })); // [B, N]
  return key.argsort(-1).narrow(1, 0, N - count); // [B, N − count]
}
