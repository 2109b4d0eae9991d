// Held-out evaluation, without gradients and with dropout off.
//
// - Tasks: `batches` batches drawn from a generator seeded with a fixed evaluation seed, so every
//   evaluation of a run (and of every run with that seed) sees the same samples.
// - Language modelling (SPEC §0): the whole validation split cut into B contiguous streams and
//   read segment by segment, the state carried from each segment to the next, as in training.
// - In a data-parallel job (`shard`), each rank evaluates its part of every batch (task rows or LM
//   streams) and returns counts; the caller sums them over the ranks (Trainer.evaluate).
// Shapes: B batch, M segment length, T = numSegments * M.
import { cat, tidy, noGrad, type Tensor } from '../tensor/index.js';
import type { MemoryState, SegmentModel } from '../models/index.js';
import { Rng } from '../tasks/random.js';
import { shardRows, StreamBatcher, type Shard } from '../tasks/stream.js';
import type { SegmentedTask } from '../tasks/types.js';
import { answerBreakdown } from '../tasks/metrics.js';
import { unroll } from './unroll.js';
import { Decoder } from '../infer/decoder.js';
import { accuracyCounts, addCounts, crossEntropySum, emptyCounts, summarize, type MetricCounts, type Metrics } from './metrics.js';

/** Frees every tensor of a state (after it has been replaced). */
export function disposeState(state: MemoryState | null | undefined): void {
  if (!state) return;
  for (const v of Object.values(state)) {
    if (Array.isArray(v)) v.forEach((t) => t.dispose());
    else v?.dispose();
  }
}

/** A [B, n * M] batch as n segments [B, M] (views). */
export function splitSegments(x: Tensor, numSegments: number, segmentLength: number): Tensor[] {
  return Array.from({ length: numSegments }, (_, τ) => x.narrow(1, τ * segmentLength, segmentLength));
}

/** Runs fn with the model in eval mode and no gradients, restoring its mode afterwards. */
export function inEvalMode<T>(model: SegmentModel, fn: () => T): T {
  const was = model.training;
  model.eval();
  try {
    return noGrad(fn);
  } finally {
    model.train(was);
  }
}

export interface TaskEvalOptions {
  batches: number;
  batchSize: number;
  seed: number;
  /** This rank's part of each batch (default: all of it). */
  shard?: Shard | null;
}

/** Counts over `batches` fixed held-out batches of a task. */
export function evaluateTaskCounts(model: SegmentModel, task: SegmentedTask, o: TaskEvalOptions): MetricCounts {
  const rng = new Rng(o.seed);
  const rows = shardRows(o.batchSize, o.shard, 'evaluateTask', true);
  return inEvalMode(model, () => {
    let total = emptyCounts();
    for (let b = 0; b < o.batches; b++) {
      const counts = tidy(() => {
        const full = task.batch(o.batchSize, rng, model.device);
        const part = (t: Tensor) => (rows.count === o.batchSize ? t : t.narrow(0, rows.from, rows.count));
        const batch = { tokens: part(full.tokens), targets: part(full.targets), answerMask: full.answerMask ? part(full.answerMask) : null };
        const tokens = splitSegments(batch.tokens, task.numSegments, task.segmentLength);
        const targets = splitSegments(batch.targets, task.numSegments, task.segmentLength);
        let lossSum = 0, aux = 0, memorySum = 0, forwards = 0;
        const { outputs } = unroll(model, tokens, null, {
          bpttDepth: 'all',
          onSegment: (τ, out) => {
            lossSum += crossEntropySum(out.logits, targets[τ]!).item();
            if (out.auxLoss) aux += out.auxLoss.item();
            const footprint = model.memoryFootprint?.();
            if (footprint !== undefined) { memorySum += footprint; forwards += 1; }
          },
        });
        const acc = accuracyCounts(outputs.map((o) => o.logits), batch.targets, batch.answerMask, true);
        const counts: MetricCounts = { ...acc, lossSum, tokens: batch.targets.ne(-100).sum().item(), auxSum: aux, batches: 1, memorySum, forwards };
        if (task.answerKinds) Object.assign(counts, answerCounts(model, task, outputs.map((o) => o.logits), batch));
        return counts;
      });
      total = addCounts(total, counts);
    }
    return total;
  });
}

/**
 * For a task with answerKinds (quadratic equations), on the host: exact match per kind of sample
 * (teacher-forced, as exactMatch), and the answers generated free-running, as `engram generate`
 * does: each row is fed up to its answer's first position, then its own greedy predictions. A
 * model that prints one memorised answer for every input shows as few distinct generated answers
 * (`distinct`) against the expected ones (`distinctTargets`), however often that answer is right.
 * Needs the answer positions to be the same in every row and contiguous (the sequence tasks'
 * layout); otherwise only the kinds are counted.
 */
function answerCounts(model: SegmentModel, task: SegmentedTask, logits: Tensor[], batch: { tokens: Tensor; targets: Tensor; answerMask: Tensor | null }): Partial<MetricCounts> {
  const ints = (t: Tensor) => t.to('int32').data() as Int32Array;
  const [B, T] = batch.targets.shape as [number, number];
  const targets = ints(batch.targets), mask = batch.answerMask ? ints(batch.answerMask) : null;
  const teacherForced = answerBreakdown(ints(cat(logits.map((l) => l.argmax(-1)), 1)), targets, mask, B, task.answerKinds);
  const out: Partial<MetricCounts> = teacherForced.kinds ? { kinds: teacherForced.kinds } : {};
  if (B === 0 || !mask || task.targetsAreNextTokens === false) return out;
  const positions: number[] = [];
  for (let p = 0; p < T; p++) if (mask[p]) positions.push(p);
  const first = positions[0], last = positions[positions.length - 1];
  if (first === undefined || last! - first + 1 !== positions.length) return out;
  for (let b = 1; b < B; b++) for (let p = 0; p < T; p++) if (mask[b * T + p] !== mask[p]) return out;
  // targets[p] is the token after input p: the answer's first token is predicted at `first`
  const tokens = ints(batch.tokens);
  const generated = Int32Array.from(targets);
  const decoder = new Decoder(model, task.segmentLength, { batch: B });
  try {
    let next = tidy(() => ints(decoder.feed(Array.from({ length: B }, (_, b) => Array.from(tokens.subarray(b * T, b * T + first + 1)))).select(1, first).argmax(-1)));
    for (let p = first; ; p++) {
      for (let b = 0; b < B; b++) generated[b * T + p] = next[b]!;
      if (p === last) break;
      const fed = Array.from(next, (t) => [t]);
      next = tidy(() => ints(decoder.feed(fed).select(1, 0).argmax(-1)));
    }
  } finally {
    decoder.dispose();
  }
  const free = answerBreakdown(generated, targets, mask, B);
  return { ...out, distinct: free.distinct, distinctTargets: free.distinctTargets, generatedExact: free.exact };
}

export function evaluateTask(model: SegmentModel, task: SegmentedTask, o: TaskEvalOptions): Metrics {
  return summarize(evaluateTaskCounts(model, task, o));
}

export interface LmEvalOptions {
  batchSize: number;
  segmentLength: number;
  /** Stop after about this many tokens (0 or absent: the whole split). */
  maxTokens?: number;
  /** This rank's streams (default: all of them). */
  shard?: Shard | null;
}

/** Bits per character (and accuracy) of a token array read as B streams with the state carried. */
export function evaluateLm(model: SegmentModel, tokens: Int32Array, o: LmEvalOptions): Metrics {
  return summarize(evaluateLmCounts(model, tokens, o));
}

/** evaluateLm's counts (a shard's: the caller sums them over the ranks). */
export function evaluateLmCounts(model: SegmentModel, tokens: Int32Array, o: LmEvalOptions): MetricCounts {
  // Fewer streams than asked when the split is short, so that every stream holds a segment.
  const batchSize = Math.max(1, Math.min(o.batchSize, Math.floor((tokens.length - 1) / o.segmentLength)));
  const batcher = new StreamBatcher(tokens, { batchSize, segmentLength: o.segmentLength, remainder: 'short', shard: o.shard ?? null, unevenShards: true, device: model.device });
  const streams = batcher.localBatchSize;
  return inEvalMode(model, () => {
    let state: MemoryState | null = null;
    let total = emptyCounts();
    let jobTokens = 0; // tokens read by all ranks (every stream reads as many): where maxTokens stops
    try {
      for (let i = 0; i < batcher.stepsPerEpoch; i++) {
        if (o.maxTokens && jobTokens >= o.maxTokens) break;
        if (streams === 0) break; // more ranks than streams: this one has none
        const r = tidy(() => {
          const seg = batcher.next();
          jobTokens += batchSize * seg.tokens.shape[1]!;
          const out = model.forward(seg.tokens, state ?? model.initState(streams));
          const lossSum = crossEntropySum(out.logits, seg.targets).item();
          const acc = accuracyCounts([out.logits], seg.targets, null, false);
          const footprint = model.memoryFootprint?.();
          const counts: MetricCounts = {
            ...acc, lossSum, tokens: acc.answerTokens, auxSum: out.auxLoss?.item() ?? 0, batches: 1,
            ...(footprint !== undefined ? { memorySum: footprint, forwards: 1 } : {}),
          };
          return { counts, state: model.detachState(out.state) };
        });
        disposeState(state);
        state = r.state;
        total = addCounts(total, r.counts);
      }
    } finally {
      disposeState(state);
    }
    return total;
  });
}
