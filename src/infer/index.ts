// Inference: decoding segment models over unbounded streams.
export * from './decoder.js';
export * from './trace.js';
