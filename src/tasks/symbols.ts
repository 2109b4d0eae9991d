// Shared by copy and reverse (RMT, SPEC §8): token ids, options, decoding, and the task class
// they both are (a source, the start token, then an answer made from the source).
//
// Vocabulary: 0 = pad, 1 = start-to-generate, 2 .. numSymbols + 1 = the symbols.
// Decoded symbols are the characters 0-9, a-z, A-Z (up to 62 symbols), else <id>.
import type { Rng } from './random.js';
import { checkInt, checkKeys, SequenceTask, segmentSizes, stripPadding } from './sequence-task.js';
import { PAD } from './types.js';

export const START = 1;
export const FIRST_SYMBOL = 2;
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

export interface SymbolTaskOptions {
  /** Source length n (default 24). */
  sourceLength?: number;
  /** Distinct symbols (default 10, or 8 when sourceLength >= 120, as SPEC §8). */
  numSymbols?: number;
  /** Segments the sample is cut into (default 1: the whole sample in one segment). */
  numSegments?: number;
}
export const symbolTaskKeys = ['sourceLength', 'numSymbols', 'numSegments'] as const;

export interface SymbolTaskConfig {
  sourceLength: number;
  numSymbols: number;
  numSegments: number;
  segmentLength: number;
}

/** Validates options and fills the SPEC defaults; length is the unpadded sample length for sourceLength n. */
export function resolveSymbolOptions(task: string, options: SymbolTaskOptions, length: (n: number) => number): SymbolTaskConfig {
  checkKeys(task, options, symbolTaskKeys);
  const sourceLength = checkInt(task, 'sourceLength', options.sourceLength ?? 24, 1, 1_000_000);
  const numSymbols = checkInt(task, 'numSymbols', options.numSymbols ?? (sourceLength >= 120 ? 8 : 10), 2, 1_000_000);
  const numSegments = options.numSegments ?? 1;
  const segmentLength = segmentSizes(task, length(sourceLength), numSegments);
  return { sourceLength, numSymbols, numSegments, segmentLength };
}

/**
 * The text of one token of a symbol vocabulary whose symbol k is id firstSymbol + k: '_' pad,
 * '|' start, the k-th of 0-9 a-z A-Z (or <k> past 62 symbols), <?id> for anything else.
 */
export function symbolText(t: number, firstSymbol: number, numSymbols: number): string {
  if (t === PAD) return '_';
  if (t === START) return '|';
  const k = t - firstSymbol;
  if (k >= 0 && k < numSymbols) return numSymbols <= ALPHABET.length ? ALPHABET[k]! : `<${k}>`;
  return `<?${t}>`;
}

export function decodeSymbols(tokens: number[], numSymbols: number): string {
  return stripPadding(tokens).map((t) => symbolText(t, FIRST_SYMBOL, numSymbols)).join('');
}

/**
 * seq = s_1 .. s_n | 1 | answer (answerLength(n) ids made from s); tokens = seq without its last
 * id; every answer id is scored (predicted from the 1 onwards) and forms the exact-match answer.
 */
export abstract class SymbolTask extends SequenceTask {
  readonly sourceLength: number;
  readonly numSymbols: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize: number;
  readonly chance: number;
  protected readonly seqLength: number;
  protected readonly scoredFrom: number;
  protected readonly answerFrom: number;

  constructor(name: string, options: SymbolTaskOptions, answerLength: (n: number) => number) {
    super();
    const c = resolveSymbolOptions(name, options, (n) => n + answerLength(n));
    this.sourceLength = c.sourceLength;
    this.numSymbols = c.numSymbols;
    this.numSegments = c.numSegments;
    this.segmentLength = c.segmentLength;
    this.vocabSize = FIRST_SYMBOL + c.numSymbols;
    this.chance = 1 / c.numSymbols;
    const n = c.sourceLength;
    this.seqLength = n + 1 + answerLength(n);
    this.scoredFrom = n + 1;
    this.answerFrom = n + 1;
  }

  /** Writes the answer into answer[0 .. answerLength(n)) from the source. */
  protected abstract writeAnswer(source: Int32Array, answer: Int32Array): void;

  protected generate(rng: Rng, seq: Int32Array): void {
    const n = this.sourceLength;
    for (let i = 0; i < n; i++) seq[i] = FIRST_SYMBOL + rng.int(this.numSymbols);
    seq[n] = START;
    this.writeAnswer(seq.subarray(0, n), seq.subarray(n + 1));
  }

  decode(tokens: number[]): string {
    return decodeSymbols(tokens, this.numSymbols);
  }
}
