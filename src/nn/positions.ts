// Relative positions of Transformer-XL (SPEC §1): sinusoidal embeddings of distances and the
// shift that turns "score of query i against distance p" into "score of query i against key j".
//
// Shapes: B batch, K heads, Tq queries, Tk keys (mlen cached + Tq current), H hidden, D = H/K.
// Query i sits at absolute position mlen + i, key j at position j; their distance is mlen + i - j.
import { arange, cat, F, getDefaultDtype, type Device, type Tensor } from '../tensor/index.js';

/**
 * Sinusoidal embeddings [len, H] of the distances from, down to, from - len + 1:
 * inv_freq = 1/10000^(2k/H), rows cat(sin(d * inv_freq), cos(d * inv_freq)). On `device` (default
 * the CPU: a model's cached tables are moved by its TensorCache).
 */
export function sinusoidalDistances(from: number, len: number, dModel: number, device: Device = 'cpu'): Tensor {
  const dtype = getDefaultDtype();
  const distances = arange(from, from - len, -1, { dtype, device }); // [len]
  const invFreq = arange(0, dModel, 2, { dtype, device }).div(dModel).rpow(10000).reciprocal(); // [H/2]
  const angles = distances.outer(invFreq); // [len, H/2]
  return cat([angles.sin(), angles.cos()], -1); // [len, H]
}

/**
 * Transformer-XL's rel_shift, exactly as the reference: x [..., Tq, Tk] holds scores against the
 * distances Tk-1 ... 0 (column p = distance Tk-1-p). Pad a zero column on the left, view as
 * [..., Tk+1, Tq], drop the first row, view back: entry [i, j] then holds distance mlen + i - j
 * for j <= mlen + i. Entries with j > mlen + i are wrapped values that the causal mask removes.
 * With one query the shift moves nothing, and x itself is returned.
 */
export function relShift(x: Tensor): Tensor {
  if (x.shape.at(-2) === 1) return x; // one query (decoding a token): entry [0, j] already holds distance Tk-1-j
  return F.relShiftAdd(null, x); // the pad, views and slice in one native pass (same entries)
}

/**
 * The general form, for masks that let a query see keys after it (memory blocks that attend
 * both ways): x [..., Tq, Tk + Tq - 1] holds scores against distances Tk-1 ... -(Tq-1); entry
 * [i, j] of the result holds distance mlen + i - j for every i, j. A strided view, no copy:
 * out[i, j] = x[i, j + Tq - 1 - i], x's flat entry Tq − 1 + i·(W − 1) + j (W = Tk + Tq − 1).
 */
export function relSkew(x: Tensor): Tensor {
  const shape = x.shape;
  const [tq, width] = shape.slice(-2) as [number, number];
  const tk = width - tq + 1;
  const lead = shape.slice(0, -2);
  const c = x.contiguous();
  const strides = c.strides();
  return c.asStrided([...lead, tq, tk], [...strides.slice(0, -2), width - 1, 1], tq - 1);
}

/**
 * content [..., Tq, Tk] + relSkew(x) as one op (F.skewAdd with relSkew's offset and row stride: its
 * backward writes x's gradient in one pass, where the strided view's fills a zero tensor of x's
 * size and then scatters into it).
 */
export function addRelSkew(content: Tensor, x: Tensor): Tensor {
  const [tq, width] = x.shape.slice(-2) as [number, number];
  return F.skewAdd(content, x, tq - 1, width - 1);
}

/**
 * Learned key positions for keys at consecutive positions (a sliding window), without gathering a
 * [..., Tq, Tk] table by distance (and scattering it back in backward): q [..., Tq, D] against
 * keyPe [D, w] (column r embeds rank r) gives out[..., i, j] = q_i · keyPe[:, i − j + shift] where
 * 0 <= i − j + shift < w, [..., Tq, Tk]; other entries hold other values (the mask removes them).
 *
 * rel_shift's idea with a table built for it: q times a table of Tk + 1 columns, column c embedding
 * rank top − c (zero where there is no such rank), then the flat view of each [Tq, Tk + 1] matrix
 * read from offset `base` in rows of Tk: entry [i, j] is column base + j − i of row i, rank
 * top − base + i − j, which is i − j + shift for top = base + shift. base = max(0, min(w − 1 − shift,
 * Tq − 1)) keeps every entry with a valid rank inside its own row and every read inside the matrix.
 */
export function skewedKeyPositions(q: Tensor, keyPe: Tensor, shift: number, tk: number): Tensor {
  const { byColumn, base } = skewedTable(q, keyPe, shift, tk);
  const lead = q.shape.slice(0, -2), tq = q.shape[q.shape.length - 2]!;
  return byColumn.view([...lead, tq * (tk + 1)]).narrow(-1, base, tq * tk).view([...lead, tq, tk]);
}

/**
 * content [..., Tq, Tk] + skewedKeyPositions(q, keyPe, shift, Tk) as one op (F.skewAdd: its backward
 * writes the table's gradient in one pass, where the view's narrow fills zeros and then copies).
 */
export function addSkewedKeyPositions(content: Tensor, q: Tensor, keyPe: Tensor, shift: number): Tensor {
  const tk = content.shape[content.shape.length - 1]!;
  const { byColumn, base } = skewedTable(q, keyPe, shift, tk);
  return F.skewAdd(content, byColumn, base);
}

/** q times the skewed table: byColumn [..., Tq, Tk + 1], read from flat offset `base` in rows of Tk. */
function skewedTable(q: Tensor, keyPe: Tensor, shift: number, tk: number): { byColumn: Tensor; base: number } {
  const w = keyPe.shape[1]!;
  const tq = q.shape[q.shape.length - 2]!;
  const base = Math.max(0, Math.min(w - 1 - shift, tq - 1));
  const top = base + shift; // rank of column 0
  const hi = Math.min(w - 1, top), lo = Math.max(0, top - tk); // ranks present, hi down to lo
  // [D, Tk + 1]: zeros for ranks above w − 1, keyPe's columns hi … lo, zeros for ranks below 0
  const table = F.pad(keyPe.narrow(1, lo, hi - lo + 1).flip(1), [top - hi, lo - (top - tk)]);
  return { byColumn: q.matmul(table), base }; // [..., Tq, Tk + 1]
}
