// Metrics of SPEC §6 and §8 computed on tensors: per-token accuracy on the scored positions, exact
// match per sample (every answer position right), bits per character (mean cross-entropy / ln 2).
//
// `predictions` below is either logits [..., V] (floating; the argmax of the last dim is taken) or
// predicted ids with the shape of targets. Results are counts, so they add up over batches
// (mergeCounts) before the ratio is taken; accuracy is NaN when nothing was counted.
import { tidy, type Tensor } from '../tensor/index.js';
import { shapeError } from '../tensor/errors.js';
import { isFloating } from '../tensor/dtype.js';
import { IGNORE_INDEX, type AnswerKinds } from './types.js';

export interface Counts {
  correct: number;
  total: number;
  /** correct / total (NaN when total is 0). */
  accuracy: number;
}

const counts = (correct: number, total: number): Counts => ({ correct, total, accuracy: total > 0 ? correct / total : NaN });

/** Sums of several Counts (over batches), with the accuracy of the sums. */
export function mergeCounts(...parts: Counts[]): Counts {
  return counts(parts.reduce((s, p) => s + p.correct, 0), parts.reduce((s, p) => s + p.total, 0));
}

function predicted(predictions: Tensor, targets: Tensor, op: string): Tensor {
  const p = predictions.shape, t = targets.shape;
  if (p.length === t.length + 1 && isFloating(predictions.dtype) && t.every((d, i) => d === p[i])) return predictions.argmax(-1);
  if (p.length === t.length && t.every((d, i) => d === p[i]) && !isFloating(predictions.dtype)) return predictions;
  throw shapeError(op, `expected logits [${t.join(', ')}, V] (floating) or predicted ids [${t.join(', ')}] (integer) for targets [${t.join(', ')}], got ${predictions.dtype} [${p.join(', ')}]`);
}

/** Per-token accuracy over the positions whose target is not ignoreIndex. */
export function tokenAccuracy(predictions: Tensor, targets: Tensor, ignoreIndex = IGNORE_INDEX): Counts {
  const [correct, total] = tidy(() => {
    const pred = predicted(predictions, targets, 'tokenAccuracy');
    const scored = targets.ne(ignoreIndex);
    return [pred.eq(targets).logicalAnd(scored).sum().item(), scored.sum().item()];
  });
  return counts(correct, total);
}

/**
 * Exact match per sample (dim 0 indexes samples): a sample counts if it has at least one answer
 * position and every answer position is predicted right. Answer positions: answerMask (bool, the
 * shape of targets) when given, else every scored position (target != ignoreIndex).
 */
export function exactMatch(predictions: Tensor, targets: Tensor, answerMask?: Tensor, ignoreIndex = IGNORE_INDEX): Counts {
  if (answerMask && answerMask.shape.join() !== targets.shape.join()) {
    throw shapeError('exactMatch', `answerMask [${answerMask.shape.join(', ')}] must have the shape of targets [${targets.shape.join(', ')}]`);
  }
  const [correct, total] = tidy(() => {
    const B = targets.shape[0] ?? 1;
    const pred = predicted(predictions, targets, 'exactMatch').reshape(B, -1);
    const tgt = targets.reshape(B, -1);
    const mask = answerMask ? answerMask.bool().reshape(B, -1) : tgt.ne(ignoreIndex);
    const wrong = pred.ne(tgt).logicalAnd(mask).any(1);
    const has = mask.any(1);
    return [has.logicalAnd(wrong.logicalNot()).sum().item(), has.sum().item()];
  });
  return counts(correct, total);
}

/** Bits per character (or per token) from a mean cross-entropy in nats: loss / ln 2. */
export function bitsPerCharacter(meanLoss: number): number;
export function bitsPerCharacter(meanLoss: Tensor): Tensor;
export function bitsPerCharacter(meanLoss: number | Tensor): number | Tensor {
  return typeof meanLoss === 'number' ? meanLoss / Math.LN2 : meanLoss.div(Math.LN2);
}

/** Perplexity from a mean cross-entropy in nats: exp(loss). */
export function perplexity(meanLoss: number): number {
  return Math.exp(meanLoss);
}

/** What answerBreakdown counts over a batch. */
export interface AnswerBreakdown {
  /** Samples with at least one answer position, and those whose every answer position is right. */
  samples: number;
  exact: number;
  /** Distinct predicted answers among them, and distinct expected answers (the reference: a model that answers by rote has far fewer). */
  distinct: number;
  distinctTargets: number;
  /** Per kind of sample (task.answerKinds), its samples and exact matches; every name present. */
  kinds: Record<string, { samples: number; exact: number }> | null;
}

/**
 * Per-sample view of predicted answers, on plain arrays [B * T] (row-major, T = targets.length / B):
 * how many different answers the model gives (the answer: the predicted ids at the answer
 * positions, answerMask, else where the target is scored), and exact match split by kind of
 * sample. A model that prints one memorised answer for every input has 1 distinct answer however
 * often it happens to be right.
 */
export function answerBreakdown(
  predicted: ArrayLike<number>, targets: ArrayLike<number>, answerMask: ArrayLike<number | boolean> | null, batch: number,
  kinds?: AnswerKinds, ignoreIndex = IGNORE_INDEX,
): AnswerBreakdown {
  if (predicted.length !== targets.length || (answerMask && answerMask.length !== targets.length) || batch < 0 || (batch === 0 ? targets.length !== 0 : targets.length % batch !== 0)) {
    throw shapeError('answerBreakdown', `predicted (${predicted.length}), targets (${targets.length}) and answerMask (${answerMask?.length ?? 'none'}) must hold batch (${batch}) rows of the same length`);
  }
  const T = batch === 0 ? 0 : targets.length / batch;
  const answers = new Set<string>(), expected = new Set<string>();
  const byKind = kinds ? Object.fromEntries(kinds.names.map((n) => [n, { samples: 0, exact: 0 }])) : null;
  let samples = 0, exact = 0;
  for (let b = 0; b < batch; b++) {
    const from = b * T;
    const got: number[] = [], want: number[] = [];
    for (let p = from; p < from + T; p++) {
      const isAnswer = answerMask ? Boolean(answerMask[p]) : targets[p] !== ignoreIndex;
      if (!isAnswer) continue;
      got.push(predicted[p]!);
      want.push(targets[p]!);
    }
    if (got.length === 0) continue;
    samples += 1;
    answers.add(got.join(','));
    expected.add(want.join(','));
    const right = got.every((g, i) => g === want[i]);
    if (right) exact += 1;
    if (kinds && byKind) {
      const name = kinds.names[kinds.of(Array.prototype.slice.call(targets, from, from + T) as number[])];
      if (name === undefined) throw shapeError('answerBreakdown', `the task's answerKinds.of gave no kind of ${kinds.names.join(', ')} for sample ${b}`);
      byKind[name]!.samples += 1;
      if (right) byKind[name]!.exact += 1;
    }
  }
  return { samples, exact, distinct: answers.size, distinctTargets: expected.size, kinds: byKind };
}
