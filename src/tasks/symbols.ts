// Shared by copy and reverse (RMT, SPEC §8): token ids, options and decoding.
//
// Vocabulary: 0 = pad, 1 = start-to-generate, 2 .. numSymbols + 1 = the symbols.
// Decoded symbols are the characters 0-9, a-z, A-Z (up to 62 symbols), else <id>.
import { checkInt, checkKeys, segmentSizes, stripPadding } from './sequence-task.js';
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

export function decodeSymbols(tokens: number[], numSymbols: number): string {
  const symbol = (t: number): string => {
    if (t === PAD) return '_';
    if (t === START) return '|';
    const k = t - FIRST_SYMBOL;
    if (k >= 0 && k < numSymbols) return numSymbols <= ALPHABET.length ? ALPHABET[k]! : `<${k}>`;
    return `<?${t}>`;
  };
  return stripPadding(tokens).map(symbol).join('');
}
