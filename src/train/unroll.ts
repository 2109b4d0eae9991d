// Running a SegmentModel over consecutive segments with truncated back-propagation through time
// (SPEC §0 and §6).
//
// Within one unroll of n segments (the segments run before one backward), the state entering
// segment τ is detached when τ < n - k, k the BPTT depth: the loss of the last segment then sends
// gradients back through exactly k states (the memory written k segments before it, not k + 1).
// For language modelling an unroll is k + 1 segments, so the state carried in from the previous
// step (τ = 0 < 1) is always detached.
//
// A fresh state (model.initState: the start of a task sample, a new LM epoch) is never detached:
// it has no past to cut, only the learned initial memory (RMT's memory.init, SPEC §6), which
// would otherwise never receive a gradient. The official RMT code does the same (no detach at
// segment 0).
//
// Shapes: B batch, M segment length, V vocabulary.
import type { Tensor } from '../tensor/index.js';
import type { MemoryState, SegmentModel, SegmentOutput } from '../models/index.js';

export type BpttDepth = number | 'all';

/** Whether the state entering segment τ of an n-segment unroll is detached at depth k. */
export function detachesBefore(segment: number, numSegments: number, depth: BpttDepth): boolean {
  return depth !== 'all' && segment < numSegments - depth;
}

export interface UnrollOptions<S extends MemoryState> {
  bpttDepth: BpttDepth;
  /**
   * Called after each segment with its output (e.g. to add its loss). `state` is the segment's
   * output state as the model returned it, before any detaching.
   */
  onSegment?: (index: number, output: SegmentOutput<S>) => void;
  /** Segments before which the state starts over from a fresh model.initState (e.g. a new LM epoch). */
  resetBefore?: ReadonlySet<number>;
}

export interface UnrollResult<S extends MemoryState> {
  outputs: SegmentOutput<S>[];
  /** The state after the last segment, attached (detach it before carrying it into another unroll). */
  state: S;
}

/**
 * Runs segments [B, M_τ] in order from `state` (null: a fresh model.initState), detaching as the
 * BPTT depth says. Returns every segment's output; the caller sums the losses and calls backward
 * once.
 */
export function unroll<S extends MemoryState>(
  model: SegmentModel<S>,
  segments: readonly Tensor[],
  initial: S | null,
  options: UnrollOptions<S>,
): UnrollResult<S> {
  const n = segments.length;
  const outputs: SegmentOutput<S>[] = [];
  let state = initial as S;
  let fresh = initial === null;
  segments.forEach((tokens, τ) => {
    if (fresh || options.resetBefore?.has(τ)) {
      state = model.initState(tokens.shape[0]!);
    } else if (detachesBefore(τ, n, options.bpttDepth)) {
      state = model.detachState(state);
    }
    fresh = false;
    const out = model.forward(tokens, state);
    outputs.push(out);
    options.onSegment?.(τ, out);
    state = out.state;
  });
  return { outputs, state };
}
