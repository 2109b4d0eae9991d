// The one interface every memory model implements (SPEC §0): a segment-level recurrent decoder.
//
//   forward(tokens [B, M], state) -> { logits [B, M, V], state, auxLoss }
//
// The state is whatever the model remembers between segments (a per-layer cache, memory tokens,
// ...). It is returned attached to the graph; the caller decides how far gradients run back
// through it (SegmentModel.detachState), so truncated BPTT is a training option, not a model one.
import type { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/module.js';

/** What a model carries from one segment to the next: named tensors (lists for per-layer caches). */
export type MemoryState = Record<string, Tensor | Tensor[] | null>;

export interface SegmentOutput<S extends MemoryState = MemoryState> {
  /** [B, M, V] next-token logits for every position of the segment. */
  logits: Tensor;
  /** The state to pass with the next segment (attached to the graph). */
  state: S;
  /** Auxiliary loss to add to the task loss (0-d), or null when the model has none. */
  auxLoss: Tensor | null;
}

export interface SegmentModel<S extends MemoryState = MemoryState> extends Module {
  /** The configuration the model was built from (serialisable; saved beside the weights). */
  readonly config: ModelConfig;
  /** The state before the first segment of a batch of B streams. */
  initState(batch: number): S;
  forward(tokens: Tensor, state: S): SegmentOutput<S>;
  /** The same state with gradients stopped (new handles; the input state is left as it is). */
  detachState(state: S): S;
}

export type ModelKind = 'transformer' | 'xl' | 'mem-transformer' | 'mem-bottleneck' | 'rmt';

/** Hyper-parameters shared by all models (SPEC notation in brackets). */
export interface ModelConfig {
  kind: ModelKind;
  vocabSize: number;
  /** Layers [N]. */
  layers: number;
  /** Hidden size [H]. */
  dModel: number;
  /** Heads [K]; dModel must be divisible by it. */
  heads: number;
  /** Feed-forward inner size. */
  dInner: number;
  dropout: number;
  /** Post-LN as the Transformer-XL reference code (LN(x + f(x))), or pre-LN (x + f(LN(x))). */
  norm: 'post' | 'pre';
  /** Transformer-XL cache length per layer (0: none). */
  memLen: number;
  /** Memory tokens [m] (MemTransformer, MemBottleneck, RMT). */
  numMemTokens: number;
}
