// Model folders: a trained model to hand to someone, as Hugging Face users know them.
//
//   <dir>/config.json        format 'engram-model' (formatVersion 1), the Engram version that wrote
//                            it, the model config (what createModel takes), the segment length,
//                            the vocabulary of an LM model (CharVocab.toString(); null for a task,
//                            whose generator defines it), the training configuration it came from
//                            (its data section names the task and options, or the corpus, so that
//                            `engram eval` can rebuild the held-out data), the step, and the
//                            SHA-256 of the weights file
//   <dir>/model.safetensors  the weights only (the model's state dict: no optimiser state, no
//                            carried memory); its metadata repeats the format and model config
//
// Both are written atomically; config.json last, as the commit point. An existing non-empty
// folder is refused unless overwrite is set (which replaces these two files and keeps the rest),
// and a run directory always (its own config.json is the run's). On load the weights are checked against the SHA-256
// and their metadata's model config against config.json's: a damaged file is an 'io' error, a
// config that does not describe the weights (an edited dModel) a 'config' error, each naming
// the file and what to do.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { configError, EngramError, ioError, loadSafetensors, readSafetensorsHeader, resolveDevice, saveSafetensors } from '../tensor/index.js';
import { writeFileAtomic } from '../tensor/serialize.js';
import { createModel, type CreateModelOptions, type ModelConfig, type SegmentModel } from '../models/index.js';
import { CharVocab } from '../tasks/vocab.js';
import { canonicalJson, resolveTrainConfig, type TrainConfig } from './config.js';
import { hasCheckpoint, sha256File } from './checkpoint.js';
import { taskOf } from './data.js';

export const MODEL_FORMAT = 'engram-model';
export const MODEL_CONFIG_FILE = 'config.json';
export const MODEL_WEIGHTS_FILE = 'model.safetensors';

/** config.json of a model folder. */
export interface ModelFolderConfig {
  format: typeof MODEL_FORMAT;
  formatVersion: 1;
  /** The Engram version that wrote the folder. */
  engramVersion: string;
  /** What createModel takes. */
  model: ModelConfig;
  /** Tokens per segment the model was trained with (generation and evaluation cut at it). */
  segmentLength: number;
  /** An LM model's character vocabulary (CharVocab.toString()); null for a task model. */
  vocab: string | null;
  /** The configuration the model was trained with: its data section is what `eval` reads. */
  training: TrainConfig;
  /** Optimiser steps the weights had taken. */
  step: number;
  /** SHA-256 (hex) of model.safetensors. */
  weightsSha256: string;
}

/** What saveModel records besides the weights. */
export interface SaveModelExtras {
  training: TrainConfig;
  /** The vocabulary of an LM model (required when training.data is a corpus). */
  vocab: string | null;
  step?: number;
  /** Replace the files of a non-empty folder (other files in it are kept). */
  overwrite?: boolean;
}

/** Engram's version, from its package.json (dist/src/train/ -> the package root). */
export function engramVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

const configSchema = z.object({
  format: z.literal(MODEL_FORMAT),
  formatVersion: z.literal(1),
  engramVersion: z.string(),
  model: z.looseObject({ kind: z.string() }),
  segmentLength: z.number().int().positive(),
  vocab: z.string().nullable(),
  training: z.unknown(),
  step: z.number().int().min(0),
  weightsSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** Whether dir looks like a model folder (what loadRun tries before a run directory's checkpoint). */
export function isModelFolder(dir: string): boolean {
  return existsSync(join(dir, MODEL_WEIGHTS_FILE)) || readFormat(join(dir, MODEL_CONFIG_FILE)) === MODEL_FORMAT;
}

function readFormat(path: string): unknown {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown }).format;
  } catch {
    return undefined;
  }
}

/** Writes a model folder: the model's weights, then config.json. */
export async function saveModel(model: SegmentModel, dir: string, extras: SaveModelExtras): Promise<void> {
  const op = 'saveModel';
  const { training, vocab, step = 0, overwrite = false } = extras;
  if (training.data.kind === 'lm' && vocab === null) throw configError(op, 'a language model needs its vocabulary (extras.vocab, CharVocab.toString()) to be usable from its folder');
  if (vocab !== null && CharVocab.fromString(vocab).size !== model.config.vocabSize) {
    throw configError(op, `the vocabulary has ${CharVocab.fromString(vocab).size} characters but the model ${model.config.vocabSize} token ids; pass the vocabulary the model was trained with`);
  }
  if (hasCheckpoint(dir)) throw configError(op, `${dir} is a run directory (it holds checkpoint.json); write the model folder elsewhere`);
  if (existsSync(dir) && !overwrite) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch (e) {
      throw ioError(op, `cannot read ${dir}: ${(e as Error).message}`, e);
    }
    if (entries.length > 0) throw configError(op, `${dir} exists and is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose a new folder, or overwrite it (--overwrite)`);
  }
  const config: ModelFolderConfig = {
    format: MODEL_FORMAT,
    formatVersion: 1,
    engramVersion: engramVersion(),
    model: model.config,
    segmentLength: training.data.kind === 'lm' ? training.data.segmentLength : taskOf(training.data).segmentLength,
    vocab,
    training,
    step,
    weightsSha256: '',
  };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw ioError(op, `cannot create the model folder ${dir}: ${(e as Error).message}`, e);
  }
  const weights = join(dir, MODEL_WEIGHTS_FILE);
  await saveSafetensors(weights, model.stateDict(), { format: MODEL_FORMAT, modelConfig: JSON.stringify(model.config) });
  config.weightsSha256 = await sha256File(weights, op);
  const json = Buffer.from(`${JSON.stringify(config, null, 2)}\n`);
  await writeFileAtomic(join(dir, MODEL_CONFIG_FILE), async (fh) => { await fh.writeFile(json); }, op);
}

/**
 * A model folder's model (in eval mode; the caller disposes it) and its config.json. The folder
 * holds CPU tensors whatever device trained it; options.device (default 'cpu') says where the
 * model goes, whatever its training config's train.device says.
 */
export async function loadModel(dir: string, options: CreateModelOptions = {}): Promise<{ model: SegmentModel; config: ModelFolderConfig }> {
  const op = 'loadModel';
  const device = resolveDevice(options.device, op); // a bad device fails before any file is read
  const configPath = join(dir, MODEL_CONFIG_FILE), weights = join(dir, MODEL_WEIGHTS_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw ioError(op, `${dir} is not a model folder: no readable ${MODEL_CONFIG_FILE} (${(e as Error).message.split('\n')[0]}); export one with engram export <run> <dir>`, e);
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (format !== MODEL_FORMAT) throw ioError(op, `${configPath} is not an Engram model config (format ${JSON.stringify(format) ?? 'missing'}, expected "${MODEL_FORMAT}"); export the model again with engram export`);
  const r = configSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.map(String).join('.') || '(top)'}: ${i.message}`);
    throw ioError(op, `${configPath} is damaged (${problems.slice(0, 3).join('; ')}${problems.length > 3 ? '; ...' : ''}); export the model again`);
  }
  let training: TrainConfig;
  try {
    training = resolveTrainConfig(r.data.training);
  } catch (e) {
    const message = e instanceof EngramError ? e.message.replace(/\n\s*/g, ' ') : String(e);
    throw configError(op, `${configPath} holds a training configuration Engram cannot use (${message}); export the model again`);
  }
  const config = { ...r.data, model: r.data.model as unknown as ModelConfig, training } as ModelFolderConfig;
  if (!existsSync(weights)) throw ioError(op, `${weights} is missing; copy the whole folder, or export the model again`);
  if ((await sha256File(weights, op)) !== config.weightsSha256) {
    throw ioError(op, `${weights} is corrupt: its SHA-256 differs from the one recorded in ${MODEL_CONFIG_FILE}; copy the folder again, or export the model again`);
  }
  const { metadata } = await readSafetensorsHeader(weights);
  if (metadata.format !== MODEL_FORMAT) throw ioError(op, `${weights} is not an Engram model's weights (format ${JSON.stringify(metadata.format) ?? 'missing'}); export the model again`);
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(metadata.modelConfig ?? 'null') as Record<string, unknown>;
  } catch {
    throw ioError(op, `${weights} has an unreadable model config in its metadata; export the model again`);
  }
  const differ = Object.keys({ ...saved, ...config.model }).filter((k) => canonicalJson(saved?.[k]) !== canonicalJson((config.model as unknown as Record<string, unknown>)[k]));
  if (differ.length) throw configError(op, `${configPath} does not describe ${MODEL_WEIGHTS_FILE}: they differ on model ${differ.slice(0, 3).join(', ')}; restore the folder's config.json or export the model again`);
  if (config.vocab !== null && CharVocab.fromString(config.vocab).size !== config.model.vocabSize) {
    throw configError(op, `${configPath}: the vocabulary has ${CharVocab.fromString(config.vocab).size} characters but the model ${config.model.vocabSize} token ids; export the model again`);
  }
  if (config.training.data.kind === 'lm' && config.vocab === null) throw configError(op, `${configPath}: a language model's folder needs its vocabulary; export the model again`);
  const tensors = await loadSafetensors(weights);
  let model: SegmentModel | null = null;
  try {
    model = createModel(config.model);
    model.loadStateDict(tensors);
    if (device !== 'cpu') model.to(device);
    model.eval();
    return { model, config };
  } catch (e) {
    model?.dispose();
    if (e instanceof EngramError && e.kind !== 'io') throw configError(op, `${dir}: the weights do not fit the model config (${e.message}); export the model again`);
    throw e;
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
