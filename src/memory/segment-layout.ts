// Where the tokens of one segment sit and who may attend to whom: the masks of SPEC §1 and §6.
//
// Queries: [read (r) | sequence (M) | write (w)]; keys: [cache (C) | read | sequence | write].
//   read tokens      see the read block (RMT, and MemTransformer's prepended memory);
//   sequence token i sees the cache, the read block and sequence tokens <= i (causal);
//   write tokens     see everything: cache, read, sequence, write.
// With r = w = 0 this is Transformer-XL's causal mask triu(ones(M, C + M), 1 + C).
//
// RMT with a cache (option `rmtCache`, docs/deviations.md C1/C2): whether the read and the write
// tokens also see the cache (default: write yes, read no; LM-RMT's read_mem_from_cache: both or
// neither), and which rows of a layer's input the cache keeps (default: the sequence rows; LM-RMT:
// all rows [read | sequence | write]). Cached rows are keys before the read block either way.
import { z } from 'zod';
import { tensor, type Tensor } from '../tensor/index.js';
import type { TensorCache } from '../nn/tensor-cache.js';

/** The options of RMT's cache (config key `rmtCache`, kind 'rmt' with memLen > 0). */
export const rmtCacheSchema = z.strictObject({
  readSeesCache: z.boolean().default(false).describe('read tokens attend to the cache (LM-RMT read_mem_from_cache: true)'),
  writeSeesCache: z.boolean().default(true).describe('write tokens attend to the cache (LM-RMT: as readSeesCache)'),
  rows: z.enum(['sequence', 'all']).default('sequence')
    .describe("what the cache keeps of each layer's input: 'sequence' rows, or 'all' rows [read | sequence | write] (LM-RMT)"),
});
/** RMT's cache options with their defaults filled in. */
export type RmtCacheOptions = z.output<typeof rmtCacheSchema>;
/** RMT's cache options as a user writes them. */
export type RmtCacheOptionsInput = z.input<typeof rmtCacheSchema>;

export interface SegmentLayout {
  cached: number;
  read: number;
  sequence: number;
  write: number;
  /** Read tokens see the cache (default false). */
  readSeesCache?: boolean;
  /** Write tokens see the cache (default true). */
  writeSeesCache?: boolean;
}

/** bool [r + M + w, C + r + M + w]: true where attention is NOT allowed. */
export function segmentMask({ cached: C, read: r, sequence: M, write: w, readSeesCache = false, writeSeesCache = true }: SegmentLayout): Tensor {
  const rows = r + M + w, cols = C + rows;
  const blocked = new Uint8Array(rows * cols).fill(1);
  const allow = (row: number, from: number, to: number) => blocked.fill(0, row * cols + from, row * cols + to);
  for (let i = 0; i < r; i++) allow(i, readSeesCache ? 0 : C, C + r);
  for (let i = 0; i < M; i++) allow(r + i, 0, C + r + i + 1);
  for (let i = 0; i < w; i++) allow(r + M + i, writeSeesCache ? 0 : C, cols);
  return tensor(blocked, { dtype: 'bool', shape: [rows, cols] });
}

/** Whether some query may see a key after it (then relative positions need relSkew, not relShift). */
export const seesLaterKeys = (l: SegmentLayout): boolean => l.read > 1 || l.write > 1;

/** The mask of a layout (built once per layout and kept in the cache). */
export function cachedSegmentMask(cache: TensorCache, l: SegmentLayout): Tensor {
  return cache.get(`mask:${l.cached},${l.read},${l.sequence},${l.write},${l.readSeesCache ?? false},${l.writeSeesCache ?? true}`, () => segmentMask(l));
}
