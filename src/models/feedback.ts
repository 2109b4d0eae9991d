// The Feedback Transformer (Fan et al. 2020, "Addressing Some Limitations of Transformers with
// Feedback Memory"; SPEC §7), in the Expire-Span code base's form (facebookresearch/
// transformer-sequential, models/feedback.py): the sequential family's layers and learned key
// positions, but every layer reads one memory made from all layers of the past.
//
//   merge    after step t, the embedding x_t^0 and every layer's output x_t^1 .. x_t^N are merged
//            into ONE memory vector  m_t = Σ_l softmax(w)_l · x_t^l,  w the N + 1 learned logits
//            (zero-initialised: a plain average at first, as the reference);
//   attend   layer l at step t attends to m_{t-L} .. m_{t-1}, the same memories for every layer:
//            keys and values from those memories, the query from x_t^l, key positions from keyPe
//            [D, L] (memory m_{t-j} is at distance j, column j - 1). The current step is not a key:
//            the paper's z_t^l = Attn(x_t^l, {m_{t-L}, ..., m_{t-1}}), and the reference's window
//            (m_t exists only once every layer of step t has run);
//   serial   step t's lowest layer reads step t-1's highest, so a block runs token by token (the
//            reason it is slow, SPEC §10), and within a block gradients flow from the loss at step
//            t back through m_s to every earlier step s;
//   state    the last L memories [B, C, H], C <= L, returned attached; detachState stops gradients
//            (the trainer does between language-model steps, SPEC §0).
//
// Choices where the reference differs or is silent:
//   - The first step of a stream has no memory: its attention reads nothing and adds nothing. The
//     reference attends to L zero-filled memories instead, which still take attention weight
//     (SequentialTransformer makes the same choice); option initialMemory 'zeros' reproduces the
//     reference (initState returns them; docs/deviations.md F). Here the two never agree exactly: what the
//     zero memories change in the first L steps goes into those steps' memories, each one vector
//     merged from all layers and fed back to every layer, and so on into every later memory; the
//     difference fades but does not end.
//   - Keys and values: each memory is projected for all N layers at once, in one matmul, when it
//     is made, and those projections are reused by every later step of the block (the
//     reference's cache_postprocess). The carried memories are projected once per block (not kept
//     in the state: the weights change between blocks, so cached projections would be stale; the
//     reference recomputes them per block too). Pre-LN's per-layer LayerNorm of the memories is
//     folded into the projection: W_l (γ_l ⊙ n + β_l) = (W_l diag γ_l) n + W_l β_l, n = LN(m)
//     without affine, so one matmul still serves every layer.
//   - Keys/values live in preallocated buffers, one per layer for keys and one for values
//     [B, K, C + M, D] (StepBuffer, src/tensor/step-buffer.ts): the carried memories' written
//     once per block, each new memory's written at its step, and every step reads its window as
//     one view, as the reference writes them into a preallocated buffer with a custom autograd
//     function. No per-step concatenation, whose copies of every key/value so far autograd would
//     keep, one per step, for backward; no view of a larger tensor per step either, whose
//     backward fills a zero gradient of that whole tensor (the gradients are the same as
//     concatenation's, test/step-buffer.test.ts). Incremental decoding (openSegment) still grows
//     them by concatenation: it keeps no graph, so each copy is freed at the next step.
//   - Each step runs the shared decoder layer (DecoderLayer.around) around the shared attention
//     over those precomputed keys and values (MultiHeadAttention.attendProjected).
//
// Diagnostics: the merge weights ('merge weight: embedding', 'merge weight: layer l'). Registry:
// feedbackKind (no options; memLen > 0 required, the span L).
//
// Shapes: B batch, M block length, t step in the block, C carried memories (<= L), F memories of
// this block in the window (<= L), n = C' + F memories in step t's window, L maximum span,
// N layers, H hidden, K heads, D = H/K head size, V vocabulary.
import { cat, configError, F, shapeError, stack, tidy, randn, widenReduced, withPrecision, autocastDeviceOf, zeros, StepBuffer, type Device, type Precision, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import { Dropout, TokenEmbedding, LayerNorm, OutputHead } from '../nn/layers.js';
import { DecoderLayer } from '../nn/decoder-layer.js';
import type { ProjectedKeys } from '../nn/attention.js';
import { initialMemorySchema } from '../memory/sequential-window.js';
import { emptyDiagnostics, type Diagnostics, type MemoryState, type ModelConfig, type ModelKindSpec, type OpenSegment, type SegmentModel, type SegmentOutput } from './types.js';
import { GrowingRows, OpenSegmentBase } from './open-segment.js';

export interface FeedbackState extends MemoryState {
  /** [B, C, H]: the last C <= L merged memories, oldest first; null before the first block. */
  memory: Tensor | null;
}

/** The key/value projection of all N layers as one linear map of a memory (see the header). */
interface MemoryProjection {
  /** [N·2H, H]: layer l's [keys; values] rows at l·2H. */
  weight: Tensor;
  /** [N·2H] (pre-LN: W_l β_l), or null (post-LN: the projections have no bias). */
  bias: Tensor | null;
}

/**
 * A sibling of SequentialTransformer rather than a subclass: it keeps the family's parts and
 * parameter names (embed, layers.l.*, keyPe, finalNorm, head) but replaces both of the base's
 * hooks and its state (one memory shared by all layers, not a cache per layer) and runs a serial
 * loop instead of one pass over the block, so nothing of the base's forward would be used.
 */
export class FeedbackTransformer extends Module implements SegmentModel<FeedbackState> {
  readonly embed: TokenEmbedding;
  readonly drop: Dropout;
  /** The family's decoder layers: their parameters are used step by step (see layerStep). */
  readonly layers: DecoderLayer[];
  /** [D, L]: column j embeds distance j + 1 (the memory of j + 1 steps ago). */
  readonly keyPe: Tensor;
  /** [N + 1]: logits of the merge weights of the embedding and each layer's output. */
  readonly mergeLogits: Tensor;
  readonly finalNorm: LayerNorm | null;
  readonly head: OutputHead;
  /** The maximum span L: memories each step attends to. */
  readonly span: number;
  recordDiagnostics = false;

  constructor(readonly config: ModelConfig) {
    super();
    const { vocabSize, layers, dModel, heads, dInner, dropout, norm, memLen } = config;
    if (memLen <= 0) throw configError('FeedbackTransformer', `memLen (the span L) must be positive, got ${memLen}`);
    this.span = memLen;
    this.embed = this.child('embed', new TokenEmbedding(vocabSize, dModel, { previousToken: config.previousToken }));
    this.drop = this.child('drop', new Dropout(dropout));
    this.layers = this.child('layers', Array.from({ length: layers }, () =>
      new DecoderLayer({ dModel, heads, dInner, dropout, norm, relative: false })));
    this.keyPe = this.param('keyPe', () => randn([dModel / heads, memLen]));
    this.mergeLogits = this.param('mergeLogits', () => zeros([layers + 1]));
    this.finalNorm = norm === 'pre' ? this.child('finalNorm', new LayerNorm(dModel)) : null;
    this.head = this.child('head', new OutputHead(dModel, vocabSize));
  }

  /** No memory, or (initialMemory 'zeros') L zero merged memories [B, L, H] (pre-LN: their keys W_k β). */
  initState(batch: number): FeedbackState {
    if ((this.config.initialMemory ?? 'empty') === 'empty') return { memory: null };
    return { memory: zeros([batch, this.span, this.config.dModel], { dtype: this.keyPe.dtype, device: this.keyPe.device as Device }) };
  }

  detachState(state: FeedbackState): FeedbackState {
    return { ...state, memory: state.memory?.detach() ?? null };
  }

  /** [N + 1]: the weight of the embedding (0) and of each layer's output (1 .. N) in a memory. */
  mergeWeights(): Tensor {
    return this.mergeLogits.softmax(0);
  }

  /** How forward() and open segments run: 'float32' or 'bf16' (SegmentModel.precision). */
  precision: Precision = 'float32';

  forward(tokens: Tensor, state: FeedbackState): SegmentOutput<FeedbackState> {
    return withPrecision(this.precision, () => this.#forward(tokens, state), autocastDeviceOf(this.head.weight));
  }

  #forward(tokens: Tensor, state: FeedbackState): SegmentOutput<FeedbackState> {
    if (tokens.ndim !== 2) throw shapeError('FeedbackTransformer.forward', `tokens must be [batch, block], got [${tokens.shape}]`);
    const [B, M] = tokens.shape as [number, number];
    const H = this.config.dModel, L = this.span, N = this.layers.length;
    const carriedIn = this.carried(state.memory, B);
    return tidy(() => {
      const embedded = this.drop.forward(this.embed.forward(tokens)); // [B, M, H]
      const weights = this.mergeWeights(); // [N + 1]
      const keyPeOldestFirst = this.keyPe.flip(1); // [D, L]: column L - j embeds distance j
      const projection = this.memoryProjection();
      const C = carriedIn?.shape[1] ?? 0;
      // Per layer, its keys and its values [B, K, C + M, D] of [carried | block] memories: the
      // carried ones written first, memory t of the block at C + t once step t has made it. A
      // step reads its window from each as one view (a view of a larger tensor would cost, in
      // backward, a zero-filled gradient of that whole tensor per step and layer).
      const keyBuffers = this.layers.map(() => new StepBuffer(2, C + M));
      const valueBuffers = this.layers.map(() => new StepBuffer(2, C + M));
      const store = (kv: Tensor, at: number) => this.layers.forEach((_, l) => { // kv [2, N, B, K, T, D]
        keyBuffers[l]!.write(kv.select(0, 0).select(0, l), at);
        valueBuffers[l]!.write(kv.select(0, 1).select(0, l), at);
      });
      const inputs = embedded.unbind(1); // x_t^0 [B, H] (one backward op for all steps, not a zero-filled [B, M, H] per step)
      // Attention maps for inspection (MultiHeadAttention.recordAttention): per layer, one row per
      // step over the keys [carried memories (C) | this block's memories (M)], zero outside the window.
      const rows: Tensor[][] | null = this.layers.some((layer) => layer.attn.recordAttention) ? this.layers.map(() => []) : null;
      const outputs: Tensor[] = []; // x_t^N [B, 1, H]
      const memories: Tensor[] = []; // m_t [B, 1, H]
      try {
        if (carriedIn) store(this.project(carriedIn, projection), 0); // [2, N, B, K, C, D]
        for (let t = 0; t < M; t++) {
          const fresh = Math.min(t, L); // F: this block's memories in the window
          const old = Math.min(C, L - fresh); // carried memories still in the window (the newest ones)
          const n = old + fresh; // keys C + t - n .. C + t - 1 of [carried | block]
          // One tidy per step: its temporaries go at once (autograd keeps what backward needs).
          const step = tidy((): { output: Tensor; memory: Tensor } => {
            const positions = keyPeOldestFirst.narrow(1, L - n, n); // [D, n]: distances n .. 1
            let h = inputs[t]!.unsqueeze(1); // x_t^0 [B, 1, H]
            const representations = [h];
            this.layers.forEach((layer, l) => {
              // [k, v] [B, K, n, D]: memories m_{t-n} .. m_{t-1}
              const window: [Tensor, Tensor][] = n > 0 ? [[keyBuffers[l]!.read(C + t - n, n), valueBuffers[l]!.read(C + t - n, n)]] : [];
              const record = rows && layer.attn.recordAttention
                ? (probs: Tensor) => rows[l]!.push(F.pad(probs.detach(), [C + t - n, M - t]).keep()) // [B, K, 1, C + M]
                : undefined;
              if (record && n === 0) rows![l]!.push(zeros([B, this.config.heads, 1, C + M], { device: h.device as Device }).keep());
              h = this.layerStep(layer, h, window, positions, record); // x_t^{l+1} [B, 1, H]
              representations.push(h);
            });
            // widened: under bf16 the merge is a bfloat16 product; the carried memory stays float32
            const memory = widenReduced(weights.matmul(stack(representations).view(N + 1, B * H))).view(B, 1, H); // m_t [B, 1, H]
            // m_t's keys and values, for the later steps of the block (the last step has none)
            if (t + 1 < M) store(this.project(memory, projection), C + t); // [2, N, B, K, 1, D]
            return { output: h, memory };
          });
          outputs.push(step.output);
          memories.push(step.memory);
        }
      } finally {
        for (const b of [...keyBuffers, ...valueBuffers]) b.dispose(); // the handles only: autograd keeps what backward needs
      }
      if (rows) this.layers.forEach((layer, l) => {
        if (!layer.attn.recordAttention) return;
        layer.attn.lastAttention?.dispose();
        layer.attn.lastAttention = cat(rows[l]!, 2).keep(); // [B, K, M, C + M]
        rows[l]!.forEach((row) => row.dispose());
      });
      const out = cat(outputs, 1); // [B, M, H]
      const logits = this.head.forward(this.drop.forward(this.finalNorm ? this.finalNorm.forward(out) : out)); // [B, M, V]
      const all = cat(carriedIn ? [carriedIn, ...memories] : memories, 1); // [B, C + M, H]
      const length = all.shape[1]!;
      const memory = length > L ? all.narrow(1, length - L, L) : all; // [B, min(L, C + M), H]
      return { logits, state: { ...state, memory }, auxLoss: null };
    });
  }

  /** The carried memory checked against the batch, cut to the last L (a longer one is allowed). */
  private carried(memory: Tensor | null, batch: number): Tensor | null {
    if (!memory) return null;
    const [b, c, h] = memory.shape;
    if (memory.ndim !== 3 || b !== batch || h !== this.config.dModel) {
      throw shapeError('FeedbackTransformer.forward', `the carried memory is [${memory.shape}], expected [${batch}, C, ${this.config.dModel}]; start a new stream with initState(${batch})`);
    }
    return c! > this.span ? memory.narrow(1, c! - this.span, this.span) : memory;
  }

  /** All layers' key/value projections as one linear map (built per forward: weights change between steps). */
  private memoryProjection(): MemoryProjection {
    const kvs = this.layers.map((layer) => layer.attn.kv.weight); // [2H, H] each
    if (this.config.norm === 'post') return { weight: cat(kvs, 0), bias: null };
    // pre-LN: layer l projects ln1_l(m) = γ_l ⊙ n + β_l, n = LN(m) without affine
    return {
      weight: cat(this.layers.map((layer, l) => kvs[l]!.mul(layer.ln1.weight)), 0), // [N·2H, H]: W_l diag γ_l
      bias: cat(this.layers.map((layer, l) => kvs[l]!.matmul(layer.ln1.bias)), 0), // [N·2H]: W_l β_l
    };
  }

  /** Keys and values of memories [B, T, H] for every layer: [2, N, B, K, T, D] (a permuted view). */
  private project(memories: Tensor, p: MemoryProjection): Tensor {
    const [B, T, H] = memories.shape as [number, number, number];
    const N = this.layers.length, K = this.config.heads;
    // pre-LN: the normalisation without affine, shared by all layers (their ln1 differ only in γ, β)
    const input = p.bias ? F.layerNorm(memories, H, null, null, this.layers[0]!.ln1.eps) : memories; // [B, T, H]
    return F.linear(input, p.weight, p.bias) // [B, T, N·2H]
      .view(B, T, N, 2, K, H / K)
      .permute(3, 2, 0, 4, 1, 5); // [2, N, B, K, T, D]
  }

  /**
   * Decoder layer l at one step: h [B, 1, H] attends to window (n keys in all, oldest first) with
   * key positions [D, n]. With nothing to attend to, the attention adds nothing.
   */
  private layerStep(layer: DecoderLayer, h: Tensor, window: ProjectedKeys, positions: Tensor, record?: (probs: Tensor) => void): Tensor {
    return layer.around(h, (query) => (window.length ? layer.attn.attendProjected({ query, keys: window, keyPositions: positions, record }) : null));
  }

  /**
   * Incremental decoding: forward()'s steps, run as the tokens arrive. The carried memories' keys
   * and values are projected once at open, the segment's memories' as they are made (the same
   * window of the last L), so a token costs one step.
   */
  openSegment(state: FeedbackState, batch: number): OpenSegment<FeedbackState> {
    const model = this;
    const H = this.config.dModel, L = this.span, N = this.layers.length;
    return withPrecision(this.precision, () => new (class extends OpenSegmentBase<FeedbackState> {
      readonly carriedIn = model.carried(state.memory, batch)?.detach().keep() ?? null; // a handle of its own

      readonly C = this.carriedIn?.shape[1] ?? 0;
      readonly weights = model.mergeWeights().keep(); // [N + 1]
      readonly keyPeOldestFirst = model.keyPe.flip(1).keep(); // [D, L]
      readonly projection = model.memoryProjection();
      readonly kvCarried: Tensor | null = this.carriedIn ? model.project(this.carriedIn, this.projection).contiguous().keep() : null; // [2, N, B, K, C, D]
      /** [2, N, B, K, F, D]: the segment's last F <= L memories' keys and values. */
      kvBlock: Tensor | null = null;
      readonly memories = new GrowingRows(); // [B, t, H]
      constructor() {
        super(batch, 'FeedbackTransformer.openSegment', model.precision, autocastDeviceOf(model.head.weight));
        this.projection.weight.keep();
        this.projection.bias?.keep();
      }
      protected step(tokens: Tensor, offset: number): Tensor {
        const embedded = model.drop.forward(this.embed(model.embed, tokens)); // [B, n, H]
        const outputs: Tensor[] = [];
        const C = this.C;
        for (let i = 0; i < tokens.shape[1]!; i++) {
          const t = offset + i;
          const fresh = Math.min(t, L), old = Math.min(C, L - fresh);
          const positions = this.keyPeOldestFirst.narrow(1, L - old - fresh, old + fresh); // [D, n]: distances n .. 1
          let h = embedded.narrow(1, i, 1); // x_t^0 [B, 1, H]
          const representations = [h];
          const previous = this.kvBlock;
          model.layers.forEach((layer, l) => {
            const window: [Tensor, Tensor][] = [];
            if (old > 0) window.push(this.kvCarried!.select(1, l).narrow(3, C - old, old).unbind(0) as [Tensor, Tensor]);
            if (previous) window.push(previous.select(1, l).unbind(0) as [Tensor, Tensor]);
            h = model.layerStep(layer, h, window, positions); // x_t^{l+1} [B, 1, H]
            representations.push(h);
          });
          const memory = widenReduced(this.weights.matmul(stack(representations).view(N + 1, batch * H))).view(batch, 1, H); // m_t [B, 1, H] (float32, as forward's)
          const kv = model.project(memory, this.projection); // [2, N, B, K, 1, D]
          const kept = previous && fresh === L ? previous.narrow(4, 1, L - 1) : previous; // drop m_{t-L}
          this.kvBlock = (kept ? cat([kept, kv], 4) : kv.contiguous()).keep();
          previous?.dispose();
          this.memories.append(memory);
          outputs.push(h);
        }
        const out = outputs.length === 1 ? outputs[0]! : cat(outputs, 1); // [B, n, H]
        return model.head.forward(model.drop.forward(model.finalNorm ? model.finalNorm.forward(out) : out)); // [B, n, V]
      }
      protected finish(): FeedbackState {
        const made = this.memories.tensor;
        const all = made ? (this.carriedIn ? cat([this.carriedIn, made], 1) : made) : this.carriedIn; // [B, C + M, H]
        const length = all?.shape[1] ?? 0;
        const memory = all && length > L ? all.narrow(1, length - L, L) : all;
        return { ...state, memory: memory?.detach() ?? null };
      }
      protected release(): void {
        for (const t of [this.carriedIn, this.weights, this.keyPeOldestFirst, this.projection.weight, this.projection.bias, this.kvCarried, this.kvBlock]) t?.dispose();
        this.memories.dispose();
      }
    })(), autocastDeviceOf(this.head.weight));
  }

  /** The merge weights of the embedding and of each layer's output (reads them back from the device). */
  diagnostics(): Diagnostics {
    const d = emptyDiagnostics();
    const weights = tidy(() => this.mergeWeights().detach().toArray() as number[]);
    weights.forEach((w, l) => { d.scalars[l === 0 ? 'merge weight: embedding' : `merge weight: layer ${l}`] = w; });
    return d;
  }
}

export const feedbackKind: ModelKindSpec<'feedback'> = {
  kind: 'feedback',
  build: (config) => new FeedbackTransformer(config),
  options: [{ key: 'initialMemory', schema: initialMemorySchema }],
  memLen: { use: 'required', reason: 'its maximum span L' },
  numMemTokens: { use: 'none' },
};
