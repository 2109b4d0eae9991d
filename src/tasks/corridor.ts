// Corridor (Expire-Span, Sukhbaatar et al. 2021; SPEC §8), supervised form. In the paper an agent
// sees a coloured cue at the start of a corridor of length Lc and must turn the way the colour
// says at the far end; here the episode is written out as one sequence:
//
//   seq     = c  f_1 .. f_Lc  ?  turn(c)        c the cue colour (uniform), f filler observations,
//                                               ? the decision token, turn(c) the answer
//   tokens  = seq without its last id           (Lc + 2)
//   scored  = turn(c) alone, predicted at the decision token; it is also the exact-match answer
//
// Colour i means turn i (with 2 colours: left, right), so chance is 1/numColours. The fillers are
// drawn uniformly from numFillers distinct tokens (default 3), so the corridor is not one constant
// token the model could trivially skip or count; numFillers 1 gives cells that all look alike.
// Memory needed: one token, Lc + 1 positions back.
//
// Vocabulary: 0 = pad, 1 = decision, 2 .. C + 1 = colours, C + 2 .. 2C + 1 = turns (same order),
// then the numFillers fillers (C = numColours).
// Shapes: as types.ts (B batch, T = numSegments × segmentLength).
import type { Rng } from './random.js';
import { checkInt, checkKeys, SequenceTask, stripPadding } from './sequence-task.js';
import { resolveSegments, segmentOptionKeys, type SegmentOptions } from './labelled-task.js';

export interface CorridorOptions extends SegmentOptions {
  /** Filler observations Lc between the cue and the decision token (default 100). */
  length?: number;
  /** Cue colours, each with its own turn (default 2, at most 26). */
  numColours?: number;
  /** Distinct filler tokens (default 3). */
  numFillers?: number;
}
const optionKeys = ['length', 'numColours', 'numFillers', ...segmentOptionKeys] as const;

export const CORRIDOR_DECISION = 1;
export const CORRIDOR_FIRST_COLOUR = 2;

export class CorridorTask extends SequenceTask {
  readonly name = 'corridor';
  /** Corridor length Lc (filler observations). */
  readonly corridorLength: number;
  readonly numColours: number;
  readonly numFillers: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize: number;
  readonly chance: number;
  /** Id of turn 0 (the turn of colour i is firstTurn + i). */
  readonly firstTurn: number;
  readonly firstFiller: number;
  protected readonly seqLength: number;
  protected readonly scoredFrom: number;
  protected readonly answerFrom: number;

  constructor(options: CorridorOptions = {}) {
    super();
    const task = 'corridor';
    checkKeys(task, options, optionKeys);
    this.corridorLength = checkInt(task, 'length', options.length ?? 100, 0, 10_000_000);
    this.numColours = checkInt(task, 'numColours', options.numColours ?? 2, 2, 26);
    this.numFillers = checkInt(task, 'numFillers', options.numFillers ?? 3, 1, 1000);
    this.seqLength = this.corridorLength + 3;
    this.scoredFrom = this.corridorLength + 2;
    this.answerFrom = this.scoredFrom;
    ({ numSegments: this.numSegments, segmentLength: this.segmentLength } = resolveSegments(task, options, this.seqLength - 1, { numSegments: 1 }));
    this.firstTurn = CORRIDOR_FIRST_COLOUR + this.numColours;
    this.firstFiller = this.firstTurn + this.numColours;
    this.vocabSize = this.firstFiller + this.numFillers;
    this.chance = 1 / this.numColours;
  }

  /** The turn id a cue colour id implies. */
  turnOf(colour: number): number {
    return this.firstTurn + (colour - CORRIDOR_FIRST_COLOUR);
  }

  protected generate(rng: Rng, seq: Int32Array): void {
    const Lc = this.corridorLength;
    const colour = CORRIDOR_FIRST_COLOUR + rng.int(this.numColours);
    seq[0] = colour;
    for (let i = 1; i <= Lc; i++) seq[i] = this.firstFiller + rng.int(this.numFillers);
    seq[Lc + 1] = CORRIDOR_DECISION;
    seq[Lc + 2] = this.turnOf(colour);
  }

  /** Colours as capitals A.., their turns as the small letters, fillers as digits, the decision as '?'. */
  decode(tokens: number[]): string {
    return stripPadding(tokens)
      .map((t) => {
        if (t === CORRIDOR_DECISION) return '?';
        if (t >= CORRIDOR_FIRST_COLOUR && t < this.firstTurn) return String.fromCharCode(65 + t - CORRIDOR_FIRST_COLOUR);
        if (t >= this.firstTurn && t < this.firstFiller) return String.fromCharCode(97 + t - this.firstTurn);
        if (t >= this.firstFiller && t < this.vocabSize) return this.numFillers <= 10 ? String(t - this.firstFiller) : `<f${t - this.firstFiller}>`;
        return t === 0 ? '_' : `<?${t}>`;
      })
      .join('');
  }
}
