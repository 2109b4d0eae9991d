// Metrics of SPEC §6 and §8 computed on tensors: per-token accuracy on the scored positions, exact
// match per sample (every answer position right), bits per character (mean cross-entropy / ln 2).
//
// `predictions` below is either logits [..., V] (floating; the argmax of the last dim is taken) or
// predicted ids with the shape of targets. Results are counts, so they add up over batches
// (mergeCounts) before the ratio is taken; accuracy is NaN when nothing was counted.
import { tidy, type Tensor } from '../tensor/index.js';
import { shapeError } from '../tensor/errors.js';
import { isFloating } from '../tensor/dtype.js';
import { IGNORE_INDEX } from './types.js';

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
