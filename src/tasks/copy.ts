// Copy (RMT, Bulatov et al. 2022; SPEC §8): reproduce the source twice after a start token.
//
//   seq     = s_1 .. s_n | 1 | s_1 .. s_n s_1 .. s_n          (3n + 1 ids, s uniform over the symbols)
//   tokens  = seq without its last id                          (3n: 72 for copy-24, SPEC's total)
//   scored  = the 2n answer ids, predicted from the 1 onwards; all of them form the exact-match answer
import { SymbolTask, type SymbolTaskOptions } from './symbols.js';

export type CopyOptions = SymbolTaskOptions;

export class CopyTask extends SymbolTask {
  readonly name = 'copy';
  constructor(options: CopyOptions = {}) {
    super('copy', options, (n) => 2 * n);
  }
  protected writeAnswer(source: Int32Array, answer: Int32Array): void {
    answer.set(source, 0);
    answer.set(source, source.length);
  }
}
