// Curriculum over segments (issue 13; the RMT authors' later work, Bulatov et al. 2023, trains long
// inputs this way): one run starts a task cut into few segments and cuts it into more as it goes,
// continuing from the current weights and optimiser state.
//
//   train.curriculum = {
//     segments: [1, 2, 3, 6, 9] | { from: 1, to: 9, step?: 1 } | '1,2,3,6,9' | '1..9' | '1..9/2',
//     advance:  { everySteps?: N, metric?: 'accuracy' | 'exactMatch' | 'loss', threshold?: x, patience?: k },
//     finalEval?: 'target' | 'stage',
//   }
//
// Stage s (1-based) trains and evaluates the task with segments[s - 1] segments (data.options'
// numSegments replaced; the sample is the same, cut finer). A stage ends, and the next starts at
// the following step, when
//   - everySteps: N steps have been taken in it, or
//   - threshold: `patience` evaluations in a row of the stage (train.evalEvery) reached the
//     threshold (accuracy / exact match >= x, loss <= x);
// whichever comes first when both are given. The last stage (the target) lasts to the end of the run.
// At the end of the run, finalEval 'target' (the default) evaluates at the target's count if the
// last evaluation was at another, and that evaluation is the run's final one (its headline, the
// experiment tables); 'stage' keeps the last stage's.
//
// The resolved configuration holds the stages as a list and data.options.numSegments = the target,
// so the run directory is named after, and `engram eval` evaluates at, the count it is trained for.
// The model is built once: memory sizes given relative to the segment ('segment', 'segment/N')
// resolve against the target's segment length. Only the stage, where it began and the evaluations
// passed so far change during the run; they are saved in the checkpoint (CurriculumState), so a
// resumed run continues mid-curriculum exactly.
//
// State between segment counts: a task run starts every sample from model.initState(B) (no
// memory is carried from one batch to the next), so a new count needs no reset of carried
// memory; the task generator's position (the data RNG) carries on across stages.
import { z } from 'zod';
import { configError } from '../tensor/index.js';
import type { Metrics } from './metrics.js';

const positiveInt = z.number().int().positive();
/** Segment counts above this are a typo (a task of 65,536 segments). */
const MAX_STAGE_SEGMENTS = 65_536;
const segmentCount = positiveInt.max(MAX_STAGE_SEGMENTS);

const stageText = /^\s*(\d+)\s*\.\.\s*(\d+)\s*(?:\/\s*(\d+)\s*)?$/;

const segmentsForms = "must be a list of segment counts [1, 2, 3], { from, to, step }, or text '1,2,3', '1..9' or '1..9/2'";
/** The stages' segment counts, in any of the accepted forms. */
const segmentsSchema = z.union([
  z.array(segmentCount),
  z.strictObject({ from: segmentCount, to: segmentCount, step: segmentCount.default(1) }),
  z.string().regex(/^\s*\d+(\s*,\s*\d+)*\s*$|^\s*\d+\s*\.\.\s*\d+\s*(\/\s*\d+\s*)?$/, segmentsForms),
], { error: segmentsForms });

export const curriculumMetrics = ['accuracy', 'exactMatch', 'loss'] as const;
export type CurriculumMetric = (typeof curriculumMetrics)[number];

export const curriculumSchema = z.strictObject({
  segments: segmentsSchema,
  advance: z.strictObject({
    /** Steps a stage lasts (counted from its first step). */
    everySteps: positiveInt.optional(),
    /** The held-out metric the threshold is on (default accuracy); loss must fall to it, the others rise. */
    metric: z.enum(curriculumMetrics).optional(),
    threshold: z.number().optional(),
    /** Evaluations in a row at or past the threshold before the stage ends (default 1). */
    patience: positiveInt.optional(),
  }),
  /** 'target': the run's final evaluation is at the target's number of segments; 'stage': at the stage reached. */
  finalEval: z.enum(['target', 'stage']).optional(),
});

export type CurriculumInput = z.input<typeof curriculumSchema>;

/** A resolved curriculum: the stages as a list, the defaults filled. */
export interface CurriculumConfig {
  /** Segment counts of the stages, strictly increasing; the last is the target. */
  segments: number[];
  advance: { everySteps?: number; metric?: CurriculumMetric; threshold?: number; patience?: number };
  finalEval: 'target' | 'stage';
}

/** The stage lists '1,2,3', '1..9' and '1..9/2' (from..to by step) and { from, to, step } stand for. */
function expand(segments: z.output<typeof segmentsSchema>): number[] | string {
  let from: number, to: number, step: number;
  if (Array.isArray(segments)) return segments;
  if (typeof segments === 'string') {
    const range = stageText.exec(segments);
    if (!range) return segments.split(',').map((s) => Number(s.trim()));
    [from, to, step] = [Number(range[1]), Number(range[2]), Number(range[3] ?? 1)];
    if (step < 1) return `the step of '${segments}' must be >= 1`;
  } else {
    ({ from, to, step } = segments);
  }
  if (to <= from) return `a range must rise: from ${from} to ${to}`;
  if ((to - from) / step > MAX_STAGE_SEGMENTS) return `${from}..${to} by ${step} makes too many stages`;
  const list: number[] = [];
  for (let n = from; n < to; n += step) list.push(n);
  list.push(to); // the target is always a stage, even when the step skips past it
  return list;
}

/**
 * Checks a parsed curriculum on its own (stages, advance rule) and returns it resolved, or the
 * problems as lines `train.curriculum...: ...` for the configuration's error.
 */
export function resolveCurriculum(parsed: z.output<typeof curriculumSchema>, evalEvery: number): { curriculum: CurriculumConfig | null; problems: string[] } {
  const problems: string[] = [];
  const at = 'train.curriculum';
  const segments = expand(parsed.segments);
  if (typeof segments === 'string') problems.push(`${at}.segments: ${segments}`);
  else {
    if (segments.length < 2) problems.push(`${at}.segments: a curriculum needs at least 2 stages (got ${JSON.stringify(segments)}); for one, set data.options.numSegments and leave the curriculum out`);
    if (segments.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_STAGE_SEGMENTS)) problems.push(`${at}.segments: every count must be an integer in [1, ${MAX_STAGE_SEGMENTS}] (got ${JSON.stringify(segments)})`);
    else if (segments.some((n, i) => i > 0 && n <= segments[i - 1]!)) problems.push(`${at}.segments: counts must rise from stage to stage (got ${JSON.stringify(segments)})`);
  }
  const a = parsed.advance;
  if (a.everySteps === undefined && a.threshold === undefined) {
    problems.push(`${at}.advance: give everySteps (a stage lasts that many steps) and/or threshold (a stage ends when the held-out ${a.metric ?? 'accuracy'} reaches it)`);
  }
  if (a.threshold === undefined && (a.metric !== undefined || a.patience !== undefined)) {
    problems.push(`${at}.advance: metric and patience go with a threshold; add advance.threshold`);
  }
  if (a.threshold !== undefined && evalEvery === 0) {
    problems.push(`${at}.advance.threshold: the threshold is checked at evaluations, but train.evalEvery is 0 (only at the end); set train.evalEvery (--eval-every)`);
  }
  if (problems.length || typeof segments === 'string') return { curriculum: null, problems };
  const advance: CurriculumConfig['advance'] = {
    ...(a.everySteps !== undefined ? { everySteps: a.everySteps } : {}),
    ...(a.threshold !== undefined ? { metric: a.metric ?? 'accuracy', threshold: a.threshold, patience: a.patience ?? 1 } : {}),
  };
  return { curriculum: { segments, advance, finalEval: parsed.finalEval ?? 'target' }, problems };
}

/** Where a run stands in its curriculum; saved in the checkpoint. */
export interface CurriculumState {
  /** The stage now, 1-based. */
  stage: number;
  /** The step the stage began after (0 for the first). */
  stageStart: number;
  /** Evaluations in a row of this stage at or past the threshold. */
  passes: number;
}

export const curriculumStateSchema = z.strictObject({
  stage: positiveInt,
  stageStart: z.number().int().min(0),
  passes: z.number().int().min(0),
});

/** Why a stage ended. */
export type AdvanceReason = 'steps' | 'threshold';

/** The stage bookkeeping of a run: which stage, and whether an evaluation or a step ends it. */
export class Curriculum {
  #state: CurriculumState = { stage: 1, stageStart: 0, passes: 0 };

  constructor(readonly config: CurriculumConfig) {}

  get stage(): number {
    return this.#state.stage;
  }

  get stages(): number {
    return this.config.segments.length;
  }

  /** Segments of the stage now. */
  get segments(): number {
    return this.config.segments[this.#state.stage - 1]!;
  }

  /** Segments of the last stage. */
  get target(): number {
    return this.config.segments[this.config.segments.length - 1]!;
  }

  get atTarget(): boolean {
    return this.#state.stage === this.stages;
  }

  /** 'stage 2/5 (3 segments)'. */
  describe(): string {
    return `stage ${this.stage}/${this.stages} (${this.segments} segment${this.segments === 1 ? '' : 's'})`;
  }

  state(): CurriculumState {
    return { ...this.#state };
  }

  restore(state: CurriculumState): void {
    if (state.stage > this.stages) {
      throw configError('resume', `the checkpoint is at curriculum stage ${state.stage}, but train.curriculum has ${this.stages} stages; resume with the curriculum it was written with`);
    }
    this.#state = { ...state };
  }

  /** Whether an evaluation of the stage reached the threshold; counts it towards patience. */
  passes(m: Metrics): boolean {
    const a = this.config.advance;
    if (a.threshold === undefined || this.atTarget) return false;
    const value = m[a.metric ?? 'accuracy'];
    const passed = value !== undefined && Number.isFinite(value) && (a.metric === 'loss' ? value <= a.threshold : value >= a.threshold);
    this.#state.passes = passed ? this.#state.passes + 1 : 0;
    return passed;
  }

  /**
   * After step `step` (its evaluation, if any, counted by passes()): the reason the stage ends
   * now, or null. Does not move; advance() does.
   */
  due(step: number): AdvanceReason | null {
    if (this.atTarget) return null;
    const a = this.config.advance;
    if (a.threshold !== undefined && this.#state.passes >= (a.patience ?? 1)) return 'threshold';
    if (a.everySteps !== undefined && step - this.#state.stageStart >= a.everySteps) return 'steps';
    return null;
  }

  /** Moves to the next stage, which begins after `step`. */
  advance(step: number): void {
    if (this.atTarget) return;
    this.#state = { stage: this.#state.stage + 1, stageStart: step, passes: 0 };
  }
}
