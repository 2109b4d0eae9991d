// Character vocabulary for language modelling (SPEC §0, §8): one id per Unicode code point seen
// in a text, in code-point order, so the same set of characters gives the same ids whatever the
// order of the text. Id 0 is reserved for characters the vocabulary has not seen (at evaluation,
// or on a corpus other than the one it was built from).
//
// Saved as a string: toString() is the characters in id order (id 1 first), and
// CharVocab.fromString() restores it, so a checkpoint can carry its vocabulary in its metadata.
import { configError } from '../tensor/errors.js';

export const UNKNOWN_ID = 0;

export class CharVocab {
  /** The characters by id - 1 (id 0 is unknown). */
  readonly chars: readonly string[];
  /** BMP code point -> id (0 unknown); astral code points live in #astral. */
  readonly #bmp = new Int32Array(65536);
  readonly #astral = new Map<number, number>();

  private constructor(chars: string[]) {
    this.chars = chars;
    chars.forEach((ch, i) => {
      const cp = ch.codePointAt(0)!;
      if (cp < 65536) this.#bmp[cp] = i + 1;
      else this.#astral.set(cp, i + 1);
    });
  }

  /** The vocabulary of every code point in text. */
  static fromText(text: string): CharVocab {
    const seen = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      const cp = text.codePointAt(i)!;
      seen.add(cp);
      if (cp > 0xffff) i++;
    }
    return new CharVocab([...seen].sort((a, b) => a - b).map((cp) => String.fromCodePoint(cp)));
  }

  /** Restores a vocabulary saved with toString(). */
  static fromString(saved: string): CharVocab {
    const chars = [...saved];
    const codes = chars.map((c) => c.codePointAt(0)!);
    for (let i = 1; i < codes.length; i++) {
      if (codes[i]! <= codes[i - 1]!) {
        throw configError('CharVocab.fromString', 'not a saved vocabulary (characters must be distinct and in code-point order)');
      }
    }
    return new CharVocab(chars);
  }

  /** Number of ids, the unknown id included: the model's vocabSize. */
  get size(): number {
    return this.chars.length + 1;
  }

  /** The saved form: the characters in id order. */
  toString(): string {
    return this.chars.join('');
  }

  /** Id of one character (a code point), UNKNOWN_ID if it is not in the vocabulary. */
  idOf(ch: string): number {
    const cp = ch.codePointAt(0);
    if (cp === undefined) return UNKNOWN_ID;
    return cp < 65536 ? this.#bmp[cp]! : (this.#astral.get(cp) ?? UNKNOWN_ID);
  }

  /** Ids of every code point of text; unseen characters become UNKNOWN_ID. */
  encode(text: string): Int32Array {
    const out = new Int32Array(text.length); // >= the number of code points
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const u = text.charCodeAt(i);
      if (u >= 0xd800 && u <= 0xdbff && i + 1 < text.length) {
        const cp = text.codePointAt(i)!;
        if (cp > 0xffff) {
          out[n++] = this.#astral.get(cp) ?? UNKNOWN_ID;
          i++;
          continue;
        }
      }
      out[n++] = this.#bmp[u]!;
    }
    return n === out.length ? out : out.slice(0, n);
  }

  /** The text of ids; UNKNOWN_ID (and any id out of range) becomes `unknown` (default U+FFFD). */
  decode(ids: ArrayLike<number>, unknown = '\uFFFD'): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      s += id >= 1 && id <= this.chars.length ? this.chars[id - 1]! : unknown;
    }
    return s;
  }
}
