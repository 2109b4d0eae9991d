// Metrics of SPEC §6 and §8: loss per scored token, per-token accuracy on the answer positions,
// exact match of the whole answer, bits per character (loss / ln 2) for language modelling.
//
// Counts are accumulated as plain numbers (sums over tokens and samples), so batches and
// evaluation passes of any size combine exactly; `summarize` turns them into rates.
// Shapes: B batch, T positions (the segments of a sample side by side), V vocabulary.
import { cat, F, noGrad, type Tensor } from '../tensor/index.js';
import { IGNORE_INDEX } from '../tasks/types.js';
import { exactMatch, tokenAccuracy } from '../tasks/metrics.js';

export interface MetricCounts {
  /** Sum of the cross-entropy (nats) over the scored positions. */
  lossSum: number;
  /** Scored positions (targets != -100). */
  tokens: number;
  /** Answer positions (answerMask, or the scored positions when there is none) and how many were right. */
  answerTokens: number;
  correct: number;
  /** Samples, and those whose every answer position was right (tasks only). */
  samples: number;
  exact: number;
  /** Sum of the models' auxiliary losses over the batches counted, and the number of batches. */
  auxSum: number;
  batches: number;
  /** Sum of the model's memoryFootprint() over the forward passes counted, and their number. */
  memorySum?: number;
  forwards?: number;
  /**
   * Evaluation of a task with answerKinds only (evaluate.ts answerCounts): distinct generated
   * and expected answers, summed over batches (each batch counts its own), generated answers
   * exactly right, and exact match (teacher-forced) per kind of sample.
   */
  distinct?: number;
  distinctTargets?: number;
  generatedExact?: number;
  kinds?: Record<string, { samples: number; exact: number }>;
}

export const emptyCounts = (): MetricCounts => ({ lossSum: 0, tokens: 0, answerTokens: 0, correct: 0, samples: 0, exact: 0, auxSum: 0, batches: 0 });

export function addCounts(a: MetricCounts, b: MetricCounts): MetricCounts {
  return {
    lossSum: a.lossSum + b.lossSum, tokens: a.tokens + b.tokens, answerTokens: a.answerTokens + b.answerTokens,
    correct: a.correct + b.correct, samples: a.samples + b.samples, exact: a.exact + b.exact,
    auxSum: a.auxSum + b.auxSum, batches: a.batches + b.batches,
    memorySum: (a.memorySum ?? 0) + (b.memorySum ?? 0), forwards: (a.forwards ?? 0) + (b.forwards ?? 0),
    ...(a.distinct !== undefined || b.distinct !== undefined ? { distinct: (a.distinct ?? 0) + (b.distinct ?? 0), distinctTargets: (a.distinctTargets ?? 0) + (b.distinctTargets ?? 0), generatedExact: (a.generatedExact ?? 0) + (b.generatedExact ?? 0) } : {}),
    ...(a.kinds || b.kinds ? { kinds: addKinds(a.kinds, b.kinds) } : {}),
  };
}

function addKinds(a: MetricCounts['kinds'], b: MetricCounts['kinds']): NonNullable<MetricCounts['kinds']> {
  const out: NonNullable<MetricCounts['kinds']> = {};
  for (const name of new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])) {
    const x = a?.[name], y = b?.[name];
    out[name] = { samples: (x?.samples ?? 0) + (y?.samples ?? 0), exact: (x?.exact ?? 0) + (y?.exact ?? 0) };
  }
  return out;
}

/** Rates from counts. `exactMatch` only where samples were counted (tasks). */
export interface Metrics {
  /** Mean cross-entropy per scored token (nats). */
  loss: number;
  /** Bits per token: loss / ln 2 (bits per character for a character vocabulary). */
  bpc: number;
  /** Per-token accuracy on the answer positions. */
  accuracy: number;
  /** Fraction of samples whose whole answer is right (tasks). */
  exactMatch?: number;
  /** Mean auxiliary loss per batch, when a model has one. */
  auxLoss?: number;
  /** Mean memoryFootprint() per forward pass (memories attended besides the segment), when the model reports it. */
  memory?: number;
  /**
   * Task evaluation: exact match per kind of sample (task.answerKinds; quadratic equations:
   * realRoots, noRealRoots), NaN for a kind no sample had.
   */
  exactMatchBy?: Record<string, number>;
  /**
   * Task evaluation (tasks with answerKinds): distinct answers per sample within each held-out
   * batch, generated free-running (greedy, as `engram generate`); 1 / batch when the model gives
   * one answer to everything. distinctTargets: the same of the expected answers, the value a
   * perfect model reaches. exactMatchGenerated: generated answers exactly right.
   */
  distinctAnswers?: number;
  distinctTargets?: number;
  exactMatchGenerated?: number;
  tokens: number;
}

export function summarize(c: MetricCounts): Metrics {
  const loss = c.tokens > 0 ? c.lossSum / c.tokens : NaN;
  const m: Metrics = { loss, bpc: loss / Math.LN2, accuracy: c.answerTokens > 0 ? c.correct / c.answerTokens : NaN, tokens: c.tokens };
  if (c.samples > 0) m.exactMatch = c.exact / c.samples;
  if (c.auxSum !== 0) m.auxLoss = c.auxSum / Math.max(1, c.batches);
  if (c.forwards) m.memory = (c.memorySum ?? 0) / c.forwards;
  if (c.kinds) m.exactMatchBy = Object.fromEntries(Object.entries(c.kinds).map(([k, v]) => [k, v.samples > 0 ? v.exact / v.samples : NaN]));
  if (c.distinct !== undefined && c.samples > 0) {
    m.distinctAnswers = c.distinct / c.samples;
    m.distinctTargets = (c.distinctTargets ?? 0) / c.samples;
    m.exactMatchGenerated = (c.generatedExact ?? 0) / c.samples;
  }
  return m;
}

/**
 * Counts for one batch from per-segment logits [B, M_τ, V] and the batch's targets [B, T] (and
 * answer mask [B, T]), with T = Σ M_τ. `lossSum` is not computed here (the caller has it from the
 * loss it backpropagates). `perSample`: count exact matches (tasks).
 */
export function accuracyCounts(logits: readonly Tensor[], targets: Tensor, answerMask: Tensor | null, perSample: boolean): Pick<MetricCounts, 'answerTokens' | 'correct' | 'samples' | 'exact'> {
  return noGrad(() => {
    const predicted = cat(logits.map((l) => l.argmax(-1)), 1); // [B, T]
    // per-token accuracy on the answer positions only: the other targets set to ignored
    const answerTargets = answerMask ? targets.maskedFill(answerMask.logicalNot(), IGNORE_INDEX) : targets;
    const tokens = tokenAccuracy(predicted, answerTargets);
    const exact = perSample ? exactMatch(predicted, targets, answerMask ?? undefined) : { correct: 0, total: 0 };
    return { answerTokens: tokens.total, correct: tokens.correct, samples: exact.total, exact: exact.correct };
  });
}

/** Summed cross-entropy of logits [B, M, V] against targets [B, M] (-100 ignored): a 0-d tensor. */
export function crossEntropySum(logits: Tensor, targets: Tensor): Tensor {
  const V = logits.shape[2]!;
  return F.crossEntropy(logits.reshape(-1, V), targets.reshape(-1), { reduction: 'sum', ignoreIndex: IGNORE_INDEX });
}
