// Checkpoints: everything a run needs to continue exactly where it stopped.
//
//   <run>/checkpoint-<step>.safetensors   tensors: model.<name> (weights), optim.<state> (Adam's
//                                         moments), carry.<key>[.<i>] (an LM run's carried memory;
//                                         carry.rank<r>.<key>[.<i>] for each rank r of a
//                                         data-parallel job, whose ranks carry their own streams);
//                                         the config and vocabulary also sit in its metadata, so
//                                         the file alone describes its model
//   <run>/checkpoint.json                 the step, the resolved config, the model config, the
//                                         vocabulary, optimiser / scheduler / plateau state, the data
//                                         position (task RNG words or stream position), the
//                                         carried state's layout, and which tensor file holds it
//
// Both are written atomically (temporary file, fsync, rename). The JSON is written last and is the
// commit point: a crash before it leaves the previous checkpoint intact; older tensor files are
// removed only after it.
//
// Trust on load: checkpoint.json is checked with a schema (its config re-resolved as a new run's
// would be, the tensor file a plain name inside the run directory), the tensor file against the
// SHA-256 recorded in the JSON, and the JSON's config and model against the copies in the tensor
// file's metadata. Any mismatch is an EngramError of kind 'io' naming the file. Checkpoints from
// before checksums (no tensorsSha256) still load, unchecked by hash.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { EngramError, ioError, loadSafetensors, readSafetensorsHeader, saveSafetensors, type Tensor } from '../tensor/index.js';
import { writeFileAtomic } from '../tensor/serialize.js';
import type { ModelConfig, MemoryState } from '../models/index.js';
import type { LrSchedulerState, OptimizerStateDict, ReduceLROnPlateauState } from '../optim/index.js';
import type { StreamPosition } from '../tasks/stream.js';
import { canonicalJson, resolveTrainConfig, type TrainConfig } from './config.js';
import type { Metrics } from './metrics.js';
import { curriculumStateSchema, type CurriculumState } from './curriculum.js';

export const CHECKPOINT_FILE = 'checkpoint.json';

/** Layout of a carried state: per key, null, a tensor, or a list of n tensors. */
export type CarryLayout = Record<string, null | 'tensor' | { list: number }>;

export interface CheckpointMeta {
  format: 'engram-checkpoint';
  version: 1;
  /** Optimiser steps taken. */
  step: number;
  config: TrainConfig;
  modelConfig: ModelConfig;
  /** The character vocabulary of an LM run (CharVocab.toString()), else null. */
  vocab: string | null;
  optimizer: OptimizerStateDict['meta'];
  scheduler: LrSchedulerState;
  plateau: { state: ReduceLROnPlateauState; scale: number } | null;
  data: { taskRng?: number[]; stream?: StreamPosition };
  carry: CarryLayout | null;
  /** Ranks of the data-parallel job that wrote it (absent: 1); a carried state is saved per rank. */
  worldSize?: number;
  lastEval: Metrics | null;
  bestEval: Metrics | null;
  /** Where a run with train.curriculum stands (absent without one). */
  curriculum?: CurriculumState;
  /** Seconds of training before this checkpoint (for throughput over resumed runs). */
  elapsed: number;
  /** Highest C-heap bytes sampled at the end of a forward pass so far (null: unknown). */
  peakHeapBytes?: number | null;
  tensorsFile: string;
  /** SHA-256 (hex) of the tensor file; absent in checkpoints written before checksums. */
  tensorsSha256?: string;
  savedAt: string;
}

const count = z.number().int().min(0);
/** Metrics: numbers (NaN saved as null) and records of numbers (exactMatchBy). */
const metricsSchema = z.record(z.string(), z.union([z.number().nullable(), z.record(z.string(), z.number().nullable())])).nullable();

/** What checkpoint.json must hold; the config is re-resolved separately (resolveTrainConfig). */
const metaSchema = z.object({
  format: z.literal('engram-checkpoint'),
  version: z.literal(1),
  step: count,
  config: z.record(z.string(), z.unknown()),
  modelConfig: z.looseObject({ kind: z.string() }),
  vocab: z.string().nullable(),
  optimizer: z.looseObject({ kind: z.string(), stepCount: count, groups: z.array(z.record(z.string(), z.unknown())), steps: z.record(z.string(), count) }),
  scheduler: z.looseObject({ lastStep: count, baseLrs: z.array(z.number()) }),
  plateau: z.object({
    state: z.looseObject({ best: z.number().nullable(), numBadEpochs: count, cooldownCounter: count, lastEpoch: z.number().int() }),
    scale: z.number().positive(),
  }).nullable(),
  data: z.object({
    taskRng: z.array(z.number().int()).optional(),
    stream: z.looseObject({ epoch: count, step: count, batchSize: count, segmentLength: count, streamLength: count }).optional(),
  }),
  carry: z.record(z.string(), z.union([z.null(), z.literal('tensor'), z.object({ list: count })])).nullable(),
  worldSize: z.number().int().min(1).optional(),
  lastEval: metricsSchema,
  bestEval: metricsSchema,
  curriculum: curriculumStateSchema.optional(),
  elapsed: z.number().min(0),
  peakHeapBytes: z.number().nullable().optional(),
  // a plain file name: the tensors live in the run directory, never elsewhere
  tensorsFile: z.string().regex(/^(?!\.)[^/\\]+\.safetensors$/, 'a file name in the run directory, ending in .safetensors'),
  tensorsSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  savedAt: z.string(),
});

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_FILE));
}

/** Splits a state into named tensors and its layout (to save it). */
export function flattenState(state: MemoryState, prefix = 'carry.'): { tensors: Record<string, Tensor>; layout: CarryLayout } {
  const tensors: Record<string, Tensor> = {};
  const layout: CarryLayout = {};
  for (const [key, v] of Object.entries(state)) {
    if (v === null) layout[key] = null;
    else if (Array.isArray(v)) {
      layout[key] = { list: v.length };
      v.forEach((t, i) => (tensors[`${prefix}${key}.${i}`] = t));
    } else {
      layout[key] = 'tensor';
      tensors[`${prefix}${key}`] = v;
    }
  }
  return { tensors, layout };
}

/** The name prefix of a rank's carried state: 'carry.' in a single process, 'carry.rank<r>.' in a job of several. */
export function carryPrefix(rank: number, worldSize: number): string {
  return worldSize > 1 ? `carry.rank${rank}.` : 'carry.';
}

/** Rebuilds a state saved with flattenState. */
export function unflattenState(tensors: Record<string, Tensor>, layout: CarryLayout, prefix = 'carry.'): MemoryState {
  const state: MemoryState = {};
  const get = (name: string): Tensor => {
    const t = tensors[name];
    if (!t) throw ioError('unflattenState', `missing tensor ${name}`);
    return t;
  };
  for (const [key, l] of Object.entries(layout)) {
    state[key] = l === null ? null : l === 'tensor' ? get(`${prefix}${key}`) : Array.from({ length: l.list }, (_, i) => get(`${prefix}${key}.${i}`));
  }
  return state;
}

/** Writes a checkpoint (tensors, then the JSON commit point) and removes older tensor files. */
export async function saveCheckpoint(dir: string, meta: Omit<CheckpointMeta, 'tensorsFile' | 'tensorsSha256' | 'savedAt' | 'format' | 'version'>, tensors: Record<string, Tensor>): Promise<string> {
  const tensorsFile = `checkpoint-${meta.step}.safetensors`;
  await saveSafetensors(join(dir, tensorsFile), tensors, {
    format: 'engram-checkpoint',
    step: String(meta.step),
    config: JSON.stringify(meta.config),
    modelConfig: JSON.stringify(meta.modelConfig),
    ...(meta.vocab !== null ? { vocab: meta.vocab } : {}),
  });
  // Hashed as it lies on disk (read back from the page cache): what a load will find.
  const tensorsSha256 = await sha256File(join(dir, tensorsFile), 'saveCheckpoint');
  const full: CheckpointMeta = { format: 'engram-checkpoint', version: 1, ...meta, tensorsFile, tensorsSha256, savedAt: new Date().toISOString() };
  const json = Buffer.from(`${JSON.stringify(full, null, 2)}\n`);
  await writeFileAtomic(join(dir, CHECKPOINT_FILE), async (fh) => { await fh.writeFile(json); }, 'saveCheckpoint');
  for (const f of await readdir(dir)) {
    if (/^checkpoint-\d+\.safetensors$/.test(f) && f !== tensorsFile) await unlink(join(dir, f)).catch(() => {});
  }
  return join(dir, tensorsFile);
}

/** SHA-256 (hex) of a file, read in chunks. */
export async function sha256File(path: string, op = 'sha256File'): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    throw ioError(op, `cannot read ${path}: ${(e as Error).message}`, e);
  }
  return hash.digest('hex');
}

/** checkpoint.json of a run directory, checked (schema, config) but without reading the tensors. */
export async function readCheckpointMeta(dir: string): Promise<CheckpointMeta> {
  const path = join(dir, CHECKPOINT_FILE);
  const op = 'loadCheckpoint';
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw ioError(op, `no readable checkpoint in ${dir}: ${(e as Error).message}`, e);
  }
  const fields = raw as { format?: unknown; version?: unknown } | null;
  if (fields === null || typeof fields !== 'object' || fields.format !== 'engram-checkpoint' || fields.version !== 1) {
    throw ioError(op, `${path} is not an Engram checkpoint (format ${show(fields?.format)}, version ${show(fields?.version)})`);
  }
  const r = metaSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.map(String).join('.') || '(top)'}: ${i.message}`);
    throw ioError(op, `${path} is damaged (${problems.slice(0, 3).join('; ')}${problems.length > 3 ? '; ...' : ''}); restore it from a backup or start a new run`);
  }
  let config: TrainConfig;
  try {
    config = resolveTrainConfig(r.data.config);
  } catch (e) {
    const message = e instanceof EngramError ? e.message.replace(/\n\s*/g, ' ') : String(e);
    throw ioError(op, `${path} holds a configuration Engram cannot use (${message}); restore it from a backup or start a new run`, e);
  }
  return { ...(r.data as unknown as CheckpointMeta), config };
}

/** The checkpoint of a run directory: its metadata and its verified tensors (the caller owns them). */
export async function loadCheckpoint(dir: string): Promise<{ meta: CheckpointMeta; tensors: Record<string, Tensor> }> {
  const meta = await readCheckpointMeta(dir);
  const op = 'loadCheckpoint';
  const file = join(dir, meta.tensorsFile);
  if (!existsSync(file)) throw ioError(op, `${join(dir, CHECKPOINT_FILE)} names ${meta.tensorsFile}, which is missing; restore it from a backup or start a new run`);
  if (meta.tensorsSha256 !== undefined) {
    const actual = await sha256File(file, op);
    if (actual !== meta.tensorsSha256) {
      throw ioError(op, `${file} is corrupt: its SHA-256 differs from the one recorded in ${CHECKPOINT_FILE}; restore it from a backup or start a new run`);
    }
  }
  // The tensor file carries its own copy of the config and model: checkpoint.json must agree.
  const { metadata } = await readSafetensorsHeader(file);
  const raw = JSON.parse(await readFile(join(dir, CHECKPOINT_FILE), 'utf8')) as { config: unknown };
  for (const [key, value] of [['config', raw.config], ['modelConfig', meta.modelConfig], ['step', String(meta.step)]] as const) {
    const saved = metadata[key];
    if (saved === undefined) continue;
    let same: boolean;
    try {
      same = key === 'step' ? saved === value : canonicalJson(JSON.parse(saved)) === canonicalJson(value);
    } catch {
      same = false;
    }
    if (!same) throw ioError(op, `${join(dir, CHECKPOINT_FILE)} disagrees with ${meta.tensorsFile} on ${key}; restore it from a backup or start a new run`);
  }
  const tensors = await loadSafetensors(file);
  return { meta, tensors };
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Tensors whose names start with prefix, with the prefix removed. */
export function withPrefix(tensors: Record<string, Tensor>, prefix: string): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(tensors)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}
