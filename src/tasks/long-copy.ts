// Long copy (Expire-Span, Sukhbaatar et al. 2021; SPEC §8): reproduce a sequence after a long
// delay. Accuracy grows with how far back the model can keep memories: the whole source must
// survive `delay` tokens of nothing.
//
//   seq     = s_1 .. s_n  b × delay  | 1 |  s_1 .. s_n      (2n + delay + 1 ids, s uniform over the symbols)
//   tokens  = seq without its last id                        (2n + delay)
//   scored  = the n reproduced ids, predicted from the 1 onwards; they form the exact-match answer
//
// The delay is one blank token repeated (no information to keep or to count by). Thousands of
// blanks are practical with segmentLength: the sample is cut into ceil(length / segmentLength)
// segments (the last one padded), so a model only ever attends over one segment plus its memory.
//
// Vocabulary: 0 = pad, 1 = start-to-reproduce, 2 = blank, 3 .. numSymbols + 2 = the symbols.
// Shapes: as types.ts (B batch, T = numSegments × segmentLength).
import type { Rng } from './random.js';
import { checkInt, checkKeys, SequenceTask, stripPadding } from './sequence-task.js';
import { resolveSegments, segmentOptionKeys, type SegmentOptions } from './labelled-task.js';
import { START, symbolText } from './symbols.js';

export interface LongCopyOptions extends SegmentOptions {
  /** Source length n (default 16). */
  length?: number;
  /** Blank tokens between the source and the start token (default 256). */
  delay?: number;
  /** Distinct symbols (default 8). */
  numSymbols?: number;
}
const optionKeys = ['length', 'delay', 'numSymbols', ...segmentOptionKeys] as const;

export const LONG_COPY_BLANK = 2;
export const LONG_COPY_FIRST_SYMBOL = 3;
/** Longer runs of blanks are decoded as one `[.×n]`. */
const SHOWN_BLANKS = 8;

export class LongCopyTask extends SequenceTask {
  readonly name = 'long-copy';
  /** Source length n. */
  readonly sourceLength: number;
  readonly delay: number;
  readonly numSymbols: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize: number;
  readonly chance: number;
  protected readonly seqLength: number;
  protected readonly scoredFrom: number;
  protected readonly answerFrom: number;

  constructor(options: LongCopyOptions = {}) {
    super();
    const task = 'long-copy';
    checkKeys(task, options, optionKeys);
    this.sourceLength = checkInt(task, 'length', options.length ?? 16, 1, 1_000_000);
    this.delay = checkInt(task, 'delay', options.delay ?? 256, 0, 10_000_000);
    this.numSymbols = checkInt(task, 'numSymbols', options.numSymbols ?? 8, 2, 1_000_000);
    const n = this.sourceLength;
    this.seqLength = 2 * n + this.delay + 1;
    this.scoredFrom = n + this.delay + 1;
    this.answerFrom = this.scoredFrom;
    ({ numSegments: this.numSegments, segmentLength: this.segmentLength } = resolveSegments(task, options, this.seqLength - 1, { numSegments: 1 }));
    this.vocabSize = LONG_COPY_FIRST_SYMBOL + this.numSymbols;
    this.chance = 1 / this.numSymbols;
  }

  protected generate(rng: Rng, seq: Int32Array): void {
    const n = this.sourceLength;
    for (let i = 0; i < n; i++) seq[i] = LONG_COPY_FIRST_SYMBOL + rng.int(this.numSymbols);
    seq.fill(LONG_COPY_BLANK, n, n + this.delay);
    seq[n + this.delay] = START;
    seq.copyWithin(n + this.delay + 1, 0, n);
  }

  decode(tokens: number[]): string {
    const parts: string[] = [];
    let blanks = 0;
    const flushBlanks = (): void => {
      if (blanks > 0) parts.push(blanks > SHOWN_BLANKS ? `[.×${blanks}]` : '.'.repeat(blanks));
      blanks = 0;
    };
    for (const t of stripPadding(tokens)) {
      if (t === LONG_COPY_BLANK) {
        blanks++;
        continue;
      }
      flushBlanks();
      parts.push(symbolText(t, LONG_COPY_FIRST_SYMBOL, this.numSymbols));
    }
    flushBlanks();
    return parts.join('');
  }
}
