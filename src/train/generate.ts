// Sampling from a trained segment model: text from a language model given a prompt, or
// the answers of task samples generated token by token (not teacher-forced).
//
// A segment model reads fixed segments and carries its state between them, so decoding keeps the
// state committed at the last segment boundary and the tokens of the segment being written: the
// next token's logits come from running that partial segment on the committed state; when the
// segment is full it is run once more to commit the state of the next one. Segment boundaries
// thus fall where they fell in training (every M tokens from the start).
// Shapes: M segment length, m <= M tokens of the open segment, V vocabulary.
import type { MemoryState, SegmentModel } from '../models/index.js';
import { configError, noGrad, tensor, tidy } from '../tensor/index.js';
import { Rng } from '../tasks/random.js';
import type { CharVocab } from '../tasks/vocab.js';
import { IGNORE_INDEX } from '../tasks/types.js';
import type { SegmentedTask } from '../tasks/types.js';
import { disposeState } from './evaluate.js';

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

/** Feeds tokens one by one into a segment model and gives the next token's logits. */
export class SegmentDecoder {
  #state: MemoryState | null = null;
  #open: number[] = [];
  #lastLogits: Float32Array | null = null;

  constructor(readonly model: SegmentModel, readonly segmentLength: number) {}

  /** Appends a token; runs and commits the segment when it is full. */
  push(token: number): void {
    this.#open.push(token);
    if (this.#open.length < this.segmentLength) return;
    const r = this.#run(true);
    disposeState(this.#state);
    this.#state = r.state;
    this.#lastLogits = r.logits;
    this.#open = [];
  }

  /** Logits [V] of the token after everything pushed so far. */
  nextLogits(): Float32Array {
    if (this.#open.length === 0) {
      if (!this.#lastLogits) throw configError('SegmentDecoder.nextLogits', 'push at least one token before asking for logits');
      return this.#lastLogits;
    }
    return this.#run(false).logits;
  }

  #run(commit: boolean): { logits: Float32Array; state: MemoryState | null } {
    return noGrad(() => tidy(() => {
      const tokens = tensor(Int32Array.from(this.#open), { dtype: 'int64', shape: [1, this.#open.length] });
      const out = this.model.forward(tokens, this.#state ?? this.model.initState(1));
      const logits = out.logits.select(0, 0).select(0, this.#open.length - 1).float().data() as Float32Array;
      return { logits, state: commit ? this.model.detachState(out.state) : null };
    }));
  }

  dispose(): void {
    disposeState(this.#state);
    this.#state = null;
  }
}

export interface GenerateTextOptions extends SamplingOptions {
  prompt: string;
  /** Characters to generate. */
  length: number;
  seed: number;
}

/** Continues a prompt with a language model read in segments of M: the generated characters (without the prompt). */
export function generateText(model: SegmentModel, vocab: CharVocab, segmentLength: number, o: GenerateTextOptions): string {
  const decoder = new SegmentDecoder(model, segmentLength);
  const rng = new Rng(o.seed);
  try {
    const prompt = vocab.encode(o.prompt.length > 0 ? o.prompt : '\n');
    for (const id of prompt) decoder.push(id);
    const out: number[] = [];
    for (let i = 0; i < o.length; i++) {
      const id = sampleToken(decoder.nextLogits(), o, rng);
      out.push(id);
      decoder.push(id);
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
    const decoder = new SegmentDecoder(model, task.segmentLength);
    try {
      for (let p = 0; p <= first; p++) decoder.push(sample.tokens[p]!);
      const expected: number[] = [], generated: number[] = [];
      let correct = 0, total = 0;
      for (let p = first; p <= last; p++) {
        const target = sample.targets[p]!;
        let next: number;
        if (target !== IGNORE_INDEX) {
          next = sampleToken(decoder.nextLogits(), o, sampleRng);
          expected.push(target);
          generated.push(next);
          if (sample.answerMask[p]) {
            total += 1;
            if (next === target) correct += 1;
          }
        } else {
          next = sample.tokens[p + 1]!;
        }
        if (p < last) decoder.push(task.targetsAreNextTokens === false ? sample.tokens[p + 1]! : next);
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
