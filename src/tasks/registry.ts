// Task registry: a name and its options to a SegmentedTask, with the options checked.
import { AssociativeRetrievalTask, type AssociativeRetrievalOptions } from './associative-retrieval.js';
import { CopyTask, type CopyOptions } from './copy.js';
import { QuadraticEquationsTask, type QuadraticEquationsOptions } from './quadratic-equations.js';
import { ReverseTask, type ReverseOptions } from './reverse.js';
import { LongCopyTask, type LongCopyOptions } from './long-copy.js';
import { CorridorTask, type CorridorOptions } from './corridor.js';
import { ObjectCollisionTask, type ObjectCollisionOptions } from './object-collision.js';
import { AlgorithmicTask, type AlgorithmicOptions } from './algorithmic.js';
import { configError } from '../tensor/errors.js';

/** Options of each task, by name. */
export interface TaskOptionsMap {
  copy: CopyOptions;
  reverse: ReverseOptions;
  'associative-retrieval': AssociativeRetrievalOptions;
  'quadratic-equations': QuadraticEquationsOptions;
  'long-copy': LongCopyOptions;
  corridor: CorridorOptions;
  'object-collision': ObjectCollisionOptions;
  algorithmic: AlgorithmicOptions;
}
export type TaskName = keyof TaskOptionsMap;
/** The class each name builds. */
export interface TaskClassMap {
  copy: CopyTask;
  reverse: ReverseTask;
  'associative-retrieval': AssociativeRetrievalTask;
  'quadratic-equations': QuadraticEquationsTask;
  'long-copy': LongCopyTask;
  corridor: CorridorTask;
  'object-collision': ObjectCollisionTask;
  algorithmic: AlgorithmicTask;
}

const builders: { [N in TaskName]: (o: TaskOptionsMap[N]) => TaskClassMap[N] } = {
  copy: (o) => new CopyTask(o),
  reverse: (o) => new ReverseTask(o),
  'associative-retrieval': (o) => new AssociativeRetrievalTask(o),
  'quadratic-equations': (o) => new QuadraticEquationsTask(o),
  'long-copy': (o) => new LongCopyTask(o),
  corridor: (o) => new CorridorTask(o),
  'object-collision': (o) => new ObjectCollisionTask(o),
  algorithmic: (o) => new AlgorithmicTask(o),
};

export const taskNames = Object.keys(builders) as TaskName[];

export function isTaskName(name: string): name is TaskName {
  return Object.hasOwn(builders, name);
}

/**
 * The task `name` built from options (SPEC §8 defaults for what is left out). Throws EngramError
 * kind 'config' for an unknown name, an unknown option or a value out of range, naming what is allowed.
 */
export function makeTask<N extends TaskName>(name: N, options: TaskOptionsMap[N] = {} as TaskOptionsMap[N]): TaskClassMap[N] {
  if (!isTaskName(name)) {
    throw configError('makeTask', `unknown task '${String(name)}'; tasks: ${taskNames.join(', ')}`);
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw configError('makeTask', `options of '${name}' must be an object`);
  }
  return builders[name](options);
}
