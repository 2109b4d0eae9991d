// The training configuration: one zod schema, defaults sized for a 2-core CPU, and errors that
// say what is allowed.
//
// Precedence (nanoGPT's): built-in defaults <- a config file (or recipe cell) <- command-line flags.
// Unknown keys are errors at every level, so a typo never falls back to a default silently.
//
//   model   the network (src/models): kind and sizes; vocabSize comes from the data
//   data    an algorithmic task (src/tasks, makeTask) or character-level language modelling
//   train   steps, batch, BPTT depth (SPEC §6), seeds, evaluation and checkpoint cadence
//   optim   Adam / AdamW, clipping, warmup, cosine decay, reduce-on-plateau (the RMT recipe)
import { z } from 'zod';
import { DEVICE_SPECS, EngramError, configError, engramError, isDeviceSpec } from '../tensor/index.js';
import { modelKindSpec, modelKinds } from '../models/index.js';
import {
  adaptiveSpanSchema, compressiveSchema, expireSpanSchema, initialMemorySchema, rmtCacheSchema, sequentialWindowSchema,
} from '../memory/index.js';
import { finalNormSchema } from '../models/index.js';
import { makeTask, taskNames, type TaskName } from '../tasks/registry.js';
import { curriculumSchema, resolveCurriculum, type CurriculumConfig } from './curriculum.js';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().min(0);
/**
 * Upper bounds: generous for real use, but they stop an absurd value (a typo, `1e12`) before
 * anything is allocated, with a message naming the option instead of a crash or a hang.
 */
export const LIMITS = {
  layers: 1024, dModel: 65_536, heads: 4096, dInner: 262_144, memory: 1 << 20,
  steps: 1e9, batchSize: 65_536, segmentsPerStep: 65_536, evalBatches: 1_000_000, threads: 1024, segmentLength: 1 << 16,
  /** Elements of one activation, batch × (segment + memory) × dModel (2^32 floats: 16 GiB). */
  activation: 2 ** 32,
  /** Tokens of one step's batch (the task batch or the LM unroll), batch × segments × segment. */
  batchTokens: 2 ** 28,
  /** Elements of one layer's attention scores, batch × heads × segment × (segment + memory). */
  attention: 2 ** 34,
} as const;
/** A memory size: a number, or relative to the segment length: 'segment' or 'segment/N' (rounded down, at least 1). */
const memorySize = z.union([nonNegativeInt.max(LIMITS.memory), z.string().regex(/^segment(\/[1-9]\d*)?$/, "a number, 'segment' or 'segment/N'")]);
type MemorySize = z.output<typeof memorySize>;
const resolveSize = (size: MemorySize, segmentLength: number): number =>
  typeof size === 'number' ? size : Math.max(1, Math.floor(segmentLength / Number(size.split('/')[1] ?? 1)));

export const modelSchema = z.strictObject({
  kind: z.enum(modelKinds as [string, ...string[]]).default('transformer'),
  layers: positiveInt.max(LIMITS.layers).default(2),
  dModel: positiveInt.max(LIMITS.dModel).default(64),
  heads: positiveInt.max(LIMITS.heads).default(4),
  dInner: positiveInt.max(LIMITS.dInner).default(128),
  dropout: z.number().min(0).lt(1).default(0),
  norm: z.enum(['post', 'pre']).default('post'),
  /** Each position's input also embeds the token before it in its segment (nn TokenEmbedding). */
  previousToken: z.boolean().default(false),
  /** Transformer-XL cache; default for kind 'xl': the segment length (SPEC §9: memory = segment length). */
  memLen: memorySize.optional(),
  /** Memory tokens; default for rmt / mem-transformer / mem-bottleneck: 10 (RMT's enwik8 setting). */
  numMemTokens: memorySize.optional(),
  /** Mechanism options (SPEC §2–§4), for their own kind only; schemas and defaults live with each mechanism in src/memory. */
  adaptiveSpan: adaptiveSpanSchema.partial().optional(),
  // Fields added later carry no default here, so that a configuration saved before them still
  // resolves to the same object (experiment reruns compare them); the model fills the default.
  expireSpan: expireSpanSchema.extend({ keyPositions: expireSpanSchema.shape.keyPositions.unwrap() }).partial().optional(),
  compressive: compressiveSchema.extend({ scheme: compressiveSchema.shape.scheme.unwrap() }).partial().optional(),
  /**
   * Options that reproduce the reference code (docs/deviations.md), each for the kinds it belongs
   * to (the model's registry checks): the sequential family's window and initial memory, the
   * Transformer-XL family's finalNorm (pre-LN), RMT's cache.
   */
  window: sequentialWindowSchema.unwrap().optional(),
  initialMemory: initialMemorySchema.unwrap().optional(),
  finalNorm: finalNormSchema.unwrap().optional(),
  rmtCache: rmtCacheSchema.partial().optional(),
});

const taskDataSchema = z.strictObject({
  kind: z.literal('task'),
  /** A task of src/tasks (makeTask); its options are checked by the task itself. */
  name: z.enum(taskNames as [string, ...string[]]),
  options: z.record(z.string(), z.unknown()).default({}),
});

const lmDataSchema = z.strictObject({
  kind: z.literal('lm'),
  /** 'tinyshakespeare', 'brown', or the path of a UTF-8 text file. */
  corpus: z.string().min(1).default('tinyshakespeare'),
  /** Tokens per segment M. */
  segmentLength: positiveInt.max(LIMITS.segmentLength).default(64),
  /** Fraction of the text held out for validation (the tail; a test split of the same size follows it). */
  validFraction: z.number().gt(0).lt(0.5).default(0.05),
  /** Evaluate on at most this many validation tokens (0: the whole split). */
  maxEvalTokens: nonNegativeInt.default(0),
});

export const dataSchema = z.discriminatedUnion('kind', [taskDataSchema, lmDataSchema], {
  error: (issue) => (issue.code === 'invalid_union' ? "data.kind must be 'task' or 'lm'" : undefined),
});

const bpttSchema = z.union([nonNegativeInt.max(LIMITS.segmentsPerStep), z.literal('all')], {
  error: `must be an integer in [0, ${LIMITS.segmentsPerStep}] or "all"`,
});

export const trainSchema = z.strictObject({
  steps: positiveInt.max(LIMITS.steps).default(1000),
  batchSize: positiveInt.max(LIMITS.batchSize).default(32),
  /**
   * Segments gradients run back through the carried state (SPEC §6): the state entering segment
   * τ of an n-segment unroll is detached when τ < n - k. 'all' (tasks only): the whole sample.
   * Default: 'all' for tasks, 0 for language modelling.
   */
  bpttDepth: bpttSchema.optional(),
  seed: z.number().int().default(0),
  /** Seed of the fixed held-out task batches (never the training seed's stream). */
  evalSeed: z.number().int().default(1_000_003),
  logEvery: positiveInt.default(10),
  /** Evaluate every N steps and at the end (0: only at the end). */
  evalEvery: nonNegativeInt.default(100),
  /** Held-out batches per task evaluation. */
  evalBatches: positiveInt.max(LIMITS.evalBatches).default(4),
  /** Checkpoint every N steps and at the end (0: only at the end). */
  checkpointEvery: nonNegativeInt.default(200),
  /** ATen threads (0: leave libtorch's choice). */
  threads: nonNegativeInt.max(LIMITS.threads).default(0),
  /**
   * A step whose loss is NaN or infinite: 'stop' the run with an error (the last checkpoint, taken
   * before, is kept), or 'skip' the batch (no optimiser step; counted in the log). Default
   * 'stop'; left out of the resolved config when not given, so that configurations saved before
   * this option existed still compare equal (experiment reruns).
   */
  nonFinite: z.enum(['stop', 'skip']).optional(),
  /** Curriculum over segments (curriculum.ts): the task's number of segments grows during the run. Tasks only. */
  curriculum: curriculumSchema.optional(),
  /**
   * A run directory or model folder whose weights a fresh run starts from (shapes checked; the
   * optimiser starts afresh): staged training by hand. A resumed run takes its checkpoint's instead.
   */
  initFrom: z.string().min(1).optional(),
  /**
   * Where the model, its optimiser state, the batches and the carried memory live: 'cpu', 'cuda',
   * 'cuda:N' or 'auto' (cuda where this build has it and a GPU is visible). Checked against the
   * machine when the run starts (resolveDevice). Default 'cpu'; left out of the resolved config
   * when not given, as nonFinite; a run may resume on another device. Composes with a precision
   * option the same way on every device (bf16 autocast on the device's own kernels).
   */
  device: z.string().refine(isDeviceSpec, `must be ${DEVICE_SPECS}`).optional(),
  /**
   * 'bf16': matrix products in bfloat16 with float32 master weights, optimiser state, softmax,
   * normalisation and loss (src/tensor/precision.ts); 'float32' (default): everything in float32.
   * Left out when not given, as nonFinite; may change on resume (checkpoints are float32 either way).
   */
  precision: z.enum(['float32', 'bf16']).optional(),
});

export const plateauSchema = z.strictObject({
  mode: z.enum(['auto', 'min', 'max']).default('auto'),
  factor: z.number().gt(0).lt(1).default(0.5),
  patience: nonNegativeInt.default(2),
  threshold: z.number().min(0).default(1e-4),
  cooldown: nonNegativeInt.default(0),
  /** Lowest learning rate, as a fraction of the base lr. */
  minLrFactor: z.number().min(0).default(0.01),
});

export const optimSchema = z.strictObject({
  optimizer: z.enum(['adam', 'adamw']).default('adam'),
  lr: z.number().gt(0).default(1e-3),
  weightDecay: z.number().min(0).default(0),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
  eps: z.number().min(0).default(1e-8),
  /** Clip the total gradient norm to this (0: off). */
  clipGradNorm: z.number().min(0).default(1),
  warmupSteps: nonNegativeInt.default(0),
  /** 'cosine': decay to minLr over the run after warmup. */
  decay: z.enum(['none', 'cosine']).default('none'),
  minLr: z.number().min(0).default(0),
  /** Scale the lr on a plateau of the eval metric (accuracy for tasks, bpc for LM); null: off. */
  plateau: plateauSchema.nullable().default(null),
});

export const trainConfigSchema = z.strictObject({
  model: modelSchema.prefault({}),
  data: dataSchema.default({ kind: 'task', name: 'copy', options: { sourceLength: 8, numSegments: 1 } }),
  train: trainSchema.prefault({}),
  optim: optimSchema.prefault({}),
});

export type ModelSection = Omit<z.output<typeof modelSchema>, 'memLen' | 'numMemTokens'> & { memLen: number; numMemTokens: number };
export type DataSection = z.output<typeof dataSchema>;
export type TaskDataSection = z.output<typeof taskDataSchema>;
export type LmDataSection = z.output<typeof lmDataSchema>;
export type TrainSection = Omit<z.output<typeof trainSchema>, 'bpttDepth' | 'curriculum'> & { bpttDepth: number | 'all'; curriculum?: CurriculumConfig };
export type OptimSection = z.output<typeof optimSchema>;
export type PlateauSection = z.output<typeof plateauSchema>;

/** A resolved configuration: every default filled, everything checked. Saved beside checkpoints. */
export interface TrainConfig {
  model: ModelSection;
  data: DataSection;
  train: TrainSection;
  optim: OptimSection;
}

/** Anything that deep-merges into the defaults: a config file, a recipe cell, flags. */
export type TrainConfigInput = z.input<typeof trainConfigSchema>;

// ---- errors ---------------------------------------------------------------------------------------

/** One readable message out of zod's issues: one line per problem, with what is allowed. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, title: string, label: (path: string) => string = (p) => p): string {
  const lines = issues.map((issue) => {
    const path = issue.path.length ? label(issue.path.map(String).join('.')) : '';
    const at = path ? `${path}: ` : '';
    const got = 'input' in issue && issue.input !== undefined ? ` (got ${show(issue.input)})` : '';
    switch (issue.code) {
      case 'unrecognized_keys': {
        const allowed = allowedKeys(schema, issue.path);
        return `${at}unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}${allowed ? `; allowed: ${allowed.join(', ')}` : ''}`;
      }
      case 'invalid_value':
        return `${at}must be one of ${issue.values.map((v) => show(v)).join(', ')}${got}`;
      case 'invalid_type':
        return `${at}${issue.input === undefined ? 'is required' : issue.expected === 'int' ? 'must be an integer' : `expected ${issue.expected}`}${got}`;
      case 'too_small':
        return `${at}must be ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}${got}`;
      case 'too_big':
        return `${at}must be ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}${got}`;
      default:
        return `${at}${issue.message}${got}`;
    }
  });
  return `${title}:\n${lines.map((l) => `  - ${l}`).join('\n')}`;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? `'${v}'` : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The keys an object schema at `path` accepts (through defaults, optionals and unions). */
function allowedKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] | null {
  let s: unknown = schema;
  const unwrap = (x: unknown): unknown => {
    for (let i = 0; i < 8; i++) {
      const def = (x as { def?: { innerType?: unknown; in?: unknown } })?.def;
      if (def?.innerType) x = def.innerType;
      else if (def?.in) x = def.in;
      else break;
    }
    return x;
  };
  for (const key of path) {
    s = unwrap(s);
    const shape = (s as { shape?: Record<string, unknown> }).shape;
    if (!shape || !(String(key) in shape)) return null;
    s = shape[String(key)];
  }
  s = unwrap(s);
  const shape = (s as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : null;
}

/**
 * Parses with a schema; failures become one config error of `op` listing every problem under
 * `title`: `${op}: ${title}:` then one `  - ` line per problem.
 */
export function parseWith<T extends z.ZodType>(schema: T, input: unknown, op: string, title: string, label?: (path: string) => string): z.output<T> {
  const r = schema.safeParse(input, { reportInput: true });
  if (!r.success) throw configError(op, formatIssues(r.error.issues, schema, title, label));
  return r.data;
}

// ---- merging and resolving ---------------------------------------------------------------------------

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/**
 * b merged into a, recursively for plain objects; arrays and other values replace. A change of
 * data.kind replaces the whole data section (a task's options make no sense for a corpus).
 */
export function deepMerge<T>(a: T, b: unknown): T {
  checkDepth(a, 'deepMerge');
  checkDepth(b, 'deepMerge');
  return merge(a, b);
}

function merge<T>(a: T, b: unknown): T {
  if (!isPlainObject(a) || !isPlainObject(b)) return (b === undefined ? a : structuredClone(b)) as T;
  if ('kind' in a && 'kind' in b && a.kind !== b.kind && ('name' in a || 'corpus' in a)) return structuredClone(b) as T;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k], v) : structuredClone(v);
  return out as T;
}

/** Configurations nest a few levels; deeper input is a mistake (and would overflow the stack). */
export const MAX_CONFIG_DEPTH = 32;

/**
 * Throws a config error of `op` when objects / arrays in value nest deeper than MAX_CONFIG_DEPTH
 * (iterative); `what` (a file, say) follows the op in the message.
 */
export function checkDepth(value: unknown, op: string, what?: string): void {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_CONFIG_DEPTH) throw configError(op, `${what === undefined ? '' : `${what}: `}the configuration nests deeper than ${MAX_CONFIG_DEPTH} levels; a configuration is { model, data, train, optim } with a few levels inside`);
    for (const x of Object.values(v)) stack.push([x, depth + 1]);
  }
}

/** JSON with object keys sorted: equal for equal configurations whatever the order keys were set in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isPlainObject(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v);
}

/** Whether two configurations are the same (key order aside). */
export const sameConfig = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

/** Sets a dotted path ('optim.lr') in a plain object, creating objects on the way. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = target;
  for (const k of keys.slice(0, -1)) {
    if (!isPlainObject(o[k])) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
}

/**
 * Memory sizes with defaults from the kind's registry entry, so `kind: 'rmt'` alone is a working
 * model: a size the kind requires defaults to the segment length for memLen (SPEC §9: memory =
 * segment length) and to 10 memory tokens (RMT's enwik8 setting); any other size to 0.
 */
export function memoryDefaults(model: { kind: string; memLen?: MemorySize | undefined; numMemTokens?: MemorySize | undefined }, segmentLength: number): { memLen: number; numMemTokens: number } {
  const spec = modelKindSpec(model.kind);
  const memLen = resolveSize(model.memLen ?? (spec?.memLen.use === 'required' ? 'segment' : 0), segmentLength);
  const numMemTokens = resolveSize(model.numMemTokens ?? (spec?.numMemTokens.use === 'required' ? 10 : 0), segmentLength);
  return { memLen, numMemTokens };
}

/**
 * Fills the defaults and checks everything that can be checked without data: the schema, then
 * the rules that tie sections together (LM needs a numeric BPTT depth).
 */
export function resolveTrainConfig(input: unknown = {}): TrainConfig {
  const op = 'resolveTrainConfig';
  if (!isPlainObject(input)) throw configError(op, `invalid config: expected an object { model, data, train, optim }, got ${show(input)}`);
  checkDepth(input, op);
  const parsed = parseWith(trainConfigSchema, input, op, 'invalid config');
  const isLm = parsed.data.kind === 'lm';
  const bpttDepth = parsed.train.bpttDepth ?? (isLm ? 0 : 'all');
  if (isLm && bpttDepth === 'all') {
    throw configError(op, "invalid config:\n  - train.bpttDepth: language modelling needs a number of segments (an unroll is bpttDepth + 1 segments), not 'all'");
  }
  const staged = parsed.train.curriculum ? curriculumStages(op, parsed.train.curriculum, parsed.train.evalEvery, parsed.data) : null;
  const data = staged?.data ?? parsed.data;
  let segmentLength: number, numSegments: number;
  if (data.kind === 'task') {
    try {
      ({ segmentLength, numSegments } = makeTask(data.name as TaskName, data.options as never)); // checks the task's options
    } catch (e) {
      if (e instanceof EngramError) throw engramError('config', op, `invalid config:\n  - data.options: ${e.message}`, e);
      throw e;
    }
  } else {
    segmentLength = data.segmentLength;
    numSegments = (bpttDepth as number) + 1;
  }
  if (parsed.optim.decay === 'cosine' && parsed.optim.warmupSteps >= parsed.train.steps) {
    throw configError(op, `invalid config:\n  - optim.warmupSteps (${parsed.optim.warmupSteps}) must be < train.steps (${parsed.train.steps}) with cosine decay`);
  }
  // memory sizes relative to the segment: the target's (a curriculum's last stage), the task the model is for
  const model = { ...parsed.model, ...memoryDefaults(parsed.model, segmentLength) };
  checkSizes(op, model, parsed.train.batchSize, segmentLength, numSegments);
  for (const stage of staged?.stages ?? []) checkSizes(op, model, parsed.train.batchSize, stage.segmentLength, stage.numSegments);
  return { ...parsed, data, model, train: { ...parsed.train, bpttDepth, ...(staged ? { curriculum: staged.curriculum } : {}) } } as TrainConfig;
}

/**
 * A curriculum checked against the data (curriculum.ts): tasks only, every stage a valid cut of
 * the task; data.options.numSegments becomes the target (the last stage).
 */
function curriculumStages(op: string, raw: z.output<typeof curriculumSchema>, evalEvery: number, data: z.output<typeof dataSchema>):
  { curriculum: CurriculumConfig; data: TaskDataSection; stages: { numSegments: number; segmentLength: number }[] } {
  const { curriculum, problems } = resolveCurriculum(raw, evalEvery);
  const fail = (lines: string[]) => configError(op, `invalid config:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
  if (data.kind !== 'task') {
    throw fail([...problems, "train.curriculum: grows the number of segments of a task; language modelling has none to grow (an unroll is train.bpttDepth + 1 segments): leave the curriculum out"]);
  }
  const target = curriculum?.segments[curriculum.segments.length - 1];
  const options = data.options as { numSegments?: unknown; segmentLength?: unknown };
  if (options.segmentLength !== undefined) problems.push('train.curriculum: sets the number of segments stage by stage; remove data.options.segmentLength');
  if (target !== undefined && options.numSegments !== undefined && options.numSegments !== target) {
    problems.push(`data.options.numSegments (${String(options.numSegments)}) must be the curriculum's target, its last stage (${target}), or left out`);
  }
  if (problems.length || !curriculum) throw fail(problems);
  const stages = curriculum.segments.map((n, i) => {
    try {
      const task = makeTask(data.name as TaskName, { ...data.options, numSegments: n } as never);
      return { numSegments: task.numSegments, segmentLength: task.segmentLength };
    } catch (e) {
      if (e instanceof EngramError) throw engramError('config', op, `invalid config:\n  - train.curriculum.segments: stage ${i + 1} (${n} segments): ${e.message}`, e);
      throw e;
    }
  });
  return { curriculum, data: { ...data, options: { ...data.options, numSegments: target } }, stages };
}

/** Products of sizes that stop absurd allocations before a model or a batch exists. */
function checkSizes(op: string, model: { dModel: number; heads: number; memLen: number; numMemTokens: number }, batchSize: number, segmentLength: number, numSegments: number): void {
  const problems: string[] = [];
  if (segmentLength > LIMITS.segmentLength) problems.push(`data: segments of ${segmentLength} tokens; at most ${LIMITS.segmentLength} (use more segments)`);
  const tokens = batchSize * numSegments * segmentLength;
  if (tokens > LIMITS.batchTokens) problems.push(`train.batchSize × segments × segment = ${batchSize} × ${numSegments} × ${segmentLength} exceeds ${LIMITS.batchTokens} tokens a step; make one of them smaller`);
  const width = segmentLength + model.memLen + model.numMemTokens;
  const activation = batchSize * width * model.dModel;
  if (activation > LIMITS.activation) problems.push(`train.batchSize × (segment + memory) × model.dModel = ${batchSize} × ${width} × ${model.dModel} exceeds ${LIMITS.activation} elements; make one of them smaller`);
  const attention = batchSize * model.heads * (segmentLength + model.numMemTokens) * width;
  if (attention > LIMITS.attention) problems.push(`train.batchSize × model.heads × segment × (segment + memory) = ${batchSize} × ${model.heads} × ${segmentLength + model.numMemTokens} × ${width} exceeds ${LIMITS.attention} attention scores; make one of them smaller`);
  if (problems.length) throw configError(op, `invalid config:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
}
