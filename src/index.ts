// Engram's public entry point.
export * from './tensor/index.js';
export * from './optim/index.js';
export * from './nn/index.js';
export * from './memory/index.js';
export * from './models/index.js';
export * from './tasks/index.js';
export * from './train/index.js';
export * from './infer/index.js';
export * from './inspect/index.js';
export * from './distributed/index.js';
