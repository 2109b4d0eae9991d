// Reverse (RMT, Bulatov et al. 2022; SPEC §8): write the source backwards after a start token.
//
//   seq     = s_1 .. s_n | 1 | s_n .. s_1                      (2n + 1 ids, s uniform over the symbols)
//   tokens  = seq without its last id                          (2n: 48 for reverse-24, SPEC's total)
//   scored  = the n answer ids, predicted from the 1 onwards; all of them form the exact-match answer
import type { Rng } from './random.js';
import { SequenceTask } from './sequence-task.js';
import { decodeSymbols, FIRST_SYMBOL, resolveSymbolOptions, START, type SymbolTaskOptions } from './symbols.js';

export type ReverseOptions = SymbolTaskOptions;

export class ReverseTask extends SequenceTask {
  readonly name = 'reverse';
  readonly sourceLength: number;
  readonly numSymbols: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize: number;
  readonly chance: number;
  protected readonly seqLength: number;
  protected readonly scoredFrom: number;
  protected readonly answerFrom: number;

  constructor(options: ReverseOptions = {}) {
    super();
    const c = resolveSymbolOptions('reverse', options, (n) => 2 * n);
    this.sourceLength = c.sourceLength;
    this.numSymbols = c.numSymbols;
    this.numSegments = c.numSegments;
    this.segmentLength = c.segmentLength;
    this.vocabSize = FIRST_SYMBOL + c.numSymbols;
    this.chance = 1 / c.numSymbols;
    const n = c.sourceLength;
    this.seqLength = 2 * n + 1;
    this.scoredFrom = n + 1;
    this.answerFrom = n + 1;
  }

  protected generate(rng: Rng, seq: Int32Array): void {
    const n = this.sourceLength;
    for (let i = 0; i < n; i++) {
      const s = FIRST_SYMBOL + rng.int(this.numSymbols);
      seq[i] = s;
      seq[2 * n - i] = s;
    }
    seq[n] = START;
  }

  decode(tokens: number[]): string {
    return decodeSymbols(tokens, this.numSymbols);
  }
}
