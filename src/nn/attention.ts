// Multi-head attention with an explicit mask and one of two position schemes:
//   relative (Transformer-XL, SPEC §1):
//     score(i, j) = ((q_i + u) · k_j + (q_i + v) · W_r R_{i-j}) / sqrt(D)
//   learned key positions (the Expire-Span code base's key_pe, SPEC §1 last paragraph):
//     score(i, j) = (q_i · k_j + q_i · P[:, d_ij]) / sqrt(D),  d_ij the distance of key j from query i
//     (q · P gathered by d, or, for keys at consecutive positions, read through a skewed view:
//     positions.ts skewedKeyPositions, added to the content scores by addSkewedKeyPositions)
// and an optional soft mask applied after the softmax and renormalised (Adaptive-Span, Expire-Span):
//     a'_ij = m_ij a_ij / (Σ_j m_ij a_ij + 1e-8)   (one native op, F.softMaskRenorm)
//
// One path for every model: forward() projects queries, keys and values itself; forwardCached()
// (incremental decoding) projects only the new rows and reads the earlier ones' keys and values
// from a KeyValueCache (one new row: scores, softmax and values in one native op, F.attendRow, or
// F.expiringAttend for Expire-Span's keys); attendProjected()
// takes keys and values projected beforehand (the Feedback Transformer projects each memory once
// for all layers) with a key position table per key; both end in mix() (softmax, masks, recording,
// dropout, values, output projection). Expire-Span's expiring keys take one op from the queries,
// keys and values to the heads' outputs (F.expiringAttend: key positions, hard and soft masks from
// each key's age and span, no table of the weights), or, where the weights are recorded or dropped
// out, make their weights in one op (F.expiringAttention) and go through mix's last steps. `frozen`
// runs the same attention with detached weights and no dropout (the Compressive Transformer's
// attention-reconstruction loss).
//
// Shapes: B batch, Tq queries, Tk keys (cache + current), K heads, D head size, H = K·D.
import { autocastState, batchedMatmulKernel, cat, configError, F, nativeKernelsOn, type ExpiringKeysInput, type RowBlocks, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Dropout, Linear } from './layers.js';
import { addRelSkew, addSkewedKeyPositions } from './positions.js';
import { GrowingTensor } from './growing-tensor.js';

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
   * removes may hold any value in range (clamp them). Not with `expiring`.
   */
  distance?: Tensor;
  /**
   * Keys at consecutive positions (a sliding window over cache and block; forward() only): key j's
   * rank for query i is i − j + rankShift (the distance's keyPe column). Scores then come from a
   * skewed view (skewedKeyPositions) instead of a gather by `distance`.
   */
  rankShift?: number;
  /**
   * Keys that expire (Expire-Span): key j sits at distance age_j + i from query i and has a span
   * e_j; the hard mask, the soft mask m = clamp((e − d)/R + 1, 0, 1) and the key positions all
   * follow from age and span inside one op (F.expiringAttention), so the attention takes no mask,
   * distance or soft mask tables.
   */
  expiring?: ExpiringKeysInput;
}

export const isRelative = (p: RelativePositions | LearnedPositions): p is RelativePositions => 'u' in p;

export interface AttentionInput {
  /** [B, Tq, H] the queries' inputs. */
  query: Tensor;
  /**
   * [B, Tk, H] the keys' and values' inputs, or two pieces of them along the rows (with a cache:
   * [cache, query]), projected as their cat in one op that gives each piece only the gradient it
   * takes (F.linearOverCat: a detached cache takes none).
   */
  context: Tensor | ContextPieces;
  /** bool [Tq, Tk] or [B, 1, Tq, Tk]: true where attention is not allowed. */
  mask: Tensor | null;
  positions: RelativePositions | LearnedPositions | null;
  /** [B|1, K|1, Tq, Tk] in [0, 1]: multiplies the attention weights, which are then renormalised. */
  softMask?: Tensor | null;
}

/** Two pieces [B, P, H] and [B, T, H] of the keys' and values' inputs, in key order. */
export type ContextPieces = readonly [first: Tensor, second: Tensor];

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
    const q = this.queries(query, frozen); // [B, K, Tq, D]
    const [k, v] = this.keysValues(context, frozen); // [B, K, Tk, D] each
    return this.attendKeys(q, k, v, { mask, positions, softMask, frozen });
  }

  /**
   * Incremental decoding: the queries attend to the keys and values of earlier rows held in
   * `cache` plus those of `context` (the query rows' own inputs, appended to the cache first; null
   * to append nothing), as forward() would over cat(earlier rows, context). `keys` (default all)
   * attends to the newest `keys` cached rows only. mask, distances and soft mask are [.., Tq, keys].
   * Relative positions: a causal table may be longer than the keys (distances R-1 ... 0, the last
   * `keys` rows are used) and its projection is kept in the cache while the same table is given.
   */
  forwardCached({ query, context, mask, positions, softMask = null }: Omit<AttentionInput, 'context'> & { context: Tensor | null }, cache: KeyValueCache, keys?: number): Tensor {
    const row = true; // projections through Linear.forwardRow: matrix-vector products for one row (batch-1 decoding)
    const q = this.queries(query, false, row); // [B, K, Tq, D]
    if (context) cache.append(...this.keysValues(context, false, row), context === query ? q.shape[2] : undefined);
    const total = cache.length;
    const used = keys ?? total;
    const narrow = (t: Tensor) => (used === total ? t : t.narrow(2, total - used, used));
    const relativeKeys = positions && isRelative(positions) && !positions.bidirectional ? this.cachedRelativeKeys(cache, positions, used) : undefined;
    if (!mask && !softMask && this.unrecorded() && q.shape[2] === 1) {
      // one query row, nothing masked by table, recorded or dropped: scores, softmax and values in one native op
      const [k, v, scale] = [narrow(cache.key!), narrow(cache.value!), 1 / Math.sqrt(this.headDim)];
      let mixed: Tensor | null = null; // [B, 1, H]
      if (positions === null) mixed = F.attendRow(q, k, v, {}, scale);
      else if (relativeKeys && isRelative(positions)) mixed = F.attendRow(q, k, v, { contentBias: positions.u, positionKeys: relativeKeys, positionBias: positions.v }, scale);
      else if (!isRelative(positions) && positions.expiring) mixed = F.expiringAttend(q, k, v, positions.keyPe, positions.expiring, { scale });
      if (mixed) return project(this.out, mixed, false, row);
    }
    return this.attendKeys(q, narrow(cache.key!), narrow(cache.value!), { mask, positions, softMask, relativeKeys, row });
  }

  /** Neither dropout nor recording is on: the fused native paths may run (F.attendRow, F.expiringAttend, F.decoderLayerRow). */
  unrecorded(): boolean {
    return !this.recordAttention && !(this.drop.training && this.drop.p > 0);
  }

  /**
   * W_r R of a causal relative table (distances R-1 ... 0), projected once per table and kept in
   * the cache: [K, D, used] for the newest `used` keys (distances used-1 ... 0), or the whole
   * [K, D, R] without `used`; undefined without W_r.
   */
  cachedRelativeKeys(cache: KeyValueCache, positions: RelativePositions, used?: number): Tensor | undefined {
    if (!this.r) return undefined;
    if (cache.relativeSource !== positions.r) {
      cache.setRelative(positions.r, this.relativeKeys(positions.r).contiguous()); // [K, D, R] with distances adjacent (F.attendRow reads them so)
    }
    const rk = cache.relative!; // [K, D, R]
    const R = rk.shape[2]!;
    return used === undefined || R === used ? rk : rk.narrow(2, R - used, used); // distances used-1 ... 0
  }

  /**
   * Keys and values of inputs [B, Tk, H], or of the cat of two pieces, -> [B, K, Tk, D] each; `row`:
   * through Linear.forwardRow.
   */
  keysValues(context: Tensor | ContextPieces, frozen = false, row = false): [Tensor, Tensor] {
    const pieces = Array.isArray(context) ? (context as ContextPieces) : null;
    const projected = pieces ? F.linearOverCat(pieces[0], pieces[1], ...weightsOf(this.kv, frozen)) : project(this.kv, context as Tensor, frozen, row);
    const [k, v] = F.splitHeads(projected, 2, this.heads); // views of the projection; their gradients written into its layout in one pass
    return [k!, v!];
  }

  /** W_r R: relative position embeddings [R, H] -> [K, D, R]. */
  private relativeKeys(r: Tensor, frozen = false): Tensor {
    return project(this.r!, r, frozen).view(-1, this.heads, this.headDim).permute(1, 2, 0);
  }

  /**
   * Scores of queries q [B, K, Tq, D] against keys k [B, K, Tk, D] under the position scheme, then
   * mix() with the values v. `relativeKeys` [K, D, Tk]: W_r R projected beforehand (decoding).
   */
  private attendKeys(q: Tensor, k: Tensor, v: Tensor, o: { mask: Tensor | null; positions: RelativePositions | LearnedPositions | null; softMask: Tensor | null; frozen?: boolean; relativeKeys?: Tensor; row?: boolean }): Tensor {
    const positions = o.positions;
    // the keys a 2-D mask hides from whole blocks of queries are skipped by the products (scores,
    // position scores, values); the masked softmax then removes the rest as before
    const blocks = o.row || !o.mask || !bandedProductsFor(q) ? null : keyBlocks(o.mask);
    const contentScores = (queries: Tensor) => (blocks ? F.bandedMatmul(queries, k.mT, blocks) : queries.matmul(k.mT)); // [B, K, Tq, Tk]
    let scores: Tensor;
    if (positions && !isRelative(positions)) {
      const [B, K, Tq] = q.shape as [number, number, number];
      const Tk = k.shape[2]!;
      if (positions.expiring) {
        if (o.mask || o.softMask) throw configError('MultiHeadAttention', 'expiring keys make their own masks: give no mask or softMask with them');
        if (o.frozen || this.unrecorded()) { // neither recorded nor dropped out: the weights need not exist
          return project(this.out, F.expiringAttend(q, k, v, positions.keyPe, positions.expiring, { scale: 1 / Math.sqrt(this.headDim) }), o.frozen ?? false, o.row); // [B, Tq, H]
        }
        const weights = F.expiringAttention(q.matmul(k.mT), q, positions.keyPe, positions.expiring, { scale: 1 / Math.sqrt(this.headDim) }); // [B, K, Tq, Tk]
        return this.mixWeights(weights, [v], { frozen: o.frozen ?? false, row: o.row });
      }
      if (positions.rankShift !== undefined) {
        scores = addSkewedKeyPositions(contentScores(q), q, positions.keyPe, positions.rankShift); // [B, K, Tq, Tk]
      } else {
        const d = positions.distance;
        if (!d) throw configError('MultiHeadAttention', 'learned key positions need a distance table, a rankShift or expiring keys');
        const byDistance = q.matmul(positions.keyPe); // [B, K, Tq, L]
        scores = contentScores(q).add(byDistance.gather(-1, (d.ndim === 2 ? d.view(1, 1, Tq, Tk) : d).expand(B, K, Tq, Tk))); // [B, K, Tq, Tk]
      }
    } else if (positions && this.r) {
      const content = contentScores(q.add(positions.u.unsqueeze(1))); // [B, K, Tq, Tk]
      const rk = o.relativeKeys ?? this.relativeKeys(positions.r, o.frozen); // [K, D, R]
      const qv = q.add(positions.v.unsqueeze(1));
      const byDistance = blocks ? F.bandedMatmul(qv, rk, distanceBlocks(blocks, q.shape[2]!, rk.shape[2]!)) : qv.matmul(rk); // [B, K, Tq, R]
      scores = positions.bidirectional ? addRelSkew(content, byDistance) : F.relShiftAdd(content, byDistance); // content + relSkew / relShift(byDistance), one pass
    } else {
      scores = contentScores(q);
    }
    return this.mix(scores, [v], { mask: o.mask, softMask: o.softMask, frozen: o.frozen ?? false, row: o.row, blocks });
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
  private queries(x: Tensor, frozen = false, row = false): Tensor {
    const [B, Tq] = x.shape as [number, number];
    return project(this.q, x, frozen, row).view(B, Tq, this.heads, this.headDim).transpose(1, 2);
  }

  /**
   * Scores [B, K, Tq, Tk] (before scaling) -> output [B, Tq, H]: masked softmax, soft mask,
   * recording, dropout, the weighted sum of the values (pieces [B, K, Tk_i, D] along the keys),
   * output projection.
   */
  private mix(scores: Tensor, values: readonly Tensor[], o: { mask: Tensor | null; softMask?: Tensor | null; frozen?: boolean; record?: (weights: Tensor) => void; row?: boolean; blocks?: RowBlocks | null }): Tensor {
    let probs = F.maskedSoftmax(scores, o.mask, { scale: 1 / Math.sqrt(this.headDim), dim: -1 }); // [B, K, Tq, Tk]
    if (o.softMask) probs = F.softMaskRenorm(probs, o.softMask, { eps: 1e-8 }); // m·a / (Σ m·a + 1e-8)
    return this.mixWeights(probs, values, o);
  }

  /**
   * Attention weights [B, K, Tq, Tk] -> output [B, Tq, H]: recording, dropout, the values, output
   * projection. `blocks`: the weights are zero outside this band (the keys skipped, keyBlocks).
   */
  private mixWeights(probs: Tensor, values: readonly Tensor[], o: { frozen?: boolean; record?: (weights: Tensor) => void; row?: boolean; blocks?: RowBlocks | null }): Tensor {
    if (o.record) {
      o.record(probs);
    } else if (this.recordAttention && !o.frozen) {
      this.lastAttention?.dispose();
      this.lastAttention = probs.detach().keep();
    }
    const dropped = o.frozen ? probs : this.drop.forward(probs);
    if (values.length === 1) return project(this.out, F.weightedValues(dropped, values[0]!, o.blocks ?? null), o.frozen ?? false, o.row); // [B, Tq, K D] = [B, Tq, H]
    let mixed: Tensor | null = null; // [B, K, Tq, D]
    for (let i = 0, offset = 0; i < values.length; i++) { // the pieces' weights, piece by piece
      const count = values[i]!.shape[2]!;
      const part = dropped.narrow(-1, offset, count).matmul(values[i]!);
      mixed = mixed ? mixed.add(part) : part;
      offset += count;
    }
    return project(this.out, mixed!.transpose(1, 2).flatten(2), o.frozen ?? false, o.row); // [B, Tq, K D] = [B, Tq, H]
  }
}

/**
 * Decoding: the keys and values [B, K, T, D] of the rows a layer has seen so far (earlier rows are
 * never recomputed), and the projection W_r R of the relative position table in use. Owns its
 * tensors (kept out of scopes); dispose() frees them.
 */
export class KeyValueCache {
  // grown in place along the row axis (./growing-tensor.ts): one row's copy per decoded token, not T
  readonly #key = new GrowingTensor(2);
  readonly #value = new GrowingTensor(2);
  #relative: Tensor | null = null;
  #relativeSource: Tensor | null = null;

  /** [B, K, T, D] (a view owned by the cache), or null before the first rows. */
  get key(): Tensor | null {
    return this.#key.tensor;
  }
  get value(): Tensor | null {
    return this.#value.tensor;
  }
  /** Rows T held. */
  get length(): number {
    return this.#key.length;
  }
  /** [K, D, R] W_r R of the table relativeSource, or null. */
  get relative(): Tensor | null {
    return this.#relative;
  }
  get relativeSource(): Tensor | null {
    return this.#relativeSource;
  }

  /**
   * The buffers [B, K, C, D] with room for one more row after the `filled` rows held, for a caller
   * that writes the row itself (F.decoderLayerRow) and then calls advanceRow(); null while empty.
   */
  reserveRow(): { keys: Tensor; values: Tensor; filled: number } | null {
    const keys = this.#key.reserve(1), values = this.#value.reserve(1);
    return keys && values ? { keys, values, filled: this.length } : null;
  }

  /** Counts the row written after reserveRow(). */
  advanceRow(): void {
    this.#key.advance(1);
    this.#value.advance(1);
  }

  /** Appends the keys and values [B, K, n, D] of n new rows (`rows`: n, when the caller knows it). */
  append(key: Tensor, value: Tensor, rows?: number): void {
    this.#key.append(key, rows);
    this.#value.append(value, rows);
  }

  setRelative(source: Tensor, projected: Tensor): void {
    this.#relative?.dispose();
    this.#relative = projected.keep();
    this.#relativeSource = source;
  }

  dispose(): void {
    this.#key.dispose();
    this.#value.dispose();
    this.#relative?.dispose();
    this.#relative = this.#relativeSource = null;
  }
}

let onednnProducts: boolean | undefined;
/**
 * Whether attention's products skip masked keys (bandedMatmul): only where the batched product
 * kernel runs them (CPU float32 with Engram's kernels on, autocast off); elsewhere the banded
 * product is composed as a product and a multiplication by the band, which would cost, not save.
 */
function bandedProductsFor(q: Tensor): boolean {
  onednnProducts ??= batchedMatmulKernel() === 'onednn'; // fixed when the addon loads: asked once
  return keyBlockSkipping && q.dtype === 'float32' && nativeKernelsOn(q.device) && onednnProducts && !autocastState('cpu').enabled;
}

let keyBlockSkipping = true;
/**
 * Turns the skipping of masked keys by blocks on or off (default on; the values are the same either
 * way up to float rounding): for measurements and tests. Returns the previous setting.
 */
export function setKeyBlockSkipping(on: boolean): boolean {
  const was = keyBlockSkipping;
  keyBlockSkipping = on;
  return was;
}

/**
 * Queries per row block of keyBlocks. At SPEC §10's sizes (`node dist/scripts/probes/banded-attention-layer.js`),
 * 64 made a causal layer's attention faster, 32 (more, smaller products) no faster than 64; and a
 * band of 88 % of the scores (Transformer-XL's cache of 128 and 128 queries) was no faster than all
 * of them, hence keyBlocks' threshold.
 */
export const KEY_BLOCK_ROWS = 64;
const keyBlocksOf = new WeakMap<Tensor, RowBlocks | null>();

/**
 * The band of keys a mask (bool [Tq, Tk], true: hidden) lets each block of KEY_BLOCK_ROWS queries
 * see: block b covers its rows and the columns from the first to the last key any of them sees (a
 * block that sees nothing is left out); null when the band would skip less than a fifth of the
 * scores. Read once per mask tensor (models keep their masks, segment-layout.ts cachedSegmentMask),
 * so a mask is never changed in place: a different mask is a new tensor.
 */
export function keyBlocks(mask: Tensor): RowBlocks | null {
  if (mask.ndim !== 2) return null;
  const known = keyBlocksOf.get(mask);
  if (known !== undefined) return known;
  const [tq, tk] = mask.shape as [number, number];
  const hidden = mask.data();
  const blocks: number[] = [];
  let area = 0;
  for (let r0 = 0; r0 < tq; r0 += KEY_BLOCK_ROWS) {
    const r1 = Math.min(tq, r0 + KEY_BLOCK_ROWS);
    let c0 = tk, c1 = 0;
    for (let i = r0; i < r1; i++) {
      const row = i * tk;
      let first = 0;
      while (first < tk && hidden[row + first]) first++;
      if (first === tk) continue; // this query sees nothing
      let last = tk - 1;
      while (hidden[row + last]) last--;
      c0 = Math.min(c0, first);
      c1 = Math.max(c1, last + 1);
    }
    if (c0 < c1) blocks.push(r0, r1, c0, c1), (area += (r1 - r0) * (c1 - c0));
  }
  const result = area <= 0.8 * tq * tk ? blocks : null;
  keyBlocksOf.set(mask, result);
  return result;
}

/**
 * keyBlocks carried to relative-position scores x [Tq, width] that relShift and relSkew read at
 * column j + Tq − 1 − i for entry [i, j] (nn/positions.ts): the columns the block's rows read for
 * the keys of its band, within [0, width).
 */
export function distanceBlocks(blocks: RowBlocks, tq: number, width: number): RowBlocks {
  const out: number[] = [];
  for (let b = 0; b < blocks.length; b += 4) {
    const r0 = blocks[b]!, r1 = blocks[b + 1]!, c0 = blocks[b + 2]!, c1 = blocks[b + 3]!;
    const lo = Math.max(0, c0 + tq - r1), hi = Math.min(width, c1 + tq - 1 - r0);
    out.push(r0, r1, Math.min(lo, hi), hi);
  }
  return out;
}

/** x W^T (+ b), with the weights detached when frozen; `row`: Linear.forwardRow (a matrix-vector product for one row). */
function project(layer: Linear, x: Tensor, frozen: boolean, row = false): Tensor {
  if (frozen) return F.linear(x, ...weightsOf(layer, frozen));
  return row ? layer.forwardRow(x) : layer.forward(x);
}

/** A Linear's weight and bias, detached when `frozen`. */
function weightsOf(layer: Linear, frozen: boolean): [Tensor, Tensor | null] {
  return frozen ? [layer.weight.detach(), layer.bias?.detach() ?? null] : [layer.weight, layer.bias];
}
