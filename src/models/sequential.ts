// The sequential transformer of the Expire-Span code base (facebookresearch/transformer-sequential;
// SPEC §1, last paragraph): the baseline that Adaptive-Span, Expire-Span and Compressive extend.
//
//   per layer l   keys and values from cat(cache[l], h), queries from h only;
//                 query i sees the L = memLen positions up to and including itself (a sliding
//                 window over cat(cache, block));
//   positions     a learned key position embedding keyPe [D, L], one column per distance, shared
//                 by every head and layer: logits += q_i · keyPe[:, distance(i, j)];
//   cache         the last L inputs of each layer, detached (truncated BPTT, SPEC §0).
//
// Two options reproduce the reference code exactly (../memory/sequential-window.ts,
// docs/deviations.md E and F): `window: 'before-query'` (query i sees the L positions before it,
// the key at distance d taking keyPe[:, d − 1]) and `initialMemory: 'zeros'` (a stream starts from
// a cache of L zero vectors per layer). By default the first block sees an empty cache instead
// (nothing to attend to rather than L zero vectors). The two differ at the start of every stream,
// and not only for the first L positions: the zero memories take attention weight in layer 1, the
// layer-2 inputs they changed are cached and read by layer 2 for another L positions, and so on.
//
// A mechanism is a subclass overriding the hooks of the reference's base model, and owning its
// registry entry (options schema, configuration rules: ./registry.ts):
//   keyPositions (constructor)         how many distances its key position table covers
//   blockStart(state, B, M)            the state a block starts from (an initial memory sized by M)
//   layerContext(l, h, state, M)       what layer l attends to: memory, mask, distances, soft mask
//                                      and the layer's auxiliary loss
//   nextState(state, inputs, contexts) the state after the block, and an auxiliary loss
//   diagnostics()                      what it reports about its memory (Diagnostics)
//
// Shapes: B batch, M block (segment) length, C cached positions, L maximum span, H hidden,
// K heads, D = H/K head size, V vocabulary.
import { arange, cat, randn, withPrecision, autocastDeviceOf, zeros, type Device, type ExpiringKeysInput, type Precision, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import { Dropout, TokenEmbedding, LayerNorm, OutputHead } from '../nn/layers.js';
import { DecoderLayer } from '../nn/decoder-layer.js';
import { nextCache } from '../memory/xl-cache.js';
import {
  checkSequentialWindow, initialMemorySchema, sequentialWindowSchema, windowOffset, type InitialMemory,
} from '../memory/sequential-window.js';
import { emptyDiagnostics, type Diagnostics, type MemoryState, type ModelConfig, type ModelKindSpec, type OpenSegment, type SegmentModel, type SegmentOutput } from './types.js';
import { SequentialOpenSegment, type SequentialHooks } from './sequential-decoding.js';

export interface SequentialState extends MemoryState {
  /** Per layer [B, C, H]: the memories layer l attends to besides the block (detached); null before the first block. */
  cache: Tensor[] | null;
}

/** What one layer attends to for the current block. */
export interface LayerContext {
  /** [B, C, H]: memories prepended to the block's keys and values, or null. */
  memory: Tensor | null;
  /** bool [M, C + M] or [B, 1, M, C + M]: true where attention is not allowed (null with `expiring`). */
  mask: Tensor | null;
  /**
   * int64 [M, C + M] or [B, 1, M, C + M]: the keyPe column of each key for each query, in [0, L):
   * its distance, less the window's offset (the rank among the keys the window allows). Not with `expiring`.
   */
  distance?: Tensor;
  /** Keys that expire (Expire-Span): ages and spans from which the attention makes its masks and key positions. */
  expiring?: ExpiringKeysInput;
  /** [B|1, K|1, M, C + M]: soft mask applied after the softmax and renormalised, or null. */
  softMask: Tensor | null;
  /** This layer's auxiliary loss (0-d), or null. */
  auxLoss: Tensor | null;
  /** [D, w]: the key position table for this layer (Adaptive-Span cuts it to its window); default the model's keyPe. */
  keyPe?: Tensor;
  /**
   * Keys at consecutive positions (the sliding window): key j's rank for query i is i − j + rankShift,
   * so forward() scores key positions by a skewed view instead of a gather (LearnedPositions.rankShift).
   */
  rankShift?: number;
}

export class SequentialTransformer<S extends SequentialState = SequentialState, Ctx extends LayerContext = LayerContext>
  extends Module implements SegmentModel<S> {
  readonly embed: TokenEmbedding;
  readonly layers: DecoderLayer[];
  /** [D, L]: column d embeds distance d. */
  readonly keyPe: Tensor;
  readonly finalNorm: LayerNorm | null;
  readonly head: OutputHead;
  readonly drop: Dropout;
  /** The maximum span L. */
  readonly span: number;
  /** Distances keyPe covers (its columns): L here; a mechanism that sees further passes its own count. */
  readonly keyPositions: number;
  /** The nearest distance the window lets a query see: 0 (itself; default) or 1 (window 'before-query'). */
  readonly windowOffset: number;
  /** How a stream starts: with no memory (default) or zero-filled memories (the reference). */
  readonly initialMemory: InitialMemory;
  recordDiagnostics = false;
  /** Masks and distance tables, by layout: built once, not per forward. */
  protected readonly tables = this.tensorCache();
  #footprint = 0;

  constructor(readonly config: ModelConfig, keyPositions = config.memLen) {
    super();
    const { vocabSize, layers, dModel, heads, dInner, dropout, norm, memLen } = config;
    this.span = memLen;
    this.keyPositions = keyPositions;
    // Configurations saved before these options existed (or kinds without them) have null: the defaults.
    this.windowOffset = windowOffset(config.window ?? sequentialWindowSchema.parse(undefined));
    this.initialMemory = config.initialMemory ?? initialMemorySchema.parse(undefined);
    this.embed = this.child('embed', new TokenEmbedding(vocabSize, dModel, { previousToken: config.previousToken }));
    this.drop = this.child('drop', new Dropout(dropout));
    this.layers = this.child('layers', Array.from({ length: layers }, () =>
      new DecoderLayer({ dModel, heads, dInner, dropout, norm, relative: false })));
    this.keyPe = this.param('keyPe', () => randn([dModel / heads, keyPositions]));
    this.finalNorm = norm === 'pre' ? this.child('finalNorm', new LayerNorm(dModel)) : null;
    this.head = this.child('head', new OutputHead(dModel, vocabSize));
  }

  /** No cache, or (initialMemory 'zeros') per layer L zero vectors [B, L, H], positions −L … −1. */
  initState(batch: number): S {
    return { cache: this.initialMemory === 'zeros' ? this.layers.map(() => this.zeroMemories(batch, this.span)) : null } as S;
  }

  /** [B, n, H] zero vectors in the parameters' dtype and device: the reference's initial memories. */
  protected zeroMemories(batch: number, n: number): Tensor {
    return zeros([batch, n, this.config.dModel], { dtype: this.keyPe.dtype, device: this.keyPe.device as Device });
  }

  /** Every tensor of the state detached (new handles). */
  detachState(state: S): S {
    const out: MemoryState = {};
    for (const [key, value] of Object.entries(state)) {
      out[key] = value === null ? null : Array.isArray(value) ? value.map((t) => t.detach()) : value.detach();
    }
    return out as S;
  }

  /** How forward() and open segments run: 'float32' or 'bf16' (SegmentModel.precision). */
  precision: Precision = 'float32';

  forward(tokens: Tensor, given: S): SegmentOutput<S> {
    return withPrecision(this.precision, () => this.#forward(tokens, given), autocastDeviceOf(this.head.weight));
  }

  #forward(tokens: Tensor, given: S): SegmentOutput<S> {
    const [B, M] = tokens.shape as [number, number];
    const state = this.blockStart(given, B, M);
    let h = this.drop.forward(this.embed.forward(tokens)); // [B, M, H]
    const inputs: Tensor[] = []; // layer inputs [B, M, H]
    const contexts: Ctx[] = [];
    const losses: Tensor[] = [];
    this.layers.forEach((layer, l) => {
      inputs.push(h);
      const ctx = this.layerContext(l, h, state, M);
      contexts.push(ctx);
      if (ctx.auxLoss) losses.push(ctx.auxLoss);
      h = layer.forward(h, ctx.memory, ctx.mask, { keyPe: ctx.keyPe ?? this.keyPe, distance: ctx.distance, rankShift: ctx.rankShift, expiring: ctx.expiring }, ctx.softMask);
    });
    this.#footprint = contexts.reduce((s, c) => s + (c.memory?.shape[1] ?? 0), 0) / contexts.length;
    const out = this.finalNorm ? this.finalNorm.forward(h) : h;
    const logits = this.head.forward(this.drop.forward(out)); // [B, M, V]
    const next = this.nextState(state, inputs, contexts);
    if (next.auxLoss) losses.push(next.auxLoss);
    return { logits, state: next.state, auxLoss: losses.length ? losses.reduce((a, b) => a.add(b)) : null };
  }

  /** Incremental decoding through the mechanism's hooks (./sequential-decoding.ts). */
  openSegment(state: S, batch: number, segmentLength: number): OpenSegment<S> {
    return withPrecision(this.precision, () => new SequentialOpenSegment<S, Ctx>(this, state, batch, segmentLength, this.decodingHooks(batch, segmentLength)),
      autocastDeviceOf(this.head.weight));
  }

  /**
   * The hooks of one open segment of `segmentLength` rows: the model's own, the rows' context
   * being layerContext in the state after the rows before them. A mechanism overrides this to keep
   * per-segment tables (Expire-Span).
   */
  protected decodingHooks(batch: number, segmentLength: number): SequentialHooks<S, Ctx> {
    return {
      blockStart: (s) => this.blockStart(s, batch, segmentLength),
      layerContext: (l, h, s) => this.layerContext(l, h, s, segmentLength),
      rowsContext: (l, h, s) => this.layerContext(l, h, s, segmentLength),
      nextState: (s, inputs, contexts) => this.nextState(s, inputs, contexts),
      stateAfterPrefix: (s, inputs, rows) => this.stateAfterPrefix(s, inputs, rows),
      layerMemory: (l, s) => this.layerMemory(l, s),
    };
  }

  /**
   * The state a block of `length` rows starts from: `state` itself, unless the initial memory
   * depends on the block's length (Expire-Span's initialMemory 'zeros'). New tensors, if any, are
   * the caller's.
   */
  protected blockStart(state: S, _batch: number, _length: number): S {
    return state;
  }

  /**
   * Decoding: the state whose memory also holds a block's first `rows` rows, layer inputs [B, rows, H]
   * per layer, so that layerContext gives the block's next rows what it gives them in the whole
   * block. The baseline appends them to each layer's cache (the window's distances then continue).
   */
  protected stateAfterPrefix(state: S, inputs: Tensor[], _rows: number): S {
    return { ...state, cache: inputs.map((h, l) => (state.cache ? cat([state.cache[l]!, h], 1) : h)) };
  }

  /** Decoding: what layer l may attend to besides the block (every context's memory is its newest rows). */
  protected layerMemory(l: number, state: S): Tensor | null {
    return state.cache?.[l] ?? null;
  }

  memoryFootprint(): number {
    return this.#footprint;
  }

  /** The baseline reports the memories the last forward attended to; mechanisms add their own entries. */
  diagnostics(): Diagnostics {
    const d = emptyDiagnostics();
    d.scalars['memories attended'] = this.#footprint;
    return d;
  }

  /**
   * What layer l attends to for rows h [B, n, H] of a block of `blockLength` rows (n = blockLength
   * in forward(); fewer when decoding). The baseline: the whole cache, with the sliding-window mask.
   */
  protected layerContext(l: number, h: Tensor, state: S, _blockLength: number): Ctx {
    const memory = state.cache?.[l] ?? null;
    const { mask, distance, rankShift } = this.window(memory?.shape[1] ?? 0, h.shape[1]!);
    return { memory, mask, distance, rankShift, softMask: null, auxLoss: null } as Ctx;
  }

  /** The baseline: each layer keeps its last L inputs, detached. */
  protected nextState(state: S, inputs: Tensor[], _contexts: Ctx[]): { state: S; auxLoss: Tensor | null } {
    return { state: { ...state, cache: nextCache(state.cache, inputs, this.span) }, auxLoss: null };
  }

  /**
   * The sliding window over cat(C contiguous cached positions, M block positions): query i (at
   * position C + i) sees key j when its rank r = C + i − j − f lies in [0, L), f the window's offset
   * (0: distances 0 … L − 1; 1, window 'before-query': distances 1 … L). Returns the mask (true: not
   * allowed), the ranks clamped to [0, L) (the keyPe columns) and rankShift = C − f (rank = i − j +
   * rankShift). `span` defaults to L.
   */
  window(cached: number, block: number, span = this.span): { mask: Tensor; distance: Tensor; rankShift: number } {
    const L = span, f = this.windowOffset;
    const rank = () => arange(cached - f, cached + block - f, 1, { dtype: 'int64' }).unsqueeze(1).sub(arange(0, cached + block, 1, { dtype: 'int64' })); // [M, C + M]
    const mask = this.tables.get(`window-mask:${cached},${block},${L},${f}`, () => { const x = rank(); return x.lt(0).logicalOr(x.ge(L)); });
    const distance = this.tables.get(`window-distance:${cached},${block},${L},${f}`, () => rank().clamp(0, L - 1));
    return { mask, distance, rankShift: cached - f };
  }

  override dispose(): void {
    super.dispose();
    this.tables.dispose();
  }
}

/** The options `window` and `initialMemory` of the kinds that have both (their schemas: ../memory/sequential-window.ts). */
export const sequentialWindowOptions = [
  { key: 'window', schema: sequentialWindowSchema },
  { key: 'initialMemory', schema: initialMemorySchema },
] as const;

export const sequentialKind: ModelKindSpec<'sequential'> = {
  kind: 'sequential',
  build: (config) => new SequentialTransformer(config),
  options: sequentialWindowOptions,
  memLen: { use: 'required', reason: 'its maximum span L' },
  numMemTokens: { use: 'none' },
  check: (c) => checkSequentialWindow(c.window, c.initialMemory),
};
