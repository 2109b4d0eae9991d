// One decoder layer: self-attention over cat(cache, h) then a feed-forward, with post-LN (the
// Transformer-XL reference: LN(h + Attn), LN(x + FF)) or pre-LN (h + Attn(LN h), x + FF(LN x)).
//
// The residual and normalisation structure is written once (around()): forward() wraps it around
// self-attention over cat(cache, h); the Feedback Transformer wraps it around attention over keys
// and values it projected beforehand; frozenAttention() is the layer's attention with detached
// weights (the Compressive Transformer's reconstruction loss); forwardCached() is forward() for new
// rows over the keys and values of earlier rows kept in a KeyValueCache (incremental decoding).
//
// Shapes: B batch, T current positions, C cached positions, n memories, H hidden.
import { cat, F, nativeKernelsOn, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Dropout, FeedForward, LayerNorm, ROW_PRODUCT_MIN } from './layers.js';
import { isRelative, MultiHeadAttention, type KeyValueCache, type LearnedPositions, type RelativePositions } from './attention.js';

export interface LayerOptions {
  dModel: number;
  heads: number;
  dInner: number;
  dropout: number;
  norm: 'post' | 'pre';
  /** Transformer-XL relative positions (W_r); false for learned key positions (default true). */
  relative?: boolean;
}

export class DecoderLayer extends Module {
  readonly attn: MultiHeadAttention;
  readonly ff: FeedForward;
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly drop: Dropout;
  readonly norm: 'post' | 'pre';

  constructor(o: LayerOptions) {
    super();
    this.norm = o.norm;
    this.attn = this.child('attn', new MultiHeadAttention(o.dModel, o.heads, o.dropout, { relative: o.relative ?? true }));
    this.ff = this.child('ff', new FeedForward(o.dModel, o.dInner, o.dropout));
    this.ln1 = this.child('ln1', new LayerNorm(o.dModel));
    this.ln2 = this.child('ln2', new LayerNorm(o.dModel));
    this.drop = this.child('drop', new Dropout(o.dropout));
  }

  /**
   * h [B, T, H], cache [B, C, H] (this layer's past inputs) or null; mask [T, C + T] or
   * [B, 1, T, C + T]; softMask [B|1, K|1, T, C + T] or null (see MultiHeadAttention).
   */
  forward(h: Tensor, cache: Tensor | null, mask: Tensor | null, positions: RelativePositions | LearnedPositions | null, softMask: Tensor | null = null): Tensor {
    // post-LN: keys and values of cat(cache, h) in one op that gives a detached cache no input gradient
    if (this.norm === 'post') return this.around(h, (query) => this.attn.forward({ query, context: cache ? [cache, h] : h, mask, positions, softMask }));
    // pre-LN: the queries are the block's rows of the normalised context (one LayerNorm for both)
    const normed = this.ln1.forward(cache ? cat([cache, h], 1) : h); // [B, C + T, H]
    const query = cache ? normed.narrow(1, cache.shape[1]!, h.shape[1]!) : normed;
    return this.around(h, (q) => this.attn.forward({ query: q, context: normed, mask, positions, softMask }), query);
  }

  /**
   * Incremental decoding: new rows h [B, n, H] attend to the rows cached in `cache` (their keys and
   * values, see cacheRows) and to themselves, whose keys and values are appended to the cache. As
   * forward(h, earlier rows, ...), with mask, distances and soft mask over the newest `keys` rows
   * of the cache (after the append; default all).
   */
  forwardCached(h: Tensor, cache: KeyValueCache, mask: Tensor | null, positions: RelativePositions | LearnedPositions | null, softMask: Tensor | null = null, keys?: number): Tensor {
    const fused = mask || softMask ? null : this.fusedRow(h, cache, positions, keys);
    if (fused) return fused;
    // Linear.forwardRow: matrix-vector products where h holds one row (batch-1 decoding of a token)
    const attend = (query: Tensor) => this.attn.forwardCached({ query, context: query, mask, positions, softMask }, cache, keys);
    if (this.norm === 'post') return this.around(h, attend, undefined, true);
    const normed = this.ln1.forward(h); // pre-LN: per row, so the cached rows' normalisation is unchanged
    return this.around(h, attend, normed, true);
  }

  /**
   * forwardCached() for one new row h [B, 1, H] with no mask tables, as one native call
   * (F.decoderLayerRow): where the attention's positions are none, relative from a causal table, or
   * expiring keys (on the CPU), nothing is dropped or recorded, and the cache already holds rows
   * (the row goes into its buffers; the first rows size them). Else null: the composed path.
   */
  private fusedRow(h: Tensor, cache: KeyValueCache, positions: RelativePositions | LearnedPositions | null, keys?: number): Tensor | null {
    const attn = this.attn;
    if (!attn.unrecorded() || (this.training && this.drop.p > 0) || h.shape[1] !== 1) return null;
    let rowPositions: F.LayerRowPositions;
    const used = keys ?? cache.length + 1; // keys counts the new row
    if (positions === null) rowPositions = { kind: 'none' };
    else if (isRelative(positions)) {
      if (positions.bidirectional || !attn.r) return null;
      rowPositions = { kind: 'relative', contentBias: positions.u, positionKeys: attn.cachedRelativeKeys(cache, positions), positionBias: positions.v };
    } else if (positions.expiring && keys !== undefined && nativeKernelsOn(positions.keyPe.device)) {
      rowPositions = { kind: 'expiring', keyPe: positions.keyPe, keys: positions.expiring };
    } else return null;
    const room = cache.reserveRow();
    if (!room) return null;
    const out = F.decoderLayerRow(h, this.#rowWeights(), { ...room, used }, rowPositions, { pre: this.norm === 'pre', scale: 1 / Math.sqrt(attn.headDim), rowMin: ROW_PRODUCT_MIN });
    cache.advanceRow();
    return out;
  }

  #weights: F.DecoderLayerRowWeights | null = null;
  /** The layer's weights as F.decoderLayerRow takes them, made once (parameters change in place, never their Tensor objects). */
  #rowWeights(): F.DecoderLayerRowWeights {
    const { attn, ff } = this;
    const linear = (l: { weight: Tensor; bias: Tensor | null }) => [l.weight, l.bias] as const;
    return (this.#weights ??= {
      ln1: [this.ln1.weight, this.ln1.bias, this.ln1.eps], q: linear(attn.q), kv: linear(attn.kv), out: linear(attn.out),
      ln2: [this.ln2.weight, this.ln2.bias, this.ln2.eps], up: linear(ff.up), down: linear(ff.down),
    });
  }

  /** Appends the keys and values of layer inputs x [B, T, H] (rows attended later, not queries) to a decoding cache. */
  cacheRows(x: Tensor, cache: KeyValueCache): void {
    cache.append(...this.attn.keysValues(this.norm === 'pre' ? this.ln1.forward(x) : x));
  }

  /**
   * The layer around an attention function: attend(query [B, T, H]) -> [B, T, H], or null when
   * there is nothing to attend to (the attention then adds nothing). The query is h (post-LN) or
   * LN(h) (pre-LN; `normedQuery` when the caller already has it). `row`: the feed-forward goes through
   * Linear.forwardRow (matrix-vector products where h holds one row; the cached path).
   */
  around(h: Tensor, attend: (query: Tensor) => Tensor | null, normedQuery?: Tensor, row = false): Tensor {
    const ff = (x: Tensor) => (row ? this.ff.forwardRow(x) : this.ff.forward(x));
    if (this.norm === 'post') {
      const a = attend(h);
      const x = this.ln1.forward(a ? h.add(this.drop.forward(a)) : h);
      return this.ln2.forward(x.add(ff(x)));
    }
    const a = attend(normedQuery ?? this.ln1.forward(h));
    const x = a ? h.add(this.drop.forward(a)) : h;
    return x.add(ff(this.ln2.forward(x)));
  }

  /**
   * The layer's content attention of queries [B, T, H] over memories [B, n, H] -> [B, T, H] with
   * every weight held fixed (detached), including pre-LN's input normalisation: no positions, no
   * mask, no dropout.
   */
  frozenAttention(queries: Tensor, memories: Tensor): Tensor {
    const ln = this.ln1;
    const normed = (x: Tensor) => (this.norm === 'pre' ? F.layerNorm(x, ln.dim, ln.weight.detach(), ln.bias.detach(), ln.eps) : x);
    return this.attn.forward({ query: normed(queries), context: normed(memories), mask: null, positions: null }, { frozen: true });
  }
}
