// Quadratic equations (RMT, Bulatov et al. 2022; SPEC §8): solve step by step, character by
// character, in six blocks of 30 characters:
//
//   1 equation        -4*x^2+392*x-2208=0          α x² − α(x1+x2) x + α x1 x2 = 0
//   2 canonical form  x^2-98*x+552=0                the equation divided by α: x² + b x + c = 0
//   3 discriminant    D=98^2-4*1*552=7396=86^2     D = b² − 4·1·c, then D = r² (r = x2 − x1)
//   4 first root      x=(98-86)/2=6                 (−b − r)/2
//   5 second root     x=(98+86)/2=92                (−b + r)/2
//   6 answer          6,92                          x1,x2 with x1 <= x2
//
// Roots x1, x2 uniform integers in [-100, 100]; α uniform in ±{1..10}. Each block is its text
// followed by spaces up to 30 characters (the longest text is 27), so block k starts at 30(k-1).
//
// No real roots (noRealRootsFraction of the samples, default 0.2): b = −(u + v) with u, v drawn
// like roots (so b has the same distribution), and c uniform in (b²/4, 10000] so D = b² − 4c < 0.
// Those samples read
//   3  D=98^2-4*1*2500=-396<0       4  x=none       5  x=none       6  none
//
// Formatting: a coefficient ±1 is written as a bare sign (x^2, -x, ...), a zero term is left out
// (x^2-25=0), the discriminant writes |b|² and folds the sign of c into the operator
// (c < 0: D=0^2+4*1*25=100=10^2), and −b is written with its sign ((-10-86)/2).
//
// Layout: seq = the 180 characters; tokens = seq without its last character (179 real tokens,
// padded to numSegments × segmentLength); loss on every character of blocks 2–6 (filler spaces
// included, they say where a block ends); exact match on the whole answer block (block 6).
// Vocabulary: 0 = pad, then the characters of QUADRATIC_CHARS in order.
import type { Rng } from './random.js';
import { checkKeys, SequenceTask, segmentSizes } from './sequence-task.js';
import { configError, shapeError } from '../tensor/errors.js';
import { PAD, type AnswerKinds } from './types.js';

export interface QuadraticEquationsOptions {
  /** Segments the sample is cut into (default 1; 6 puts one 30-character block in each segment). */
  numSegments?: number;
  /** Fraction of samples with no real roots (default 0.2). */
  noRealRootsFraction?: number;
}
const optionKeys = ['numSegments', 'noRealRootsFraction'] as const;

export const QUADRATIC_BLOCK_WIDTH = 30;
export const QUADRATIC_BLOCKS = 6;
/** Token id i + 1 is the i-th character; ' ' is the block filler. */
export const QUADRATIC_CHARS = ' 0123456789+-*/^=(),<Dxnoe';
const MAX_ROOT = 100;
const MAX_SCALE = 10;
const MAX_C_NO_ROOTS = MAX_ROOT * MAX_ROOT;

/** `a*x^2+b*x+c=0` with ±1 coefficients as bare signs and zero terms left out (a !== 0). */
export function formatQuadratic(a: number, b: number, c: number): string {
  const sq = a === 1 ? 'x^2' : a === -1 ? '-x^2' : `${a}*x^2`;
  const lin = b === 0 ? '' : (b > 0 ? '+' : '-') + (Math.abs(b) === 1 ? 'x' : `${Math.abs(b)}*x`);
  const cst = c === 0 ? '' : (c > 0 ? '+' : '-') + Math.abs(c);
  return `${sq}${lin}${cst}=0`;
}

/** The six block texts (unpadded) for x² + b x + c = 0 scaled by alpha. */
export function quadraticBlocks(alpha: number, b: number, c: number): string[] {
  const D = b * b - 4 * c;
  const head = `D=${Math.abs(b)}^2${c >= 0 ? '-' : '+'}4*1*${Math.abs(c)}=${D}`;
  const blocks = [formatQuadratic(alpha, alpha * b, alpha * c), formatQuadratic(1, b, c)];
  if (D < 0) return [...blocks, `${head}<0`, 'x=none', 'x=none', 'none'];
  const r = Math.round(Math.sqrt(D));
  if (r * r !== D) throw configError('quadraticBlocks', `D = ${D} is not a perfect square; give b and c of a quadratic with integer roots`); // unreachable from sample()
  const x1 = (-b - r) / 2, x2 = (-b + r) / 2;
  return [...blocks, `${head}=${r}^2`, `x=(${-b}-${r})/2=${x1}`, `x=(${-b}+${r})/2=${x2}`, `${x1},${x2}`];
}

const charId = new Map<string, number>([...QUADRATIC_CHARS].map((ch, i) => [ch, i + 1]));
/** Id of 'n', the first character of the answer 'none'. */
const NONE_FIRST = charId.get('n')!;

export class QuadraticEquationsTask extends SequenceTask {
  readonly name = 'quadratic-equations';
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly noRealRootsFraction: number;
  readonly vocabSize = QUADRATIC_CHARS.length + 1;
  /** Guessing uniformly among the non-pad characters (a loose floor: much of a block is forced). */
  readonly chance = 1 / QUADRATIC_CHARS.length;
  protected readonly seqLength = QUADRATIC_BLOCKS * QUADRATIC_BLOCK_WIDTH;
  protected readonly scoredFrom = QUADRATIC_BLOCK_WIDTH;
  protected readonly answerFrom = (QUADRATIC_BLOCKS - 1) * QUADRATIC_BLOCK_WIDTH;
  /**
   * Exact match is reported apart for equations with and without real roots: about a fifth have
   * none, and a model answering 'none' to everything would otherwise still score. The kind is read
   * from the answer block's first character (targets[p] = seq[p + 1]): 'n' of 'none'.
   */
  readonly answerKinds: AnswerKinds = {
    names: ['realRoots', 'noRealRoots'],
    of: (targets) => (targets[this.answerFrom - 1] === NONE_FIRST ? 1 : 0),
  };

  constructor(options: QuadraticEquationsOptions = {}) {
    super();
    const task = 'quadratic-equations';
    checkKeys(task, options, optionKeys);
    const f = options.noRealRootsFraction ?? 0.2;
    if (typeof f !== 'number' || !(f >= 0 && f <= 1)) throw configError(task, `noRealRootsFraction must be a number in [0, 1], got ${String(f)}`);
    this.noRealRootsFraction = f;
    this.numSegments = options.numSegments ?? 1;
    this.segmentLength = segmentSizes(task, this.seqLength - 1, this.numSegments);
  }

  protected generate(rng: Rng, seq: Int32Array): void {
    const alpha = (rng.int(2) === 0 ? -1 : 1) * rng.intBetween(1, MAX_SCALE);
    let b: number, c: number;
    if (rng.bernoulli(this.noRealRootsFraction)) {
      do b = -(rng.intBetween(-MAX_ROOT, MAX_ROOT) + rng.intBetween(-MAX_ROOT, MAX_ROOT));
      while (Math.floor((b * b) / 4) >= MAX_C_NO_ROOTS); // only b = ±200 has no c left
      const cMin = Math.floor((b * b) / 4) + 1;
      c = rng.intBetween(cMin, MAX_C_NO_ROOTS);
    } else {
      const x1 = rng.intBetween(-MAX_ROOT, MAX_ROOT), x2 = rng.intBetween(-MAX_ROOT, MAX_ROOT);
      b = -(x1 + x2);
      c = x1 * x2;
    }
    const blocks = quadraticBlocks(alpha, b, c);
    for (let k = 0; k < QUADRATIC_BLOCKS; k++) {
      const text = blocks[k]!;
      if (text.length > QUADRATIC_BLOCK_WIDTH) throw shapeError('quadratic-equations', `block '${text}' is wider than ${QUADRATIC_BLOCK_WIDTH}`);
      for (let i = 0; i < QUADRATIC_BLOCK_WIDTH; i++) {
        seq[k * QUADRATIC_BLOCK_WIDTH + i] = i < text.length ? charId.get(text[i]!)! : 1; // 1 = ' '
      }
    }
  }

  /** The blocks' texts joined by ';' (SPEC's notation), e.g. `x^2-98*x+552=0;D=...;6,92`. */
  decode(tokens: number[]): string {
    const chars = tokens.map((t) => (t === PAD ? '' : (QUADRATIC_CHARS[t - 1] ?? '?')));
    const blocks: string[] = [];
    for (let k = 0; k * QUADRATIC_BLOCK_WIDTH < chars.length; k++) {
      const text = chars.slice(k * QUADRATIC_BLOCK_WIDTH, (k + 1) * QUADRATIC_BLOCK_WIDTH).join('').trimEnd();
      if (text.length > 0) blocks.push(text);
    }
    return blocks.join(';');
  }
}
