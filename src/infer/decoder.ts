// Decoding a segment model token by token (or chunk by chunk) over an unbounded stream.
//
// A segment model reads fixed segments of M tokens and carries its state between them. A Decoder
// keeps the state committed at the last segment boundary and the open segment (the m < M tokens
// fed since). feed(tokens) appends tokens to every batch row and returns the logits of each fed
// position; when the open segment reaches M tokens it is committed: the model's state moves to
// the next boundary exactly as in training and evaluation, so boundaries fall every M tokens from
// the start of the stream.
//
// Two paths with the same results:
//   recompute  every feed re-runs model.forward over the whole open segment from the committed
//              state (O(m) work per new token; needs nothing of the model but forward);
//   cached     the model's open segment (SegmentModel.openSegment) keeps per-layer keys and values
//              of the open segment, so each new token costs one position's work; at the boundary
//              it commits the state forward(whole segment) would have given. The default where
//              the model has one (every built-in kind).
// Both run without gradients and in evaluation mode (no dropout), whatever mode the model is in.
//
// Shapes: B batch rows, n tokens per feed, m tokens in the open segment, M segment length,
// V vocabulary.
import type { MemoryState, OpenSegment, SegmentModel } from '../models/index.js';
import { cat, configError, noGrad, tensor, tidy, keep, type Tensor } from '../tensor/index.js';

export interface DecoderOptions {
  /** Batch rows decoded side by side (default 1). */
  batch?: number;
  /** Use the cached path where the model has one (default true); false forces the recompute path. */
  cached?: boolean;
}

/** Keeps every tensor of a state out of the current scope (the decoder owns it). */
function keepState<S extends MemoryState>(state: S): S {
  for (const v of Object.values(state)) (Array.isArray(v) ? v : v ? [v] : []).forEach((t) => keep(t));
  return state;
}

/** Frees every tensor of a state. */
function disposeState(state: MemoryState | null): void {
  if (!state) return;
  for (const v of Object.values(state)) {
    if (Array.isArray(v)) v.forEach((t) => t.dispose());
    else v?.dispose();
  }
}

export class Decoder {
  readonly batch: number;
  readonly cached: boolean;
  #state: MemoryState | null = null;
  /** The cached path's open segment (null at a boundary, or on the recompute path). */
  #segment: OpenSegment | null = null;
  /** [B][m]: the open segment's tokens per row. */
  #open: number[][];
  #position = 0;
  #disposed = false;

  constructor(readonly model: SegmentModel, readonly segmentLength: number, o: DecoderOptions = {}) {
    this.batch = o.batch ?? 1;
    if (!Number.isSafeInteger(this.batch) || this.batch < 1) throw configError('Decoder', `batch must be a positive integer (got ${this.batch})`);
    if (!Number.isSafeInteger(segmentLength) || segmentLength < 1) throw configError('Decoder', `segmentLength must be a positive integer (got ${segmentLength})`);
    this.cached = (o.cached ?? true) && typeof model.openSegment === 'function';
    if (!this.cached && model.dependsOnSegmentLength) {
      throw configError('Decoder', `this ${model.config.kind} model's outputs depend on the whole segment's length (its reference options), so recomputing a part of a segment gives other logits; decode it with cached: true`);
    }
    this.#open = Array.from({ length: this.batch }, () => []);
  }

  /** Tokens fed to each row since the start of the stream. */
  get position(): number {
    return this.#position;
  }

  /** Tokens of the open segment (0 right after a boundary). */
  get openLength(): number {
    return this.#open[0]!.length;
  }

  /**
   * Feeds tokens [B][n] (the same n >= 1 for every row) and returns float32 logits [B, n, V] of
   * the fed positions: row b, position i predicts the token after tokens[b][i]. The tensor
   * belongs to the caller's scope (tidy), as any tensor op's result; the decoder's own state
   * survives every scope.
   */
  feed(tokens: number[][]): Tensor {
    this.#check(tokens);
    const n = tokens[0]!.length;
    const pieces: Tensor[] = [];
    const training = this.model.training;
    if (training) this.model.eval();
    try {
      for (let start = 0; start < n;) {
        const take = Math.min(n - start, this.segmentLength - this.openLength);
        const chunk = tokens.map((row) => row.slice(start, start + take));
        chunk.forEach((row, b) => this.#open[b]!.push(...row));
        pieces.push(this.cached ? this.#feedCached(chunk) : this.#runOpen(take));
        start += take;
        this.#position += take;
      }
    } finally {
      if (training) this.model.train();
    }
    if (pieces.length === 1) return pieces[0]!;
    const all = cat(pieces, 1);
    pieces.forEach((p) => p.dispose());
    return all;
  }

  /** The cached path: feeds a chunk [B][take] to the open segment; commits a full segment. */
  #feedCached(chunk: number[][]): Tensor {
    const take = chunk[0]!.length;
    const commit = this.openLength === this.segmentLength;
    const r = noGrad(() => tidy(() => {
      this.#state ??= keepState(this.model.initState(this.batch));
      this.#segment ??= this.model.openSegment!(this.#state, this.batch, this.segmentLength);
      const tokens = tensor(Int32Array.from(chunk.flat()), { dtype: 'int64', shape: [this.batch, take], device: this.model.device });
      const logits = this.#segment.feed(tokens).float().contiguous();
      const state = commit ? keepState(this.#segment.commit()) : null;
      return { logits, state };
    }));
    if (r.state) {
      this.#segment = null; // commit() ended it
      disposeState(this.#state);
      this.#state = r.state;
      this.#open = Array.from({ length: this.batch }, () => []);
    }
    return r.logits;
  }

  /** Runs the open segment; returns the logits of its last `take` positions; commits a full segment. */
  #runOpen(take: number): Tensor {
    const m = this.openLength;
    const commit = m === this.segmentLength;
    const r = noGrad(() => tidy(() => {
      const tokens = tensor(Int32Array.from(this.#open.flat()), { dtype: 'int64', shape: [this.batch, m], device: this.model.device });
      const out = this.model.forward(tokens, this.#state ?? this.model.initState(this.batch));
      const logits = out.logits.narrow(1, m - take, take).float().contiguous();
      const state = commit ? keepState(this.model.detachState(out.state)) : null;
      return { logits, state };
    }));
    if (commit) {
      disposeState(this.#state);
      this.#state = r.state;
      this.#open = Array.from({ length: this.batch }, () => []);
    }
    return r.logits;
  }

  #check(tokens: number[][]): void {
    if (this.#disposed) throw configError('Decoder.feed', 'the decoder was disposed');
    if (!Array.isArray(tokens) || tokens.length !== this.batch) throw configError('Decoder.feed', `expected ${this.batch} rows of tokens (got ${Array.isArray(tokens) ? tokens.length : typeof tokens})`);
    const n = tokens[0]?.length ?? 0;
    if (n < 1) throw configError('Decoder.feed', 'feed at least one token per row');
    const vocab = this.model.config.vocabSize;
    tokens.forEach((row, b) => {
      if (row.length !== n) throw configError('Decoder.feed', `every row needs the same number of tokens (row 0 has ${n}, row ${b} has ${row.length})`);
      row.forEach((t, i) => {
        if (!Number.isInteger(t) || t < 0 || t >= vocab) throw configError('Decoder.feed', `token ${t} at row ${b}, position ${i} is not an id in [0, ${vocab})`);
      });
    });
  }

  /** Frees the carried state; the decoder cannot be fed afterwards. */
  dispose(): void {
    this.#segment?.dispose();
    this.#segment = null;
    disposeState(this.#state);
    this.#state = null;
    this.#disposed = true;
  }
}
