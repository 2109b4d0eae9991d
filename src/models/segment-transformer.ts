// The segment-level recurrent decoder of SPEC §0 with Transformer-XL's relative positions, and the
// memories of this family as options, so that each model is a configuration of one network:
//
//   transformer      memLen 0, no memory tokens            (the RMT paper's "baseline")
//   xl               memLen > 0                             (Transformer-XL, SPEC §1)
//   mem-transformer  m prepended memory tokens, per segment (Memory Transformer, SPEC §5)
//   rmt              m read + m write tokens carried across segments (RMT, SPEC §6); memLen > 0
//                    gives RMT + Transformer-XL cache
//
// Options that reproduce LM-RMT (docs/deviations.md): `finalNorm: false` (pre-LN without the
// LayerNorm after the last layer, as LM-RMT's pre_lnorm; RMT then carries the raw write-block
// outputs), and RMT's `rmtCache` (who sees the cache, which rows it keeps: ../memory/segment-layout.ts).
//
// Shapes: B batch, M segment length, m memory tokens, C cached positions, H hidden, V vocabulary.
import { z } from 'zod';
import { cat, getDefaultDtype, randn, withPrecision, autocastDeviceOf, type Precision, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import { Dropout, TokenEmbedding, LayerNorm, OutputHead } from '../nn/layers.js';
import { DecoderLayer } from '../nn/decoder-layer.js';
import { sinusoidalDistances } from '../nn/positions.js';
import type { RelativePositions } from '../nn/attention.js';
import { nextCache } from '../memory/xl-cache.js';
import { MemoryTokens } from '../memory/memory-tokens.js';
import { cachedSegmentMask, rmtCacheSchema, seesLaterKeys, type RmtCacheOptions, type SegmentLayout } from '../memory/segment-layout.js';
import { emptyDiagnostics, type Diagnostics, type MemoryState, type ModelConfig, type ModelKindSpec, type OpenSegment, type SegmentModel, type SegmentOutput } from './types.js';
import { TransformerOpenSegment } from './segment-transformer-decoding.js';

export interface SegmentState extends MemoryState {
  /** Per layer [B, C, H]: past layer inputs (detached), or null before the first segment / without a cache. */
  cache: Tensor[] | null;
  /** [B, m, H]: RMT's memory carried to the next segment (attached), else null. */
  memory: Tensor | null;
}

export class SegmentTransformer extends Module implements SegmentModel<SegmentState> {
  readonly embed: TokenEmbedding;
  readonly layers: DecoderLayer[];
  readonly memoryTokens: MemoryTokens | null;
  /** u and v of the relative-position score, [K, D], shared by all layers as in the reference. */
  readonly u: Tensor;
  readonly v: Tensor;
  readonly finalNorm: LayerNorm | null;
  readonly head: OutputHead;
  readonly drop: Dropout;
  /** Masks and position embeddings, by layout: built once, not per forward. */
  readonly #cache = this.tensorCache();
  /** Who sees the cache and which rows it keeps (RMT's rmtCache; the defaults for the other kinds). */
  readonly cacheLayout: { readSeesCache: boolean; writeSeesCache: boolean; allRows: boolean };
  #footprint = 0;
  recordDiagnostics = false;

  constructor(readonly config: ModelConfig) {
    super();
    const { vocabSize, layers, dModel, heads, dInner, dropout, norm, numMemTokens, kind } = config;
    this.embed = this.child('embed', new TokenEmbedding(vocabSize, dModel, { previousToken: config.previousToken }));
    this.drop = this.child('drop', new Dropout(dropout));
    const mode = kind === 'rmt' ? 'recurrent' : kind === 'mem-transformer' ? 'prepend' : null;
    this.memoryTokens = mode && numMemTokens > 0 ? this.child('memory', new MemoryTokens(mode, numMemTokens, dModel)) : null;
    this.layers = this.child('layers', Array.from({ length: layers }, () => new DecoderLayer({ dModel, heads, dInner, dropout, norm })));
    const D = dModel / heads;
    this.u = this.param('u', () => randn([heads, D]).mul(0.02));
    this.v = this.param('v', () => randn([heads, D]).mul(0.02));
    // Configurations saved before the option existed have no finalNorm key: pre-LN then has one.
    this.finalNorm = norm === 'pre' && (config.finalNorm ?? true) ? this.child('finalNorm', new LayerNorm(dModel)) : null;
    this.head = this.child('head', new OutputHead(dModel, vocabSize));
    const rmtCache: RmtCacheOptions = config.kind === 'rmt' ? config.rmtCache ?? rmtCacheSchema.parse({}) : rmtCacheSchema.parse({});
    this.cacheLayout = { readSeesCache: rmtCache.readSeesCache, writeSeesCache: rmtCache.writeSeesCache, allRows: rmtCache.rows === 'all' };
  }

  initState(batch: number): SegmentState {
    return { cache: null, memory: this.memoryTokens?.mode === 'recurrent' ? this.memoryTokens.initial(batch) : null };
  }

  detachState(state: SegmentState): SegmentState {
    return { cache: state.cache?.map((c) => c.detach()) ?? null, memory: state.memory?.detach() ?? null };
  }

  /** How forward() and open segments run: 'float32' or 'bf16' (SegmentModel.precision). */
  precision: Precision = 'float32';

  forward(tokens: Tensor, state: SegmentState): SegmentOutput<SegmentState> {
    return withPrecision(this.precision, () => this.#forward(tokens, state), autocastDeviceOf(this.head.weight));
  }

  #forward(tokens: Tensor, state: SegmentState): SegmentOutput<SegmentState> {
    const [B, M] = tokens.shape as [number, number];
    const H = this.config.dModel;
    const blocks = this.memoryTokens?.blocks(state.memory, B) ?? null;
    const layout: SegmentLayout = {
      cached: state.cache?.[0]?.shape[1] ?? 0,
      read: blocks ? blocks.read.shape[1]! : 0,
      sequence: M,
      write: blocks?.write ? blocks.write.shape[1]! : 0,
      readSeesCache: this.cacheLayout.readSeesCache,
      writeSeesCache: this.cacheLayout.writeSeesCache,
    };
    const cacheAllRows = this.cacheLayout.allRows;
    this.#footprint = layout.cached + layout.read;
    const x = this.embed.forward(tokens); // [B, M, H]
    let h = this.drop.forward(blocks ? cat([blocks.read, x, ...(blocks.write ? [blocks.write] : [])], 1) : x); // [B, T, H]
    const T = h.shape[1]!;
    const mask = cachedSegmentMask(this.#cache, layout); // [T, C + T]
    const bidirectional = seesLaterKeys(layout);
    const keys = layout.cached + T;
    const distances = bidirectional ? keys + T - 1 : keys;
    const r = this.#cache.get(`r:${keys},${distances},${getDefaultDtype()}`, () => sinusoidalDistances(keys - 1, distances, H));
    const positions: RelativePositions = { u: this.u, v: this.v, r: this.drop.forward(r), bidirectional };

    const layerInputs: Tensor[] = []; // per layer [B, M, H] at the sequence positions, or [B, T, H] (rmtCache.rows 'all')
    this.layers.forEach((layer, l) => {
      layerInputs.push(cacheAllRows ? h : h.narrow(1, layout.read, M));
      h = layer.forward(h, state.cache?.[l] ?? null, mask, positions);
    });
    const out = this.finalNorm ? this.finalNorm.forward(h) : h; // [B, T, H]
    const logits = this.head.forward(this.drop.forward(out.narrow(1, layout.read, M))); // [B, M, V]
    const memory = this.memoryTokens?.mode === 'recurrent' ? out.narrow(1, layout.read + M, layout.write) : null;
    return { logits, state: { cache: nextCache(state.cache, layerInputs, this.config.memLen), memory }, auxLoss: null };
  }

  /** Incremental decoding (./segment-transformer-decoding.ts). */
  openSegment(state: SegmentState, batch: number): OpenSegment<SegmentState> {
    return withPrecision(this.precision, () => new TransformerOpenSegment(this, state, batch, this.#cache), autocastDeviceOf(this.head.weight));
  }

  memoryFootprint(): number {
    return this.#footprint;
  }

  diagnostics(): Diagnostics {
    const d = emptyDiagnostics();
    d.scalars['memories attended'] = this.#footprint;
    return d;
  }

  override dispose(): void {
    super.dispose();
    this.#cache.dispose();
  }
}

const build = (config: ModelConfig): SegmentModel => new SegmentTransformer(config);

/** Option `finalNorm` of the Transformer-XL family. */
export const finalNormSchema = z.boolean().default(true)
  .describe("pre-LN: a LayerNorm after the last layer (false: none, as LM-RMT's pre_lnorm)");
const finalNormOption = { key: 'finalNorm', schema: finalNormSchema } as const;
const checkFinalNorm = (c: { norm: 'post' | 'pre'; finalNorm: boolean }): string | null =>
  (!c.finalNorm && c.norm !== 'pre' ? "finalNorm: false applies to norm 'pre' only (post-LN has no final LayerNorm to leave out)" : null);

export const transformerKind: ModelKindSpec<'transformer'> = {
  kind: 'transformer',
  build,
  options: [finalNormOption],
  memLen: { use: 'none', instead: "use kind 'xl' for memLen > 0" },
  numMemTokens: { use: 'none' },
  check: checkFinalNorm,
};
export const xlKind: ModelKindSpec<'xl'> = {
  kind: 'xl',
  build,
  options: [finalNormOption],
  memLen: { use: 'required', reason: "memLen 0 is kind 'transformer'" },
  numMemTokens: { use: 'none' },
  check: checkFinalNorm,
};
export const memTransformerKind: ModelKindSpec<'mem-transformer'> = {
  kind: 'mem-transformer',
  build,
  options: [finalNormOption],
  memLen: { use: 'optional' },
  numMemTokens: { use: 'required' },
  check: checkFinalNorm,
};
export const rmtKind: ModelKindSpec<'rmt'> = {
  kind: 'rmt',
  build,
  options: [finalNormOption, { key: 'rmtCache', schema: rmtCacheSchema.prefault({}) }],
  memLen: { use: 'optional' },
  numMemTokens: { use: 'required' },
  check: (c) => {
    const { readSeesCache, writeSeesCache, rows } = c.rmtCache;
    if (c.memLen === 0 && (readSeesCache || !writeSeesCache || rows !== 'sequence')) return 'rmtCache options need a cache (memLen > 0)';
    return checkFinalNorm(c);
  },
};
