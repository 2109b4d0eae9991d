// Multi-head attention with an explicit mask and one of two position schemes:
//   relative (Transformer-XL, SPEC §1):
//     score(i, j) = ((q_i + u) · k_j + (q_i + v) · W_r R_{i-j}) / sqrt(D)
//   learned key positions (the Expire-Span code base's key_pe, SPEC §1 last paragraph):
//     score(i, j) = (q_i · k_j + q_i · P[:, d_ij]) / sqrt(D),  d_ij the distance of key j from query i
// and an optional soft mask applied after the softmax and renormalised (Adaptive-Span, Expire-Span):
//     a'_ij = m_ij a_ij / (Σ_j m_ij a_ij + 1e-8)
//
// One path for every model: forward() projects queries, keys and values itself; attendProjected()
// takes keys and values projected beforehand (the Feedback Transformer projects each memory once
// for all layers) with a key position table per key; both end in mix() (softmax, masks, recording,
// dropout, values, output projection). `frozen` runs the same attention with detached weights and
// no dropout (the Compressive Transformer's attention-reconstruction loss).
//
// Shapes: B batch, Tq queries, Tk keys (cache + current), K heads, D head size, H = K·D.
import { cat, F, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Dropout, Linear } from './layers.js';
import { relShift, relSkew } from './positions.js';

export interface RelativePositions {
  /** Content bias u and position bias v, [K, D] (shared across layers, as the reference). */
  u: Tensor;
  v: Tensor;
  /**
   * Sinusoidal embeddings [Tk, H] of distances Tk-1 ... 0 (causal masks), or [Tk + Tq - 1, H] of
   * distances Tk-1 ... -(Tq-1) when the mask lets queries see later keys (then `bidirectional`).
   */
  r: Tensor;
  bidirectional: boolean;
}

/**
 * transformer-sequential's key_pe: one learned embedding per distance, shared by every head and
 * layer. Keys need not be contiguous (Expire-Span drops memories), so each key's distance from
 * each query is given explicitly.
 */
export interface LearnedPositions {
  /** [D, L]: column d is the embedding of distance d (0: the query's own position). */
  keyPe: Tensor;
  /**
   * int64 [Tq, Tk] or [B, 1, Tq, Tk]: distance of key j from query i, in [0, L). Entries the mask
   * removes may hold any value in range (clamp them).
   */
  distance: Tensor;
}

export const isRelative = (p: RelativePositions | LearnedPositions): p is RelativePositions => 'u' in p;

export interface AttentionInput {
  /** [B, Tq, H] the queries' inputs. */
  query: Tensor;
  /** [B, Tk, H] the keys' and values' inputs (for self-attention with a cache: cat(cache, query)). */
  context: Tensor;
  /** bool [Tq, Tk] or [B, 1, Tq, Tk]: true where attention is not allowed. */
  mask: Tensor | null;
  positions: RelativePositions | LearnedPositions | null;
  /** [B|1, K|1, Tq, Tk] in [0, 1]: multiplies the attention weights, which are then renormalised. */
  softMask?: Tensor | null;
}

/** Keys and values projected beforehand ([B, K, Tk_i, D] each), in pieces along the key axis, oldest first. */
export type ProjectedKeys = readonly (readonly [key: Tensor, value: Tensor])[];

export interface ProjectedAttentionInput {
  /** [B, Tq, H] the queries' inputs. */
  query: Tensor;
  keys: ProjectedKeys;
  /** [D, Tk]: the key position embedding of each key (learned positions, already in key order). */
  keyPositions: Tensor;
  /** Receives the attention weights [B, K, Tq, Tk] before dropout (instead of lastAttention). */
  record?: (weights: Tensor) => void;
}

export class MultiHeadAttention extends Module {
  readonly q: Linear;
  readonly kv: Linear;
  readonly out: Linear;
  /** W_r, the bias-free projection of position embeddings (only with relative positions). */
  readonly r: Linear | null;
  readonly drop: Dropout;
  readonly headDim: number;
  /** The last attention weights [B, K, Tq, Tk], when recordAttention is on (for inspection). */
  lastAttention: Tensor | null = null;
  recordAttention = false;

  constructor(readonly dModel: number, readonly heads: number, dropout: number, { relative = true } = {}) {
    super();
    this.headDim = dModel / heads;
    // Bias-free projections, as the Transformer-XL reference.
    this.q = this.child('q', new Linear(dModel, dModel, { bias: false }));
    this.kv = this.child('kv', new Linear(dModel, 2 * dModel, { bias: false }));
    this.out = this.child('out', new Linear(dModel, dModel, { bias: false }));
    this.r = relative ? this.child('r', new Linear(dModel, dModel, { bias: false })) : null;
    this.drop = this.child('drop', new Dropout(dropout));
  }

  /**
   * `frozen`: every weight detached and no dropout or recording, so that a loss through this
   * attention trains only what produced its inputs.
   */
  forward({ query, context, mask, positions, softMask = null }: AttentionInput, { frozen = false } = {}): Tensor {
    const [B, Tq] = query.shape as [number, number];
    const Tk = context.shape[1]!;
    const K = this.heads, D = this.headDim;
    const q = this.queries(query, frozen); // [B, K, Tq, D]
    const [k, v] = project(this.kv, context, frozen).view(B, Tk, 2, K, D).permute(2, 0, 3, 1, 4).unbind(0); // [B, K, Tk, D] each
    let scores: Tensor;
    if (positions && !isRelative(positions)) {
      const byDistance = q.matmul(positions.keyPe); // [B, K, Tq, L]
      const d = positions.distance;
      const index = (d.ndim === 2 ? d.view(1, 1, Tq, Tk) : d).expand(B, K, Tq, Tk);
      scores = q.matmul(k!.mT).add(byDistance.gather(-1, index)); // [B, K, Tq, Tk]
    } else if (positions && this.r) {
      const content = q.add(positions.u.unsqueeze(1)).matmul(k!.mT); // [B, K, Tq, Tk]
      const rk = this.r.forward(positions.r).view(-1, K, D).permute(1, 2, 0); // [K, D, R]
      const byDistance = q.add(positions.v.unsqueeze(1)).matmul(rk); // [B, K, Tq, R]
      scores = content.add(positions.bidirectional ? relSkew(byDistance) : relShift(byDistance));
    } else {
      scores = q.matmul(k!.mT);
    }
    return this.mix(scores, [v!], { mask, softMask, frozen });
  }

  /**
   * Attention over keys and values projected beforehand, with learned key positions given per key:
   * score(i, j) = (q_i · k_j + q_i · P_j) / sqrt(D). No mask: every key given may be seen.
   */
  attendProjected({ query, keys, keyPositions, record }: ProjectedAttentionInput): Tensor {
    const q = this.queries(query); // [B, K, Tq, D]
    const content = keys.length === 1 ? q.matmul(keys[0]![0].mT) : cat(keys.map(([k]) => q.matmul(k.mT)), -1); // [B, K, Tq, Tk]
    const scores = content.add(q.matmul(keyPositions)); // [B, K, Tq, Tk]
    return this.mix(scores, keys.map(([, v]) => v), { mask: null, record });
  }

  /** Queries [B, Tq, H] -> [B, K, Tq, D]. */
  private queries(x: Tensor, frozen = false): Tensor {
    const [B, Tq] = x.shape as [number, number];
    return project(this.q, x, frozen).view(B, Tq, this.heads, this.headDim).transpose(1, 2);
  }

  /**
   * Scores [B, K, Tq, Tk] (before scaling) -> output [B, Tq, H]: masked softmax, soft mask,
   * recording, dropout, the weighted sum of the values (pieces [B, K, Tk_i, D] along the keys),
   * output projection.
   */
  private mix(scores: Tensor, values: readonly Tensor[], o: { mask: Tensor | null; softMask?: Tensor | null; frozen?: boolean; record?: (weights: Tensor) => void }): Tensor {
    const [B, K, Tq] = scores.shape as [number, number, number];
    let probs = F.maskedSoftmax(scores, o.mask, { scale: 1 / Math.sqrt(this.headDim), dim: -1 }); // [B, K, Tq, Tk]
    if (o.softMask) {
      const masked = probs.mul(o.softMask);
      probs = masked.div(masked.sum(-1, true).add(1e-8));
    }
    if (o.record) {
      o.record(probs);
    } else if (this.recordAttention && !o.frozen) {
      this.lastAttention?.dispose();
      this.lastAttention = probs.detach().keep();
    }
    const dropped = o.frozen ? probs : this.drop.forward(probs);
    let mixed: Tensor | null = null; // [B, K, Tq, D]
    let offset = 0;
    for (const v of values) {
      const count = v.shape[2]!;
      const part = (values.length === 1 ? dropped : dropped.narrow(-1, offset, count)).matmul(v);
      mixed = mixed ? mixed.add(part) : part;
      offset += count;
    }
    return project(this.out, mixed!.transpose(1, 2).reshape(B, Tq, K * this.headDim), o.frozen ?? false); // [B, Tq, H]
  }
}

/** x W^T (+ b), with the weights detached when frozen. */
function project(layer: Linear, x: Tensor, frozen: boolean): Tensor {
  return frozen ? F.linear(x, layer.weight.detach(), layer.bias?.detach() ?? null) : layer.forward(x);
}
