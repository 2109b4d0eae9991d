// From the `data` section of a configuration to data: an algorithmic task (src/tasks, makeTask)
// or a character-level corpus split into train / valid / test (SPEC §0, §8). objective.ts says
// how each is trained on and evaluated.
import { existsSync } from 'node:fs';
import { configError } from '../tensor/index.js';
import { makeTask, type TaskName } from '../tasks/registry.js';
import { loadBrownText, loadTinyShakespeare, readTextFile, splitTokens } from '../tasks/corpus.js';
import { CharVocab } from '../tasks/vocab.js';
import type { SegmentedTask } from '../tasks/types.js';
import type { LmDataSection, TaskDataSection } from './config.js';

/** A character corpus split for language modelling: ids under `vocab`. */
export interface LmCorpus {
  vocab: CharVocab;
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

/** The task a data section names (its options checked by the task). */
export function taskOf(section: TaskDataSection): SegmentedTask {
  return makeTask(section.name as TaskName, section.options as never);
}

/** The text of a corpus: 'tinyshakespeare', 'brown', or a file path. */
export async function corpusText(corpus: string): Promise<string> {
  if (corpus === 'tinyshakespeare') return loadTinyShakespeare();
  if (corpus === 'brown') return loadBrownText();
  if (!existsSync(corpus)) {
    throw configError('corpusText', `data.corpus '${corpus}' is neither a built-in corpus (tinyshakespeare, brown) nor an existing file; give one of those or a file's path`);
  }
  return readTextFile(corpus);
}

/**
 * Reads and splits a corpus. The vocabulary is built from the whole text unless one is given (a
 * checkpoint's, so that ids mean what they meant in training).
 */
export async function loadCorpus(section: LmDataSection, vocab: CharVocab | null = null): Promise<LmCorpus> {
  const text = await corpusText(section.corpus);
  const v = vocab ?? CharVocab.fromText(text);
  const ids = v.encode(text);
  const f = section.validFraction;
  const { train, valid, test } = splitTokens(ids, { train: 1 - 2 * f, valid: f, test: f });
  const need = 2 * section.segmentLength + 2;
  if (valid.length < need || train.length < need) {
    throw configError('loadCorpus', `corpus '${section.corpus}' has ${ids.length} characters, too few for segments of ${section.segmentLength} with a validation fraction of ${f}; use a longer corpus or shorter segments`);
  }
  return { vocab: v, train, valid, test };
}
