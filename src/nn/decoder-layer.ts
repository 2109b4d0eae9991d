// One decoder layer: self-attention over cat(cache, h) then a feed-forward, with post-LN (the
// Transformer-XL reference: LN(h + Attn), LN(x + FF)) or pre-LN (h + Attn(LN h), x + FF(LN x)).
// Shapes: B batch, T current positions, C cached positions, H hidden.
import { cat, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Dropout, FeedForward, LayerNorm } from './layers.js';
import { MultiHeadAttention, type LearnedPositions, type RelativePositions } from './attention.js';

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
    const context = cache ? cat([cache, h], 1) : h; // [B, C + T, H]
    if (this.norm === 'post') {
      const a = this.attn.forward({ query: h, context, mask, positions, softMask });
      const x = this.ln1.forward(h.add(this.drop.forward(a)));
      return this.ln2.forward(x.add(this.ff.forward(x)));
    }
    const normed = this.ln1.forward(context);
    const query = cache ? normed.narrow(1, cache.shape[1]!, h.shape[1]!) : normed;
    const x = h.add(this.drop.forward(this.attn.forward({ query, context: normed, mask, positions, softMask })));
    return x.add(this.ff.forward(this.ln2.forward(x)));
  }
}
