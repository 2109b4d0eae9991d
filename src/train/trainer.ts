// The trainer: a SegmentModel trained on an objective (objective.ts): an algorithmic task or
// character-level language modelling. The objective says what a step reads and how its loss is
// formed (the cross-entropy summed over the scored positions, divided by their number); the
// trainer adds the models' auxiliary losses, runs one backward per step and the optimiser, and
// evaluates, logs and checkpoints.
//
// Every step runs inside tidy(); a carried state is returned from the scope and the previous
// one freed. Determinism: the model is initialised after manualSeed(seed), task batches come from
// the tasks' own generator seeded with `seed`, and libtorch's generator is reseeded from
// (seed, step) before every step (dropout), so a run resumed from a checkpoint draws exactly what
// the uninterrupted run would have drawn, whatever libtorch's generator state was.
//
// A curriculum over segments (train.curriculum, curriculum.ts) cuts the task finer between two
// steps, stage by stage, the weights and optimiser state carrying on; the stage is logged and
// checkpointed. train.initFrom (init-from.ts) gives a fresh run another run's weights.
//
// Data parallelism (options.processGroup, src/distributed): every rank builds the same model and
// takes rank 0's weights (broadcast); the objective reads the rank's share of each batch; the
// gradients are averaged over the ranks (in buckets, overlapping backward) before clipping and the optimiser step, so
// every rank takes the same step, equal to the single-process step on the whole batch. The step's
// counts are summed over the ranks, so losses and metrics are the job's. Rank 0 alone writes the
// log, checkpoints and result; a checkpoint gathers every rank's carried state. Evaluation is
// sharded the same way and its counts summed, so every rank has the job's metrics.
//
// Shapes: B batch, M segment length, T = numSegments * M, V vocabulary.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkPrecision, configError, EngramError, engramError, heapBytes, ioError, manualSeed, numericError, resolveDevice, setNumThreads, tidy, type Tensor } from '../tensor/index.js';
import { removeTempFiles, writeFileAtomic } from '../tensor/serialize.js';
import { Adam, AdamW, clipGradNorm, constantLr, cosineDecay, LrScheduler, ReduceLROnPlateau, weightDecayGroups, withWarmup, type AdamOptions, type Schedule } from '../optim/index.js';
import { createModel, resolveModelConfig, type MemoryState, type ModelConfig, type SegmentModel } from '../models/index.js';
import { canonicalJson, resolveTrainConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { addCounts, emptyCounts, summarize, type MetricCounts, type Metrics } from './metrics.js';
import { createObjective, headline, isBetter, type HeadlineMetric, type Objective, type StepStats } from './objective.js';
import { carryPrefix, flattenState, hasCheckpoint, loadCheckpoint, saveCheckpoint, unflattenState, withPrefix, type CarryLayout, type CheckpointMeta } from './checkpoint.js';
import { createProgress, type ProgressMode, type ProgressReporter } from './progress.js';
import { describeEntries, lockRunDir, removeRunFiles, runDirEntries, type RunLock } from './run-dir.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { Curriculum, type AdvanceReason } from './curriculum.js';
import { initWeights, loadInitSource, type InitSource } from './init-from.js';

export const LOG_FILE = 'log.jsonl';
export const RESULT_FILE = 'result.json';
export const CONFIG_FILE = 'config.json';

export interface TrainOptions {
  /** Where the log, checkpoints and result go; null: nothing is written (no checkpoints, no resume). */
  runDir?: string | null;
  /**
   * Continue from runDir's checkpoint when there is one; else start fresh, which needs runDir to
   * be empty (or `overwrite`): a directory holding a run but no readable checkpoint.json is an
   * error, never silently replaced.
   */
  resume?: boolean;
  /** A fresh run may replace the run already in runDir (removes Engram's files of it, run-dir.ts). */
  overwrite?: boolean;
  /** Stops the run between steps; a checkpoint is written first when there is a runDir. */
  signal?: AbortSignal;
  /** Progress for people (default 'none'): a bar on a TTY, plain lines otherwise with 'auto'. */
  progress?: ProgressMode;
  /** Prefix of progress lines. */
  label?: string;
  /** Every step, evaluation and checkpoint as it happens. */
  onEvent?: (event: TrainEvent) => void;
  /**
   * The data-parallel job this process is a rank of (src/distributed); null: a single process.
   * Every rank gets the same configuration and runDir; rank 0 writes, the others read it to resume.
   */
  processGroup?: ProcessGroup | null;
}

export type TrainEvent =
  | { type: 'step'; step: number; loss: number; accuracy: number; lr: number }
  | { type: 'eval'; step: number; metrics: Metrics; lr: number }
  | { type: 'stage'; step: number; stage: number; segments: number; reason: AdvanceReason }
  | { type: 'checkpoint'; step: number; path: string };

/** Where a run with a curriculum is, on its train and eval records: the stage (1-based) and its segments. */
export interface StageFields {
  stage?: number;
  segments?: number;
}

/** One line of log.jsonl. */
export type LogRecord =
  | { type: 'start'; step: number; time: string; config: TrainConfig; modelConfig: ModelConfig; parameters: number; initFrom?: { dir: string; source: 'run' | 'model-folder'; step: number } }
  | { type: 'resume'; step: number; time: string }
  | ({ type: 'train'; step: number; lr: number; tokensPerSec: number; elapsed: number } & StageFields & Metrics)
  // target: the curriculum's closing evaluation at its target's number of segments (not a stage's)
  | ({ type: 'eval'; step: number; lr: number; diagnostics: ReturnType<SegmentModel['diagnostics']>; target?: true } & StageFields & Metrics)
  | { type: 'stage'; step: number; stage: number; segments: number; reason: AdvanceReason }
  | { type: 'checkpoint'; step: number; file: string }
  | { type: 'abort'; step: number; time: string }
  | { type: 'skip'; step: number; loss: number | null }
  | { type: 'nonfinite'; step: number; loss: number | null; time: string }
  | { type: 'end'; step: number; time: string; elapsed: number };

export interface TrainResult {
  runDir: string | null;
  config: TrainConfig;
  modelConfig: ModelConfig;
  /** Steps taken in all (resumed runs included). */
  step: number;
  finished: boolean;
  aborted: boolean;
  /**
   * Evaluation at the last step (null if the run stopped before its first evaluation); with a
   * curriculum whose finalEval is 'target', at the target's number of segments.
   */
  finalEval: Metrics | null;
  /** The best evaluation of the run (highest accuracy for tasks, lowest bpc for LM); with a curriculum, of its last stage. */
  bestEval: Metrics | null;
  /** With train.curriculum: the stage reached (1-based), its segments, and the target's. */
  curriculum?: { stage: number; segments: number; target: number };
  /** The headline number: accuracy (tasks) or bpc (LM) of finalEval. */
  metric: { name: HeadlineMetric; value: number } | null;
  parameters: number;
  /** Training seconds over the whole run (resumed runs included), evaluation excluded. */
  elapsed: number;
  tokensPerSec: number;
  /** Seconds per optimiser step (training only). */
  secondsPerStep: number;
  /**
   * Highest C-heap bytes sampled at the end of each step's forward pass (model, optimiser state,
   * data and the activations saved for backward); null where the C library cannot say.
   */
  peakHeapBytes: number | null;
  /** Training loss of every step taken by this call, in order. */
  losses: { step: number; loss: number }[];
  /** Batches skipped by this call for a non-finite loss (train.nonFinite 'skip'; 'skip' records in the log). */
  skippedSteps: number;
}

/** libtorch's seed for a step: distinct per (seed, step), a safe integer. */
export function stepSeed(seed: number, step: number): number {
  return Number(BigInt.asUintN(52, BigInt(seed) * 1_000_003n + BigInt(step) + 1n));
}

/** Trains from a configuration; see Trainer for finer control. */
export async function train(config: TrainConfigInput | TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const trainer = await Trainer.create(config, options);
  try {
    return await trainer.run();
  } finally {
    trainer.dispose();
  }
}

/** Fields that may change when resuming (they do not change what the steps compute; precision only its rounding). */
const RESUMABLE_CHANGES = ['steps', 'logEvery', 'evalEvery', 'checkpointEvery', 'threads', 'nonFinite', 'device', 'precision'] as const;

/** With train.nonFinite 'skip', this many non-finite batches in a row stop the run (the weights are likely broken). */
export const MAX_SKIPPED_IN_A_ROW = 10;

/**
 * What differs between a checkpoint's configuration and a new one beyond the fields a resumed run
 * may change (one line per section; empty: the run can continue under `now`).
 */
export function unresumableChanges(saved: TrainConfig, now: TrainConfig): string[] {
  const strip = (c: TrainConfig) => {
    const train: Record<string, unknown> = { ...c.train };
    for (const k of RESUMABLE_CHANGES) delete train[k];
    if (c.optim.decay === 'cosine') train.steps = c.train.steps; // the cosine spans the run
    return canonicalJson({ ...c, train });
  };
  if (strip(saved) === strip(now)) return [];
  const diff: string[] = [];
  for (const section of ['model', 'data', 'train', 'optim'] as const) {
    if (canonicalJson(saved[section]) !== canonicalJson(now[section])) diff.push(`${section}: checkpoint ${JSON.stringify(saved[section])}, now ${JSON.stringify(now[section])}`);
  }
  return diff;
}

function checkResumable(saved: TrainConfig, now: TrainConfig): void {
  const diff = unresumableChanges(saved, now);
  if (diff.length) {
    throw configError('resume', `the configuration differs from the checkpoint's (only ${RESUMABLE_CHANGES.join(', ')} may change${saved.optim.decay === 'cosine' ? ', steps not with cosine decay' : ''}):\n  ${diff.join('\n  ')}`);
  }
}

export class Trainer {
  readonly config: TrainConfig;
  readonly modelConfig: ModelConfig;
  readonly model: SegmentModel;
  /** What a step reads, how its loss is formed, how the model is evaluated. */
  readonly objective: Objective;
  readonly optimizer: Adam | AdamW;
  readonly scheduler: LrScheduler;
  readonly plateau: ReduceLROnPlateau | null;
  /** Where this process writes (rank 0's run directory; null on the other ranks). */
  readonly runDir: string | null;
  readonly processGroup: ProcessGroup | null;
  /** Optimiser steps taken. */
  step = 0;
  lastEval: Metrics | null = null;
  bestEval: Metrics | null = null;
  /** The stages of train.curriculum and where the run is in them (null: the task's segments throughout). */
  readonly curriculum: Curriculum | null;
  /** The run whose weights this one started from (train.initFrom; null when resumed or without). */
  initFrom: Omit<InitSource, 'model' | 'vocab'> | null = null;
  /** The plateau scheduler acts on this proxy group: its lr is the factor applied to the schedule. */
  readonly #lrScale = { paramGroups: [{ lr: 1 }] };
  readonly #options: TrainOptions;
  #elapsed = 0;
  #peakHeap: number | null = null;
  #lastCheckpointStep = -1;
  /** Segments of the task at the last evaluation of this process (a curriculum's stage; null: not known). */
  #lastEvalSegments: number | null = null;
  /** The run directory's lock, held from create() to dispose(). */
  #lock: RunLock | null = null;
  /** Set by #backward when the step's objective was not finite (no optimiser step was taken). */
  #nonFiniteStep = false;
  /** In a job: averages the gradients over the ranks while backward runs (made on the first step). */
  #reducer: ReturnType<ProcessGroup['gradientReducer']> | null = null;
  /** In a job: some rank's signal asked to stop (agreed at the last step, so every rank stops together). */
  #jobStopping = false;
  /** Whether the run checkpoints (on rank 0; every rank takes part in gathering the carried states). */
  readonly #checkpoints: boolean;

  private constructor(config: TrainConfig, model: SegmentModel, objective: Objective, options: TrainOptions) {
    this.config = config;
    this.model = model;
    this.modelConfig = model.config;
    this.objective = objective;
    this.processGroup = options.processGroup ?? null;
    this.runDir = this.processGroup && !this.processGroup.isMain ? null : options.runDir ?? null;
    this.#checkpoints = options.runDir != null; // the same on every rank: saving is collective
    this.#options = options;
    this.curriculum = config.train.curriculum ? new Curriculum(config.train.curriculum) : null;
    if (this.curriculum) this.#useStageSegments();
    const o = config.optim;
    // decay on weight matrices only (biases, norms, memory tokens, span parameters keep theirs)
    const params = weightDecayGroups<AdamOptions>(model, o.weightDecay);
    const opts = { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay };
    this.optimizer = o.optimizer === 'adamw' ? new AdamW(params, opts) : new Adam(params, opts);
    const steps = config.train.steps;
    let base: Schedule;
    if (o.decay === 'cosine') base = cosineDecay({ totalSteps: steps, minLr: o.minLr, warmupSteps: o.warmupSteps });
    else base = o.warmupSteps > 0 ? withWarmup({ warmupSteps: o.warmupSteps }, constantLr()) : constantLr();
    const scale = this.#lrScale.paramGroups[0]!;
    this.scheduler = new LrScheduler(this.optimizer, (step, baseLr) => base(step, baseLr) * scale.lr);
    const p = o.plateau;
    this.plateau = p
      ? new ReduceLROnPlateau(this.#lrScale, {
        mode: p.mode === 'auto' ? objective.mode : p.mode,
        factor: p.factor, patience: p.patience, threshold: p.threshold, cooldown: p.cooldown, minLr: p.minLrFactor,
      })
      : null;
  }

  /**
   * Builds the model, optimiser and data of a configuration; with options.resume and a checkpoint
   * in options.runDir, restores all of it to the checkpoint's step.
   */
  static async create(input: TrainConfigInput | TrainConfig, options: TrainOptions = {}): Promise<Trainer> {
    const config = resolveTrainConfig(input);
    const precision = checkPrecision(config.train.precision ?? 'float32', 'train', 'train.precision (--precision)'); // before the run directory is touched
    const runDir = options.runDir ?? null;
    const pg = options.processGroup ?? null;
    // Checked before anything is read or locked. In an NCCL job each rank uses its own GPU.
    const asked = resolveDevice(config.train.device, 'train');
    const device = asked !== 'cpu' && pg && pg.device !== 'cpu' ? pg.device : asked;
    const writer = !pg || pg.isMain; // the other ranks only read runDir's checkpoint
    const lock = runDir && writer ? lockRunDir(runDir) : null; // before anything in runDir is read or changed
    let checkpoint: { meta: CheckpointMeta; tensors: Record<string, Tensor> } | null = null;
    let trainer: Trainer | null = null;
    let source: InitSource | null = null;
    try {
      let replace = false;
      if (runDir && !writer) {
        if (options.resume && hasCheckpoint(runDir)) checkpoint = await loadCheckpoint(runDir);
      } else if (runDir) {
        await removeTempFiles(runDir); // left by a process killed mid-write; ours alone under the lock
        if (options.resume && hasCheckpoint(runDir)) {
          checkpoint = await loadCheckpoint(runDir);
          checkResumable(checkpoint.meta.config, config);
        } else {
          const entries = runDirEntries(runDir);
          if (entries.length && !options.overwrite) {
            const held = describeEntries(entries);
            throw configError('train', hasCheckpoint(runDir)
              ? `${runDir} already holds a run (${held}): resume it (--resume), replace it (--overwrite) or choose another run directory`
              : `${runDir} is not empty (${held}) and has no checkpoint.json to resume; nothing was changed: replace its run (--overwrite) or choose another run directory`);
          }
          replace = entries.length > 0;
        }
      }
      if (config.train.threads > 0) setNumThreads(config.train.threads);
      if (checkpoint && !writer) checkResumable(checkpoint.meta.config, config);
      // A fresh run with train.initFrom: the source first, for its vocabulary (ids must keep their meaning).
      if (!checkpoint && config.train.initFrom !== undefined) source = await loadInitSource(config.train.initFrom);
      const objective = await createObjective(config, { vocab: checkpoint?.meta.vocab ?? source?.vocab ?? null, shard: pg, device });
      manualSeed(config.train.seed);
      const { kind, memLen, numMemTokens, ...sizes } = config.model;
      // Initialised on the CPU, then moved: a seed gives the same weights on every device.
      const model = createModel(resolveModelConfig({ ...sizes, kind: kind as ModelConfig['kind'], memLen, numMemTokens, vocabSize: objective.vocabSize }), { device });
      // The forward passes (training and evaluation) run at it; the loss is float32 (float32
      // logits), backward follows each op's forward dtype and the optimiser works on the float32
      // weights, all outside autocast.
      model.precision = precision;
      trainer = new Trainer(config, model, objective, options);
      trainer.#lock = lock;
      if (checkpoint) {
        const { meta, tensors } = checkpoint;
        checkpoint = null; // #restore owns the tensors now
        trainer.#restore(meta, tensors);
      } else if (source) {
        initWeights(model, source);
        trainer.initFrom = { dir: source.dir, source: source.source, step: source.step };
      }
      pg?.broadcast(model.parameters(), 0); // every rank starts from rank 0's weights
      if (replace) removeRunFiles(runDir!); // last: a failure above leaves the old run as it was
      return trainer;
    } catch (e) {
      if (checkpoint) for (const t of Object.values(checkpoint.tensors)) t.dispose();
      if (trainer) trainer.dispose();
      else lock?.release();
      throw e;
    } finally {
      source?.model.dispose();
    }
  }

  /** Cuts the task as the curriculum's stage says. */
  #useStageSegments(): void {
    this.objective.useSegments!(this.curriculum!.segments);
  }

  /** The stage fields of train and eval records (none without a curriculum). */
  #stageFields(): StageFields {
    return this.curriculum ? { stage: this.curriculum.stage, segments: this.curriculum.segments } : {};
  }

  /**
   * Moves to the next stage after `step`: the task is cut finer from the next step on; the plateau
   * scheduler and the best evaluation start over (a stage's metrics are not comparable with the
   * last's: more segments are harder), the lr reached so far is kept.
   */
  #advanceStage(step: number, reason: AdvanceReason): void {
    const c = this.curriculum!;
    c.advance(step);
    this.#useStageSegments();
    this.bestEval = null;
    if (this.plateau) this.plateau.loadStateDict({ best: null, numBadEpochs: 0, cooldownCounter: 0, lastEpoch: this.plateau.lastEpoch });
    this.#log({ type: 'stage', step, stage: c.stage, segments: c.segments, reason });
    this.#options.onEvent?.({ type: 'stage', step, stage: c.stage, segments: c.segments, reason });
  }

  /** Held-out metrics at the curriculum's target number of segments (the stage's cut is restored after). */
  #evaluateTarget(): Metrics {
    const c = this.curriculum!;
    this.objective.useSegments!(c.target);
    try {
      return this.evaluate();
    } finally {
      this.#useStageSegments();
    }
  }

  get segmentLength(): number {
    return this.objective.segmentLength;
  }

  /** Tokens a step reads: B * T for tasks, B * (k + 1) * M for LM. */
  get tokensPerStep(): number {
    return this.objective.tokensPerStep;
  }

  /** The learning rate now (first group). */
  get lr(): number {
    return this.optimizer.lr;
  }

  /** One optimiser step on the next batch; returns its counts. */
  trainStep(): StepStats {
    manualSeed(stepSeed(this.config.train.seed, this.step));
    const stats = this.objective.step(this.model, (ce, tokens, aux) => this.#backward(ce, tokens, aux));
    this.scheduler.step();
    this.step += 1;
    return this.processGroup ? this.#jobStats(stats, this.processGroup) : stats;
  }

  /** A rank's step counts summed over the job; also agrees whether a rank was asked to stop. */
  #jobStats(stats: StepStats, pg: ProcessGroup): StepStats {
    const [counts, read, stopping] = jobCounts(pg, stats.counts, [stats.tokens, this.#options.signal?.aborted ? 1 : 0]);
    this.#jobStopping = stopping! > 0; // a rank was asked to stop: all stop after this step
    return { counts, tokens: read! };
  }

  #backward(ce: Tensor | null, tokens: number, aux: Tensor[]): void {
    // tokens: scored in the whole job's batch. A rank's share of the mean is ce * W / tokens, so
    // that the ranks' average gradient is the gradient of the job's mean (W = 1: ce / tokens).
    const world = this.processGroup?.worldSize ?? 1;
    let objective = ce ? ce.div(Math.max(1, tokens) / world) : null;
    for (const a of aux) objective = objective ? objective.add(a) : a;
    this.optimizer.zeroGrad();
    if (!objective) return;
    // A NaN / infinite objective: no backward and no optimiser step, so the weights stay as they
    // were; run() then stops or skips the batch (train.nonFinite). In a job, on every rank if on any.
    const finite = Number.isFinite(objective.item());
    this.#nonFiniteStep = this.processGroup ? this.processGroup.sumNumbers([finite ? 0 : 1])[0]! > 0 : !finite;
    if (this.#nonFiniteStep) return;
    const heap = heapBytes(); // the forward's activations are all alive here: the step's high-water mark
    if (heap !== null) this.#peakHeap = Math.max(this.#peakHeap ?? 0, heap);
    const pg = this.processGroup;
    if (pg) (this.#reducer ??= pg.gradientReducer(this.optimizer.params)).begin();
    objective.backward();
    this.#reducer?.finish();
    if (this.config.optim.clipGradNorm > 0) clipGradNorm(this.optimizer.params, this.config.optim.clipGradNorm);
    this.optimizer.step();
    this.model.afterOptimizerStep?.();
  }

  /** Held-out metrics now (tasks: the fixed evaluation batches; LM: the validation split). */
  evaluate(): Metrics {
    const pg = this.processGroup;
    return pg ? this.objective.evaluate(this.model, (c) => jobCounts(pg, c, [])[0]) : this.objective.evaluate(this.model);
  }

  /** The headline metric of an evaluation: accuracy for tasks (higher is better), bpc for LM. */
  headline(m: Metrics): { name: HeadlineMetric; value: number } {
    return headline(this.objective, m);
  }

  /** Records an evaluation: best so far, and the plateau scheduler. */
  #afterEval(m: Metrics): void {
    this.lastEval = m;
    if (isBetter(this.objective, m, this.bestEval)) this.bestEval = m;
    if (this.plateau) {
      const before = this.#lrScale.paramGroups[0]!.lr;
      this.plateau.step(this.headline(m).value);
      if (this.#lrScale.paramGroups[0]!.lr !== before) this.scheduler.loadStateDict(this.scheduler.stateDict()); // re-applies the lr now
    }
  }

  /**
   * The carried state's tensors under their checkpoint names; in a job every rank's, gathered (a
   * collective: every rank calls it; `gathered` are new tensors the caller frees).
   */
  #carryTensors(): { tensors: Record<string, Tensor>; layout: CarryLayout; gathered: boolean } | null {
    const carried = this.objective.carry;
    if (!carried) return null;
    const flat = flattenState(carried);
    const pg = this.processGroup;
    if (!pg) return { ...flat, gathered: false };
    const tensors: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(flat.tensors)) {
      pg.allGather(t).forEach((g, r) => (tensors[carryPrefix(r, pg.worldSize) + name.slice('carry.'.length)] = g));
    }
    return { tensors, layout: flat.layout, gathered: true };
  }

  /** Writes a checkpoint of the current step into runDir (in a job: called on every rank, rank 0 writes). */
  async saveCheckpoint(): Promise<string> {
    if (!this.#checkpoints) throw configError('saveCheckpoint', 'the trainer has no run directory');
    const carried = this.#carryTensors();
    if (!this.runDir) {
      if (carried?.gathered) for (const t of Object.values(carried.tensors)) t.dispose();
      this.#lastCheckpointStep = this.step;
      return '';
    }
    const optim = this.optimizer.stateDict();
    const tensors: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(this.model.stateDict())) tensors[`model.${k}`] = v;
    for (const [k, v] of Object.entries(optim.tensors)) tensors[`optim.${k}`] = v;
    let carry = null;
    if (carried) {
      Object.assign(tensors, carried.tensors);
      carry = carried.layout;
    }
    try {
      const path = await saveCheckpoint(this.runDir, {
        step: this.step,
        config: this.config,
        modelConfig: this.modelConfig,
        vocab: this.objective.vocab,
        optimizer: optim.meta,
        scheduler: this.scheduler.stateDict(),
        plateau: this.plateau ? { state: this.plateau.stateDict(), scale: this.#lrScale.paramGroups[0]!.lr } : null,
        data: this.objective.position(),
        carry,
        ...(this.processGroup ? { worldSize: this.processGroup.worldSize } : {}),
        lastEval: this.lastEval,
        bestEval: this.bestEval,
        ...(this.curriculum ? { curriculum: this.curriculum.state() } : {}),
        elapsed: this.#elapsed,
        peakHeapBytes: this.#peakHeap,
      }, tensors);
      this.#lastCheckpointStep = this.step;
      return path;
    } finally {
      for (const t of Object.values(optim.tensors)) t.dispose();
      if (carried?.gathered) for (const t of Object.values(carried.tensors)) t.dispose();
    }
  }

  #restore(meta: CheckpointMeta, tensors: Record<string, Tensor>): void {
    const world = this.processGroup?.worldSize ?? 1;
    if (meta.carry && (meta.worldSize ?? 1) !== world) {
      for (const t of Object.values(tensors)) t.dispose();
      throw configError('resume', `the checkpoint was written by a job of ${meta.worldSize ?? 1} process(es), each carrying the memory of its own streams; resume it with ${meta.worldSize ?? 1} (--nproc / WORLD_SIZE)`);
    }
    try {
      this.#restoreState(meta, tensors);
    } catch (e) {
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      throw ioError('resume', `${join(this.runDir ?? '', meta.tensorsFile)} does not fit the model and optimiser of its checkpoint.json (${why}); restore the run from a backup or start a new one`, e);
    }
    if (this.curriculum && meta.curriculum) {
      this.curriculum.restore(meta.curriculum);
      this.#useStageSegments();
    }
    this.step = meta.step;
    this.lastEval = meta.lastEval;
    this.bestEval = meta.bestEval;
    this.#elapsed = meta.elapsed;
    this.#peakHeap = meta.peakHeapBytes ?? null;
    this.#lastCheckpointStep = meta.step;
  }

  #restoreState(meta: CheckpointMeta, tensors: Record<string, Tensor>): void {
    let carry: MemoryState | null = null;
    const prefix = carryPrefix(this.processGroup?.rank ?? 0, this.processGroup?.worldSize ?? 1);
    try {
      // Checkpoints hold CPU tensors: the weights and optimiser state are copied onto the model's
      // device by their loads; the carried state is moved here (the objective keeps it).
      const device = this.model.device;
      if (meta.carry && device !== 'cpu') {
        for (const [name, t] of Object.entries(tensors)) {
          if (!name.startsWith(prefix)) continue;
          tensors[name] = t.to({ device });
          t.dispose();
        }
      }
      this.model.loadStateDict(withPrefix(tensors, 'model.'));
      this.optimizer.loadStateDict({ tensors: withPrefix(tensors, 'optim.'), meta: meta.optimizer });
      if (meta.plateau && this.plateau) {
        this.plateau.loadStateDict(meta.plateau.state);
        this.#lrScale.paramGroups[0]!.lr = meta.plateau.scale;
      }
      this.scheduler.loadStateDict(meta.scheduler);
      if (meta.carry) carry = unflattenState(tensors, meta.carry, prefix);
      this.objective.restore(meta.data, carry);
    } finally {
      // the carried state's tensors are now the objective's; the rest were copied in
      for (const [name, t] of Object.entries(tensors)) if (!(carry && name.startsWith(prefix))) t.dispose();
    }
  }

  #log(record: LogRecord): void {
    if (!this.runDir) return;
    const path = join(this.runDir, LOG_FILE);
    try {
      appendFileSync(path, `${JSON.stringify(record)}\n`);
    } catch (e) {
      throw ioError('train', `cannot write ${path}: ${(e as Error).message}`, e);
    }
  }

  /** Keeps the log records up to the checkpoint's step (a resumed run rewrites what came after). */
  #truncateLog(step: number): void {
    const path = join(this.runDir!, LOG_FILE);
    if (!existsSync(path)) return;
    try {
      const kept = readFileSync(path, 'utf8').split('\n').filter((line) => {
        if (!line.trim()) return false;
        try {
          return (JSON.parse(line) as { step: number }).step <= step;
        } catch {
          return false; // a line cut by a crash
        }
      });
      writeFileSync(path, kept.map((l) => `${l}\n`).join(''));
    } catch (e) {
      throw ioError('resume', `cannot rewrite ${path}: ${(e as Error).message}`, e);
    }
  }

  /** Trains to config.train.steps (or until aborted), evaluating, logging and checkpointing. */
  async run(): Promise<TrainResult> {
    const t = this.config.train;
    const { signal } = this.#options;
    const progress: ProgressReporter = createProgress(this.#options.progress ?? 'none', { ...(this.#options.label ? { label: this.#options.label } : {}), every: Math.max(t.logEvery, 10) * 10 });
    const emit = (e: TrainEvent) => this.#options.onEvent?.(e);
    const resumed = this.step > 0;
    if (this.runDir) {
      mkdirSync(this.runDir, { recursive: true });
      if (resumed) this.#truncateLog(this.step);
      else this.#writeFile(LOG_FILE, '');
      await writeFileAtomic(join(this.runDir, CONFIG_FILE), async (fh) => { await fh.writeFile(`${JSON.stringify({ config: this.config, modelConfig: this.modelConfig }, null, 2)}\n`); }, 'train');
    }
    const time = () => new Date().toISOString();
    this.#log(resumed ? { type: 'resume', step: this.step, time: time() } : { type: 'start', step: 0, time: time(), config: this.config, modelConfig: this.modelConfig, parameters: this.model.numParameters(), ...(this.initFrom ? { initFrom: this.initFrom } : {}) });

    const losses: { step: number; loss: number }[] = [];
    let window = emptyCounts(), windowTokens = 0, windowTime = 0;
    let aborted = false;
    let finalEval: Metrics | null = null;
    /** Non-finite steps in a row (train.nonFinite 'skip'); past MAX_SKIPPED_IN_A_ROW the run stops. */
    let skippedInARow = 0, skippedSteps = 0;
    const stopOnNonFinite = (t.nonFinite ?? 'stop') === 'stop';
    progress.start(t.steps, this.step);
    try {
      while (this.step < t.steps) {
        if (this.processGroup ? this.#jobStopping : signal?.aborted) {
          aborted = true;
          break;
        }
        const lr = this.lr;
        const started = performance.now();
        const stats = this.#guardOom(`step ${this.step + 1}`, () => this.trainStep());
        const seconds = (performance.now() - started) / 1000;
        this.#elapsed += seconds;
        const m = summarize(stats.counts);
        if (this.#nonFiniteStep || !Number.isFinite(m.loss)) {
          // The weights are unchanged (#backward took no optimiser step): stop before any
          // checkpoint of this step, or skip the batch.
          this.#nonFiniteStep = false;
          skippedInARow += 1;
          const loss = Number.isFinite(m.loss) ? m.loss : null;
          if (stopOnNonFinite || skippedInARow > MAX_SKIPPED_IN_A_ROW) {
            this.#log({ type: 'nonfinite', step: this.step, loss, time: time() });
            const kept = this.runDir ? (this.#lastCheckpointStep >= 0 ? `; the checkpoint of step ${this.#lastCheckpointStep} in ${this.runDir} is kept` : `; ${this.runDir} holds no checkpoint`) : '';
            const why = stopOnNonFinite ? `the training loss at step ${this.step} is ${String(m.loss)}` : `${skippedInARow} batches in a row gave a non-finite loss (up to step ${this.step})`;
            throw numericError('train', `training stopped: ${why}${kept}; lower the learning rate (optim.lr ${this.config.optim.lr}) or clip gradients${stopOnNonFinite ? ', or skip such batches (--on-nan skip)' : ''}`);
          }
          skippedSteps += 1;
          this.#log({ type: 'skip', step: this.step, loss });
          progress.note(`step ${this.step}: non-finite loss, batch skipped`);
        } else {
          skippedInARow = 0;
          windowTime += seconds;
          windowTokens += stats.tokens;
          window = addCounts(window, stats.counts);
        }
        losses.push({ step: this.step, loss: m.loss });
        emit({ type: 'step', step: this.step, loss: m.loss, accuracy: m.accuracy, lr });
        const tokensPerSec = windowTokens / Math.max(windowTime, 1e-9);
        progress.update(this.step, { loss: m.loss, accuracy: m.accuracy, tokensPerSec, lr, ...(this.curriculum ? { stage: this.curriculum.describe() } : {}) });
        const last = this.step === t.steps;
        if (this.step % t.logEvery === 0 || last) {
          this.#log({ type: 'train', step: this.step, lr, tokensPerSec, elapsed: this.#elapsed, ...this.#stageFields(), ...summarize(window) });
          window = emptyCounts();
          windowTokens = 0;
          windowTime = 0;
        }
        if ((t.evalEvery > 0 && this.step % t.evalEvery === 0) || last) {
          const e = this.#guardOom(`the evaluation at step ${this.step}`, () => this.evaluate());
          this.#afterEval(e);
          this.curriculum?.passes(e);
          this.#lastEvalSegments = this.curriculum?.segments ?? null;
          this.#log({ type: 'eval', step: this.step, lr: this.lr, ...this.#stageFields(), ...e, diagnostics: this.model.diagnostics() });
          emit({ type: 'eval', step: this.step, metrics: e, lr: this.lr });
          progress.note(`eval @ ${this.step}${this.curriculum ? ` (${this.curriculum.describe()})` : ''}: ${describeMetrics(e)}  lr ${this.lr.toExponential(2)}`);
        }
        const reason = this.curriculum?.due(this.step);
        if (reason) {
          this.#advanceStage(this.step, reason);
          progress.note(`step ${this.step}: ${reason === 'threshold' ? 'threshold reached' : 'stage over'}, now ${this.curriculum!.describe()}`);
        }
        if (this.#checkpoints && ((t.checkpointEvery > 0 && this.step % t.checkpointEvery === 0) || last)) await this.#checkpoint(emit);
        // Let timers and signal handlers run between steps (a step itself is synchronous).
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (aborted) {
        if (this.#checkpoints && this.#lastCheckpointStep !== this.step) await this.#checkpoint(emit);
        this.#log({ type: 'abort', step: this.step, time: time() });
        progress.note(`stopped at step ${this.step}${this.runDir ? ` (checkpoint in ${this.runDir})` : ''}`);
      }
      finalEval = this.step >= t.steps ? this.lastEval : null;
      const c = this.curriculum;
      // The curriculum's closing evaluation at its target, when the last one was at another count
      // (the run ended before the target, or moved to it on its last step): the run's final
      // number. It does not drive the plateau scheduler or the best evaluation.
      if (finalEval && c && c.config.finalEval === 'target' && this.#lastEvalSegments !== c.target) {
        finalEval = this.#evaluateTarget();
        this.#log({ type: 'eval', step: this.step, lr: this.lr, target: true, segments: c.target, ...finalEval, diagnostics: this.model.diagnostics() });
        progress.note(`eval @ ${this.step} at the target (${c.target} segments): ${describeMetrics(finalEval)}`);
      }
    } finally {
      progress.stop();
    }
    const finished = this.step >= t.steps;
    const c = this.curriculum;
    const result: TrainResult = {
      runDir: this.runDir,
      config: this.config,
      modelConfig: this.modelConfig,
      step: this.step,
      finished,
      aborted,
      finalEval,
      bestEval: this.bestEval,
      metric: finalEval ? this.headline(finalEval) : null,
      ...(c ? { curriculum: { stage: c.stage, segments: c.segments, target: c.target } } : {}),
      parameters: this.model.numParameters(),
      elapsed: this.#elapsed,
      tokensPerSec: (this.step * this.tokensPerStep) / Math.max(this.#elapsed, 1e-9),
      secondsPerStep: this.#elapsed / Math.max(this.step, 1),
      peakHeapBytes: this.#peakHeap,
      losses,
      skippedSteps,
    };
    if (finished && this.runDir) {
      this.#log({ type: 'end', step: this.step, time: time(), elapsed: this.#elapsed });
      const { losses: _l, ...saved } = result;
      await writeFileAtomic(join(this.runDir, RESULT_FILE), async (fh) => { await fh.writeFile(`${JSON.stringify(saved, null, 2)}\n`); }, 'train');
    }
    return result;
  }

  async #checkpoint(emit: (e: TrainEvent) => void): Promise<void> {
    // A finite loss can still leave non-finite weights (a huge step): never checkpoint them.
    if (!this.#weightsFinite()) {
      this.#log({ type: 'nonfinite', step: this.step, loss: null, time: new Date().toISOString() });
      throw numericError('train', `training stopped: the weights after step ${this.step} are not finite${this.#lastCheckpointStep >= 0 ? `; the checkpoint of step ${this.#lastCheckpointStep} in ${this.runDir} is kept` : ''}; lower the learning rate (optim.lr ${this.config.optim.lr}) or clip gradients`);
    }
    const path = await this.saveCheckpoint();
    if (!this.runDir) return; // another rank writes
    this.#log({ type: 'checkpoint', step: this.step, file: path });
    emit({ type: 'checkpoint', step: this.step, path });
  }

  /**
   * Runs a step or an evaluation; out of memory (a CUDA allocation, or the CPU's) stops the run
   * with an error of kind 'oom' that says which checkpoint is kept. Nothing is written after it:
   * the step may have been cut half-way (gradients, optimiser state), and the last checkpoint,
   * written atomically before, is what a resumed run starts from.
   */
  #guardOom<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof EngramError) || e.kind !== 'oom') throw e;
      const kept = this.runDir ? (this.#lastCheckpointStep >= 0 ? `the checkpoint of step ${this.#lastCheckpointStep} in ${this.runDir} is kept (resume with --resume)` : `${this.runDir} holds no checkpoint yet`) : 'nothing was saved (no run directory)';
      throw engramError('oom', 'train', `out of memory in ${what} on ${this.model.device} (${e.op}: ${e.torchMessage.split('\n')[0]}); ${kept}; lower train.batchSize, the segment length or the model size`, e);
    }
  }

  /** Whether every parameter is finite (one reduction per parameter; run at checkpoints only). */
  #weightsFinite(): boolean {
    // asked as "is any entry not finite", so that zeros read back (deviceCheckMode's 'meta') mean finite
    return tidy(() => !this.model.parameters().some((p) => p.isfinite().logicalNot().any().item() !== 0));
  }

  #writeFile(name: string, text: string): void {
    const path = join(this.runDir!, name);
    try {
      writeFileSync(path, text);
    } catch (e) {
      throw ioError('train', `cannot write ${path}: ${(e as Error).message}`, e);
    }
  }

  /** Frees the model, the optimiser state and the carried state; releases the run directory. */
  dispose(): void {
    this.#lock?.release();
    this.#reducer?.destroy();
    this.objective.dispose();
    this.optimizer.dispose();
    this.model.dispose();
  }
}

/**
 * Counts of each rank summed over the job (the models' auxiliary losses, which each rank computes
 * per batch, averaged), with a few more numbers summed in the same all-reduce.
 */
function jobCounts(pg: ProcessGroup, c: MetricCounts, extra: number[]): [MetricCounts, ...number[]] {
  // An evaluation's answer counts (every rank has the same kinds: one task): distinct answers are
  // counted per rank's part of a batch, so answers two ranks share count twice.
  const kinds = Object.keys(c.kinds ?? {}).sort();
  const answers = c.distinct !== undefined || c.kinds ? [c.distinct ?? 0, c.distinctTargets ?? 0, c.generatedExact ?? 0, ...kinds.flatMap((k) => [c.kinds![k]!.samples, c.kinds![k]!.exact])] : [];
  const sums = pg.sumNumbers([c.lossSum, c.tokens, c.answerTokens, c.correct, c.samples, c.exact, c.auxSum, c.memorySum ?? 0, c.forwards ?? 0, ...answers, ...extra]);
  const [lossSum, tokens, answerTokens, correct, samples, exact, auxSum, memorySum, forwards] = sums as [number, number, number, number, number, number, number, number, number];
  const counts: MetricCounts = { lossSum, tokens, answerTokens, correct, samples, exact, auxSum: auxSum / pg.worldSize, batches: c.batches, ...(c.forwards !== undefined ? { memorySum, forwards } : {}) };
  if (answers.length) {
    const a = sums.slice(9, 9 + answers.length);
    if (c.distinct !== undefined) Object.assign(counts, { distinct: a[0]!, distinctTargets: a[1]!, generatedExact: a[2]! });
    if (c.kinds) counts.kinds = Object.fromEntries(kinds.map((k, i) => [k, { samples: a[3 + 2 * i]!, exact: a[4 + 2 * i]! }]));
  }
  return [counts, ...sums.slice(9 + answers.length)];
}

/**
 * 'loss 0.123  acc 0.987  exact 0.950' or 'bpc 1.234  acc 0.456'; a task with kinds of sample
 * adds exact match per kind, of the generated answers, and 'distinct 0.031/0.969' (distinct
 * answers generated / expected per sample).
 */
export function describeMetrics(m: Metrics): string {
  const parts = [`loss ${m.loss.toFixed(4)}`];
  if (m.exactMatch === undefined) parts.push(`bpc ${m.bpc.toFixed(4)}`);
  parts.push(`acc ${m.accuracy.toFixed(4)}`);
  if (m.exactMatch !== undefined) parts.push(`exact ${m.exactMatch.toFixed(4)}`);
  for (const [kind, v] of Object.entries(m.exactMatchBy ?? {})) parts.push(`exact[${kind}] ${Number.isFinite(v) ? v.toFixed(4) : '–'}`);
  if (m.exactMatchGenerated !== undefined) parts.push(`exact(generated) ${m.exactMatchGenerated.toFixed(4)}`);
  if (m.distinctAnswers !== undefined) parts.push(`distinct ${m.distinctAnswers.toFixed(3)}/${(m.distinctTargets ?? NaN).toFixed(3)}`);
  return parts.join('  ');
}

