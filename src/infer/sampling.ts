// Choosing the next token from logits: greedy, temperature, top-k, and top-p (nucleus) sampling.
// Top-p keeps the most likely tokens whose probabilities (at the temperature, among the top k)
// sum to at least p and masks the others; the draw itself is train/generate's sampleToken, so
// with topP = 1 the tokens are those of generateText for the same seed.
// Shapes: V vocabulary.
import { sampleToken } from '../train/generate.js';
import type { Rng } from '../tasks/random.js';

export interface NextTokenOptions {
  /** 0: greedy (argmax). */
  temperature: number;
  /** The k most likely tokens only (0: all). */
  topK: number;
  /** The most likely tokens whose probabilities sum to p (1: all). */
  topP: number;
}

/** A token id from next-token logits [V], drawn with rng. */
export function sampleNext(logits: Float32Array, o: NextTokenOptions, rng: Rng): number {
  if (o.topP >= 1 || o.temperature <= 0 || o.topK === 1) return sampleToken(logits, o, rng);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  const candidates = o.topK > 0 ? order.slice(0, o.topK) : order;
  const top = logits[candidates[0]!]!;
  const weights = candidates.map((i) => Math.exp((logits[i]! - top) / o.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  const masked = new Float32Array(logits.length).fill(-Infinity);
  let mass = 0;
  for (let r = 0; r < candidates.length && mass < o.topP * total; r++) {
    masked[candidates[r]!] = logits[candidates[r]!]!;
    mass += weights[r]!;
  }
  return sampleToken(masked, { temperature: o.temperature, topK: 0 }, rng);
}
