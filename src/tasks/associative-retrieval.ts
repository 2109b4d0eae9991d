// Associative retrieval (RMT, Bulatov et al. 2022; SPEC §8): numPairs (key, value) pairs, then a
// query key and '?'; the answer is the value paired with the queried key.
//
//   seq    = k_1 v_1 .. k_P v_P q ? v_q        keys distinct letters, values distinct digits
//                                               (both drawn without replacement), q one of the keys
//   tokens = seq without its last id            (2P + 2: 10 input tokens for P = 4)
//   scored = the one answer id v_q, predicted at the '?'; it is also the exact-match answer
//
// Vocabulary: 0 = pad, 1 = '?', 2 .. numKeys + 1 = keys 'a'.., then numValues values '0'..
import type { Rng } from './random.js';
import { checkInt, checkKeys, SequenceTask, segmentSizes, stripPadding } from './sequence-task.js';
import { PAD } from './types.js';

export interface AssociativeRetrievalOptions {
  /** (key, value) pairs before the query (default 4). */
  numPairs?: number;
  /** Distinct keys, the letters a.. (default 26, at most 26). */
  numKeys?: number;
  /** Distinct values, the digits 0.. (default 10, at most 10). */
  numValues?: number;
  /** Segments the sample is cut into (default 1). */
  numSegments?: number;
}
const keys = ['numPairs', 'numKeys', 'numValues', 'numSegments'] as const;

export const QUERY = 1;
export const FIRST_KEY = 2;

export class AssociativeRetrievalTask extends SequenceTask {
  readonly name = 'associative-retrieval';
  readonly numPairs: number;
  readonly numKeys: number;
  readonly numValues: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize: number;
  readonly chance: number;
  /** Id of the first value (digit 0). */
  readonly firstValue: number;
  protected readonly seqLength: number;
  protected readonly scoredFrom: number;
  protected readonly answerFrom: number;
  readonly #keyIds: number[] = [];
  readonly #valueIds: number[] = [];

  constructor(options: AssociativeRetrievalOptions = {}) {
    super();
    const task = 'associative-retrieval';
    checkKeys(task, options, keys);
    this.numKeys = checkInt(task, 'numKeys', options.numKeys ?? 26, 1, 26);
    this.numValues = checkInt(task, 'numValues', options.numValues ?? 10, 1, 10);
    // without replacement on both sides: at most min(numKeys, numValues) pairs
    this.numPairs = checkInt(task, 'numPairs', options.numPairs ?? 4, 1, Math.min(this.numKeys, this.numValues));
    const P = this.numPairs;
    this.seqLength = 2 * P + 3;
    this.scoredFrom = 2 * P + 2;
    this.answerFrom = 2 * P + 2;
    this.numSegments = options.numSegments ?? 1;
    this.segmentLength = segmentSizes(task, this.seqLength - 1, this.numSegments);
    this.firstValue = FIRST_KEY + this.numKeys;
    this.vocabSize = this.firstValue + this.numValues;
    this.chance = 1 / this.numValues;
    for (let i = 0; i < this.numKeys; i++) this.#keyIds.push(FIRST_KEY + i);
    for (let i = 0; i < this.numValues; i++) this.#valueIds.push(this.firstValue + i);
  }

  protected generate(rng: Rng, seq: Int32Array): void {
    const P = this.numPairs;
    const k = rng.sampleWithoutReplacement(this.numKeys, P);
    const v = rng.sampleWithoutReplacement(this.numValues, P);
    for (let i = 0; i < P; i++) {
      seq[2 * i] = this.#keyIds[k[i]!]!;
      seq[2 * i + 1] = this.#valueIds[v[i]!]!;
    }
    const q = rng.int(P);
    seq[2 * P] = this.#keyIds[k[q]!]!;
    seq[2 * P + 1] = QUERY;
    seq[2 * P + 2] = this.#valueIds[v[q]!]!;
  }

  decode(tokens: number[]): string {
    return stripPadding(tokens)
      .map((t) => {
        if (t === PAD) return '_';
        if (t === QUERY) return '?';
        if (t >= FIRST_KEY && t < this.firstValue) return String.fromCharCode(97 + t - FIRST_KEY);
        if (t >= this.firstValue && t < this.vocabSize) return String(t - this.firstValue);
        return `<?${t}>`;
      })
      .join('');
  }
}
