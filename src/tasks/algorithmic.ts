// Algorithmic task with 3 or 5 variables (Feedback Transformer, Fan et al. 2020; SPEC §8): read a
// program statement by statement and say the value of each printed variable. The state (every
// variable's value) has to be carried and updated all along, which a fixed attention window over
// the raw text cannot do but a recurrent memory can.
//
// Statements, over variables x y z (p r with 5) and values 1..10, as in the paper's generator
// (facebookresearch/transformer-sequential data/gen_data_algo_seq.py), one word per token:
//   v = k ;            only for a variable not assigned yet in this program (the reference's rule:
//                      after every variable has a value, values change by ++ and -- only)
//   v ++ ;  v -- ;     v assigned
//   print v ;          v assigned; labelled with v's value
//   if v < u : s       and `if v > u : s`; u another assigned variable or a constant 1..10 (each
//                      with p = 1/2, < or > with p = 1/2); s one of the three statements above.
//                      s is executed only when the condition holds, but must be valid either way.
// Each statement kind is drawn with p = 1/5; a draw that cannot be made (nothing assigned yet,
// every variable assigned for `=`, `++` of a 10, `--` of a 1) is thrown away and redrawn, so
// values always stay in 1..10 (invalid statements are skipped, never wrapped or clamped).
//
// Label: the printed value, on the `;` of `print v ;` (the reference's `_ _ value` labels), i.e.
// predicted once the whole statement is read. Every other position is unscored. Chance: 1/10.
//
// Sample: programs of numStatements statements (default 100), each followed by END (the variables
// are forgotten there), back to back until `length` tokens (default 512, about one program and the
// start of the next), the last statement cut if it does not fit (a cut `print` is not labelled:
// labels only need the tokens before them). This is the reference's stream of programs, cut into
// independent samples. Segments: default segmentLength 64, the reference's block.
//
// Vocabulary: 0 = pad, then the words in ALGORITHMIC_WORDS order (variables first).
// Shapes: T = numSegments × segmentLength >= length (labelled layout, labelled-task.ts).
import type { Rng } from './random.js';
import { checkInt, checkKeys } from './sequence-task.js';
import { configError } from '../tensor/errors.js';
import { LabelledTask, resolveSegments, segmentOptionKeys, type SegmentOptions } from './labelled-task.js';

export interface AlgorithmicOptions extends SegmentOptions {
  /** Variables, 3 or 5 (default 3). */
  numVariables?: number;
  /** Statements per program (default 100). */
  numStatements?: number;
  /** Tokens per sample (default 512). */
  length?: number;
}
const optionKeys = ['numVariables', 'numStatements', 'length', ...segmentOptionKeys] as const;

export const ALGORITHMIC_VARIABLES = ['x', 'y', 'z', 'p', 'r'] as const;
export const ALGORITHMIC_MIN_VALUE = 1;
export const ALGORITHMIC_MAX_VALUE = 10;
const KEYWORDS = ['=', '++', '--', 'print', 'if', '<', '>', ':', ';', 'END'] as const;
const VALUES = Array.from({ length: ALGORITHMIC_MAX_VALUE - ALGORITHMIC_MIN_VALUE + 1 }, (_, i) => String(ALGORITHMIC_MIN_VALUE + i));

/** The words of a task with numVariables variables; word i is token id i + 1. */
export function algorithmicWords(numVariables: number): string[] {
  return [...ALGORITHMIC_VARIABLES.slice(0, numVariables), ...KEYWORDS, ...VALUES];
}

/** Statement kinds, drawn uniformly. */
const Op = { Assign: 0, Increment: 1, Decrement: 2, If: 3, Print: 4 } as const;
const OP_COUNT = 5;

export class AlgorithmicTask extends LabelledTask {
  readonly name = 'algorithmic';
  readonly numVariables: number;
  readonly numStatements: number;
  readonly length: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize: number;
  readonly chance = 1 / VALUES.length;
  readonly words: readonly string[];
  readonly #id: Record<(typeof KEYWORDS)[number], number>;
  /** Id of value 1 (value k is firstValue + k - 1). */
  readonly firstValue: number;

  constructor(options: AlgorithmicOptions = {}) {
    super();
    const task = 'algorithmic';
    checkKeys(task, options, optionKeys);
    const nv = options.numVariables ?? 3;
    if (nv !== 3 && nv !== 5) throw configError(task, `numVariables must be 3 or 5 (the Feedback paper's two settings), got ${String(nv)}`);
    this.numVariables = nv;
    this.numStatements = checkInt(task, 'numStatements', options.numStatements ?? 100, 1, 1_000_000);
    this.length = checkInt(task, 'length', options.length ?? 512, 1, 10_000_000);
    ({ numSegments: this.numSegments, segmentLength: this.segmentLength } = resolveSegments(task, options, this.length, { segmentLength: 64 }));
    this.words = algorithmicWords(nv);
    const idOf = (w: string): number => this.words.indexOf(w) + 1;
    this.#id = Object.fromEntries(KEYWORDS.map((k) => [k, idOf(k)])) as Record<(typeof KEYWORDS)[number], number>;
    this.firstValue = idOf(VALUES[0]!);
    this.vocabSize = this.words.length + 1;
  }

  /** Token id of a value 1..10. */
  valueId(value: number): number {
    return this.firstValue + value - ALGORITHMIC_MIN_VALUE;
  }

  protected generate(rng: Rng, tokens: Int32Array, labels: Int32Array): void {
    const n = this.length;
    // values[v] of the current program, 0 = not assigned yet; variable v is token id v + 1
    const values = new Int32Array(this.numVariables);
    const statement: number[] = [];
    let at = 0;
    while (at < n) {
      values.fill(0);
      for (let s = 0; s < this.numStatements && at < n; s++) {
        statement.length = 0;
        const printed = this.writeStatement(rng, values, false, statement);
        const fits = Math.min(statement.length, n - at);
        for (let i = 0; i < fits; i++) tokens[at + i] = statement[i]!;
        // the label sits on the closing ';', present only when the whole statement fits
        if (printed > 0 && fits === statement.length) labels[at + fits - 1] = this.valueId(printed);
        at += fits;
      }
      if (at < n) tokens[at++] = this.#id.END;
    }
  }

  /**
   * Draws one valid statement (redrawing invalid ones), applies it to values and appends its ids to
   * out; returns the printed value, or 0. nested: the body of an `if` (no print, no if).
   */
  private writeStatement(rng: Rng, values: Int32Array, nested: boolean, out: number[]): number {
    const id = this.#id;
    for (;;) {
      const op = rng.int(OP_COUNT);
      if (op === Op.Assign) {
        const v = pick(rng, values, (x) => x === 0);
        if (v < 0) continue;
        values[v] = rng.intBetween(ALGORITHMIC_MIN_VALUE, ALGORITHMIC_MAX_VALUE);
        out.push(v + 1, id['='], this.valueId(values[v]!), id[';']);
        return 0;
      }
      if (nested && (op === Op.If || op === Op.Print)) continue;
      const v = pick(rng, values, (x) => x > 0);
      if (v < 0) continue; // nothing assigned yet
      if (op === Op.Increment || op === Op.Decrement) {
        const up = op === Op.Increment;
        if (values[v] === (up ? ALGORITHMIC_MAX_VALUE : ALGORITHMIC_MIN_VALUE)) continue;
        values[v] = values[v]! + (up ? 1 : -1);
        out.push(v + 1, up ? id['++'] : id['--'], id[';']);
        return 0;
      }
      if (op === Op.Print) {
        out.push(id.print, v + 1, id[';']);
        return values[v]!;
      }
      // if v (< or >) u : s
      let compareTo: number, comparand: number;
      if (rng.bernoulli(0.5)) {
        const u = pick(rng, values, (x, i) => x > 0 && i !== v);
        if (u < 0) continue; // only one variable assigned
        compareTo = values[u]!;
        comparand = u + 1;
      } else {
        compareTo = rng.intBetween(ALGORITHMIC_MIN_VALUE, ALGORITHMIC_MAX_VALUE);
        comparand = this.valueId(compareTo);
      }
      const less = rng.bernoulli(0.5);
      const holds = less ? values[v]! < compareTo : values[v]! > compareTo;
      out.push(id.if, v + 1, less ? id['<'] : id['>'], comparand, id[':']);
      // a false condition still needs a body valid for the current values: drawn on a copy
      this.writeStatement(rng, holds ? values : values.slice(), true, out);
      return 0;
    }
  }

  protected word(t: number): string {
    return this.words[t - 1] ?? `<?${t}>`;
  }
}

/** A uniformly chosen index i with ok(values[i], i), or -1 when there is none. */
function pick(rng: Rng, values: Int32Array, ok: (value: number, i: number) => boolean): number {
  let count = 0;
  for (let i = 0; i < values.length; i++) if (ok(values[i]!, i)) count++;
  if (count === 0) return -1;
  let k = rng.int(count);
  for (let i = 0; i < values.length; i++) if (ok(values[i]!, i) && k-- === 0) return i;
  return -1;
}
