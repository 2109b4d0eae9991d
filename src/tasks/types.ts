// The common shape of the algorithmic tasks (SPEC §8): each sample is a decoder-only
// language-modelling sequence, cut into numSegments segments of segmentLength tokens.
//
// Legend: B batch, T = numSegments * segmentLength (padded sample length).
//
// Layout of one sample. A task builds the full sequence `seq` = source ⧺ target block. The model
// reads seq without its final token (that token is never an input of a next-token model, it is
// only predicted), so
//   tokens[p]  = seq[p]                                   p < seq.length - 1
//   targets[p] = seq[p + 1] where seq[p + 1] is scored, else IGNORE_INDEX (-100)
//   answerMask[p] = seq[p + 1] belongs to the exact-match answer
// and the row is padded at the end with PAD tokens (target -100, mask false) up to T. This is why
// copy-24 is 72 tokens long and reverse-24 48, the totals SPEC §8 gives.
import type { Device, Tensor } from '../tensor/index.js';
import type { Rng } from './random.js';

/** Token id of padding in every task (never scored). */
export const PAD = 0;
/** Target value of positions that carry no loss (PyTorch's and F.crossEntropy's default ignore index). */
export const IGNORE_INDEX = -100;

export interface TaskBatch {
  /** [B, T] int64 input tokens. */
  tokens: Tensor;
  /** [B, T] int64: the next token where it is scored, else -100. */
  targets: Tensor;
  /** [B, T] bool: positions whose prediction belongs to the exact-match answer. */
  answerMask?: Tensor;
}

/** One sample as plain arrays, each of length numSegments * segmentLength. */
export interface TaskSample {
  tokens: number[];
  targets: number[];
  answerMask: boolean[];
}

export interface SegmentedTask {
  readonly name: string;
  readonly vocabSize: number;
  readonly segmentLength: number;
  readonly numSegments: number;
  /** Unpadded sample length (input positions that hold a real token), <= numSegments * segmentLength. */
  readonly length: number;
  /** Per-token accuracy of guessing uniformly among the symbols an answer position can hold. */
  readonly chance: number;
  /** One sample drawn from rng. */
  sample(rng: Rng): TaskSample;
  /** size samples drawn from rng, in order (so batch(n) draws what n calls of sample() would). Caller disposes. */
  batch(size: number, rng: Rng, device?: Device): TaskBatch;
  /** Human-readable form of a token row (padding shown as '_', trailing padding dropped). */
  decode(tokens: number[]): string;
  /**
   * Whether each target is the next input token (copy, reverse...; the default) or a label that
   * is never an input (object collision, algorithmic): generation then feeds the sample's own
   * next token back instead of the prediction.
   */
  readonly targetsAreNextTokens?: boolean;
  /**
   * Kinds of sample whose exact match is reported apart (quadratic equations: with and without
   * real roots), so that a model that answers one kind by rote shows it: the kinds' names (they
   * key Metrics.exactMatchBy) and the kind of a sample, index into names, from its targets row [T].
   */
  readonly answerKinds?: AnswerKinds;
}

export interface AnswerKinds {
  readonly names: readonly string[];
  of(targets: ArrayLike<number>): number;
}
