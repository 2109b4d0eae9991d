// Object collision (Expire-Span, Sukhbaatar et al. 2021; SPEC §8): two particles move on a 16×16
// grid and change colour now and then; each frame asks where the last collision between two given
// colours happened. The answer can lie thousands of tokens back, so it measures how long a model
// keeps the few memories that matter.
//
// Simulation (one independent episode per sample), following the paper's generator
// (facebookresearch/transformer-sequential data/gen_data_collisions.py) where SPEC is terse:
// - Positions are continuous: each particle starts uniform in [0, 15)², its cell is the position
//   rounded to the nearest integer (0..15 per axis; .5 ties have probability zero).
// - Velocity: per axis ~ N(0, 0.5²). "Resampled at the border": before each move, while the next
//   position would leave the open square (0, 15)², the whole velocity is redrawn (no reflection);
//   then the particle moves by it and keeps that velocity for the next frames.
// - Colours: 5, uniform at the start; after its move each particle, with p = 0.05, redraws its
//   colour uniformly among the 5 (it may draw the same one, as the reference does).
// - Collision: after both particles moved, both in the same cell. It is recorded for the ordered
//   colour pair (colour of particle 1, colour of particle 2), overwriting that pair's earlier one,
//   and it becomes the most recent collision.
// - Query: with p = easyQueryProb (0.4, the reference's easy_q) the pair of the most recent
//   collision, else two colours drawn independently and uniformly (also when nothing has collided
//   yet). A query (a, b) asks about collisions with particle 1 coloured a and particle 2 coloured b,
//   the pair order of the frame itself.
// - Label, on the frame's last token: the quadrant of the pair's last collision cell (x, y),
//   1 + 2·[x >= 8] + [y >= 8], i.e. 1 = (x < 8, y < 8), 2 = (x < 8, y >= 8), 3 = (x >= 8, y < 8),
//   4 = both >= 8 (the reference's bin_location + 1); 0 when the pair has never collided. The
//   reference trains and scores only labels 1–4 (--data-omit-labels 0): so does this task unless
//   scoreNoCollision is set, which scores label 0 too. Chance: 1/4 (1/5 with label 0).
//
// Frame = 8 tokens: x1, y1 + 16, c1 + 32, x2, y2 + 16, c2 + 32, a + 37, b + 37 (SPEC numbering).
// Ids: SPEC token t is id t + 1, so that 0 stays the padding id of every task (the reference maps
// its tokens through a dictionary anyway); label q is id FIRST_QUADRANT_LABEL + q, an id that is
// never an input. Vocabulary: 0 pad, 1..42 frame tokens, 43..47 labels 0..4.
// Shapes: T = numSegments × segmentLength >= 8 × frames (labelled layout, labelled-task.ts).
import type { Rng } from './random.js';
import { checkInt, checkKeys, stripPadding } from './sequence-task.js';
import { checkBoolean, checkProbability, LabelledTask, resolveSegments, segmentOptionKeys, type SegmentOptions } from './labelled-task.js';
import { IGNORE_INDEX } from './types.js';

export interface ObjectCollisionOptions extends SegmentOptions {
  /** Frames per sample (default 256: 2,048 tokens). Segments: default segmentLength 256, the reference's block. */
  frames?: number;
  /** Score frames whose queried pair never collided (label 0) too (default false, as the reference). */
  scoreNoCollision?: boolean;
  /** Probability that a frame queries the most recent collision's pair (default 0.4). */
  easyQueryProb?: number;
}
const optionKeys = ['frames', 'scoreNoCollision', 'easyQueryProb', ...segmentOptionKeys] as const;

export const COLLISION_GRID = 16;
export const COLLISION_COLOURS = 5;
export const COLLISION_FRAME_TOKENS = 8;
const PARTICLES = 2;
const SPEED = 0.5;
const COLOUR_CHANGE_PROB = 0.05;
/** SPEC token t is id t + TOKEN_OFFSET. */
export const COLLISION_TOKEN_OFFSET = 1;
/** First ids of each field (SPEC numbering + TOKEN_OFFSET). */
export const COLLISION_X = COLLISION_TOKEN_OFFSET;
export const COLLISION_Y = COLLISION_TOKEN_OFFSET + COLLISION_GRID;
export const COLLISION_COLOUR = COLLISION_TOKEN_OFFSET + 2 * COLLISION_GRID;
export const COLLISION_QUERY = COLLISION_COLOUR + COLLISION_COLOURS;
/** Id of label 0 (no collision); quadrant q is FIRST_QUADRANT_LABEL + q. */
export const FIRST_QUADRANT_LABEL = COLLISION_QUERY + COLLISION_COLOURS;

/** Quadrant 1..4 of a cell (file header). */
export const quadrantOf = (x: number, y: number): number => 1 + 2 * (x >= COLLISION_GRID / 2 ? 1 : 0) + (y >= COLLISION_GRID / 2 ? 1 : 0);

/** A standard normal draw (Box–Muller, cosine branch; 1 - u keeps the log finite). */
function normal(rng: Rng): number {
  const u = 1 - rng.float(), v = rng.float();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Strictly inside the open square (0, GRID - 1)², where a particle may move to. */
const inside = (z: number): boolean => z > 0 && z < COLLISION_GRID - 1;

export class ObjectCollisionTask extends LabelledTask {
  readonly name = 'object-collision';
  readonly frames: number;
  readonly scoreNoCollision: boolean;
  readonly easyQueryProb: number;
  readonly length: number;
  readonly numSegments: number;
  readonly segmentLength: number;
  readonly vocabSize = FIRST_QUADRANT_LABEL + 5;
  readonly chance: number;

  constructor(options: ObjectCollisionOptions = {}) {
    super();
    const task = 'object-collision';
    checkKeys(task, options, optionKeys);
    this.frames = checkInt(task, 'frames', options.frames ?? 256, 1, 10_000_000);
    this.scoreNoCollision = checkBoolean(task, 'scoreNoCollision', options.scoreNoCollision ?? false);
    this.easyQueryProb = checkProbability(task, 'easyQueryProb', options.easyQueryProb ?? 0.4);
    this.length = COLLISION_FRAME_TOKENS * this.frames;
    ({ numSegments: this.numSegments, segmentLength: this.segmentLength } = resolveSegments(task, options, this.length, { segmentLength: 256 }));
    this.chance = this.scoreNoCollision ? 1 / 5 : 1 / 4;
  }

  protected generate(rng: Rng, tokens: Int32Array, labels: Int32Array): void {
    const C = COLLISION_COLOURS;
    const posX = new Float64Array(PARTICLES), posY = new Float64Array(PARTICLES);
    const velX = new Float64Array(PARTICLES), velY = new Float64Array(PARTICLES);
    const cellX = new Int32Array(PARTICLES), cellY = new Int32Array(PARTICLES);
    const colour = new Int32Array(PARTICLES);
    // quadrant (1..4) of the last collision of each ordered colour pair a·C + b; 0: none yet
    const lastQuadrant = new Int32Array(C * C);
    let lastPair = -1;
    for (let p = 0; p < PARTICLES; p++) {
      posX[p] = rng.float() * (COLLISION_GRID - 1);
      posY[p] = rng.float() * (COLLISION_GRID - 1);
      velX[p] = SPEED * normal(rng);
      velY[p] = SPEED * normal(rng);
      colour[p] = rng.int(C);
    }
    for (let f = 0; f < this.frames; f++) {
      for (let p = 0; p < PARTICLES; p++) {
        while (!inside(posX[p]! + velX[p]!) || !inside(posY[p]! + velY[p]!)) {
          velX[p] = SPEED * normal(rng);
          velY[p] = SPEED * normal(rng);
        }
        posX[p] = posX[p]! + velX[p]!;
        posY[p] = posY[p]! + velY[p]!;
        cellX[p] = Math.round(posX[p]!);
        cellY[p] = Math.round(posY[p]!);
        if (rng.bernoulli(COLOUR_CHANGE_PROB)) colour[p] = rng.int(C);
      }
      if (cellX[0] === cellX[1] && cellY[0] === cellY[1]) {
        lastPair = colour[0]! * C + colour[1]!;
        lastQuadrant[lastPair] = quadrantOf(cellX[0]!, cellY[0]!);
      }
      const at = COLLISION_FRAME_TOKENS * f;
      for (let p = 0; p < PARTICLES; p++) {
        tokens[at + 3 * p] = COLLISION_X + cellX[p]!;
        tokens[at + 3 * p + 1] = COLLISION_Y + cellY[p]!;
        tokens[at + 3 * p + 2] = COLLISION_COLOUR + colour[p]!;
      }
      const easy = rng.bernoulli(this.easyQueryProb);
      const pair = easy && lastPair >= 0 ? lastPair : rng.int(C) * C + rng.int(C);
      tokens[at + 6] = COLLISION_QUERY + Math.floor(pair / C);
      tokens[at + 7] = COLLISION_QUERY + (pair % C);
      const quadrant = lastQuadrant[pair]!;
      labels[at + 7] = quadrant > 0 || this.scoreNoCollision ? FIRST_QUADRANT_LABEL + quadrant : IGNORE_INDEX;
    }
  }

  /** x and y as numbers, colours as capitals A..E, query colours as a..e, labels as Q0..Q4. */
  protected word(t: number): string {
    if (t >= COLLISION_X && t < COLLISION_Y) return String(t - COLLISION_X);
    if (t >= COLLISION_Y && t < COLLISION_COLOUR) return String(t - COLLISION_Y);
    if (t >= COLLISION_COLOUR && t < COLLISION_QUERY) return String.fromCharCode(65 + t - COLLISION_COLOUR);
    if (t >= COLLISION_QUERY && t < FIRST_QUADRANT_LABEL) return String.fromCharCode(97 + t - COLLISION_QUERY);
    if (t >= FIRST_QUADRANT_LABEL && t < this.vocabSize) return `Q${t - FIRST_QUADRANT_LABEL}`;
    return `<?${t}>`;
  }

  /** One frame per group: `x,y,C x,y,C ?ab`, frames separated by ' | '. */
  override decode(tokens: number[]): string {
    const row = stripPadding(tokens);
    const frames: string[] = [];
    for (let at = 0; at < row.length; at += COLLISION_FRAME_TOKENS) {
      const w = row.slice(at, at + COLLISION_FRAME_TOKENS).map((t) => this.word(t));
      frames.push(w.length === COLLISION_FRAME_TOKENS ? `${w[0]},${w[1]},${w[2]} ${w[3]},${w[4]},${w[5]} ?${w[6]}${w[7]}` : w.join(' '));
    }
    return frames.join(' | ');
  }
}
