// Engram's public entry point.
export * from './tensor/index.js';
export * from './optim/index.js';
