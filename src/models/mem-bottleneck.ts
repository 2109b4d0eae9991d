// MemBottleneck (Burtsev et al. 2020, SPEC §5) as a decoder. Per layer, two stages:
//   1. memory attends to [memory; context] and is updated (residual + LN + FFN);
//   2. the sequence attends ONLY to the updated memory (residual + LN + FFN).
// All information between tokens passes through the m memory vectors, at a cost linear in M.
//
// In a decoder the memory may only read what every query of the segment may see, or it would
// leak the tokens to be predicted. So here the memory reads the previous segments (the
// layer's Transformer-XL-style cache of detached inputs, memLen positions; default M), and
// tokens of one segment cannot see each other: the model can carry information across segments
// only, the bottleneck's known price (SPEC §5: "prepended memory under a causal mask cannot see
// the sequence"). Token positions inside a segment are given by absolute sinusoids.
// Shapes: B batch, M segment length, m memory tokens, C cached positions, H hidden.
import { withPrecision, autocastDeviceOf, type Device, type Precision, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import { Dropout, TokenEmbedding, FeedForward, LayerNorm, OutputHead } from '../nn/layers.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { sinusoidalDistances } from '../nn/positions.js';
import { MemoryTokens } from '../memory/memory-tokens.js';
import { nextCache } from '../memory/xl-cache.js';
import { emptyDiagnostics, type Diagnostics, type ModelConfig, type ModelKindSpec, type OpenSegment, type SegmentModel, type SegmentOutput } from './types.js';
import { GrowingRows, OpenSegmentBase } from './open-segment.js';
import type { SegmentState } from './segment-transformer.js';

class BottleneckLayer extends Module {
  readonly memAttn: MultiHeadAttention;
  readonly memFF: FeedForward;
  readonly seqAttn: MultiHeadAttention;
  readonly seqFF: FeedForward;
  readonly norms: LayerNorm[];
  readonly drop: Dropout;
  constructor(c: ModelConfig) {
    super();
    this.memAttn = this.child('memAttn', new MultiHeadAttention(c.dModel, c.heads, c.dropout, { relative: false }));
    this.memFF = this.child('memFF', new FeedForward(c.dModel, c.dInner, c.dropout));
    this.seqAttn = this.child('seqAttn', new MultiHeadAttention(c.dModel, c.heads, c.dropout, { relative: false }));
    this.seqFF = this.child('seqFF', new FeedForward(c.dModel, c.dInner, c.dropout));
    this.norms = this.child('norms', Array.from({ length: 4 }, () => new LayerNorm(c.dModel)));
    this.drop = this.child('drop', new Dropout(c.dropout));
  }
  /** memory [B, m, H], h [B, M, H], cache [B, C, H] | null -> [memory, h] */
  forward(memory: Tensor, h: Tensor, cache: Tensor | null): [Tensor, Tensor] {
    const m = this.updateMemory(memory, cache);
    return [m, this.readMemory(m, h)];
  }

  /** Stage 1: the memory [B, m, H] attends to [memory; cache] and is updated. */
  updateMemory(memory: Tensor, cache: Tensor | null): Tensor {
    const [n0, n1] = this.norms as [LayerNorm, LayerNorm];
    const context = cache ? ([memory, cache] as const) : memory; // projected as their cat; the detached cache takes no input gradient
    const m = n0.forward(memory.add(this.drop.forward(this.memAttn.forward({ query: memory, context, mask: null, positions: null }))));
    return n1.forward(m.add(this.memFF.forward(m)));
  }

  /** Stage 2: the sequence h [B, M, H] reads the updated memory [B, m, H] only. */
  readMemory(m: Tensor, h: Tensor): Tensor {
    const [, , n2, n3] = this.norms as [LayerNorm, LayerNorm, LayerNorm, LayerNorm];
    const x = n2.forward(h.add(this.drop.forward(this.seqAttn.forward({ query: h, context: m, mask: null, positions: null }))));
    return n3.forward(x.add(this.seqFF.forward(x)));
  }
}

export class MemBottleneck extends Module implements SegmentModel<SegmentState> {
  readonly embed: TokenEmbedding;
  readonly memoryTokens: MemoryTokens;
  readonly layers: BottleneckLayer[];
  readonly head: OutputHead;
  readonly drop: Dropout;
  recordDiagnostics = false;

  constructor(readonly config: ModelConfig) {
    super();
    this.embed = this.child('embed', new TokenEmbedding(config.vocabSize, config.dModel, { previousToken: config.previousToken }));
    this.memoryTokens = this.child('memory', new MemoryTokens('prepend', config.numMemTokens, config.dModel));
    this.layers = this.child('layers', Array.from({ length: config.layers }, () => new BottleneckLayer(config)));
    this.head = this.child('head', new OutputHead(config.dModel, config.vocabSize));
    this.drop = this.child('drop', new Dropout(config.dropout));
  }

  initState(): SegmentState {
    return { cache: null, memory: null };
  }
  detachState(state: SegmentState): SegmentState {
    return { cache: state.cache?.map((c) => c.detach()) ?? null, memory: null };
  }

  /** How forward() and open segments run: 'float32' or 'bf16' (SegmentModel.precision). */
  precision: Precision = 'float32';

  forward(tokens: Tensor, state: SegmentState): SegmentOutput<SegmentState> {
    return withPrecision(this.precision, () => this.#forward(tokens, state), autocastDeviceOf(this.head.weight));
  }

  #forward(tokens: Tensor, state: SegmentState): SegmentOutput<SegmentState> {
    const [B, M] = tokens.shape as [number, number];
    const positions = sinusoidalDistances(M - 1, M, this.config.dModel, tokens.device as Device).flip(0); // [M, H], rows 0 ... M-1
    let h = this.drop.forward(this.embed.forward(tokens).add(positions)); // [B, M, H]
    let memory = this.memoryTokens.initial(B); // [B, m, H]
    const inputs: Tensor[] = [];
    this.layers.forEach((layer, l) => {
      inputs.push(h);
      [memory, h] = layer.forward(memory, h, state.cache?.[l] ?? null);
    });
    const logits = this.head.forward(this.drop.forward(h)); // [B, M, V]
    return { logits, state: { cache: nextCache(state.cache, inputs, this.config.memLen), memory: null }, auxLoss: null };
  }

  /**
   * Incremental decoding: every layer's memory depends on the state only (stage 1 runs once, at
   * open), and each token reads it alone, so a token costs its own rows' work.
   */
  openSegment(state: SegmentState, batch: number): OpenSegment<SegmentState> {
    const model = this;
    return withPrecision(this.precision, () => new (class extends OpenSegmentBase<SegmentState> {
      /** Per layer [B, m, H]: the memory the sequence reads (kept). */
      readonly memories: Tensor[] = [];
      readonly inputs = model.layers.map(() => new GrowingRows());
      constructor() {
        super(batch, 'MemBottleneck.openSegment', model.precision, autocastDeviceOf(model.head.weight));
        let memory = model.memoryTokens.initial(batch); // [B, m, H]
        model.layers.forEach((layer, l) => {
          memory = layer.updateMemory(memory, state.cache?.[l] ?? null);
          this.memories.push(memory.keep());
        });
      }
      protected step(tokens: Tensor, offset: number): Tensor {
        const n = tokens.shape[1]!;
        const positions = sinusoidalDistances(offset + n - 1, n, model.config.dModel, tokens.device as Device).flip(0); // [n, H], rows offset ... offset + n - 1
        let h = model.drop.forward(this.embed(model.embed, tokens).add(positions)); // [B, n, H]
        model.layers.forEach((layer, l) => {
          this.inputs[l]!.append(h);
          h = layer.readMemory(this.memories[l]!, h);
        });
        return model.head.forward(model.drop.forward(h)); // [B, n, V]
      }
      protected finish(): SegmentState {
        return { cache: nextCache(state.cache, this.inputs.map((rows) => rows.tensor!), model.config.memLen), memory: null };
      }
      protected release(): void {
        this.memories.forEach((m) => m.dispose());
        this.inputs.forEach((rows) => rows.dispose());
      }
    })(), autocastDeviceOf(this.head.weight));
  }

  /** Nothing beyond its fixed memory tokens to report. */
  diagnostics(): Diagnostics {
    return emptyDiagnostics();
  }
}

export const memBottleneckKind: ModelKindSpec<'mem-bottleneck'> = {
  kind: 'mem-bottleneck',
  build: (config) => new MemBottleneck(config),
  options: [],
  memLen: { use: 'optional' },
  numMemTokens: { use: 'required' },
};
