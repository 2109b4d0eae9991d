// What a run is trained on and judged by: one interface, two implementations (SPEC §0, §6, §8).
//
//   TaskObjective            an algorithmic task: each step draws a fresh batch from the task's own
//                            generator (seeded with train.seed) and runs every sample's segments from
//                            model.initState(B); the loss is the cross-entropy summed over the scored
//                            positions (targets -100 are not), which the trainer divides by their
//                            number; evaluated on fixed held-out batches (train.evalSeed); headline
//                            accuracy, higher better
//   LanguageModelObjective   a character corpus: the training split read as B contiguous streams,
//                            bpttDepth + 1 segments per step, the state carried (detached) from step
//                            to step and started over at a new epoch; evaluated on the validation
//                            split; headline bits per character, lower better
//
// A trained run needs less than training does: its metric, how it evaluates, generates and picks
// an input to inspect. That part is RunObjective; a language-model run loads its corpus only when
// it evaluates or inspects the validation split, so `generate` works without it. The trainer holds
// an Objective (a RunObjective with its data loaded) and never asks which kind it is.
//
// Data parallelism (src/distributed): with a shard {rank, worldSize} an objective reads its rank's
// part of every batch (a task: rows [rank * B/W, (rank + 1) * B/W) of the batch one process would
// draw, so the ranks' samples together are the single-process stream for the seed; LM: the same
// share of the B streams) and hands backward the scored tokens of the whole job's batch, so that
// averaging the ranks' gradients gives the single-process gradient.
//
// Shapes: B batch, M segment length, T = numSegments * M.
import { checkPrecision, configError, ioError, resolveDevice, tidy, type Device, type Precision, type Tensor } from '../tensor/index.js';
import { createModel, type CreateModelOptions, type MemoryState, type SegmentModel } from '../models/index.js';
import { Rng } from '../tasks/random.js';
import { shardRows, StreamBatcher, type Shard } from '../tasks/stream.js';
import { CharVocab } from '../tasks/vocab.js';
import { IGNORE_INDEX, type SegmentedTask } from '../tasks/types.js';
import { makeTask, type TaskName } from '../tasks/registry.js';
import type { DataSection, LmDataSection, TaskDataSection, TrainConfig, TrainSection } from './config.js';
import { loadCorpus, taskOf, type LmCorpus } from './data.js';
import { accuracyCounts, crossEntropySum, summarize, type MetricCounts, type Metrics } from './metrics.js';
import { unroll } from './unroll.js';
import { disposeState, evaluateLm, evaluateLmCounts, evaluateTask, evaluateTaskCounts, splitSegments } from './evaluate.js';
import { generateAnswers, generateText } from './generate.js';
import { hasCheckpoint, loadCheckpoint, withPrefix, type CheckpointMeta } from './checkpoint.js';
import { isModelFolder, loadModel, saveModel } from './model-folder.js';

/** The number a run is judged by. */
export type HeadlineMetric = 'accuracy' | 'bpc';

/** Where the training data stands, saved in a checkpoint (the checkpoint's `data` field). */
export type DataPosition = CheckpointMeta['data'];

/** One step's numbers. */
export interface StepStats {
  counts: MetricCounts;
  /** Tokens the step read (throughput). */
  tokens: number;
}

/**
 * Takes a step's summed cross-entropy (null: nothing scored), the number of scored tokens in the
 * whole job's batch (all ranks) and the auxiliary losses, and runs backward and the optimiser on them.
 */
export type BackwardFn = (ce: Tensor | null, tokens: number, aux: Tensor[]) => void;

/** `engram eval`'s options: --batches / --seed / --segments for tasks, --split for LM. */
export interface RunEvalOptions {
  batches?: number | undefined;
  seed?: number | undefined;
  segments?: number | undefined;
  split?: 'valid' | 'test' | undefined;
}

/** `engram generate`'s options: --prompt / --length for LM, --samples for tasks. */
export interface RunGenerateOptions {
  prompt: string;
  length: number;
  /** Default: 0 (greedy) for task answers, 0.8 for text. */
  temperature?: number | undefined;
  topK: number;
  seed: number;
  samples: number;
}

/** `engram inspect`'s input options: --text / --length / --offset for LM, --seed for tasks. */
export interface InspectionInputOptions {
  text?: string | undefined;
  length: number;
  offset: number;
  seed: number;
}

export interface InspectionInput {
  tokens: number[];
  decode: (id: number) => string;
  segmentLength: number;
}

/** What a trained run's data section means: its metric, its evaluation, generation and inspection input. */
export interface RunObjective {
  readonly segmentLength: number;
  /** The headline metric and its direction ('max': higher is better). */
  readonly metric: HeadlineMetric;
  readonly mode: 'max' | 'min';
  /** Held-out metrics of a model as `engram eval` computes them, and one line saying on what. */
  evaluateRun(model: SegmentModel, o: RunEvalOptions): Promise<{ metrics: Metrics; what: string }>;
  /** `engram generate`'s output lines: text continuing a prompt, or task answers generated token by token. */
  generate(model: SegmentModel, o: RunGenerateOptions): string[];
  /** The tokens `engram inspect` runs the model over. */
  inspectionInput(o: InspectionInputOptions): Promise<InspectionInput>;
}

/** A RunObjective with its training data: what a step reads, its loss, its evaluation, its data position. */
export interface Objective extends RunObjective {
  readonly vocabSize: number;
  /** Tokens a step reads: B * T for tasks, B * (k + 1) * M for LM. */
  readonly tokensPerStep: number;
  /** The vocabulary a checkpoint keeps (CharVocab.toString()); null where the task defines it. */
  readonly vocab: string | null;
  /** The state carried from one step into the next (null: none). */
  readonly carry: MemoryState | null;
  /** One line for the CLI: the data and its segments. */
  describe(): string;
  /** Reads the next batch, runs it and hands its loss to `backward`; libtorch's seed is set by the caller. */
  step(model: SegmentModel, backward: BackwardFn): StepStats;
  /**
   * Held-out metrics during training (tasks: the fixed evaluation batches; LM: the validation split).
   * With a shard, this rank's part of them: `reduce` sums its counts over the ranks.
   */
  evaluate(model: SegmentModel, reduce?: (counts: MetricCounts) => MetricCounts): Metrics;
  position(): DataPosition;
  /** Continues from a checkpoint's data position and carried state (the objective owns `carry` then). */
  restore(position: DataPosition, carry: MemoryState | null): void;
  /**
   * Cuts the task into this many segments from the next step on (a curriculum's stage); tasks only.
   * Steps and evaluations after it read the same samples cut finer; nothing is carried between samples.
   */
  useSegments?(numSegments: number): void;
  /** Frees the carried state. */
  dispose(): void;
}

/** The headline of an evaluation under an objective. */
export function headline(objective: RunObjective, m: Metrics): { name: HeadlineMetric; value: number } {
  return { name: objective.metric, value: m[objective.metric] };
}

/** Whether evaluation `a` beats `b` (anything beats none). */
export function isBetter(objective: RunObjective, a: Metrics, b: Metrics | null): boolean {
  if (!b) return true;
  return objective.mode === 'max' ? a[objective.metric] > b[objective.metric] : a[objective.metric] < b[objective.metric];
}

export class TaskObjective implements Objective {
  static readonly metric: HeadlineMetric = 'accuracy';
  readonly metric = TaskObjective.metric;
  readonly mode = 'max';
  readonly vocab = null;
  readonly carry = null;
  #task: SegmentedTask;
  readonly #rng: Rng;

  readonly #rows: { from: number; count: number };
  readonly #shard: Shard | null;

  constructor(readonly section: TaskDataSection, readonly train: TrainSection, shard: Shard | null = null) {
    this.#task = taskOf(section);
    this.#shard = shard;
    this.#rows = shardRows(train.batchSize, shard, 'TaskObjective');
    this.#rng = new Rng(train.seed);
  }

  /** 'copy-2seg' (the run directory's name before the model kind). */
  static runName(section: TaskDataSection): string {
    const n = (section.options as { numSegments?: number }).numSegments;
    return `${section.name}${n ? `-${String(n)}seg` : ''}`;
  }

  /** The task as it is cut now (data.options', or a curriculum stage's number of segments). */
  get task(): SegmentedTask {
    return this.#task;
  }

  useSegments(numSegments: number): void {
    if (numSegments === this.#task.numSegments) return;
    this.#task = makeTask(this.section.name as TaskName, { ...this.section.options, numSegments } as never);
  }

  get vocabSize(): number {
    return this.task.vocabSize;
  }

  get segmentLength(): number {
    return this.task.segmentLength;
  }

  get tokensPerStep(): number {
    return this.train.batchSize * this.task.numSegments * this.task.segmentLength;
  }

  describe(): string {
    return `${this.section.name}, ${this.task.numSegments} segment(s) of ${this.task.segmentLength}`;
  }

  step(model: SegmentModel, backward: BackwardFn): StepStats {
    const { batchSize: B, bpttDepth } = this.train;
    const n = this.task.numSegments, M = this.task.segmentLength;
    const rows = this.#rows;
    const counts = tidy(() => {
      const full = this.task.batch(B, this.#rng, model.device);
      const jobScored = rows.count === B ? null : full.targets.ne(IGNORE_INDEX).sum().item();
      const part = (t: Tensor) => (rows.count === B ? t : t.narrow(0, rows.from, rows.count));
      const batch = { tokens: part(full.tokens), targets: part(full.targets), answerMask: full.answerMask ? part(full.answerMask) : null };
      const tokens = splitSegments(batch.tokens, n, M);
      const targets = splitSegments(batch.targets, n, M);
      const scored = targets.map((t) => t.ne(IGNORE_INDEX).sum().item());
      const losses: Tensor[] = [], aux: Tensor[] = [];
      const { outputs } = unroll(model, tokens, null, {
        bpttDepth,
        onSegment: (τ, out) => {
          if (scored[τ]! > 0) losses.push(crossEntropySum(out.logits, targets[τ]!));
          if (out.auxLoss) aux.push(out.auxLoss);
        },
      });
      const total = scored.reduce((a, b) => a + b, 0);
      const ce = losses.length ? losses.reduce((a, b) => a.add(b)) : null;
      backward(ce, jobScored ?? total, aux);
      const acc = accuracyCounts(outputs.map((o) => o.logits), batch.targets, batch.answerMask, true);
      const auxSum = aux.reduce((s, a) => s + a.item(), 0);
      return { ...acc, lossSum: ce?.item() ?? 0, tokens: total, auxSum, batches: 1 };
    });
    return { counts, tokens: rows.count * n * M };
  }

  evaluate(model: SegmentModel, reduce?: (counts: MetricCounts) => MetricCounts): Metrics {
    const t = this.train;
    const o = { batches: t.evalBatches, batchSize: t.batchSize, seed: t.evalSeed };
    if (!reduce) return evaluateTask(model, this.task, o);
    return summarize(reduce(evaluateTaskCounts(model, this.task, { ...o, shard: this.#shard })));
  }

  position(): DataPosition {
    return { taskRng: this.#rng.state() };
  }

  restore(position: DataPosition, carry: MemoryState | null): void {
    if (carry) {
      disposeState(carry);
      throw ioError('TaskObjective.restore', 'cannot resume: the checkpoint carries a memory state, but a task run starts every sample afresh, so it is not from a task run; resume from the run that wrote it');
    }
    if (position.taskRng) this.#rng.setState(position.taskRng);
  }

  async evaluateRun(model: SegmentModel, o: RunEvalOptions): Promise<{ metrics: Metrics; what: string }> {
    const t = this.train;
    const task = o.segments ? makeTask(this.section.name as TaskName, { ...this.section.options, numSegments: o.segments } as never) : this.task;
    const batches = o.batches ?? t.evalBatches;
    const metrics = evaluateTask(model, task, { batches, batchSize: t.batchSize, seed: o.seed ?? t.evalSeed });
    return { metrics, what: `${this.section.name}, ${task.numSegments} segment(s) of ${task.segmentLength}, ${batches * t.batchSize} held-out samples` };
  }

  generate(model: SegmentModel, o: RunGenerateOptions): string[] {
    const answers = generateAnswers(model, this.task, { samples: o.samples, seed: o.seed, temperature: o.temperature ?? 0, topK: o.topK });
    const lines = answers.flatMap((a) => [
      `input     ${a.input}`,
      `expected  ${a.expected}`,
      `generated ${a.generated}   ${a.exact ? 'exact' : `${a.correct}/${a.total} right`}`,
      '',
    ]);
    lines.push(`${answers.filter((a) => a.exact).length}/${answers.length} answers exactly right`);
    return lines;
  }

  async inspectionInput(o: InspectionInputOptions): Promise<InspectionInput> {
    if (o.text !== undefined) throw configError('inspect', '--text is for language-model runs; a task run inspects one of its samples (--seed)');
    const task = this.task;
    return { tokens: task.sample(new Rng(o.seed)).tokens, decode: (id) => task.decode([id]) || ' ', segmentLength: task.segmentLength };
  }

  dispose(): void {}
}

/** A trained language-model run: its vocabulary; the corpus is read when an evaluation needs it. */
export class LanguageModelRun implements RunObjective {
  static readonly metric: HeadlineMetric = 'bpc';
  readonly metric = LanguageModelRun.metric;
  readonly mode = 'min';
  #corpus: Promise<LmCorpus> | null;

  constructor(readonly section: LmDataSection, readonly train: TrainSection, readonly charVocab: CharVocab, corpus: LmCorpus | null = null) {
    this.#corpus = corpus ? Promise.resolve(corpus) : null;
  }

  /** 'lm-tinyshakespeare' (the run directory's name before the model kind). */
  static runName(section: LmDataSection): string {
    return `lm-${section.corpus.replace(/.*\//, '').replace(/\.[^.]*$/, '')}`;
  }

  get segmentLength(): number {
    return this.section.segmentLength;
  }

  /** The corpus split with this run's vocabulary (read once). */
  corpus(): Promise<LmCorpus> {
    this.#corpus ??= loadCorpus(this.section, this.charVocab);
    return this.#corpus;
  }

  async evaluateRun(model: SegmentModel, o: RunEvalOptions): Promise<{ metrics: Metrics; what: string }> {
    const split = o.split ?? 'valid';
    const corpus = await this.corpus();
    const tokens = corpus[split];
    const metrics = evaluateLm(model, tokens, { batchSize: this.train.batchSize, segmentLength: this.segmentLength });
    return { metrics, what: `${this.section.corpus}, ${split} split (${tokens.length} characters)` };
  }

  generate(model: SegmentModel, o: RunGenerateOptions): string[] {
    const text = generateText(model, this.charVocab, this.segmentLength, { prompt: o.prompt, length: o.length, temperature: o.temperature ?? 0.8, topK: o.topK, seed: o.seed });
    return [`${o.prompt}${text}`];
  }

  async inspectionInput(o: InspectionInputOptions): Promise<InspectionInput> {
    const vocab = this.charVocab;
    const decode = (id: number) => vocab.decode([id]);
    if (o.text !== undefined) return { tokens: Array.from(vocab.encode(o.text)), decode, segmentLength: this.segmentLength };
    const { valid } = await this.corpus();
    if (o.offset >= valid.length) throw configError('inspect', `--offset ${o.offset} is past the end of the validation split (${valid.length} characters); give an offset below ${valid.length}`);
    return { tokens: Array.from(valid.subarray(o.offset, o.offset + o.length)), decode, segmentLength: this.segmentLength };
  }
}

export class LanguageModelObjective extends LanguageModelRun implements Objective {
  readonly data: LmCorpus;
  /** BPTT depth k: an unroll is k + 1 segments. */
  readonly depth: number;
  readonly #batcher: StreamBatcher;
  readonly #shard: Shard | null;
  #carry: MemoryState | null = null;

  /** device: where the training batches are made (the model's). */
  constructor(section: LmDataSection, train: TrainSection, corpus: LmCorpus, shard: Shard | null = null, device: Device = 'cpu') {
    super(section, train, corpus.vocab, corpus);
    if (train.bpttDepth === 'all') {
      throw configError('LanguageModelObjective', "train.bpttDepth must be a number of segments (an unroll is bpttDepth + 1 segments), not 'all'; resolve the configuration with resolveTrainConfig");
    }
    this.depth = train.bpttDepth;
    this.data = corpus;
    this.#shard = shard;
    this.#batcher = new StreamBatcher(corpus.train, { batchSize: train.batchSize, segmentLength: section.segmentLength, remainder: 'drop', shard, device });
  }

  get vocabSize(): number {
    return this.charVocab.size;
  }

  get vocab(): string {
    return this.charVocab.toString();
  }

  get carry(): MemoryState | null {
    return this.#carry;
  }

  get tokensPerStep(): number {
    return this.train.batchSize * (this.depth + 1) * this.segmentLength;
  }

  describe(): string {
    return `${this.data.train.length} training characters, segments of ${this.segmentLength}`;
  }

  step(model: SegmentModel, backward: BackwardFn): StepStats {
    const k = this.depth;
    const batcher = this.#batcher;
    const r = tidy(() => {
      const tokens: Tensor[] = [], targets: Tensor[] = [];
      const resetBefore = new Set<number>();
      for (let i = 0; i <= k; i++) {
        const seg = batcher.next();
        tokens.push(seg.tokens);
        targets.push(seg.targets);
        if (seg.first) resetBefore.add(i); // a new epoch: the streams start over
      }
      const losses: Tensor[] = [], aux: Tensor[] = [];
      const { outputs, state } = unroll(model, tokens, this.#carry, {
        bpttDepth: k,
        resetBefore,
        onSegment: (τ, out) => {
          losses.push(crossEntropySum(out.logits, targets[τ]!));
          if (out.auxLoss) aux.push(out.auxLoss);
        },
      });
      const total = targets.reduce((s, t) => s + t.numel, 0);
      const ce = losses.reduce((a, b) => a.add(b));
      backward(ce, (total * batcher.batchSize) / batcher.localBatchSize, aux); // every stream of the job scores as many

      let acc = { answerTokens: 0, correct: 0, samples: 0, exact: 0 };
      outputs.forEach((o, i) => {
        const a = accuracyCounts([o.logits], targets[i]!, null, false);
        acc = { ...acc, answerTokens: acc.answerTokens + a.answerTokens, correct: acc.correct + a.correct };
      });
      const auxSum = aux.reduce((s, a) => s + a.item(), 0);
      const counts: MetricCounts = { ...acc, lossSum: ce.item(), tokens: total, auxSum, batches: 1 };
      return { counts, tokens: total, carry: model.detachState(state) };
    });
    disposeState(this.#carry);
    this.#carry = r.carry;
    return { counts: r.counts, tokens: r.tokens };
  }

  evaluate(model: SegmentModel, reduce?: (counts: MetricCounts) => MetricCounts): Metrics {
    const o = { batchSize: this.train.batchSize, segmentLength: this.segmentLength, maxTokens: this.section.maxEvalTokens };
    if (!reduce) return evaluateLm(model, this.data.valid, o);
    return summarize(reduce(evaluateLmCounts(model, this.data.valid, { ...o, shard: this.#shard })));
  }

  position(): DataPosition {
    return { stream: this.#batcher.position() };
  }

  restore(position: DataPosition, carry: MemoryState | null): void {
    disposeState(this.#carry);
    this.#carry = carry;
    if (position.stream) this.#batcher.restore(position.stream);
  }

  dispose(): void {
    disposeState(this.#carry);
    this.#carry = null;
  }
}

/**
 * The objective of a configuration with its data loaded. A language model's vocabulary is built
 * from the whole text unless one is given (a checkpoint's, so that ids mean what they meant).
 */
export async function createObjective(config: TrainConfig, { vocab = null, shard = null, device = 'cpu' }: { vocab?: string | null; shard?: Shard | null; device?: Device } = {}): Promise<Objective> {
  const data = config.data;
  if (data.kind === 'task') return new TaskObjective(data, config.train, shard);
  return new LanguageModelObjective(data, config.train, await loadCorpus(data, vocab !== null ? CharVocab.fromString(vocab) : null), shard, device);
}

/** The headline metric of a data section: accuracy for tasks, bpc for language modelling. */
export function headlineMetric(data: DataSection): HeadlineMetric {
  return data.kind === 'task' ? TaskObjective.metric : LanguageModelRun.metric;
}

/** A run directory's name before the model kind: 'copy-2seg', 'lm-tinyshakespeare'. */
export function runName(data: DataSection): string {
  return data.kind === 'task' ? TaskObjective.runName(data) : LanguageModelRun.runName(data);
}

interface LoadedRunBase {
  /** The run directory or model folder it was loaded from. */
  dir: string;
  /** 'run': a run directory's checkpoint; 'model-folder': a folder written by saveModel / engram export. */
  source: 'run' | 'model-folder';
  /** Optimiser steps the weights had taken. */
  step: number;
  /** The configuration the model was trained with. */
  config: TrainConfig;
  /** The model, in eval mode (the caller disposes it). */
  model: SegmentModel;
}

/** A run directory's checkpoint or a model folder as a model ready for evaluation or sampling, with its objective. */
export type LoadedRun =
  | (LoadedRunBase & { kind: 'task'; task: SegmentedTask; objective: TaskObjective })
  | (LoadedRunBase & { kind: 'lm'; vocab: CharVocab; objective: LanguageModelRun });

export interface LoadRunOptions {
  /**
   * How the model runs (SegmentModel.precision, default 'float32'): whatever precision the run
   * was trained at, its weights are float32 and load into either.
   */
  precision?: Precision;
}

/**
 * Loads a model folder (config.json + model.safetensors) or else a run directory's checkpoint,
 * the model on o.device (default 'cpu'; both hold CPU tensors, whatever trained them).
 */
export async function loadRun(dir: string, o: CreateModelOptions & LoadRunOptions = {}): Promise<LoadedRun> {
  const precision = checkPrecision(o.precision ?? 'float32', 'loadRun', 'precision (--precision)');
  let base: LoadedRunBase, vocabText: string | null;
  const device = resolveDevice(o.device, 'loadRun');
  if (!hasCheckpoint(dir) && isModelFolder(dir)) {
    const { model, config } = await loadModel(dir, { device });
    base = { dir, source: 'model-folder', step: config.step, config: config.training, model };
    vocabText = config.vocab;
  } else {
    const { meta, tensors } = await loadCheckpoint(dir);
    let model: SegmentModel;
    try {
      model = createModel(meta.modelConfig);
      model.loadStateDict(withPrefix(tensors, 'model.'));
      if (device !== 'cpu') model.to(device);
      model.eval();
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    base = { dir, source: 'run', step: meta.step, config: meta.config, model };
    vocabText = meta.vocab;
  }
  const { config, model } = base, data = config.data;
  model.precision = precision;
  try {
    if (data.kind === 'task') {
      const objective = new TaskObjective(data, config.train);
      return { ...base, kind: 'task', task: objective.task, objective };
    }
    if (vocabText === null) throw ioError('loadRun', `${dir}: the checkpoint of a language-model run has no vocabulary; train the run again`);
    const vocab = CharVocab.fromString(vocabText);
    return { ...base, kind: 'lm', vocab, objective: new LanguageModelRun(data, config.train, vocab) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Writes a loaded run's model as a model folder (weights only; see model-folder.ts). */
export async function exportRun(run: LoadedRun, dir: string, { overwrite = false }: { overwrite?: boolean } = {}): Promise<void> {
  await saveModel(run.model, dir, { training: run.config, vocab: run.kind === 'lm' ? run.vocab.toString() : null, step: run.step, overwrite });
}
