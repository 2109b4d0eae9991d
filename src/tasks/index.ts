// The data layer: algorithmic and memory tasks (SPEC §8), language-modelling streams, metrics.
export { Rng } from './random.js';
export { PAD, IGNORE_INDEX, type TaskBatch, type TaskSample, type SegmentedTask, type AnswerKinds } from './types.js';
export { CopyTask, type CopyOptions } from './copy.js';
export { ReverseTask, type ReverseOptions } from './reverse.js';
export { START, FIRST_SYMBOL, type SymbolTaskOptions } from './symbols.js';
export { AssociativeRetrievalTask, QUERY, FIRST_KEY, type AssociativeRetrievalOptions } from './associative-retrieval.js';
export {
  QuadraticEquationsTask, QUADRATIC_BLOCK_WIDTH, QUADRATIC_BLOCKS, QUADRATIC_CHARS, formatQuadratic, quadraticBlocks,
  type QuadraticEquationsOptions,
} from './quadratic-equations.js';
export { LongCopyTask, LONG_COPY_BLANK, LONG_COPY_FIRST_SYMBOL, type LongCopyOptions } from './long-copy.js';
export { CorridorTask, CORRIDOR_DECISION, CORRIDOR_FIRST_COLOUR, type CorridorOptions } from './corridor.js';
export {
  ObjectCollisionTask, COLLISION_GRID, COLLISION_COLOURS, COLLISION_FRAME_TOKENS, COLLISION_TOKEN_OFFSET, COLLISION_X, COLLISION_Y,
  COLLISION_COLOUR, COLLISION_QUERY, FIRST_QUADRANT_LABEL, quadrantOf, type ObjectCollisionOptions,
} from './object-collision.js';
export {
  AlgorithmicTask, ALGORITHMIC_VARIABLES, ALGORITHMIC_MIN_VALUE, ALGORITHMIC_MAX_VALUE, algorithmicWords, type AlgorithmicOptions,
} from './algorithmic.js';
export { LabelledTask, type SegmentOptions } from './labelled-task.js';
export { makeTask, taskNames, isTaskName, type TaskName, type TaskOptionsMap, type TaskClassMap } from './registry.js';
export { CharVocab, UNKNOWN_ID } from './vocab.js';
export {
  readTextFile, loadTinyShakespeare, TINY_SHAKESPEARE_PATH, loadBrownText, brownFiles, stripBrownTags,
  splitText, splitTokens, splitBounds, type SplitFractions, type Split, type BrownOptions,
} from './corpus.js';
export { StreamBatcher, shardRows, type StreamBatcherOptions, type StreamSegment, type StreamPosition, type Shard } from './stream.js';
export { tokenAccuracy, exactMatch, bitsPerCharacter, perplexity, mergeCounts, answerBreakdown, type Counts, type AnswerBreakdown } from './metrics.js';
