// Where the tokens of one segment sit and who may attend to whom: the masks of SPEC §1 and §6.
//
// Queries: [read (r) | sequence (M) | write (w)]; keys: [cache (C) | read | sequence | write].
//   read tokens      see the read block (RMT, and MemTransformer's prepended memory);
//   sequence token i sees the cache, the read block and sequence tokens <= i (causal);
//   write tokens     see everything: cache, read, sequence, write.
// With r = w = 0 this is Transformer-XL's causal mask triu(ones(M, C + M), 1 + C).
import { tensor, type Tensor } from '../tensor/index.js';
import type { TensorCache } from '../nn/tensor-cache.js';

export interface SegmentLayout {
  cached: number;
  read: number;
  sequence: number;
  write: number;
}

/** bool [r + M + w, C + r + M + w]: true where attention is NOT allowed. */
export function segmentMask({ cached: C, read: r, sequence: M, write: w }: SegmentLayout): Tensor {
  const rows = r + M + w, cols = C + rows;
  const blocked = new Uint8Array(rows * cols).fill(1);
  const allow = (row: number, from: number, to: number) => blocked.fill(0, row * cols + from, row * cols + to);
  for (let i = 0; i < r; i++) allow(i, C, C + r);
  for (let i = 0; i < M; i++) allow(r + i, 0, C + r + i + 1);
  for (let i = 0; i < w; i++) allow(r + M + i, 0, cols);
  return tensor(blocked, { dtype: 'bool', shape: [rows, cols] });
}

/** Whether some query may see a key after it (then relative positions need relSkew, not relShift). */
export const seesLaterKeys = (l: SegmentLayout): boolean => l.read > 1 || l.write > 1;

/** The mask of a layout (built once per layout and kept in the cache). */
export function cachedSegmentMask(cache: TensorCache, l: SegmentLayout): Tensor {
  return cache.get(`mask:${l.cached},${l.read},${l.sequence},${l.write}`, () => segmentMask(l));
}
