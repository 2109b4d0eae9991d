// Optimisers over parameter tensors with PyTorch's update rules (torch.optim.Adam, AdamW, SGD) and
// gradient-norm clipping.
//
// The arithmetic is native: one call per parameter group per step (adamStep / sgdStep of
// src/tensor/optim-kernels.ts) rather than a dozen JS-dispatched ops per parameter. What stays in
// JS is bookkeeping: which parameters have a gradient this step, per-parameter step counts, and
// the state tensors, which are ordinary Tensors kept out of tidy() scopes so that they save, load
// and dispose like any other state.
//
// Parameters are numbered across groups in order (group 0's params, then group 1's, ...), as in
// PyTorch's state_dict; state tensors are named `state.<index>.<name>` after that numbering.
import { configError, disposedError, shapeError } from '../tensor/errors.js';
import { adamStep, clipGradNormOf, sgdStep, zeroGrads } from '../tensor/optim-kernels.js';
import { Tensor, zerosLike } from '../tensor/index.js';

// ---- options and groups ----------------------------------------------------------------------------

/** Hyper-parameters every optimiser has. */
export interface BaseOptions {
  lr: number;
  weightDecay: number;
}

export interface AdamOptions extends BaseOptions {
  /** Decay rates of the first and second moment averages. */
  betas: [number, number];
  /** Added to the denominator for numerical stability. */
  eps: number;
}

export interface SgdOptions extends BaseOptions {
  momentum: number;
  /** Fraction of the gradient withheld from the momentum buffer (after the first step). */
  dampening: number;
  nesterov: boolean;
}

/** Parameters with per-group overrides of the optimiser's options (e.g. no weight decay for biases). */
export type ParamGroupSpec<O> = { params: Tensor[] } & Partial<O>;

/**
 * A parameter group as the optimiser holds it: every option resolved. `lr` is mutable (learning
 * rate schedules set it); `initialLr` is the base a schedule scales, recorded by the first
 * schedule attached (PyTorch's `initial_lr`).
 */
export type ParamGroup<O> = O & { params: Tensor[]; initialLr?: number };

/** A plain list of parameters (one group) or a list of groups. */
export type ParamsInput<O> = Tensor[] | ParamGroupSpec<O>[];

/** JSON-able hyper-parameters of one group; `params` lists its parameters' indices. */
export type GroupMeta = { params: number[]; initialLr?: number } & Record<string, number | boolean | number[] | undefined>;

/** Everything an optimiser needs to resume exactly, as plain data. */
export interface OptimizerStateDict {
  /**
   * State tensors named `state.<param index>.<name>` (Adam: expAvg, expAvgSq; SGD with momentum:
   * momentumBuffer). They are copies that the caller owns: made in the current tidy() scope,
   * or freed by the garbage collector outside any scope.
   */
  tensors: Record<string, Tensor>;
  /** Plain JSON: what JSON.stringify / JSON.parse round-trip unchanged. */
  meta: {
    kind: string;
    /** Number of step() calls. */
    stepCount: number;
    groups: GroupMeta[];
    /** Per-parameter step counts by parameter index, for parameters that have state. */
    steps: Record<string, number>;
  };
}

interface ParamState {
  /** Steps this parameter has taken (steps on which it had a gradient), as PyTorch counts them. */
  step: number;
  tensors: Record<string, Tensor>;
  /** Names of tensors created (as zeros) for the coming update and not yet written by one. */
  fresh: Set<string>;
}

/** One parameter that has a gradient this step, with its state (created lazily). */
interface Ready {
  param: Tensor;
  state: ParamState;
}

// ---- the base class ------------------------------------------------------------------------------------

export abstract class Optimizer<O extends BaseOptions> {
  readonly paramGroups: ParamGroup<O>[];
  /** Number of step() calls so far. */
  stepCount = 0;
  readonly #state = new Map<Tensor, ParamState>();
  #disposed = false;

  protected constructor(
    /** The optimiser's name, checked by loadStateDict. */
    readonly kind: string,
    params: ParamsInput<O>,
    defaults: O,
  ) {
    if (params.length === 0) throw configError(kind, 'got an empty parameter list');
    const specs: ParamGroupSpec<O>[] = params[0] instanceof Tensor
      ? [{ params: params as Tensor[] } as ParamGroupSpec<O>]
      : (params as ParamGroupSpec<O>[]);
    const seen = new Set<Tensor>();
    this.paramGroups = specs.map((spec, g) => {
      if (!spec || !Array.isArray(spec.params)) throw configError(kind, `group ${g} has no params array`);
      for (const p of spec.params) {
        if (!(p instanceof Tensor)) throw configError(kind, `group ${g} holds something that is not a Tensor`);
        if (seen.has(p)) throw configError(kind, 'some parameters appear more than once (in one group or in several)');
        seen.add(p);
      }
      const group = { ...defaults, ...spec, params: [...spec.params] } as ParamGroup<O>;
      this.validate(group, g);
      return group;
    });
  }

  /** Throws a config EngramError when a group's options are out of range. */
  protected abstract validate(group: O, index: number): void;
  /** Names of the state tensors a parameter of this group has (created as zeros like the param). */
  protected abstract stateNames(group: O): string[];
  /** Updates the group's parameters that have gradients, with one native call in the usual case. */
  protected abstract update(group: O, ready: Ready[]): void;

  /** All parameters, group by group (their indices in stateDict). */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** The first group's learning rate. */
  get lr(): number {
    return this.paramGroups[0]!.lr;
  }
  /** Sets every group's learning rate. */
  set lr(value: number) {
    for (const g of this.paramGroups) g.lr = value;
  }

  /** One update of every parameter that has a gradient; parameters without one are left alone. */
  step(): void {
    this.#checkAlive('step');
    for (const group of this.paramGroups) {
      const ready: Ready[] = [];
      for (const param of group.params) {
        if (!param.hasGrad) continue;
        ready.push({ param, state: this.#ensureState(param, group) });
      }
      if (ready.length === 0) continue;
      this.update(group, ready);
      for (const r of ready) r.state.fresh.clear();
    }
    this.stepCount += 1;
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    zeroGrads(this.params);
  }

  /** Copies of the state tensors plus JSON-able hyper-parameters and step counts. */
  stateDict(): OptimizerStateDict {
    this.#checkAlive('stateDict');
    const tensors: Record<string, Tensor> = {};
    const steps: Record<string, number> = {};
    let index = 0;
    const groups = this.paramGroups.map((group) => {
      const indices: number[] = [];
      for (const p of group.params) {
        const state = this.#state.get(p);
        if (state) {
          steps[index] = state.step;
          for (const [name, t] of Object.entries(state.tensors)) tensors[`state.${index}.${name}`] = t.clone();
        }
        indices.push(index++);
      }
      const { params: _params, ...hyper } = group;
      return { ...structuredClone(hyper), params: indices } as GroupMeta;
    });
    return { tensors, meta: { kind: this.kind, stepCount: this.stepCount, groups, steps } };
  }

  /**
   * Restores hyper-parameters (learning rates included), step counts and state from a stateDict of
   * an optimiser of the same kind over parameters of the same shapes, grouped the same way. The
   * tensors are copied (into this optimiser's dtype and device); the caller still owns them.
   * Throws, changing nothing, when the dict does not fit.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    this.#checkAlive('loadStateDict');
    const { tensors, meta } = dict;
    const op = `${this.kind}.loadStateDict`;
    if (meta.kind !== this.kind) throw configError(op, `the state is from ${meta.kind}, not ${this.kind}`);
    if (meta.groups.length !== this.paramGroups.length) {
      throw configError(op, `the state has ${meta.groups.length} parameter groups, this optimiser ${this.paramGroups.length}`);
    }
    meta.groups.forEach((g, i) => {
      if (g.params.length !== this.paramGroups[i]!.params.length) {
        throw configError(op, `group ${i} has ${g.params.length} parameters in the state, ${this.paramGroups[i]!.params.length} here`);
      }
    });
    const params = this.params;
    // Build the new state completely before replacing the old, so a bad dict changes nothing.
    const loaded = new Map<Tensor, ParamState>();
    try {
      let index = 0;
      for (const [g, group] of this.paramGroups.entries()) {
        const { params: _indices, ...hyper } = meta.groups[g]!;
        const options = { ...group, ...structuredClone(hyper) } as ParamGroup<O>;
        this.validate(options, g);
        for (const _ of group.params) {
          const step = meta.steps[index];
          if (step !== undefined) loaded.set(params[index]!, { step, tensors: {}, fresh: new Set() });
          for (const name of this.stateNames(options)) {
            if (step !== undefined && !tensors[`state.${index}.${name}`]) throw configError(op, `missing state tensor state.${index}.${name}`);
          }
          index++;
        }
      }
      for (const [key, src] of Object.entries(tensors)) {
        const [, indexText, name] = /^state\.(\d+)\.(\w+)$/.exec(key) ?? [];
        const param = params[Number(indexText)];
        const state = param && loaded.get(param);
        if (!state || !name) throw configError(op, `unexpected state tensor ${key} (no such parameter, or no step count for it)`);
        if (src.shape.join() !== param.shape.join()) {
          throw shapeError(op, `${key} has shape [${src.shape}], its parameter [${param.shape}]`);
        }
        state.tensors[name] = zerosLike(param).keep().copy_(src);
      }
    } catch (e) {
      for (const s of loaded.values()) for (const t of Object.values(s.tensors)) t.dispose();
      throw e;
    }
    this.#freeState();
    for (const [p, s] of loaded) this.#state.set(p, s);
    for (const [g, group] of this.paramGroups.entries()) {
      const { params: _indices, ...hyper } = meta.groups[g]!;
      // Replace the options wholesale (as PyTorch), so an initialLr absent from the state goes too.
      delete group.initialLr;
      Object.assign(group, structuredClone(hyper));
    }
    this.stepCount = meta.stepCount;
  }

  /** Frees the state tensors; the optimiser cannot be used afterwards. Disposing twice is harmless. */
  dispose(): void {
    this.#freeState();
    this.#disposed = true;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal for tests and debugging: a parameter's state tensors (not copies), or undefined. */
  stateOf(param: Tensor): Readonly<Record<string, Tensor>> | undefined {
    return this.#state.get(param)?.tensors;
  }

  #ensureState(param: Tensor, group: O): ParamState {
    let state = this.#state.get(param);
    if (!state) {
      state = { step: 0, tensors: {}, fresh: new Set() };
      this.#state.set(param, state);
    }
    // Missing tensors are made here, not only at the first step: options can change between steps
    // (e.g. SGD's momentum set from 0 to 0.9). keep(): state is made during some step(), usually
    // inside the caller's tidy(), and must outlive it.
    for (const name of this.stateNames(group)) {
      if (state.tensors[name]) continue;
      state.tensors[name] = zerosLike(param).keep();
      state.fresh.add(name);
    }
    return state;
  }

  #freeState(): void {
    for (const s of this.#state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.#state.clear();
  }

  #checkAlive(op: string): void {
    if (this.#disposed) throw disposedError(`${this.kind}.${op}`, 'the optimiser was disposed; make a new one');
  }
}

/** Items split into runs sharing a key, in first-seen order of the keys. */
function batchBy<T, K>(items: T[], key: (item: T) => K): T[][] {
  const batches = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const batch = batches.get(k);
    if (batch) batch.push(item);
    else batches.set(k, [item]);
  }
  return [...batches.values()];
}

function checkRange(op: string, group: number, name: string, value: unknown, ok: (v: number) => boolean, what: string): void {
  if (typeof value !== 'number' || !ok(value)) throw configError(op, `group ${group}: ${name} must be ${what}, got ${String(value)}`);
}

// ---- Adam and AdamW ---------------------------------------------------------------------------------------

// The two differ only in how weight decay enters, which the native kernel takes as a flag.
abstract class AdamFamily extends Optimizer<AdamOptions> {
  protected constructor(kind: string, private readonly decoupled: boolean, params: ParamsInput<AdamOptions>, defaults: AdamOptions) {
    super(kind, params, defaults);
  }

  protected override validate(o: AdamOptions, g: number): void {
    checkRange(this.kind, g, 'lr', o.lr, (v) => v >= 0, '>= 0');
    checkRange(this.kind, g, 'eps', o.eps, (v) => v >= 0, '>= 0');
    checkRange(this.kind, g, 'weightDecay', o.weightDecay, (v) => v >= 0, '>= 0');
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw configError(this.kind, `group ${g}: betas must be [beta1, beta2]`);
    checkRange(this.kind, g, 'betas[0]', o.betas[0], (v) => v >= 0 && v < 1, 'in [0, 1)');
    checkRange(this.kind, g, 'betas[1]', o.betas[1], (v) => v >= 0 && v < 1, 'in [0, 1)');
  }

  protected override stateNames(): string[] {
    return ['expAvg', 'expAvgSq'];
  }

  protected override update(group: AdamOptions, ready: Ready[]): void {
    const [beta1, beta2] = group.betas;
    for (const r of ready) r.state.step += 1;
    // The bias corrections use each parameter's own step count (as PyTorch); the counts differ only
    // for parameters that missed gradients on some steps, so this is one batch in the usual case.
    for (const batch of batchBy(ready, (r) => r.state.step)) {
      adamStep(
        batch.map((r) => r.param),
        batch.map((r) => r.state.tensors.expAvg!),
        batch.map((r) => r.state.tensors.expAvgSq!),
        { step: batch[0]!.state.step, lr: group.lr, beta1, beta2, eps: group.eps, weightDecay: group.weightDecay, decoupled: this.decoupled },
      );
    }
  }
}

/**
 * Adam (torch.optim.Adam): weight decay, when set, is L2 added to the gradient. Defaults as
 * PyTorch: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.
 */
export class Adam extends AdamFamily {
  constructor(params: ParamsInput<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super('Adam', false, params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...options });
  }
}

/**
 * AdamW (torch.optim.AdamW): Adam with decoupled weight decay, p <- p * (1 - lr * weightDecay)
 * before the Adam update. Defaults as PyTorch: lr 1e-3, betas [0.9, 0.999], eps 1e-8,
 * weightDecay 0.01.
 */
export class AdamW extends AdamFamily {
  constructor(params: ParamsInput<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super('AdamW', true, params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, ...options });
  }
}

// ---- SGD -----------------------------------------------------------------------------------------------------

/**
 * Stochastic gradient descent (torch.optim.SGD) with optional momentum, dampening, Nesterov
 * momentum and L2 weight decay. Defaults: lr 1e-3, momentum 0, dampening 0, weightDecay 0,
 * nesterov false.
 */
export class SGD extends Optimizer<SgdOptions> {
  constructor(params: ParamsInput<SgdOptions>, options: Partial<SgdOptions> = {}) {
    super('SGD', params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options });
  }

  protected override validate(o: SgdOptions, g: number): void {
    checkRange('SGD', g, 'lr', o.lr, (v) => v >= 0, '>= 0');
    checkRange('SGD', g, 'momentum', o.momentum, (v) => v >= 0, '>= 0');
    checkRange('SGD', g, 'dampening', o.dampening, Number.isFinite, 'a finite number');
    checkRange('SGD', g, 'weightDecay', o.weightDecay, (v) => v >= 0, '>= 0');
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw configError('SGD', `group ${g}: Nesterov momentum requires a momentum and zero dampening`);
    }
  }

  protected override stateNames(group: SgdOptions): string[] {
    return group.momentum !== 0 ? ['momentumBuffer'] : [];
  }

  protected override update(group: SgdOptions, ready: Ready[]): void {
    const { lr, momentum, dampening, weightDecay, nesterov } = group;
    if (momentum === 0) {
      sgdStep(ready.map((r) => r.param), [], { lr, momentum: 0, dampening, weightDecay, nesterov, firstStep: false });
      for (const r of ready) r.state.step += 1;
      return;
    }
    // A new momentum buffer takes the gradient as it is (PyTorch's clone); later steps decay it.
    // Parameters with new buffers go in a call of their own with firstStep set: a separate call only
    // when some parameter first gets a gradient after the others (or momentum was just turned on).
    const isNew = (r: Ready): boolean => r.state.fresh.has('momentumBuffer');
    for (const batch of batchBy(ready, isNew)) {
      sgdStep(
        batch.map((r) => r.param),
        batch.map((r) => r.state.tensors.momentumBuffer!),
        { lr, momentum, dampening, weightDecay, nesterov, firstStep: isNew(batch[0]!) },
      );
    }
    for (const r of ready) r.state.step += 1;
  }
}

// ---- gradient clipping ---------------------------------------------------------------------------------------

/**
 * Scales the gradients of params in place so that their total norm (the normType-norm of all
 * gradients together, as if concatenated) is at most maxNorm: each is multiplied by
 * min(1, maxNorm / (total + 1e-6)), as torch.nn.utils.clip_grad_norm_. Parameters without a
 * gradient are ignored. Returns the total norm before clipping (0 when no parameter has a
 * gradient). normType may be Infinity (the largest absolute gradient element).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  if (!(maxNorm >= 0)) throw configError('clipGradNorm', `maxNorm must be >= 0, got ${maxNorm}`);
  if (!(normType > 0)) throw configError('clipGradNorm', `normType must be > 0 (or Infinity), got ${normType}`);
  return clipGradNormOf(params, maxNorm, normType);
}
