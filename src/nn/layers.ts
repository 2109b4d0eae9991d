// Basic layers. Initialisation follows PyTorch's defaults unless a comment says otherwise.
import { cat, F, full, ones, randn, zeros, rand, widenReduced, type Device, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';

/** y = x W^T + b, W [out, in]; PyTorch's init: U(-1/sqrt(in), 1/sqrt(in)) for W and b. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, { bias = true } = {}) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', () => rand([outFeatures, inFeatures]).mul(2 * bound).sub(bound));
    this.bias = bias ? this.param('bias', () => rand([outFeatures]).mul(2 * bound).sub(bound)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
  /**
   * forward() for incremental decoding: a matrix-vector product when x [.., in] holds a single row
   * and the weight has at least ROW_PRODUCT_MIN entries, else forward() (F.linearRow decides).
   */
  forwardRow(x: Tensor): Tensor {
    return F.linearRow(x, this.weight, this.bias, ROW_PRODUCT_MIN);
  }
}

/**
 * The weight size (entries) from which a one-row product is faster as a matrix-vector product.
 * Measured on the 2-core AVX-512 machine (libtorch 1.13, OpenBLAS), [1, in] x [in, out] float32:
 * even at 2^15 entries, ahead from 2^16 (256 x 256: 1.1x) to 2^18 (256 x 1024: 1.6x).
 */
export const ROW_PRODUCT_MIN = 1 << 16;

/**
 * A model's output head: a Linear whose output (the logits [B, M, V]) is float32 whatever the
 * precision. Under bf16 its matrix product runs in bfloat16 like every other, and the logits are
 * widened back, so losses, sampling and callers always see float32 (src/tensor/precision.ts).
 */
export class OutputHead extends Linear {
  override forward(x: Tensor): Tensor {
    return widenReduced(super.forward(x));
  }
  override forwardRow(x: Tensor): Tensor {
    return widenReduced(super.forwardRow(x));
  }
}

/** Rows of a [num, dim] table; N(0, 1) init as PyTorch, or a given std. */
export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(readonly num: number, readonly dim: number, { std = 1 } = {}) {
    super();
    this.weight = this.param('weight', () => randn([num, dim]).mul(std));
  }
  forward(indices: Tensor): Tensor {
    return F.embedding(indices, this.weight);
  }
}

/**
 * The input embedding of a segment's tokens [B, M]. With `previousToken`, each position also adds a
 * learned embedding of the token before it in the segment (row `num`, a start vector, at the
 * segment's first position), as x-transformers' shift_tokens and RWKV's token shift: the pair
 * (previous, current) is in a position's input, so matching "the value after key k" needs one
 * attention layer instead of a previous-token head composed with a second one. Nothing crosses a
 * segment boundary: what the segment before held is left to the model's memory.
 */
export class TokenEmbedding extends Embedding {
  /** [num + 1, dim], or null without previousToken. */
  readonly previous: Tensor | null;
  constructor(num: number, dim: number, { previousToken = false } = {}) {
    super(num, dim);
    this.previous = previousToken ? this.param('previous', () => randn([num + 1, dim])) : null;
  }
  override forward(tokens: Tensor): Tensor {
    const embedded = super.forward(tokens); // [B, M, dim]
    if (!this.previous) return embedded;
    const [B, M] = tokens.shape as [number, number];
    const start = full([B, 1], this.num, { dtype: tokens.dtype, device: tokens.device as Device });
    const before = M > 1 ? cat([start, tokens.narrow(1, 0, M - 1)], 1) : start; // [B, M]
    return embedded.add(F.embedding(before, this.previous));
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', ones([dim]));
    this.bias = this.param('bias', zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.dim, this.weight, this.bias, this.eps);
  }
}

export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? F.dropout(x, this.p, true) : x;
  }
}

/** Position-wise feed-forward: Linear(d, dInner) -> ReLU -> dropout -> Linear(dInner, d) -> dropout. */
export class FeedForward extends Module {
  readonly up: Linear;
  readonly down: Linear;
  readonly drop: Dropout;
  constructor(d: number, dInner: number, dropout: number) {
    super();
    this.up = this.child('up', new Linear(d, dInner));
    this.down = this.child('down', new Linear(dInner, d));
    this.drop = this.child('drop', new Dropout(dropout));
  }
  forward(x: Tensor): Tensor {
    // without dropout: one native op (the hidden layer rectified and its gradient masked in place)
    if (!(this.drop.training && this.drop.p > 0)) return F.feedForward(x, this.up.weight, this.up.bias!, this.down.weight, this.down.bias!);
    return this.drop.forward(this.down.forward(this.drop.forward(this.up.forward(x).relu())));
  }
  /** forward() for x [.., H] holding one row (decoding, no dropout: evaluation mode). */
  forwardRow(x: Tensor): Tensor {
    return this.drop.forward(this.down.forwardRow(this.drop.forward(this.up.forwardRow(x).relu())));
  }
}
