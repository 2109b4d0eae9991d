// Expire-Span (Sukhbaatar et al. 2021; SPEC §3) on the sequential base: each layer's memories
// predict their own span, fade out over a ramp once it has passed, and are then physically dropped
// from the cache (the mechanism: src/memory/expire-span.ts).
//
//   per layer l   keys = cat(kept memories [B, C_l, H], block [B, M, H]); spans e [B, C_l + M] from
//                 that layer's span predictor and ages [B, C_l + M], from which the attention makes
//                 the hard mask (later keys, m = 0), the soft mask m and each key's position
//                 (F.expiringAttention, no [B, 1, M, C_l + M] tables; with few keys against the
//                 L + R positions it scores positions only for the keys a query sees); the span loss;
//   after a block the memories of cat(cache, block) whose mask is 0 at the next block's first query
//                 are dropped (the batch minimum, floored to a multiple of M; the oldest droppable of
//                 each row, compacted per row unless every row drops its oldest); C_l differs by layer.
//                 Caches are tensors of whatever length is kept, not a fixed buffer, so the
//                 reference's overflow (SPEC §3, a causal mask of L + M + R columns) cannot occur; C_l
//                 stays below about L + R + 2M since memories older than L + R are always droppable.
//   drop = false  nothing is dropped except what no query can see any more (distance >= L + R from
//                 the next query): the same outputs, at the cost of attending over L + R memories.
//
// Spans are recomputed every block from the cached (detached) layer inputs with the current
// predictor, as the reference does, rather than cached: the memories on the ramp, which the span
// loss acts on, and the ones whose soft mask shapes the attention, are mostly from earlier blocks,
// so caching their spans (detached) would cut the predictor off from nearly all of its gradient. It
// also keeps the spans of a memory consistent with the predictor after each optimiser step. The
// cost is one H -> 1 map per memory and layer.
//
// Noisy span regularisation (training only): per block u ~ U(0,1) (one draw for all layers) and
// spans clamped to u·L for the mask and the loss; the drop decision uses the unclamped spans, so
// noise never loses a memory that later blocks could need.
//
// Key positions: L + R distances (expireSpanPositions: a memory is seen up to distance e + R − 1),
// each block using only the columns up to its oldest memory's distance from its last query;
// with expireSpan.keyPositions 'block-length' only distances 1 … min(L, M) get one (the reference).
// Options reproducing the reference (docs/deviations.md E, F, G): window 'before-query' blocks the
// query itself (distance 0; spans, ramp and key positions keep the true distance), initialMemory
// 'zeros' starts each stream with M zero memories per layer at ages M … 1 (made by blockStart at the
// first block, whose length M initState does not know), with spans predicted from them like any
// memory. Both make a position's output depend on M (dependsOnSegmentLength): decoding is told M.
// Diagnostics: 'memories kept' per layer after the last block; while recordDiagnostics is on also
// 'live memories' per layer (mask > 0 at the next block's first query; a mean over rows) and the
// 'predicted span' of every token of the block, per layer and row. Registry: expireSpanKind
// (options `expireSpan`, schema and defaults in src/memory/expire-span.ts; memLen > 0 required).
//
// Shapes: B batch, M block length, C cached memories (per layer), N = C + M keys, L maximum span,
// R ramp, H hidden, K heads, D = H/K head size, V vocabulary.
import { arange, cat, configError, rand, type ExpiringKeysInput, type Tensor } from '../tensor/index.js';
import { checkSequentialWindow } from '../memory/sequential-window.js';
import {
  blockLengthColumns, droppableMemories, dropCount, expiredMemories, expireSpanPositions, expireSpanSchema, keptIndices, spanLoss, SpanPredictor,
  type ExpireSpanOptions,
} from '../memory/expire-span.js';
import { SequentialTransformer, sequentialWindowOptions, type LayerContext, type SequentialState } from './sequential.js';
import type { Diagnostics, ModelConfig, ModelKindSpec } from './types.js';
import type { SequentialHooks } from './sequential-decoding.js';
import { GrowingTensor } from '../nn/growing-tensor.js';

export interface ExpireSpanState extends SequentialState {
  /** Per layer [B, C_l, H]: the kept memories (layer inputs, detached), oldest first; null before the first block. */
  cache: Tensor[] | null;
  /** Per layer int64 [B, C_l]: each memory's distance from the next block's first query (>= 1). */
  age: Tensor[] | null;
}

/** What the last forward reports (diagnostics()). */
interface ExpireSpanTrace {
  /** Per layer: memories kept after the block (cache length). */
  memories: number[];
  /** Recorded only: [layer][batch row][block position], the predicted span e_i of each of the block's tokens. */
  spans: number[][][] | null;
  /** Recorded only: per layer, mean over rows of the memories whose mask is > 0 at the next block's first query. */
  live: number[] | null;
}

interface ExpireContext extends LayerContext {
  /** [B, N]: the spans of cat(cache, block), unclamped (the drop decision uses them; expiring.spans may be noise-limited). */
  spans: Tensor;
  /** expiring.age: int64 [B, N], each key's distance from the block's first query (block tokens: 0, −1, ...). */
  expiring: ExpiringKeysInput;
}

export class ExpireSpanTransformer extends SequentialTransformer<ExpireSpanState, ExpireContext> {
  readonly options: ExpireSpanOptions;
  /** One per layer: e = L · σ(w · h / ρ + b). */
  readonly spanPredictors: SpanPredictor[];
  #trace: ExpireSpanTrace | null = null;
  /** u·L for the current block during noisy training, else null. */
  #spanLimit: number | null = null;

  constructor(config: ModelConfig) {
    if (!config.expireSpan) {
      throw configError('ExpireSpanTransformer', "kind 'expire-span' needs config.expireSpan; build the model with createModel, which fills the defaults");
    }
    super(config, expireSpanPositions(config.memLen, config.expireSpan));
    this.options = config.expireSpan;
    this.spanPredictors = this.child('spanPredictors', Array.from({ length: config.layers }, () =>
      new SpanPredictor(config.dModel, this.span, this.options)));
  }

  override initState(_batch: number): ExpireSpanState {
    return { cache: null, age: null };
  }

  override forward(tokens: Tensor, state: ExpireSpanState) {
    this.#spanLimit = this.training && this.options.noisy ? rand([]).item() * this.span : null;
    return super.forward(tokens, state);
  }

  /** Decoding runs in evaluation: no noisy span limit left from a training forward. */
  override openSegment(state: ExpireSpanState, batch: number, segmentLength: number) {
    this.#spanLimit = null;
    return super.openSegment(state, batch, segmentLength);
  }

  /** The reference options make a position's output depend on the block's length (the initial memory, the key positions). */
  get dependsOnSegmentLength(): boolean {
    return this.initialMemory === 'zeros' || this.options.keyPositions === 'block-length';
  }

  /** Before a stream's first block, initialMemory 'zeros' gives each layer M zero memories at ages M … 1. */
  protected override blockStart(state: ExpireSpanState, batch: number, M: number): ExpireSpanState {
    if (state.cache || this.initialMemory !== 'zeros') return state;
    const age = arange(M, 0, -1, { dtype: 'int64', device: this.device }).expand(batch, M); // [B, M]
    return { cache: this.layers.map(() => this.zeroMemories(batch, M)), age: this.layers.map(() => age) };
  }

  /**
   * Decoding (./sequential-decoding.ts): the rows' contexts from tables kept for the segment
   * (ExpireSpanDecoding), not from a state that appends the rows fed to every layer's memories.
   */
  protected override decodingHooks(batch: number, segmentLength: number): SequentialHooks<ExpireSpanState, ExpireContext> {
    const decoding = new ExpireSpanDecoding(this, segmentLength);
    const { stateAfterPrefix: _, ...hooks } = super.decodingHooks(batch, segmentLength); // the rows see the segment's state
    return {
      ...hooks,
      rowsContext: (l, h, s, offset) => decoding.rowsContext(l, h, s, offset),
      release: () => decoding.dispose(),
    };
  }

  /**
   * Spans e [B, N] of layer l's inputs x [B, N, H]: the predictor reads the key/value input, which
   * for pre-LN is LN(x).
   */
  predictSpans(l: number, x: Tensor): Tensor {
    const input = this.config.norm === 'pre' ? this.layers[l]!.ln1.forward(x) : x;
    return this.spanPredictors[l]!.forward(input);
  }

  protected override layerContext(l: number, h: Tensor, state: ExpireSpanState, blockLength: number): ExpireContext {
    const [B, M] = h.shape as [number, number]; // M rows of a block of blockLength (fewer when decoding)
    const { ramp, lossCoef } = this.options;
    const memory = state.cache?.[l] ?? null; // [B, C, H]
    const memoryAge = state.age?.[l]; // [B, C]
    const blockAge = this.tables.get(`block-age:${M}`, () => arange(0, M, 1, { dtype: 'int64' }).neg()).expand(B, M); // [B, M]
    const age = memory ? cat([memoryAge!, blockAge], 1) : blockAge; // [B, N]
    const spans = memory ? cat([this.predictSpans(l, memory), this.predictSpans(l, h)], 1) : this.predictSpans(l, h); // [B, N]
    const limited = this.#spanLimit === null ? spans : spans.clampMax(this.#spanLimit); // [B, N]
    // The key position table cut to the distances this block reaches (the oldest memory's from the
    // last query): short spans keep few memories, and q · keyPe then costs that many columns, not P.
    const reach = Math.min(this.keyPositions, (memoryAge ? memoryAge.max().item() : 0) + M); // one small read per layer
    const auxLoss = lossCoef > 0 ? spanLoss(limited, age, M, lossCoef, ramp) : null;
    const expiring = { age, spans: limited, ramp, nearest: this.windowOffset };
    return { memory, mask: null, expiring, softMask: null, auxLoss, spans, keyPe: this.keyPositionTable(blockLength, reach) };
  }

  /** The key position table [D, reach] of a block of `blockLength` rows whose keys lie at most reach − 1 from a query. */
  keyPositionTable(blockLength: number, reach: number): Tensor {
    const table = this.options.keyPositions === 'block-length' // [D, P]
      ? this.keyPe.mul(this.tables.get(`block-length-columns:${blockLength},${this.keyPe.dtype}`, () => blockLengthColumns(this.keyPositions, this.span, blockLength, this.keyPe.dtype)))
      : this.keyPe;
    return reach < this.keyPositions ? table.narrow(1, 0, reach) : table; // [D, reach]
  }

  protected override nextState(state: ExpireSpanState, inputs: Tensor[], contexts: ExpireContext[]): { state: ExpireSpanState; auxLoss: Tensor | null } {
    const { ramp, drop } = this.options;
    const cache: Tensor[] = [];
    const ages: Tensor[] = [];
    const recorded = this.recordDiagnostics;
    const trace: ExpireSpanTrace = { memories: [], spans: recorded ? [] : null, live: recorded ? [] : null };
    inputs.forEach((h, l) => {
      const [B, M, H] = h.shape as [number, number, number];
      const ctx = contexts[l]!;
      let memories = (ctx.memory ? cat([ctx.memory, h], 1) : h).detach(); // [B, N, H]
      let age = ctx.expiring.age.add(M); // [B, N]: from the next block's first query
      const N = memories.shape[1]!;
      const spans = ctx.spans.detach(); // [B, N]
      if (drop) {
        const droppable = droppableMemories(spans, ctx.expiring.age, M, ramp); // [B, N]
        const count = dropCount(droppable, M);
        if (count > 0 && droppable.narrow(1, 0, count).all().item()) {
          // Every row drops its `count` oldest (short spans expire in order): a copy of the rest, no
          // per-row compaction (keptIndices would give the same rows).
          memories = memories.narrow(1, count, N - count).clone(); // [B, N − count, H]
          age = age.narrow(1, count, N - count).clone();
        } else if (count > 0) {
          const kept = keptIndices(droppable, count); // [B, N − count]
          // whole rows of H picked from the flattened [B·N, H] (a gather by an index of every element
          // measured 6x slower for the corridor's [32, 208, 64]: benchmarks.md, "Expire-Span's attention in one op")
          const rows = kept.add(arange(0, B * N, N, { dtype: 'int64', device: this.device }).view(B, 1)).flatten(); // [B·(N − count)]
          memories = memories.flatten(0, 1).indexSelect(0, rows).view(B, N - count, H); // [B, N − count, H]
          age = age.gather(1, kept);
        }
      } else if (N > this.span + ramp - 1) {
        // No memory at distance >= L + R from the next query can be seen (e < L), so the cache
        // is contiguous and capped there: masking alone, every memory that could still matter kept.
        const seen = this.span + ramp - 1;
        memories = memories.narrow(1, N - seen, seen);
        age = age.narrow(1, N - seen, seen);
      }
      cache.push(memories);
      ages.push(age);
      trace.memories.push(memories.shape[1]!);
      if (recorded) {
        trace.spans!.push(spans.narrow(1, N - M, M).toArray() as number[][]);
        // Dropped memories are all expired, so live memories counted over cat(cache, block) are the kept ones.
        trace.live!.push(expiredMemories(spans, ctx.expiring.age, M, ramp).logicalNot().sum(-1, false, 'float64').mean().item());
      }
    });
    this.#trace = trace;
    return { state: { cache, age: ages }, auxLoss: null };
  }

  override diagnostics(): Diagnostics {
    const d = super.diagnostics();
    const trace = this.#trace;
    if (!trace) return d;
    d.perLayer['memories kept'] = trace.memories;
    if (trace.live) d.perLayer['live memories'] = trace.live;
    if (trace.spans) d.perToken['predicted span'] = trace.spans;
    return d;
  }
}

/**
 * Incremental decoding's tables for one open segment. The spans of a layer's memories depend only
 * on them and the (fixed) predictor, so they are predicted once per segment, and each fed row's
 * once when it is fed, rather than every memory's for every token; the ages of [memories | block]
 * from the block's first query are made once; the oldest memory's age is read once. Rows
 * [p, p + n) then get what layerContext gives the same rows of the whole block: ages from query p
 * are those ages + p, over the memories and the block's first p + n rows. The context's memory is
 * null: the keys and values are in the open segment's cache, and the mask counts them.
 */
class ExpireSpanDecoding {
  /** Per layer: spans [B, C_l + rows fed] of the memories, then of the block's rows so far. */
  readonly #spans: GrowingTensor[];
  /** Per layer int64 [B, C_l + M]: each key's distance from the block's first query (kept out of scopes). */
  readonly #age: (Tensor | null)[];
  /** Per layer: the oldest memory's age (0 with none). */
  readonly #oldest: number[];

  constructor(readonly model: ExpireSpanTransformer, readonly blockLength: number) {
    this.#spans = model.layers.map(() => new GrowingTensor(1));
    this.#age = model.layers.map(() => null);
    this.#oldest = model.layers.map(() => 0);
  }

  rowsContext(l: number, h: Tensor, state: ExpireSpanState, offset: number): ExpireContext {
    const { model, blockLength: M } = this;
    const [B, n] = h.shape as [number, number];
    const spans = this.#spans[l]!;
    if (offset === 0) this.#start(l, state, B);
    spans.append(model.predictSpans(l, h), n); // [B, C + offset + n]
    const all = spans.tensor!; // [B, N]
    const age = this.#age[l]!.narrow(1, 0, spans.length).add(offset); // [B, N]: from query `offset`
    const reach = Math.min(model.keyPositions, this.#oldest[l]! + offset + n);
    const expiring = { age, spans: all, ramp: model.options.ramp, nearest: model.windowOffset };
    return { memory: null, mask: null, expiring, softMask: null, auxLoss: null, spans: all, keyPe: model.keyPositionTable(M, reach) };
  }

  /** At the segment's first rows: layer l's memory spans, the block's ages and the oldest memory's age. */
  #start(l: number, state: ExpireSpanState, B: number): void {
    const memory = state.cache?.[l] ?? null; // [B, C, H]
    const M = this.blockLength;
    const blockAge = arange(0, -M, -1, { dtype: 'int64', device: this.model.device }).expand(B, M); // [B, M]: 0, −1, ...
    if (memory) this.#spans[l]!.append(this.model.predictSpans(l, memory));
    this.#age[l] = (memory ? cat([state.age![l]!, blockAge], 1) : blockAge.contiguous()).keep(); // [B, C + M]
    this.#oldest[l] = memory ? state.age![l]!.max().item() : 0;
  }

  dispose(): void {
    this.#spans.forEach((s) => s.dispose());
    this.#age.forEach((a) => a?.dispose());
  }
}

export const expireSpanKind: ModelKindSpec<'expire-span'> = {
  kind: 'expire-span',
  build: (config) => new ExpireSpanTransformer(config),
  options: [{ key: 'expireSpan', schema: expireSpanSchema.prefault({}) }, ...sequentialWindowOptions],
  memLen: { use: 'required', reason: 'its maximum span L' },
  numMemTokens: { use: 'none' },
  check: (c) => checkSequentialWindow(c.window, c.initialMemory),
};
