// From the `data` section of a configuration to what the trainer reads: an algorithmic task
// (src/tasks, makeTask) or a character-level corpus split into train / valid / test (SPEC §0, §8).
import { existsSync } from 'node:fs';
import { EngramError } from '../tensor/index.js';
import { makeTask, type TaskName } from '../tasks/registry.js';
import { loadBrownText, loadTinyShakespeare, readTextFile, splitTokens } from '../tasks/corpus.js';
import { CharVocab } from '../tasks/vocab.js';
import type { SegmentedTask } from '../tasks/types.js';
import type { DataSection, LmDataSection } from './config.js';

export interface TaskDataset {
  kind: 'task';
  task: SegmentedTask;
  vocabSize: number;
  segmentLength: number;
  numSegments: number;
}

export interface LmDataset {
  kind: 'lm';
  vocab: CharVocab;
  vocabSize: number;
  segmentLength: number;
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

export type Dataset = TaskDataset | LmDataset;

/** The task a data section names (its options checked by the task). */
export function taskOf(section: Extract<DataSection, { kind: 'task' }>): SegmentedTask {
  return makeTask(section.name as TaskName, section.options as never);
}

/** The text of a corpus: 'tinyshakespeare', 'brown', or a file path. */
export async function corpusText(corpus: string): Promise<string> {
  if (corpus === 'tinyshakespeare') return loadTinyShakespeare();
  if (corpus === 'brown') return loadBrownText();
  if (!existsSync(corpus)) {
    throw new EngramError(`data.corpus: '${corpus}' is neither a built-in corpus (tinyshakespeare, brown) nor an existing file`, 'config');
  }
  return readTextFile(corpus);
}

/**
 * Loads a data section. For language modelling the vocabulary is built from the whole text unless
 * one is given (a checkpoint's, so that ids mean what they meant in training).
 */
export async function loadDataset(section: DataSection, { vocab }: { vocab?: string | null } = {}): Promise<Dataset> {
  if (section.kind === 'task') {
    const task = taskOf(section);
    return { kind: 'task', task, vocabSize: task.vocabSize, segmentLength: task.segmentLength, numSegments: task.numSegments };
  }
  return loadCorpus(section, vocab ?? null);
}

async function loadCorpus(section: LmDataSection, savedVocab: string | null): Promise<LmDataset> {
  const text = await corpusText(section.corpus);
  const vocab = savedVocab !== null ? CharVocab.fromString(savedVocab) : CharVocab.fromText(text);
  const ids = vocab.encode(text);
  const f = section.validFraction;
  const { train, valid, test } = splitTokens(ids, { train: 1 - 2 * f, valid: f, test: f });
  const need = 2 * section.segmentLength + 2;
  if (valid.length < need || train.length < need) {
    throw new EngramError(`data: corpus '${section.corpus}' has ${ids.length} characters, too few for segments of ${section.segmentLength} with a validation fraction of ${f}`, 'config');
  }
  return { kind: 'lm', vocab, vocabSize: vocab.size, segmentLength: section.segmentLength, train, valid, test };
}
