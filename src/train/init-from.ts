// train.initFrom (`--init-from`): a fresh run that starts from another run's weights, for staged
// training by hand (train on 3 segments, then start a 9-segment run from it). Only the weights
// come over: the optimiser, scheduler, data position and step start afresh, and the new run's own
// configuration decides everything else. The source is a run directory (its checkpoint's
// weights) or a model folder (engram export).
//
// Every parameter must exist in both models with the same shape; the first that does not is named
// in the error, with its two shapes, before any weight is copied.
import { configError, type Tensor } from '../tensor/index.js';
import type { SegmentModel } from '../models/index.js';
import { hasCheckpoint } from './checkpoint.js';
import { isModelFolder } from './model-folder.js';
import { loadRun } from './objective.js';

/** What a run starting from `dir` takes from it. */
export interface InitSource {
  dir: string;
  /** 'run': a run directory's checkpoint; 'model-folder': an exported model. */
  source: 'run' | 'model-folder';
  /** Steps the weights had taken. */
  step: number;
  /** The source's character vocabulary (a language-model run), so token ids keep their meaning; null for a task. */
  vocab: string | null;
  /** The source model (the caller disposes it). */
  model: SegmentModel;
}

const op = 'train';
const flag = 'train.initFrom (--init-from)';

/** Loads the run directory or model folder `dir` to initialise a new run from. */
export async function loadInitSource(dir: string): Promise<InitSource> {
  if (!hasCheckpoint(dir) && !isModelFolder(dir)) {
    throw configError(op, `${flag}: ${dir} is neither a run directory with a checkpoint.json nor a model folder; give a run directory that engram train wrote or a folder that engram export wrote`);
  }
  const run = await loadRun(dir);
  return { dir, source: run.source, step: run.step, vocab: run.kind === 'lm' ? run.vocab.toString() : null, model: run.model };
}

/**
 * Copies the source's weights into `model` after checking that both have the same parameters
 * with the same shapes (throws naming the first that differs; nothing is copied then).
 */
export function initWeights(model: SegmentModel, from: InitSource): void {
  const own = model.stateDict();
  const theirs: Record<string, Tensor> = from.model.stateDict();
  const fix = `start from a run of the same model (kind, sizes, memory, vocabulary), or leave ${flag} out`;
  for (const [name, t] of Object.entries(own)) {
    const s = theirs[name];
    if (!s) throw configError(op, `${flag}: this model's parameter '${name}' [${t.shape.join(', ')}] is not in ${from.dir} (a ${from.model.config.kind} model); ${fix}`);
    if (s.shape.join(',') !== t.shape.join(',')) {
      throw configError(op, `${flag}: parameter '${name}' is [${s.shape.join(', ')}] in ${from.dir} but [${t.shape.join(', ')}] in this model; ${fix}`);
    }
  }
  const extra = Object.keys(theirs).find((name) => !(name in own));
  if (extra !== undefined) throw configError(op, `${flag}: ${from.dir}'s parameter '${extra}' has no place in this model (a ${model.config.kind} model); ${fix}`);
  model.loadStateDict(theirs);
}
