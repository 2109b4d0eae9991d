// Incremental decoding of the SegmentTransformer kinds (transformer, xl, mem-transformer, rmt):
// the segment's layout [read | sequence | write] over keys [cache | read | sequence | write]
// (src/memory/segment-layout.ts) is computed in the order its masks allow:
//   open     each layer's cache rows are projected to keys and values once; the read block (it
//            sees itself, and the cache with rmtCache.readSeesCache) runs through every layer;
//   feed     new sequence rows, causal, see the cache, the read block and the rows before them:
//            each layer attends over the keys and values kept so far plus its own;
//   commit   the write block (it sees everything, or with rmtCache.writeSeesCache false all but
//            the cache) runs through every layer; its last outputs are RMT's next memory, and the
//            sequence rows' layer inputs (rmtCache.rows 'all': the read and write rows' too)
//            advance the XL cache.
// Relative positions use one causal sinusoid table (grown by doubling), whose projection W_r R
// each layer's KeyValueCache keeps; the read and write blocks, which see later keys when longer
// than one, use the bidirectional table of their own shape, as forward() does.
//
// Shapes: B batch, C cached positions, r read and w write tokens, p sequence rows fed, n new rows,
// H hidden, V vocabulary.
import { autocastDeviceOf, getDefaultDtype, type Tensor } from '../tensor/index.js';
import { KeyValueCache, type RelativePositions } from '../nn/attention.js';
import { sinusoidalDistances } from '../nn/positions.js';
import type { TensorCache } from '../nn/tensor-cache.js';
import { nextCache } from '../memory/xl-cache.js';
import { cachedSegmentMask } from '../memory/segment-layout.js';
import { GrowingRows, OpenSegmentBase } from './open-segment.js';
import type { SegmentState, SegmentTransformer } from './segment-transformer.js';

export class TransformerOpenSegment extends OpenSegmentBase<SegmentState> {
  readonly #caches: KeyValueCache[];
  /** Per layer, the sequence rows' inputs (for the XL cache; empty without one). */
  readonly #inputs: GrowingRows[];
  /** [B, w, H]: the write block's input, or null. */
  readonly #write: Tensor | null;
  readonly #cached: number;
  readonly #read: number;

  constructor(readonly model: SegmentTransformer, readonly state: SegmentState, batch: number, readonly tables: TensorCache) {
    super(batch, 'SegmentTransformer.openSegment', model.precision, autocastDeviceOf(model.head.weight));
    const blocks = model.memoryTokens?.blocks(state.memory, batch) ?? null;
    this.#cached = state.cache?.[0]?.shape[1] ?? 0;
    this.#read = blocks?.read.shape[1] ?? 0;
    this.#write = blocks?.write ? blocks.write.detach().keep() : null; // a handle of its own: the state's memory stays the caller's
    this.#caches = model.layers.map(() => new KeyValueCache());
    this.#inputs = model.config.memLen > 0 ? model.layers.map(() => new GrowingRows()) : [];
    model.layers.forEach((layer, l) => {
      const cache = state.cache?.[l];
      if (cache) layer.cacheRows(cache, this.#caches[l]!);
    });
    if (blocks && this.#read > 0) {
      const r = this.#read, C = this.#cached;
      const mask = cachedSegmentMask(tables, { cached: C, read: r, sequence: 0, write: 0, readSeesCache: model.cacheLayout.readSeesCache }); // [r, C + r]
      const positions = this.#positions(C + r, r);
      let h = model.drop.forward(blocks.read); // [B, r, H]
      model.layers.forEach((layer, l) => {
        if (model.cacheLayout.allRows) this.#inputs[l]?.append(h);
        h = layer.forwardCached(h, this.#caches[l]!, mask, positions);
      });
    }
  }

  /**
   * Relative positions for queries whose newest key is the `keys`-th: the causal table (one for
   * every size, grown by doubling), or for a block of `block` > 1 rows that sees the keys after its
   * rows (read, write), the bidirectional table of that shape.
   */
  #positions(keys: number, block = 1): RelativePositions {
    const { model } = this;
    const H = model.config.dModel, dtype = getDefaultDtype();
    if (block > 1) {
      const r = this.tables.get(`r:${keys},${keys + block - 1},${dtype}`, () => sinusoidalDistances(keys - 1, keys + block - 1, H));
      return { u: model.u, v: model.v, r, bidirectional: true };
    }
    let size = 64;
    while (size < keys) size *= 2;
    const r = this.tables.get(`r:${size},${size},${dtype}`, () => sinusoidalDistances(size - 1, size, H)); // distances size-1 ... 0
    return { u: model.u, v: model.v, r, bidirectional: false };
  }

  protected step(tokens: Tensor, offset: number): Tensor {
    const { model } = this;
    const n = tokens.shape[1]!;
    const before = this.#cached + this.#read + offset; // keys before the new rows
    // [n, before + n], causal; one row sees every key (no mask, and no mask per length in the tables)
    const mask = n === 1 ? null : cachedSegmentMask(this.tables, { cached: before, read: 0, sequence: n, write: 0 });
    const positions = this.#positions(before + n);
    let h = model.drop.forward(this.embed(model.embed, tokens)); // [B, n, H]
    model.layers.forEach((layer, l) => {
      this.#inputs[l]?.append(h, n);
      h = layer.forwardCached(h, this.#caches[l]!, mask, positions);
    });
    const out = model.finalNorm ? model.finalNorm.forward(h) : h;
    const head = model.drop.forward(out); // [B, n, H]
    return model.head.forwardRow(head); // [B, n, V]: a matrix-vector product for one row
  }

  protected finish(): SegmentState {
    const { model } = this;
    let memory: Tensor | null = null;
    if (this.#write && model.memoryTokens?.mode === 'recurrent') {
      const w = this.#write.shape[1]!, C = this.#cached, r = this.#read, p = this.length;
      const positions = this.#positions(C + r + p + w, w);
      // [w, C + r + p + w]: every key, or (rmtCache.writeSeesCache false) all but the cache
      const mask = model.cacheLayout.writeSeesCache ? null
        : cachedSegmentMask(this.tables, { cached: C, read: r, sequence: p, write: w, writeSeesCache: false }).narrow(0, r + p, w);
      let h = model.drop.forward(this.#write); // [B, w, H]
      model.layers.forEach((layer, l) => {
        if (model.cacheLayout.allRows) this.#inputs[l]?.append(h);
        h = layer.forwardCached(h, this.#caches[l]!, mask, positions);
      });
      memory = (model.finalNorm ? model.finalNorm.forward(h) : h).detach(); // [B, w, H]
    }
    const inputs = this.#inputs.map((rows) => rows.tensor).filter((t): t is Tensor => t !== null);
    const cache = inputs.length ? nextCache(this.state.cache, inputs, model.config.memLen) : this.state.cache?.map((c) => c.detach()) ?? null;
    return { cache, memory };
  }

  protected release(): void {
    this.#caches.forEach((c) => c.dispose());
    this.#inputs.forEach((rows) => rows.dispose());
    this.#write?.dispose();
  }
}
