// What every model's incremental decoding (SegmentModel.openSegment) shares: the bookkeeping of an
// open segment (positions fed, the token before the next feed for previous-token embeddings, the
// end at commit) and rows that grow along the position axis (per-layer inputs of the segment so far).
//
// Shapes: B batch, n tokens per feed, p positions fed before, H hidden.
import { cat, configError, shapeError, withPrecision, type AutocastDevice, type Precision, type Tensor } from '../tensor/index.js';
import { GrowingTensor } from '../nn/growing-tensor.js';
import type { TokenEmbedding } from '../nn/layers.js';
import type { MemoryState, OpenSegment } from './types.js';

/** Rows [B, p, H] kept out of scopes, grown by append along the position axis (the open segment owns them). */
export class GrowingRows extends GrowingTensor {
  constructor() {
    super(1);
  }
}

/**
 * An open segment: feed() checks the tokens, runs step() on them and records the last one (the
 * previous token of the next feed); commit() runs finish() once. Subclasses free what they hold in
 * release(). feed() and commit() run at the precision the model had when the segment was opened
 * (the model's openSegment runs the constructor at it too), on the device type of the model's weights.
 */
export abstract class OpenSegmentBase<S extends MemoryState> implements OpenSegment<S> {
  #length = 0;
  /** int64 [B, 1]: the last token fed, or null at the segment's start. */
  #previous: Tensor | null = null;
  #ended = false;

  constructor(readonly batch: number, readonly name: string, readonly precision: Precision, readonly device: AutocastDevice) {}

  get length(): number {
    return this.#length;
  }

  feed(tokens: Tensor): Tensor {
    if (this.#ended) throw configError(`${this.name}.feed`, 'the segment was committed or disposed; open a new one');
    if (tokens.ndim !== 2 || tokens.shape[0] !== this.batch || tokens.shape[1]! < 1) {
      throw shapeError(`${this.name}.feed`, `tokens must be [${this.batch}, n >= 1], got [${tokens.shape}]`);
    }
    const n = tokens.shape[1]!;
    const logits = withPrecision(this.precision, () => this.step(tokens, this.#length), this.device);
    this.#previous?.dispose();
    this.#previous = tokens.narrow(1, n - 1, 1).contiguous().keep();
    this.#length += n;
    return logits;
  }

  commit(): S {
    if (this.#ended) throw configError(`${this.name}.commit`, 'the segment was committed or disposed; open a new one');
    const state = withPrecision(this.precision, () => this.finish(), this.device);
    this.dispose();
    return state;
  }

  dispose(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#previous?.dispose();
    this.#previous = null;
    this.release();
  }

  /**
   * The input embedding of tokens [B, n] continuing the segment: as the embedding of the whole
   * segment at those positions (a previous-token embedding sees the token fed before them).
   */
  protected embed(embedding: TokenEmbedding, tokens: Tensor): Tensor {
    if (!embedding.previous || !this.#previous) return embedding.forward(tokens);
    return embedding.forward(cat([this.#previous, tokens], 1)).narrow(1, 1, tokens.shape[1]!); // [B, n, H]
  }

  /** Runs tokens [B, n] at positions [offset, offset + n): logits [B, n, V]. */
  protected abstract step(tokens: Tensor, offset: number): Tensor;
  /** The state after the segment (detached). */
  protected abstract finish(): S;
  protected abstract release(): void;
}
