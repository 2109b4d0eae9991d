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
  /**
   * Memories the last forward attended to besides the segment itself, mean over layers (and
   * batch rows): the cache for Transformer-XL and the sequential models (after Adaptive-Span's
   * trimming, Expire-Span's dropping; raw + compressed for Compressive), plus memory tokens. What
   * attention pays for; evaluation reports its mean.
   */
  memoryFootprint?(): number;
  /** Called by the trainer after every optimiser step (e.g. Adaptive-Span clamps its spans). */
  afterOptimizerStep?(): void;
}

export type ModelKind =
  | 'transformer' | 'xl' | 'mem-transformer' | 'mem-bottleneck' | 'rmt'
  // the Expire-Span code base's family (learned key positions, a window of memLen past positions)
  | 'sequential' | 'adaptive-span' | 'expire-span' | 'compressive' | 'feedback';

/** Adaptive attention span (SPEC §2). */
export interface AdaptiveSpanOptions {
  /** Ramp R of the soft mask (default 32). */
  ramp: number;
  /** Initial z / L of every head (default 0). */
  init: number;
  /** λ of the span loss λ · mean_heads(z), per layer (default 2e-6). */
  lossCoef: number;
  /** Dynamic span: z_t = L·σ(v·x_t + b) per query token instead of a learned z per head. */
  dynamic: boolean;
  /** Cache and key positions are trimmed to max z + R, rounded up to a multiple of this (default 64). */
  trimStep: number;
}

/** Expire-Span (SPEC §3). */
export interface ExpireSpanOptions {
  /** Ramp R of the soft mask (default 32). */
  ramp: number;
  /** p: every initial span is p·L (b = logit(p), w = 0; default 0.1). */
  initFraction: number;
  /** ρ: the span predictor's input is divided by it (default 1; 64 for large L). */
  preDiv: number;
  /** α of the auxiliary loss α · Σ_i e_i / T (default 1e-6). */
  lossCoef: number;
  /** Noisy span regularisation during training (clamp spans to u·L, u ~ U(0,1), per block). */
  noisy: boolean;
  /** Physically drop expired memories (default true; false keeps them masked, for tests). */
  drop: boolean;
}

/** Compressive Transformer (SPEC §4). */
export interface CompressiveOptions {
  /** Compressed memory slots per layer [C] (default: memLen). */
  compressedLen: number;
  /** Compression rate c (default 3). */
  rate: number;
  /** Compression function f_c (default 'conv'). */
  fn: 'mean' | 'max' | 'conv';
  /** Train f_c with the attention-reconstruction loss (default true; no effect for 'mean'/'max'). */
  reconstruction: boolean;
}

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
  /**
   * Transformer-XL cache length per layer (0: none); for the sequential family, the maximum span
   * L: each query sees at most the L positions up to itself (Compressive: the raw memory length).
   */
  memLen: number;
  /** Memory tokens [m] (MemTransformer, MemBottleneck, RMT). */
  numMemTokens: number;
  /**
   * Each position's input also embeds the token before it in the segment (TokenEmbedding): a
   * one-layer route to "the value after key k" for associative retrieval. Off in the papers' models.
   */
  previousToken: boolean;
  /** Options of the mechanism of kind 'adaptive-span', 'expire-span', 'compressive'; null for other kinds. */
  adaptiveSpan: AdaptiveSpanOptions | null;
  expireSpan: ExpireSpanOptions | null;
  compressive: CompressiveOptions | null;
}
