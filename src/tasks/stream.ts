// Language-modelling batches as SPEC §0 describes them: the token array is cut into B contiguous
// streams; each step reads the next M tokens of every stream and the token after each of them.
//
// Legend: n tokens in the data, B streams (batch), M segment length, S = floor((n - 1) / B)
// positions per stream.
//
//   stream b reads      data[b*S .. b*S + S)        as inputs
//            predicts   data[b*S + 1 .. b*S + S]    (its last target is the first input of stream b + 1)
//   step k gives        tokens  [B, M] = inputs  of every stream at [k*M, k*M + M)
//                       targets [B, M] = targets of every stream at the same positions
//
// So every token but the first (and the n - 1 - B*S left over at the end) is predicted exactly once
// per epoch, and step k + 1 continues each stream where step k stopped: the memory a model carries
// from one step to the next belongs to the same stream. When M does not divide S the last step of
// an epoch is shorter ('short', the Transformer-XL iterator's choice), padded to M with token 0 and
// target -100 ('pad'), or left out ('drop'). After the last step the next epoch starts at step 0;
// `first` tells the caller to reset the models' state.
//
// position() / restore() save and resume exactly where a run stopped.
//
// Data parallelism: with `shard` {rank, worldSize}, a batcher reads only streams
// [rank * B/W, (rank + 1) * B/W) of the same B streams (W must divide B), so the ranks of a job
// together read exactly what one process reads with batch B.
import { tensor, type Device, type Tensor } from '../tensor/index.js';
import { configError } from '../tensor/errors.js';
import { IGNORE_INDEX } from './types.js';

export interface StreamBatcherOptions {
  /** Streams B. */
  batchSize: number;
  /** Tokens per stream per step, M. */
  segmentLength: number;
  /** What the last step of an epoch does when M does not divide S (default 'short'). */
  remainder?: 'short' | 'pad' | 'drop';
  /** Where the tensors are made (default cpu). */
  device?: Device;
  /** This rank's share of the streams in a data-parallel job (default: all of them). */
  shard?: Shard | null;
  /** Whether the ranks' shares may differ by a stream (evaluation; default false: W must divide B). */
  unevenShards?: boolean;
}

/** A rank's place in a data-parallel job: it reads the rank-th of worldSize equal parts of a batch. */
export interface Shard {
  rank: number;
  worldSize: number;
}

/**
 * The rows [from, from + count) of a batch of `batchSize` that a shard reads. Training needs equal
 * parts (W must divide B: the ranks' gradients are averaged); `uneven` allows parts that differ by
 * one row (evaluation, whose counts are summed).
 */
export function shardRows(batchSize: number, shard: Shard | null | undefined, op = 'shard', uneven = false): { from: number; count: number } {
  if (!shard || shard.worldSize === 1) return { from: 0, count: batchSize };
  const { rank, worldSize: W } = shard;
  if (!uneven && batchSize % W !== 0) throw configError(op, `the batch size ${batchSize} does not split evenly over ${W} ranks; use a batch size that is a multiple of ${W}`);
  const from = Math.floor((rank * batchSize) / W);
  return { from, count: Math.floor(((rank + 1) * batchSize) / W) - from };
}

export interface StreamSegment {
  /** [B, m] int64, m = M except in a short last step (B / W rows for a shard). */
  tokens: Tensor;
  /** [B, m] int64 next tokens (-100 in 'pad' padding). */
  targets: Tensor;
  epoch: number;
  /** Step within the epoch, 0-based. */
  step: number;
  /** First step of an epoch: the streams start over, reset the memory. */
  first: boolean;
  /** Last step of an epoch. */
  last: boolean;
}

/** The position of a batcher, plain JSON: save it with a checkpoint, give it to restore(). */
export interface StreamPosition {
  epoch: number;
  step: number;
  /** Checked on restore: the same data and options must be in use. */
  batchSize: number;
  segmentLength: number;
  streamLength: number;
}

export class StreamBatcher {
  readonly batchSize: number;
  readonly segmentLength: number;
  /** Positions per stream, S. */
  readonly streamLength: number;
  readonly stepsPerEpoch: number;
  readonly remainder: 'short' | 'pad' | 'drop';
  /** The streams this batcher reads: [firstStream, firstStream + localBatchSize). */
  readonly firstStream: number;
  readonly localBatchSize: number;
  readonly #data: Int32Array;
  readonly #device: Device | undefined;
  #epoch = 0;
  #step = 0;

  constructor(data: Int32Array | ArrayLike<number>, options: StreamBatcherOptions) {
    const { batchSize: B, segmentLength: M } = options;
    if (!Number.isInteger(B) || B < 1) throw configError('StreamBatcher', `batchSize must be a positive integer, got ${B}`);
    if (!Number.isInteger(M) || M < 1) throw configError('StreamBatcher', `segmentLength must be a positive integer, got ${M}`);
    const remainder = options.remainder ?? 'short';
    if (!['short', 'pad', 'drop'].includes(remainder)) throw configError('StreamBatcher', `remainder must be one of short, pad, drop, got '${String(remainder)}'`);
    this.#data = data instanceof Int32Array ? data : Int32Array.from(data);
    const S = Math.floor((this.#data.length - 1) / B);
    if (S < 1) throw configError('StreamBatcher', `${this.#data.length} tokens are too few for ${B} streams (need at least ${B + 1})`);
    const steps = remainder === 'drop' ? Math.floor(S / M) : Math.ceil(S / M);
    if (steps < 1) throw configError('StreamBatcher', `streams of ${S} positions hold no full segment of ${M} (remainder 'drop')`);
    this.batchSize = B;
    this.segmentLength = M;
    this.streamLength = S;
    this.stepsPerEpoch = steps;
    this.remainder = remainder;
    const rows = shardRows(B, options.shard, 'StreamBatcher', options.unevenShards ?? false);
    this.firstStream = rows.from;
    this.localBatchSize = rows.count;
    this.#device = options.device;
  }

  get epoch(): number {
    return this.#epoch;
  }
  get step(): number {
    return this.#step;
  }

  position(): StreamPosition {
    return { epoch: this.#epoch, step: this.#step, batchSize: this.batchSize, segmentLength: this.segmentLength, streamLength: this.streamLength };
  }

  /** Continues from a saved position; throws if it was saved with other data sizes or options. */
  restore(p: StreamPosition): void {
    if (p.batchSize !== this.batchSize || p.segmentLength !== this.segmentLength || p.streamLength !== this.streamLength) {
      throw configError('StreamBatcher', `position saved for batchSize ${p.batchSize}, segmentLength ${p.segmentLength}, streamLength ${p.streamLength}; this batcher has ${this.batchSize}, ${this.segmentLength}, ${this.streamLength}`);
    }
    if (!Number.isInteger(p.epoch) || p.epoch < 0 || !Number.isInteger(p.step) || p.step < 0 || p.step >= this.stepsPerEpoch) {
      throw configError('StreamBatcher', `invalid position epoch ${p.epoch}, step ${p.step} (${this.stepsPerEpoch} steps per epoch)`);
    }
    this.#epoch = p.epoch;
    this.#step = p.step;
  }

  /** Inputs and targets of a step as flat [b * m] arrays (b = localBatchSize), without tensors or moving the position. */
  arraysAt(step: number): { tokens: Int32Array; targets: Int32Array; width: number } {
    if (!Number.isInteger(step) || step < 0 || step >= this.stepsPerEpoch) throw configError('StreamBatcher', `step ${step} out of range [0, ${this.stepsPerEpoch})`);
    const B = this.localBatchSize, M = this.segmentLength, S = this.streamLength, first = this.firstStream;
    const start = step * M;
    const m = Math.min(M, S - start); // real positions in this step
    const width = this.remainder === 'pad' ? M : m;
    const tokens = new Int32Array(B * width);
    const targets = new Int32Array(B * width).fill(IGNORE_INDEX);
    const d = this.#data;
    for (let b = 0; b < B; b++) {
      const from = (first + b) * S + start;
      tokens.set(d.subarray(from, from + m), b * width);
      targets.set(d.subarray(from + 1, from + m + 1), b * width);
    }
    return { tokens, targets, width };
  }

  /** The segment at the current position, then moves on (to the next epoch after the last step). Caller disposes. */
  next(): StreamSegment {
    const step = this.#step, epoch = this.#epoch;
    const { tokens, targets, width } = this.arraysAt(step);
    const shape = [this.localBatchSize, width];
    const o = this.#device ? { shape, device: this.#device } : { shape };
    const last = step === this.stepsPerEpoch - 1;
    if (last) {
      this.#epoch++;
      this.#step = 0;
    } else {
      this.#step++;
    }
    return {
      tokens: tensor(tokens, { ...o, dtype: 'int64' }),
      targets: tensor(targets, { ...o, dtype: 'int64' }),
      epoch,
      step,
      first: step === 0,
      last,
    };
  }

  /** The segments from the current position to the end of its epoch (e.g. one evaluation pass). */
  *restOfEpoch(): Generator<StreamSegment> {
    const epoch = this.#epoch;
    while (this.#epoch === epoch) yield this.next();
  }
}
