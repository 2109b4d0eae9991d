// Checkpoints: everything a run needs to continue exactly where it stopped.
//
//   <run>/checkpoint-<step>.safetensors   tensors: model.<name> (weights), optim.<state> (Adam's
//                                         moments), carry.<key>[.<i>] (an LM run's carried memory);
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
import { readdir, readFile, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EngramError, loadSafetensors, saveSafetensors, type Tensor } from '../tensor/index.js';
import { writeFileAtomic } from '../tensor/serialize.js';
import type { ModelConfig, MemoryState } from '../models/index.js';
import type { LrSchedulerState, OptimizerStateDict, ReduceLROnPlateauState } from '../optim/index.js';
import type { StreamPosition } from '../tasks/stream.js';
import type { TrainConfig } from './config.js';
import type { Metrics } from './metrics.js';

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
  lastEval: Metrics | null;
  bestEval: Metrics | null;
  /** Seconds of training before this checkpoint (for throughput over resumed runs). */
  elapsed: number;
  /** Highest C-heap bytes sampled at the end of a forward pass so far (null: unknown). */
  peakHeapBytes?: number | null;
  tensorsFile: string;
  savedAt: string;
}

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

/** Rebuilds a state saved with flattenState. */
export function unflattenState(tensors: Record<string, Tensor>, layout: CarryLayout, prefix = 'carry.'): MemoryState {
  const state: MemoryState = {};
  const get = (name: string): Tensor => {
    const t = tensors[name];
    if (!t) throw new EngramError(`checkpoint: missing tensor ${name}`, 'io');
    return t;
  };
  for (const [key, l] of Object.entries(layout)) {
    state[key] = l === null ? null : l === 'tensor' ? get(`${prefix}${key}`) : Array.from({ length: l.list }, (_, i) => get(`${prefix}${key}.${i}`));
  }
  return state;
}

/** Writes a checkpoint (tensors, then the JSON commit point) and removes older tensor files. */
export async function saveCheckpoint(dir: string, meta: Omit<CheckpointMeta, 'tensorsFile' | 'savedAt' | 'format' | 'version'>, tensors: Record<string, Tensor>): Promise<string> {
  const tensorsFile = `checkpoint-${meta.step}.safetensors`;
  const full: CheckpointMeta = { format: 'engram-checkpoint', version: 1, ...meta, tensorsFile, savedAt: new Date().toISOString() };
  await saveSafetensors(join(dir, tensorsFile), tensors, {
    format: 'engram-checkpoint',
    step: String(meta.step),
    config: JSON.stringify(meta.config),
    modelConfig: JSON.stringify(meta.modelConfig),
    ...(meta.vocab !== null ? { vocab: meta.vocab } : {}),
  });
  const json = Buffer.from(`${JSON.stringify(full, null, 2)}\n`);
  await writeFileAtomic(join(dir, CHECKPOINT_FILE), async (fh) => { await fh.writeFile(json); }, 'saveCheckpoint');
  for (const f of await readdir(dir)) {
    if (/^checkpoint-\d+\.safetensors$/.test(f) && f !== tensorsFile) await unlink(join(dir, f)).catch(() => {});
  }
  return join(dir, tensorsFile);
}

export async function readCheckpointMeta(dir: string): Promise<CheckpointMeta> {
  const path = join(dir, CHECKPOINT_FILE);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(await readFile(path, 'utf8')) as CheckpointMeta;
  } catch (e) {
    throw new EngramError(`no readable checkpoint in ${dir}: ${(e as Error).message}`, 'io', 'loadCheckpoint');
  }
  if (meta.format !== 'engram-checkpoint' || meta.version !== 1) {
    throw new EngramError(`${path} is not an Engram checkpoint (format ${String(meta.format)}, version ${String(meta.version)})`, 'io', 'loadCheckpoint');
  }
  return meta;
}

/** The checkpoint of a run directory: its metadata and its tensors (the caller owns them). */
export async function loadCheckpoint(dir: string): Promise<{ meta: CheckpointMeta; tensors: Record<string, Tensor> }> {
  const meta = await readCheckpointMeta(dir);
  const tensors = await loadSafetensors(join(dir, meta.tensorsFile));
  return { meta, tensors };
}

/** Tensors whose names start with prefix, with the prefix removed. */
export function withPrefix(tensors: Record<string, Tensor>, prefix: string): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(tensors)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}
