// Sampling from a trained segment model: text from a language model given a prompt, or
// the answers of task samples generated token by token (not teacher-forced).
//
// Decoding goes through the Decoder (src/infer): segment boundaries fall where they fell in
// training (every M tokens from the start), and each new token costs one position's work (the
// cached path) where the model decodes incrementally.
// Shapes: M segment length, V vocabulary.
import type { SegmentModel } from '../models/index.js';
import { tidy } from '../tensor/index.js';
import { Decoder } from '../infer/decoder.js';
import { Rng } from '../tasks/random.js';
import type { CharVocab } from '../tasks/vocab.js';
import { IGNORE_INDEX } from '../tasks/types.js';
import type { SegmentedTask } from '../tasks/types.js';

export interface SamplingOptions {
  /** 0: greedy (argmax). */
  temperature: number;
  /** Sample among the k most likely tokens only (0: all). */
  topK: number;
}

/** A token id from next-token logits [V], with the data layer's seeded generator. */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (o.temperature <= 0 || o.topK === 1) return best;
  let threshold = -Infinity;
  if (o.topK > 0 && o.topK < logits.length) threshold = Float32Array.from(logits).sort().reverse()[o.topK - 1]!;
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! < threshold) continue;
    weights[i] = Math.exp((logits[i]! - logits[best]!) / o.temperature);
    total += weights[i]!;
  }
  let u = rng.float() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0 && weights[i]! > 0) return i;
  }
  return best;
}

/** Feeds tokens [n] to a batch-1 decoder: the logits [V] of the token after the last one. */
function feedOne(decoder: Decoder, tokens: number[]): Float32Array {
  return tidy(() => {
    const logits = decoder.feed([tokens]); // [1, n, V]
    return logits.select(0, 0).select(0, tokens.length - 1).data() as Float32Array;
  });
}

export interface GenerateTextOptions extends SamplingOptions {
  prompt: string;
  /** Characters to generate. */
  length: number;
  seed: number;
}

/** Continues a prompt with a language model read in segments of M: the generated characters (without the prompt). */
export function generateText(model: SegmentModel, vocab: CharVocab, segmentLength: number, o: GenerateTextOptions): string {
  const decoder = new Decoder(model, segmentLength);
  const rng = new Rng(o.seed);
  try {
    const prompt = Array.from(vocab.encode(o.prompt.length > 0 ? o.prompt : '\n'));
    let logits = feedOne(decoder, prompt);
    const out: number[] = [];
    for (let i = 0; i < o.length; i++) {
      const id = sampleToken(logits, o, rng);
      out.push(id);
      if (i < o.length - 1) logits = feedOne(decoder, [id]);
    }
    return vocab.decode(out);
  } finally {
    decoder.dispose();
  }
}

export interface GeneratedAnswer {
  /** The sample's input up to where the answer starts, decoded. */
  input: string;
  expected: string;
  generated: string;
  /** Answer positions right, of how many. */
  correct: number;
  total: number;
  exact: boolean;
}

export interface GenerateAnswersOptions extends SamplingOptions {
  samples: number;
  seed: number;
}

/**
 * Draws task samples and generates each answer autoregressively: from the first scored position
 * on, each predicted token is fed back as the next input (a scored-less position in between gets
 * the sample's own token).
 */
export function generateAnswers(model: SegmentModel, task: SegmentedTask, o: GenerateAnswersOptions): GeneratedAnswer[] {
  const dataRng = new Rng(o.seed), sampleRng = new Rng(o.seed + 1);
  const results: GeneratedAnswer[] = [];
  for (let s = 0; s < o.samples; s++) {
    const sample = task.sample(dataRng);
    const scored = sample.targets.flatMap((t, p) => (t !== IGNORE_INDEX ? [p] : []));
    if (scored.length === 0) continue;
    const first = scored[0]!, last = scored[scored.length - 1]!;
    const decoder = new Decoder(model, task.segmentLength);
    try {
      let logits = feedOne(decoder, sample.tokens.slice(0, first + 1));
      const expected: number[] = [], generated: number[] = [];
      let correct = 0, total = 0;
      for (let p = first; p <= last; p++) {
        const target = sample.targets[p]!;
        let next: number;
        if (target !== IGNORE_INDEX) {
          next = sampleToken(logits, o, sampleRng);
          expected.push(target);
          generated.push(next);
          if (sample.answerMask[p]) {
            total += 1;
            if (next === target) correct += 1;
          }
        } else {
          next = sample.tokens[p + 1]!;
        }
        if (p < last) logits = feedOne(decoder, [task.targetsAreNextTokens === false ? sample.tokens[p + 1]! : next]);
      }
      results.push({
        input: task.decode(sample.tokens.slice(0, first + 1)),
        expected: task.decode(expected),
        generated: task.decode(generated),
        correct, total, exact: correct === total,
      });
    } finally {
      decoder.dispose();
    }
  }
  return results;
}
