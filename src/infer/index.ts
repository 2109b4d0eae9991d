// Inference: decoding segment models over unbounded streams.
export * from './decoder.js';
export * from './sampling.js';
export * from './stream.js';
export * from './trace.js';
