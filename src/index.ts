// Engram's public entry point.
export * from './tensor/index.js';
