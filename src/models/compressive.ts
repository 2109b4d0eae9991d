// The Compressive Transformer (Rae et al. 2019, SPEC §4) on the sequential base of the Expire-Span
// code base (SPEC §1, last paragraph), with the paper's learned compression and its
// attention-reconstruction loss (the transformer-sequential version mean-pools without the loss).
//
//   per layer l   a raw FIFO of the last L = memLen layer inputs (`cache`) and a compressed FIFO of
//                 up to C slots (`compressed`), both detached; keys and values from
//                 cat(compressed, raw, block), queries from the block;
//   positions     contiguous over that concatenation (a compressed slot counts as one position), and
//                 query i sees the L + C positions up to and including itself: the base's sliding
//                 window with span L + C, the columns of keyPe (positionCount). Before the memories
//                 fill, every query sees all of them; once both are full, query i sees the raw memory
//                 and all but the i oldest compressed slots.
//   after a block the memories falling out of the raw FIFO are compressed by f_c with rate c and
//                 appended to the compressed FIFO (src/memory/compressive.ts; remainders of fewer
//                 than c memories wait in the raw FIFO for their group to complete);
//   aux loss      for a learned f_c ('conv' with reconstruction on, while training): per layer the
//                 mean squared difference between the layer's content attention over the old
//                 memories and over their compression (detached weights, queries and memories, so
//                 only f_c learns from it), summed over layers.
//
// Without the reconstruction loss a 'conv' f_c receives no gradient at all (the compressed memory
// is detached), so it stays at its initialisation, the mean pool.
//
// Diagnostics: 'compressed slots' and 'raw memories' per layer after the last block. Registry:
// compressiveKind (options `compressive`, schema and defaults in src/memory/compressive.ts, C
// defaulting to memLen; memLen > 0 required).
//
// Shapes: B batch, M block length, R raw memories held, S compressed slots held (<= C), L = memLen,
// C = compressedLen, c = rate, H hidden, K heads, D = H/K head size, V vocabulary.
import { cat, configError, isGradEnabled, type Tensor } from '../tensor/index.js';
import {
  Compressor, advanceRawMemory, appendCompressed, attentionReconstructionLoss, completeCompressiveOptions, compressiveSchema,
  type CompressiveOptions,
} from '../memory/compressive.js';
import { SequentialTransformer, type LayerContext, type SequentialState } from './sequential.js';
import type { Diagnostics, ModelConfig, ModelKindSpec } from './types.js';

export interface CompressiveState extends SequentialState {
  /**
   * The raw memory: per layer [B, R, H], the layer's last inputs (R = L, or up to L + c − 1 while a
   * group of c waits to be compressed), oldest first, detached; null before the first block.
   */
  cache: Tensor[] | null;
  /** Per layer [B, S, H]: the compressed slots (S <= C), oldest first, detached; null until the first compression. */
  compressed: Tensor[] | null;
}

export class CompressiveTransformer extends SequentialTransformer<CompressiveState> {
  readonly options: CompressiveOptions;
  /** f_c per layer (the 'conv' compressors are learned per layer). */
  readonly compressors: Compressor[];
  /** Positions a query may see: L raw positions plus C compressed slots (keyPe's columns). */
  readonly windowLength: number;
  /** Per layer after the last block: [raw memories, compressed slots]. */
  #held: [number, number][] = [];

  constructor(config: ModelConfig) {
    // Checked before the base builds (and keeps) any parameter.
    if (!config.compressive) throw configError('CompressiveTransformer', "kind 'compressive' needs its options (config.compressive); build the model with createModel, which fills the defaults");
    super(config, config.memLen + config.compressive.compressedLen);
    const options = config.compressive;
    this.options = options;
    this.windowLength = this.keyPositions;
    this.compressors = this.child('compressors', Array.from({ length: config.layers }, () =>
      new Compressor(options.fn, options.rate, config.dModel)));
  }

  override initState(_batch: number): CompressiveState {
    return { cache: null, compressed: null };
  }

  /** cat(compressed, raw) as one contiguous past, with the sliding window of L + C positions. */
  protected override layerContext(l: number, h: Tensor, state: CompressiveState): LayerContext {
    const parts = [state.compressed?.[l], state.cache?.[l]].filter((t): t is Tensor => t !== undefined);
    const memory = parts.length === 0 ? null : parts.length === 1 ? parts[0]! : cat(parts, 1); // [B, S + R, H]
    const { mask, distance } = this.window(memory?.shape[1] ?? 0, h.shape[1]!, this.windowLength);
    return { memory, mask, distance, softMask: null, auxLoss: null };
  }

  /** Decoding: the compressed slots, then the raw memory (as layerContext reads them). */
  protected override layerMemory(l: number, state: CompressiveState): Tensor | null {
    const parts = [state.compressed?.[l], state.cache?.[l]].filter((t): t is Tensor => t !== undefined);
    return parts.length === 0 ? null : parts.length === 1 ? parts[0]! : cat(parts, 1); // [B, S + R, H]
  }

  /** Advances both FIFOs of every layer; the reconstruction loss of each compression trains f_c. */
  protected override nextState(state: CompressiveState, inputs: Tensor[], _contexts: LayerContext[]): { state: CompressiveState; auxLoss: Tensor | null } {
    const { rate, compressedLen, reconstruction } = this.options;
    // Only while a gradient can train f_c: in evaluation there is nothing to learn from it.
    const reconstruct = reconstruction && this.training && isGradEnabled();
    const cache: Tensor[] = [];
    const compressed: Tensor[] = [];
    let auxLoss: Tensor | null = null;
    for (const [l, h] of inputs.entries()) {
      const { raw, old } = advanceRawMemory(state.cache?.[l] ?? null, h, this.span, rate); // raw [B, R', H], old [B, n, H]
      cache.push(raw);
      const previous = state.compressed?.[l] ?? null;
      if (!old) {
        // A new handle on the same slots: the caller may dispose the input state.
        if (previous) compressed.push(previous.detach());
        continue;
      }
      const compressor = this.compressors[l]!;
      const slots = compressor.forward(old); // [B, n/c, H]
      compressed.push(appendCompressed(previous, slots, compressedLen));
      if (reconstruct && compressor.learned) {
        const layer = this.layers[l]!;
        const loss = attentionReconstructionLoss(layer, h, old, slots);
        auxLoss = auxLoss ? auxLoss.add(loss) : loss;
      }
    }
    this.#held = cache.map((raw, l) => [raw.shape[1]!, compressed[l]?.shape[1] ?? 0]);
    // Every layer sees the same number of positions, so the layers compress together: either all
    // hold compressed slots or none does.
    return { state: { cache, compressed: compressed.length ? compressed : null }, auxLoss };
  }

  override diagnostics(): Diagnostics {
    const d = super.diagnostics();
    if (this.#held.length === 0) return d;
    d.perLayer['raw memories'] = this.#held.map(([raw]) => raw);
    d.perLayer['compressed slots'] = this.#held.map(([, slots]) => slots);
    return d;
  }
}

export const compressiveKind: ModelKindSpec<'compressive'> = {
  kind: 'compressive',
  build: (config) => new CompressiveTransformer(config),
  options: { key: 'compressive', schema: compressiveSchema, complete: (parsed, config) => completeCompressiveOptions(parsed, config.memLen) },
  memLen: { use: 'required', reason: 'its maximum span L' },
  numMemTokens: { use: 'none' },
};
