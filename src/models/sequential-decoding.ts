// Incremental decoding of the sequential family (sequential, adaptive-span, expire-span,
// compressive) through the mechanism's own hooks. Rows [p, p + n) of a block attend exactly as
// the first n rows of a block would whose memory also held the block's first p rows: the
// mechanism's stateAfterPrefix hook builds that state (the baseline appends the p rows' layer
// inputs to each layer's cache; Expire-Span also gives them their ages p, ..., 1 and ages the cache
// by p), and layerContext on it gives the new rows' mask, distances and soft mask (Adaptive-Span's
// per-query spans and trimming, Expire-Span's spans and masks, Compressive's window over
// [compressed | raw]). The keys and values of [layerMemory | the block so far] are kept per layer
// and the newest ones the context uses are attended (as many as the mask's last axis has). A
// mechanism whose context is costly to rebuild per token gives its own rowsContext instead
// (Expire-Span predicts each memory's span once per segment and each fed row's once, rather than
// every memory's for every token), gives no stateAfterPrefix (its rows see the segment's state),
// and frees what it keeps in release(). At commit, the block's layer inputs and layerContext over the whole
// block give nextState, as forward() does.
//
// Shapes: B batch, p rows fed, n new rows, C memory rows, H hidden, V vocabulary.
import { autocastDeviceOf, type Tensor } from '../tensor/index.js';
import { KeyValueCache } from '../nn/attention.js';
import { GrowingRows, OpenSegmentBase } from './open-segment.js';
import type { LayerContext, SequentialState, SequentialTransformer } from './sequential.js';

/** The mechanism's hooks (bound to the model: SequentialTransformer.openSegment). */
export interface SequentialHooks<S extends SequentialState, Ctx extends LayerContext> {
  /** The state the segment starts from (given the segment length it will have). */
  blockStart(state: S): S;
  /** The context of the whole block's rows h [B, M, H] (at commit). */
  layerContext(l: number, h: Tensor, state: S): Ctx;
  /**
   * The context of the block's rows [offset, offset + n), h [B, n, H], in the state
   * stateAfterPrefix gave for the rows before them: its mask's last axis counts the keys attended.
   */
  rowsContext(l: number, h: Tensor, state: S, offset: number): Ctx;
  nextState(state: S, inputs: Tensor[], contexts: Ctx[]): { state: S };
  /**
   * The state whose memory also holds the block's first `rows` rows (inputs [B, rows, H] per
   * layer); absent when rowsContext keeps its own tables (the rows then see the segment's state).
   */
  stateAfterPrefix?(state: S, inputs: Tensor[], rows: number): S;
  /** Everything layer l may attend to besides the block; every context's memory is its newest rows (then the block's). */
  layerMemory(l: number, state: S): Tensor | null;
  /** Frees what the hooks kept for this segment (called once, when it is committed or disposed). */
  release?(): void;
}

export class SequentialOpenSegment<S extends SequentialState, Ctx extends LayerContext> extends OpenSegmentBase<S> {
  readonly #caches: KeyValueCache[];
  readonly #inputs: GrowingRows[];
  /** The state the segment starts from: the caller's, or (blockStart) one with new tensors this segment owns. */
  readonly state: S;
  readonly #owned: Tensor[];

  constructor(readonly model: SequentialTransformer<S, Ctx>, given: S, batch: number, readonly segmentLength: number, readonly hooks: SequentialHooks<S, Ctx>) {
    super(batch, `${model.constructor.name}.openSegment`, model.precision, autocastDeviceOf(model.head.weight));
    const state = hooks.blockStart(given);
    this.state = state;
    this.#owned = state === given ? [] : ownedTensors(state, given);
    this.#caches = model.layers.map(() => new KeyValueCache());
    this.#inputs = model.layers.map(() => new GrowingRows());
    model.layers.forEach((layer, l) => {
      const memory = hooks.layerMemory(l, state);
      if (memory) layer.cacheRows(memory, this.#caches[l]!);
    });
  }

  protected step(tokens: Tensor, offset: number): Tensor {
    const { model, hooks } = this;
    const n = tokens.shape[1]!;
    const state = offset > 0 && hooks.stateAfterPrefix ? hooks.stateAfterPrefix(this.state, this.#inputs.map((rows) => rows.tensor!), offset) : this.state;
    let h = model.drop.forward(this.embed(model.embed, tokens)); // [B, n, H]
    model.layers.forEach((layer, l) => {
      const ctx = hooks.rowsContext(l, h, state, offset);
      const keys = (ctx.expiring?.age ?? ctx.mask!).shape.at(-1)!; // [cached | rows so far] the rows see
      const input = h;
      h = layer.forwardCached(h, this.#caches[l]!, ctx.mask, { keyPe: ctx.keyPe ?? model.keyPe, distance: ctx.distance, expiring: ctx.expiring }, ctx.softMask, keys);
      this.#inputs[l]!.append(input, n);
    });
    const out = model.finalNorm ? model.finalNorm.forward(h) : h;
    const head = model.drop.forward(out); // [B, n, H]
    return model.head.forwardRow(head); // [B, n, V]: a matrix-vector product for one row
  }

  protected finish(): S {
    const { model, hooks } = this;
    const inputs = this.#inputs.map((rows) => rows.tensor!); // [B, M, H] per layer
    const contexts = inputs.map((h, l) => hooks.layerContext(l, h, this.state));
    return model.detachState(hooks.nextState(this.state, inputs, contexts).state);
  }

  protected release(): void {
    this.hooks.release?.();
    this.#owned.forEach((t) => t.dispose());
    this.#caches.forEach((c) => c.dispose());
    this.#inputs.forEach((rows) => rows.dispose());
  }
}

/** The tensors of `state` that `given` does not hold, kept past the caller's tidy scope (the segment frees them). */
function ownedTensors(state: SequentialState, given: SequentialState): Tensor[] {
  const all = (s: SequentialState) => Object.values(s).flatMap((v) => (v === null ? [] : Array.isArray(v) ? v : [v])) as Tensor[];
  const theirs = new Set(all(given));
  return all(state).filter((t) => !theirs.has(t)).map((t) => t.keep());
}
