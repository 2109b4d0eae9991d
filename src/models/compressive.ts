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
// Options reproducing the reference code (docs/deviations.md F, H): initialMemory 'zeros' starts
// each stream with L zero raw memories and C zero slots per layer; compressive.scheme 'overlap' is
// the reference's memory scheme (src/memory/compressive.ts: slots pooled from the M oldest rows of
// cat(raw, block) while those rows are still raw keys, one softmax over L raw rows and C + 1 slots).
//
// Diagnostics: 'compressed slots' and 'raw memories' per layer after the last block. Registry:
// compressiveKind (options `compressive`, schema and defaults in src/memory/compressive.ts, C
// defaulting to memLen; memLen > 0 required).
//
// Shapes: B batch, M block length, R raw memories held, S compressed slots held (<= C), L = memLen,
// C = compressedLen, c = rate, H hidden, K heads, D = H/K head size, V vocabulary.
import { cat, configError, isGradEnabled, shapeError, zeros, type Tensor } from '../tensor/index.js';
import {
  Compressor, advanceRawMemory, appendCompressed, attentionReconstructionLoss, checkCompressiveScheme, completeCompressiveOptions,
  compressiveSchema, overlapWindow, type CompressiveOptions,
} from '../memory/compressive.js';
import { initialMemorySchema } from '../memory/sequential-window.js';
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

/** Scheme 'overlap': what a block adds to the state while it runs (never carried past it). */
type OverlapBlockState = CompressiveState & {
  /**
   * Within a block of M <= L rows (blockStart): per layer Z = cat(compressed, f_c(the M oldest raw
   * rows)) [B, C + M/c, H], the slots every row of the block may see.
   */
  slots?: Tensor[];
  /** While decoding: per layer the block's rows fed so far [B, p, H] (stateAfterPrefix). */
  prefix?: Tensor[];
};

/** Scheme 'overlap': what nextState keeps of a layer's context. */
interface OverlapContext extends LayerContext {
  /** X = cat(raw, block) [B, L + M, H]. */
  x: Tensor;
  /** Z = cat(compressed, new slots) [B, C + M/c, H]. */
  slots: Tensor;
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

  /** No memory, or (initialMemory 'zeros') per layer L zero raw memories and C zero slots. */
  override initState(batch: number): CompressiveState {
    if (this.initialMemory === 'empty') return { cache: null, compressed: null };
    return {
      cache: this.layers.map(() => this.zeroMemories(batch, this.span)), // [B, L, H] each
      compressed: this.layers.map(() => this.zeroMemories(batch, this.options.compressedLen)), // [B, C, H] each
    };
  }

  /** Scheme 'overlap' makes the mask and the slots follow the block length. */
  get dependsOnSegmentLength(): boolean {
    return this.options.scheme === 'overlap';
  }

  /** Scheme 'overlap' decodes blocks of M <= L rows, whole groups of c (the slots then pool raw rows only). */
  override openSegment(state: CompressiveState, batch: number, segmentLength: number) {
    const { scheme, rate } = this.options;
    if (scheme === 'overlap' && (segmentLength > this.span || segmentLength % rate !== 0)) {
      throw configError('CompressiveTransformer.openSegment', `compressive.scheme 'overlap' decodes segments of at most memLen (${this.span}) tokens in whole groups of the rate ${rate} (got ${segmentLength}): longer blocks pool rows of the block itself into the slots; decode with such a segment length`);
    }
    return super.openSegment(state, batch, segmentLength);
  }

  /** Scheme 'overlap', M <= L: the slots of the block, pooled from the M oldest raw rows of each layer. */
  protected override blockStart(state: CompressiveState, _batch: number, M: number): CompressiveState {
    if (this.options.scheme !== 'overlap' || M > this.span || M % this.options.rate !== 0 || !state.cache || !state.compressed) return state;
    const compressed = state.compressed;
    const slots = state.cache.map((raw, l) => cat([compressed[l]!, this.compressors[l]!.forward(raw.narrow(1, 0, M))], 1));
    return { ...state, slots } as OverlapBlockState;
  }

  /** Decoding, scheme 'overlap': the raw memory stays; the block's first rows are kept beside it. */
  protected override stateAfterPrefix(state: CompressiveState, inputs: Tensor[], rows: number): CompressiveState {
    return this.options.scheme === 'overlap' ? { ...state, prefix: inputs } as OverlapBlockState : super.stateAfterPrefix(state, inputs, rows);
  }

  /** cat(compressed, raw) as one contiguous past, with the sliding window of L + C positions. */
  protected override layerContext(l: number, h: Tensor, state: CompressiveState, blockLength: number): LayerContext {
    if (this.options.scheme === 'overlap') return this.overlapContext(l, h, state, blockLength);
    const parts = [state.compressed?.[l], state.cache?.[l]].filter((t): t is Tensor => t !== undefined);
    const memory = parts.length === 0 ? null : parts.length === 1 ? parts[0]! : cat(parts, 1); // [B, S + R, H]
    const { mask, distance, rankShift } = this.window(memory?.shape[1] ?? 0, h.shape[1]!, this.windowLength);
    return { memory, mask, distance, rankShift, softMask: null, auxLoss: null };
  }

  /** Decoding: the compressed slots, then the raw memory (as layerContext reads them). */
  protected override layerMemory(l: number, state: CompressiveState): Tensor | null {
    if (this.options.scheme === 'overlap') return cat([(state as OverlapBlockState).slots![l]!, state.cache![l]!], 1); // [B, C + M/c + L, H]
    const parts = [state.compressed?.[l], state.cache?.[l]].filter((t): t is Tensor => t !== undefined);
    return parts.length === 0 ? null : parts.length === 1 ? parts[0]! : cat(parts, 1); // [B, S + R, H]
  }

  /** Advances both FIFOs of every layer; the reconstruction loss of each compression trains f_c. */
  protected override nextState(state: CompressiveState, inputs: Tensor[], contexts: LayerContext[]): { state: CompressiveState; auxLoss: Tensor | null } {
    if (this.options.scheme === 'overlap') return this.overlapNextState(contexts as OverlapContext[]);
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

  /**
   * Scheme 'overlap' (the reference code's; src/memory/compressive.ts): keys [Z (C + M/c) | raw (L) |
   * block (M)], Z = cat(compressed, f_c(the M oldest rows of cat(raw, block))), with the mask and
   * keyPe columns of overlapWindow; keyPe gets a zero column L + C (slot r = C has no position term).
   * Pre-LN normalises after pooling (the layer's ln1 runs over the whole context). Decoding feeds
   * rows [p, p + n) of the block (p rows in state.prefix): their rows of the tables, over the keys
   * [Z | raw | the block's first p + n rows].
   */
  private overlapContext(l: number, h: Tensor, state: OverlapBlockState, M: number): OverlapContext {
    const { rate, compressedLen: C } = this.options, L = this.span;
    if (M % rate !== 0) throw shapeError('CompressiveTransformer.forward', `compressive.scheme 'overlap' needs the block length (${M}) to be a multiple of the rate ${rate}; use whole groups, as the reference code`);
    const raw = state.cache![l]!, compressed = state.compressed![l]!; // [B, L, H], [B, C, H]
    const prefix = state.prefix?.[l];
    const p = prefix?.shape[1] ?? 0, n = h.shape[1]!;
    const x = cat(prefix ? [raw, prefix, h] : [raw, h], 1); // X [B, L + p + n, H]
    const slots = state.slots?.[l] ?? cat([compressed, this.compressors[l]!.forward(x.narrow(1, 0, M))], 1); // Z [B, C + M/c, H]
    const key = `${C},${M},${rate},${L}`, rows = `${key}:${p},${n}`, keys = C + M / rate + L + p + n;
    const mask = this.tables.get(`overlap-mask:${rows}`, () => overlapWindow(C, M, rate, L, 'mask').narrow(0, p, n).narrow(1, 0, keys).contiguous()); // [n, keys]
    const column = this.tables.get(`overlap-column:${rows}`, () => overlapWindow(C, M, rate, L, 'column').narrow(0, p, n).narrow(1, 0, keys).contiguous()); // [n, keys]
    const zeroColumn = this.tables.get(`overlap-zero-column:${this.keyPe.dtype}`, () => zeros([this.keyPe.shape[0]!, 1], { dtype: this.keyPe.dtype })); // [D, 1]
    return {
      memory: cat(prefix ? [slots, raw, prefix] : [slots, raw], 1), // [B, C + M/c + L + p, H]
      mask,
      distance: column,
      softMask: null,
      auxLoss: null,
      keyPe: cat([this.keyPe, zeroColumn], 1), // [D, L + C + 1]
      x,
      slots,
    };
  }

  /** Scheme 'overlap': raw ← the last L rows of X, compressed ← the last C slots of Z, detached. */
  private overlapNextState(contexts: OverlapContext[]): { state: CompressiveState; auxLoss: Tensor | null } {
    const L = this.span, C = this.options.compressedLen;
    const last = (t: Tensor, n: number) => t.narrow(1, t.shape[1]! - n, n).detach();
    const cache = contexts.map((ctx) => last(ctx.x, L)); // [B, L, H] each
    const compressed = contexts.map((ctx) => last(ctx.slots, C)); // [B, C, H] each
    this.#held = cache.map(() => [L, C]);
    return { state: { cache, compressed }, auxLoss: null };
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
  options: [
    { key: 'compressive', schema: compressiveSchema.prefault({}), complete: (parsed, config) => completeCompressiveOptions(parsed, config.memLen) },
    { key: 'initialMemory', schema: initialMemorySchema },
  ],
  memLen: { use: 'required', reason: 'its maximum span L' },
  numMemTokens: { use: 'none' },
  check: (c) => checkCompressiveScheme(c.compressive, c.initialMemory),
};
