// Reverse (RMT, Bulatov et al. 2022; SPEC §8): write the source backwards after a start token.
//
//   seq     = s_1 .. s_n | 1 | s_n .. s_1                      (2n + 1 ids, s uniform over the symbols)
//   tokens  = seq without its last id                          (2n: 48 for reverse-24, SPEC's total)
//   scored  = the n answer ids, predicted from the 1 onwards; all of them form the exact-match answer
import { SymbolTask, type SymbolTaskOptions } from './symbols.js';

export type ReverseOptions = SymbolTaskOptions;

export class ReverseTask extends SymbolTask {
  readonly name = 'reverse';
  constructor(options: ReverseOptions = {}) {
    super('reverse', options, (n) => n);
  }
  protected writeAnswer(source: Int32Array, answer: Int32Array): void {
    for (let i = 0; i < source.length; i++) answer[i] = source[source.length - 1 - i]!;
  }
}
