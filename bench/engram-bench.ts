// Engram's side of the training benchmarks (bench:models, bench:spans): a model, its Adam and a
// pool of random batches, stepped exactly as the trainer's LM step does (src/train/trainer.ts):
// inside tidy(), unroll over the step's segments, the sum of per-segment cross-entropy sums /
// tokens plus the models' auxiliary losses, zeroGrad, backward, Adam step, afterOptimizerStep,
// loss.item(); the state carried (detached) into the next step where the setup says so.
//
// Shapes: P pool batches, B batch, M segment length.
import {
  Adam, createModel, crossEntropySum, cudaSynchronize, disposeState, manualSeed, randint, saveSafetensors, tidy, unroll,
  type BpttDepth, type Device, type MemoryState, type ModelConfig, type SegmentModel, type Tensor,
} from '../src/index.js';

export interface EngramBenchSetup {
  config: ModelConfig;
  /** Segments per step, and how far back the one backward reaches (unroll's bpttDepth). */
  segments: number;
  bptt: number;
  /** Whether the state is carried (detached) from step to step. */
  carry: boolean;
  batch: number;
  segmentLength: number;
  device?: Device;
  /** Batches [B, M] cycled through (default 4). */
  pool?: number;
  seed?: number;
  /** The state the first step starts from (default: the model's fresh state); the bench owns it. */
  initial?: MemoryState | null;
}

export class EngramBench {
  readonly model: SegmentModel;
  readonly optimizer: Adam;
  /** [P, B, M] int64, kept. */
  readonly tokens: Tensor;
  readonly targets: Tensor;
  readonly #setup: Required<Omit<EngramBenchSetup, 'initial'>>;
  #carry: MemoryState | null;
  #next = 0;

  constructor(setup: EngramBenchSetup) {
    this.#setup = { device: 'cpu', pool: 4, seed: 0, ...setup };
    const { config, device, pool, batch, segmentLength, seed } = this.#setup;
    manualSeed(seed);
    this.model = createModel(config, { device }); // initialised on the CPU (the twin loads the same weights)
    this.model.train();
    this.optimizer = new Adam(this.model.parameters(), { lr: 1e-3 });
    this.tokens = randint(0, config.vocabSize, [pool, batch, segmentLength], { device }).keep();
    this.targets = randint(0, config.vocabSize, [pool, batch, segmentLength], { device }).keep();
    this.#carry = setup.initial ?? null;
  }

  get tokensPerStep(): number {
    return this.#setup.batch * this.#setup.segmentLength * this.#setup.segments;
  }

  /**
   * The trainer's objective over segments [B, M] from `initial` (null: fresh): the sum of the
   * per-segment cross-entropy sums / tokens, plus the models' auxiliary losses; and the last state.
   */
  objective(tokens: Tensor[], targets: Tensor[], initial: MemoryState | null, depth: BpttDepth): { loss: Tensor; state: MemoryState } {
    const losses: Tensor[] = [];
    const aux: Tensor[] = [];
    const { state } = unroll(this.model, tokens, initial, {
      bpttDepth: depth,
      onSegment: (τ, out) => {
        losses.push(crossEntropySum(out.logits, targets[τ]!));
        if (out.auxLoss) aux.push(out.auxLoss);
      },
    });
    const ce = losses.reduce((a, b) => a.add(b)).div(this.#setup.batch * this.#setup.segmentLength * tokens.length);
    return { loss: aux.reduce((a, b) => a.add(b), ce), state };
  }

  /** One training step, as the trainer's LM step; returns the loss. */
  step(): number {
    const { segments, bptt, carry, pool } = this.#setup;
    const picks = Array.from({ length: segments }, () => this.#next++ % pool);
    const r = tidy(() => {
      const tokens = picks.map((i) => this.tokens.select(0, i));
      const targets = picks.map((i) => this.targets.select(0, i));
      const { loss, state } = this.objective(tokens, targets, carry ? this.#carry : null, bptt);
      this.optimizer.zeroGrad();
      loss.backward();
      this.optimizer.step();
      this.model.afterOptimizerStep?.();
      return { loss: loss.item(), carry: carry ? this.model.detachState(state) : null };
    });
    disposeState(this.#carry);
    this.#carry = r.carry;
    return r.loss;
  }

  /** Seconds for n steps, and the last loss. */
  train(n: number): { seconds: number; loss: number } {
    const t0 = performance.now();
    let loss = NaN;
    for (let i = 0; i < n; i++) loss = this.step();
    if (this.#setup.device !== 'cpu') cudaSynchronize(); // loss.item() waited for the step already; queued work too
    return { seconds: (performance.now() - t0) / 1000, loss };
  }

  /** Objective of the first n pool batches as consecutive segments from a fresh state, and the gradient norm (eval mode, no step). */
  check(n: number, depth: BpttDepth = 'all'): { loss: number; gradNorm: number } {
    this.model.eval();
    const out = tidy(() => {
      const pick = (t: Tensor) => Array.from({ length: n }, (_, i) => t.select(0, i));
      const { loss } = this.objective(pick(this.tokens), pick(this.targets), null, depth);
      this.optimizer.zeroGrad();
      loss.backward();
      let sq = 0;
      for (const p of this.model.parameters()) if (p.grad) sq += p.grad.pow(2).sum().item();
      this.optimizer.zeroGrad();
      return { loss: loss.item(), gradNorm: Math.sqrt(sq) };
    });
    this.model.train();
    return out;
  }

  /** Weights and batches for PyTorch (Engram's state dict names, plus data.tokens / data.targets). */
  async save(path: string): Promise<void> {
    await saveSafetensors(path, { ...this.model.stateDict(), 'data.tokens': this.tokens, 'data.targets': this.targets });
  }

  dispose(): void {
    disposeState(this.#carry);
    this.#carry = null;
    this.tokens.dispose();
    this.targets.dispose();
    this.model.dispose();
  }
}
