// Learning-rate schedules with PyTorch's formulas (torch.optim.lr_scheduler).
//
// A closed-form schedule is a pure function (step, baseLr) -> lr; LrScheduler binds one to an
// optimiser and writes each group's lr as it steps. Composing is composing functions: sequential()
// (PyTorch's SequentialLR) and withWarmup() build a schedule out of others. ReduceLROnPlateau,
// which reacts to a metric instead of following a formula, is a class of its own.
//
// Steps are counted as in PyTorch: the scheduler's construction sets the lr for step 0 (before the
// first optimiser step), and each scheduler.step(), called after optimizer.step(), moves to the
// next. Every group is scaled from its own base lr, its `initialLr`, which the first scheduler
// attached records from the group's lr at that time (PyTorch's initial_lr).
import { configError } from '../tensor/errors.js';

/** The lr for a parameter group at a step (0 = before the first optimiser step), from its base lr. */
export type Schedule = (step: number, baseLr: number) => number;

/** What a scheduler needs of an optimiser: its groups' learning rates. */
export interface HasParamGroups {
  readonly paramGroups: { lr: number; initialLr?: number }[];
}

function checkSteps(op: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw configError(op, `${name} must be an integer >= ${min}, got ${value}`);
}

// ---- closed-form schedules -------------------------------------------------------------------------

/** The base lr at every step. */
export const constantLr = (): Schedule => (_step, baseLr) => baseLr;

/**
 * Linear warmup (PyTorch's LinearLR with endFactor 1, totalIters warmupSteps):
 * lr = base * (startFactor + (1 - startFactor) * min(step, warmupSteps) / warmupSteps),
 * rising from base * startFactor at step 0 to base at step warmupSteps, then constant.
 * startFactor defaults to 1 / warmupSteps, so the first optimiser step already moves.
 */
export function linearWarmup({ warmupSteps, startFactor }: { warmupSteps: number; startFactor?: number }): Schedule {
  checkSteps('linearWarmup', 'warmupSteps', warmupSteps, 1);
  const start = startFactor ?? 1 / warmupSteps;
  if (!(start >= 0 && start <= 1)) throw configError('linearWarmup', `startFactor must be in [0, 1], got ${start}`);
  return (step, baseLr) => baseLr * (start + ((1 - start) * Math.min(step, warmupSteps)) / warmupSteps);
}

/**
 * Cosine annealing from the base lr to minLr over totalSteps (PyTorch's CosineAnnealingLR with
 * T_max totalSteps and eta_min minLr): lr = minLr + (base - minLr) * (1 + cos(pi * step / totalSteps)) / 2.
 * After totalSteps it stays at minLr (PyTorch's formula would rise again, a restart nobody asks
 * of a decay schedule). With warmupSteps > 0 a linear warmup comes first (see withWarmup) and the
 * cosine spans the remaining totalSteps - warmupSteps steps.
 */
export function cosineDecay({ totalSteps, minLr = 0, warmupSteps = 0, warmupStartFactor }: {
  totalSteps: number;
  minLr?: number;
  warmupSteps?: number;
  warmupStartFactor?: number;
}): Schedule {
  checkSteps('cosineDecay', 'warmupSteps', warmupSteps, 0);
  checkSteps('cosineDecay', 'totalSteps', totalSteps, warmupSteps + 1);
  if (!(minLr >= 0)) throw configError('cosineDecay', `minLr must be >= 0, got ${minLr}`);
  const span = totalSteps - warmupSteps;
  const cosine: Schedule = (step, baseLr) =>
    step >= span ? minLr : minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * step) / span))) / 2;
  return warmupSteps > 0 ? withWarmup({ warmupSteps, startFactor: warmupStartFactor }, cosine) : cosine;
}

/** Step decay (PyTorch's StepLR): lr = base * gamma ^ floor(step / stepSize). */
export function stepDecay({ stepSize, gamma = 0.1 }: { stepSize: number; gamma?: number }): Schedule {
  checkSteps('stepDecay', 'stepSize', stepSize, 1);
  if (!(gamma > 0)) throw configError('stepDecay', `gamma must be > 0, got ${gamma}`);
  return (step, baseLr) => baseLr * gamma ** Math.floor(step / stepSize);
}

// ---- composition -------------------------------------------------------------------------------------

/**
 * Schedules one after another (PyTorch's SequentialLR): schedules[i] runs from milestones[i-1]
 * (0 for the first) and counts its own steps from there, so each starts at its step 0.
 */
export function sequential(schedules: Schedule[], milestones: number[]): Schedule {
  if (schedules.length === 0 || milestones.length !== schedules.length - 1) {
    throw configError('sequential', `expected one milestone fewer than schedules, got ${schedules.length} schedules and ${milestones.length} milestones`);
  }
  milestones.forEach((m, i) => {
    checkSteps('sequential', `milestones[${i}]`, m, 1);
    if (i > 0 && m <= milestones[i - 1]!) throw configError('sequential', 'milestones must increase');
  });
  return (step, baseLr) => {
    let i = 0;
    while (i < milestones.length && step >= milestones[i]!) i++;
    return schedules[i]!(i === 0 ? step : step - milestones[i - 1]!, baseLr);
  };
}

/** A linear warmup over warmupSteps (see linearWarmup), then `after` from its own step 0. */
export function withWarmup(warmup: { warmupSteps: number; startFactor?: number | undefined }, after: Schedule): Schedule {
  const { warmupSteps, startFactor } = warmup;
  return sequential([linearWarmup(startFactor === undefined ? { warmupSteps } : { warmupSteps, startFactor }), after], [warmupSteps]);
}

// ---- binding a schedule to an optimiser -------------------------------------------------------------------

export interface LrSchedulerState {
  /** Steps taken (the lr now set is the schedule's value at this step). */
  lastStep: number;
  baseLrs: number[];
}

/** Sets an optimiser's learning rates from a Schedule, one step at a time. */
export class LrScheduler {
  /** Steps taken so far. */
  lastStep = 0;
  /** Each group's base lr, the one the schedule scales. */
  baseLrs: number[];

  /** Records each group's base lr and sets the lr of step 0 at once (as PyTorch's constructors do). */
  constructor(readonly optimizer: HasParamGroups, readonly schedule: Schedule) {
    for (const g of optimizer.paramGroups) g.initialLr ??= g.lr;
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.#apply();
  }

  /** Moves to the next step; call after optimizer.step(). */
  step(): void {
    this.lastStep += 1;
    this.#apply();
  }

  /** The learning rates this scheduler set last, by group. */
  get lastLrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  stateDict(): LrSchedulerState {
    return { lastStep: this.lastStep, baseLrs: [...this.baseLrs] };
  }

  /** Restores the step and base lrs and sets the lrs of that step again. */
  loadStateDict(state: LrSchedulerState): void {
    if (state.baseLrs.length !== this.optimizer.paramGroups.length) {
      throw configError('LrScheduler.loadStateDict', `the state has ${state.baseLrs.length} groups, the optimiser ${this.optimizer.paramGroups.length}`);
    }
    this.lastStep = state.lastStep;
    this.baseLrs = [...state.baseLrs];
    this.#apply();
  }

  #apply(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.schedule(this.lastStep, this.baseLrs[i]!);
    });
  }
}

// ---- reduce on plateau ---------------------------------------------------------------------------------------

export interface ReduceLROnPlateauOptions {
  /** 'min': lower metrics are better (a loss); 'max': higher are (an accuracy). */
  mode?: 'min' | 'max';
  /** new lr = lr * factor. */
  factor?: number;
  /** Bad epochs tolerated: the lr drops at the (patience + 1)-th bad epoch in a row. */
  patience?: number;
  /** How much better than the best a metric must be to count as an improvement. */
  threshold?: number;
  /** 'rel': better than best * (1 -/+ threshold); 'abs': better than best -/+ threshold. */
  thresholdMode?: 'rel' | 'abs';
  /** Epochs after a reduction during which bad epochs are not counted. */
  cooldown?: number;
  /** Lower bound of the lr, one for all groups or one per group. */
  minLr?: number | number[];
  /** Reductions smaller than this are skipped. */
  eps?: number;
}

export interface ReduceLROnPlateauState {
  best: number | null;
  numBadEpochs: number;
  cooldownCounter: number;
  lastEpoch: number;
}

/**
 * Lowers the learning rate when a metric stops improving (PyTorch's ReduceLROnPlateau, same
 * defaults: mode 'min', factor 0.1, patience 10, threshold 1e-4 'rel', cooldown 0, minLr 0, eps 1e-8).
 */
export class ReduceLROnPlateau {
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLrs: number[];
  readonly eps: number;
  /** Best metric seen so far (±Infinity before the first). */
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  lastEpoch = 0;

  constructor(readonly optimizer: HasParamGroups, o: ReduceLROnPlateauOptions = {}) {
    const op = 'ReduceLROnPlateau';
    this.mode = o.mode ?? 'min';
    this.factor = o.factor ?? 0.1;
    this.patience = o.patience ?? 10;
    this.threshold = o.threshold ?? 1e-4;
    this.thresholdMode = o.thresholdMode ?? 'rel';
    this.cooldown = o.cooldown ?? 0;
    this.eps = o.eps ?? 1e-8;
    const groups = optimizer.paramGroups.length;
    const minLr = o.minLr ?? 0;
    if (Array.isArray(minLr) && minLr.length !== groups) throw configError(op, `expected ${groups} minLr values, got ${minLr.length}`);
    this.minLrs = Array.isArray(minLr) ? [...minLr] : new Array<number>(groups).fill(minLr);
    if (this.mode !== 'min' && this.mode !== 'max') throw configError(op, `mode must be 'min' or 'max', got ${String(this.mode)}`);
    if (this.thresholdMode !== 'rel' && this.thresholdMode !== 'abs') throw configError(op, `thresholdMode must be 'rel' or 'abs'`);
    if (!(this.factor > 0 && this.factor < 1)) throw configError(op, `factor must be in (0, 1), got ${this.factor}`);
    checkSteps(op, 'patience', this.patience, 0);
    checkSteps(op, 'cooldown', this.cooldown, 0);
    this.best = this.#worst();
  }

  get inCooldown(): boolean {
    return this.cooldownCounter > 0;
  }

  /** Records an epoch's metric; returns whether the lr of some group was reduced. */
  step(metric: number): boolean {
    this.lastEpoch += 1;
    if (this.#isBetter(metric)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs += 1;
    }
    if (this.inCooldown) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0; // bad epochs during cooldown do not count
    }
    if (this.numBadEpochs <= this.patience) return false;
    this.cooldownCounter = this.cooldown;
    this.numBadEpochs = 0;
    let reduced = false;
    this.optimizer.paramGroups.forEach((g, i) => {
      const newLr = Math.max(g.lr * this.factor, this.minLrs[i]!);
      if (g.lr - newLr > this.eps) {
        g.lr = newLr;
        reduced = true;
      }
    });
    return reduced;
  }

  /** The groups' learning rates now. */
  get lastLrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** Plain JSON (an infinite best, before the first metric, is stored as null). */
  stateDict(): ReduceLROnPlateauState {
    return {
      best: Number.isFinite(this.best) ? this.best : null,
      numBadEpochs: this.numBadEpochs,
      cooldownCounter: this.cooldownCounter,
      lastEpoch: this.lastEpoch,
    };
  }

  loadStateDict(state: ReduceLROnPlateauState): void {
    this.best = state.best ?? this.#worst();
    this.numBadEpochs = state.numBadEpochs;
    this.cooldownCounter = state.cooldownCounter;
    this.lastEpoch = state.lastEpoch;
  }

  #worst(): number {
    return this.mode === 'min' ? Infinity : -Infinity;
  }

  #isBetter(metric: number): boolean {
    const { best, threshold } = this;
    if (this.mode === 'min') return this.thresholdMode === 'rel' ? metric < best * (1 - threshold) : metric < best - threshold;
    return this.thresholdMode === 'rel' ? metric > best * (threshold + 1) : metric > best + threshold;
  }
}
