// What all algorithmic tasks share: from a full sequence (source ⧺ target block) to the padded
// tokens / targets / answer-mask rows of types.ts, segment sizing, option validation, batching.
import { tensor, type Device } from '../tensor/index.js';
import { configError } from '../tensor/errors.js';
import type { Rng } from './random.js';
import { IGNORE_INDEX, PAD, type SegmentedTask, type TaskBatch, type TaskSample } from './types.js';

/** Checks that value is an integer in [min, max]; returns it. */
export function checkInt(task: string, name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw configError(task, `${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/** Throws when options has a key outside allowed (typos must not fall back to defaults silently). */
export function checkKeys(task: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw configError(task, `unknown option '${key}'; allowed: ${allowed.join(', ')}`);
    }
  }
}

/**
 * segmentLength = ceil(length / numSegments); refuses a split whose last segment would hold only
 * padding (e.g. 10 tokens in 6 segments of 2), which would be a segment with nothing to read.
 */
export function segmentSizes(task: string, length: number, numSegments: number): number {
  checkInt(task, 'numSegments', numSegments, 1, length);
  const segmentLength = Math.ceil(length / numSegments);
  if ((numSegments - 1) * segmentLength >= length) {
    const ok: number[] = [];
    for (let n = 1; n <= Math.min(length, 64); n++) if ((n - 1) * Math.ceil(length / n) < length) ok.push(n);
    throw configError(task, `numSegments ${numSegments} leaves a segment of padding only (${length} tokens in segments of ${segmentLength}); use one of ${ok.join(', ')}${length > 64 ? ', ...' : ''}`);
  }
  return segmentLength;
}

export abstract class SequenceTask implements SegmentedTask {
  abstract readonly name: string;
  abstract readonly vocabSize: number;
  abstract readonly chance: number;
  /** Length of the full sequence, source ⧺ target block. */
  protected abstract readonly seqLength: number;
  /** First index of seq that is scored as a target. */
  protected abstract readonly scoredFrom: number;
  /** First index of seq that belongs to the exact-match answer (the rest of seq after it, to the end). */
  protected abstract readonly answerFrom: number;
  abstract readonly numSegments: number;
  abstract readonly segmentLength: number;

  /** Writes the full sequence (seqLength ids) into out. */
  protected abstract generate(rng: Rng, out: Int32Array): void;
  abstract decode(tokens: number[]): string;

  get length(): number {
    return this.seqLength - 1;
  }

  sample(rng: Rng): TaskSample {
    const T = this.numSegments * this.segmentLength;
    const tokens = new Int32Array(T), targets = new Int32Array(T), mask = new Uint8Array(T);
    this.fillRow(rng, new Int32Array(this.seqLength), tokens, targets, mask, 0);
    return { tokens: Array.from(tokens), targets: Array.from(targets), answerMask: Array.from(mask, (m) => m === 1) };
  }

  batch(size: number, rng: Rng, device?: Device): TaskBatch {
    checkInt(this.name, 'batch size', size, 1, 1 << 24);
    const T = this.numSegments * this.segmentLength;
    const tokens = new Int32Array(size * T), targets = new Int32Array(size * T), mask = new Uint8Array(size * T);
    const seq = new Int32Array(this.seqLength);
    for (let b = 0; b < size; b++) this.fillRow(rng, seq, tokens, targets, mask, b * T);
    return batchTensors(tokens, targets, mask, [size, T], device);
  }

  private fillRow(rng: Rng, seq: Int32Array, tokens: Int32Array, targets: Int32Array, mask: Uint8Array, offset: number): void {
    this.generate(rng, seq);
    const T = this.numSegments * this.segmentLength;
    const n = this.seqLength - 1;
    for (let p = 0; p < T; p++) {
      const i = offset + p;
      if (p < n) {
        tokens[i] = seq[p]!;
        targets[i] = p + 1 >= this.scoredFrom ? seq[p + 1]! : IGNORE_INDEX;
        mask[i] = p + 1 >= this.answerFrom ? 1 : 0;
      } else {
        tokens[i] = PAD;
        targets[i] = IGNORE_INDEX;
        mask[i] = 0;
      }
    }
  }
}

/** Drops trailing PAD tokens (a sample's segment padding) before decoding. */
export function stripPadding(tokens: number[]): number[] {
  let end = tokens.length;
  while (end > 0 && tokens[end - 1] === PAD) end--;
  return tokens.slice(0, end);
}

/** A batch's rows as tensors [B, T]: int64 tokens and targets, a bool answer mask. */
export function batchTensors(tokens: Int32Array, targets: Int32Array, mask: Uint8Array, shape: [number, number], device?: Device): TaskBatch {
  const o = device ? { shape, device } : { shape };
  return {
    tokens: tensor(tokens, { ...o, dtype: 'int64' }),
    targets: tensor(targets, { ...o, dtype: 'int64' }),
    answerMask: tensor(mask, { ...o, dtype: 'bool' }),
  };
}
