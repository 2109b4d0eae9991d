// Training, evaluation, checkpoints, generation and experiments over SegmentModels.
export * from './config.js';
export * from './unroll.js';
export * from './metrics.js';
export * from './data.js';
export * from './objective.js';
export * from './evaluate.js';
export * from './checkpoint.js';
export * from './model-folder.js';
export * from './progress.js';
export * from './trainer.js';
export * from './generate.js';
export * from './plot.js';
export * from './experiment.js';
export * from './recipes.js';
export { LOCK_FILE, lockRunDir, removeRunFiles, runDirEntries, type RunLock, type LockHolder } from './run-dir.js';
