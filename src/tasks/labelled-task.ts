// What the memory tasks of the Expire-Span and Feedback papers share (SPEC §8): cutting a long
// sample into segments by count or by length, and the labelled form of a task, where the target
// of a position is a label of what was read so far rather than the next input token.
//
// Legend: B batch, T = numSegments * segmentLength (padded sample length).
//
// Labelled layout (object collision, algorithmic). The task writes `length` input tokens and, at
// the same positions, labels (IGNORE_INDEX where nothing is scored):
//   tokens[p]     = the p-th token of the sample                   p < length, else PAD
//   targets[p]    = the label of position p, or -100               (never the next token)
//   answerMask[p] = targets[p] is scored (every label is part of the exact-match answer)
// This is how the reference code feeds these tasks (a text file and a `.labels` file of the same
// length, facebookresearch/transformer-sequential data/gen_data_*.py): a label is never an input,
// so the model cannot read an earlier answer back from its own stream.
import type { Device } from '../tensor/index.js';
import type { Rng } from './random.js';
import { batchTensors, checkInt, segmentSizes, stripPadding } from './sequence-task.js';
import { configError } from '../tensor/errors.js';
import { IGNORE_INDEX, PAD, type SegmentedTask, type TaskBatch, type TaskSample } from './types.js';

export interface SegmentOptions {
  /** Segments the sample is cut into (exclusive with segmentLength). */
  numSegments?: number;
  /**
   * Tokens per segment (exclusive with numSegments): numSegments = ceil(length / segmentLength),
   * the last segment padded. The practical choice for long samples, whose length one rarely
   * wants to divide by hand. Larger than the sample: one segment of the sample's length.
   */
  segmentLength?: number;
}
export const segmentOptionKeys = ['numSegments', 'segmentLength'] as const;

/**
 * numSegments and segmentLength of a sample of `length` input tokens, from at most one of the two
 * options; with neither, the task's default (a count or a length).
 */
export function resolveSegments(
  task: string, options: SegmentOptions, length: number, fallback: { numSegments: number } | { segmentLength: number },
): { numSegments: number; segmentLength: number } {
  if (options.numSegments !== undefined && options.segmentLength !== undefined) {
    throw configError(task, `give numSegments or segmentLength, not both (got numSegments ${String(options.numSegments)}, segmentLength ${String(options.segmentLength)})`);
  }
  const byLength = options.segmentLength ?? (options.numSegments === undefined && 'segmentLength' in fallback ? fallback.segmentLength : undefined);
  if (byLength !== undefined) {
    const segmentLength = Math.min(checkInt(task, 'segmentLength', byLength, 1, 1 << 30), length);
    return { numSegments: Math.ceil(length / segmentLength), segmentLength };
  }
  const numSegments = options.numSegments ?? (fallback as { numSegments: number }).numSegments;
  return { numSegments, segmentLength: segmentSizes(task, length, numSegments) };
}

/** Checks that value is a number in [0, 1]; returns it. */
export function checkProbability(task: string, name: string, value: number): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw configError(task, `${name} must be a number in [0, 1], got ${String(value)}`);
  return value;
}

/** Checks that value is a boolean; returns it. */
export function checkBoolean(task: string, name: string, value: boolean): boolean {
  if (typeof value !== 'boolean') throw configError(task, `${name} must be true or false, got ${String(value)}`);
  return value;
}

/** A task whose targets are labels at the input positions (layout in the file header). */
export abstract class LabelledTask implements SegmentedTask {
  abstract readonly name: string;
  abstract readonly vocabSize: number;
  abstract readonly chance: number;
  abstract readonly numSegments: number;
  abstract readonly segmentLength: number;
  abstract readonly length: number;
  /**
   * False: a target is a label, not the next input token (a generator of answers must feed the
   * sample's own next token, never its prediction). The SequenceTask tasks have it implicitly true.
   */
  readonly targetsAreNextTokens = false;

  /** Writes the sample's `length` tokens and their labels (IGNORE_INDEX where unscored). */
  protected abstract generate(rng: Rng, tokens: Int32Array, labels: Int32Array): void;
  /** The text of one non-padding token. */
  protected abstract word(token: number): string;

  sample(rng: Rng): TaskSample {
    const T = this.numSegments * this.segmentLength;
    const tokens = new Int32Array(T), targets = new Int32Array(T), mask = new Uint8Array(T);
    this.fillRow(rng, tokens, targets, mask, 0);
    return { tokens: Array.from(tokens), targets: Array.from(targets), answerMask: Array.from(mask, (m) => m === 1) };
  }

  batch(size: number, rng: Rng, device?: Device): TaskBatch {
    checkInt(this.name, 'batch size', size, 1, 1 << 24);
    const T = this.numSegments * this.segmentLength;
    const tokens = new Int32Array(size * T), targets = new Int32Array(size * T), mask = new Uint8Array(size * T);
    for (let b = 0; b < size; b++) this.fillRow(rng, tokens, targets, mask, b * T);
    return batchTensors(tokens, targets, mask, [size, T], device);
  }

  /** The words of the tokens, space-separated (padding shown as '_', trailing padding dropped). */
  decode(tokens: number[]): string {
    return stripPadding(tokens).map((t) => (t === PAD ? '_' : this.word(t))).join(' ');
  }

  private fillRow(rng: Rng, tokens: Int32Array, targets: Int32Array, mask: Uint8Array, offset: number): void {
    const T = this.numSegments * this.segmentLength;
    const n = this.length;
    const rowTokens = tokens.subarray(offset, offset + T), rowTargets = targets.subarray(offset, offset + T);
    rowTokens.fill(PAD, n);
    rowTargets.fill(IGNORE_INDEX); // padding and unlabelled positions
    this.generate(rng, rowTokens.subarray(0, n), rowTargets.subarray(0, n));
    for (let p = 0; p < n; p++) mask[offset + p] = rowTargets[p] !== IGNORE_INDEX ? 1 : 0;
  }
}
