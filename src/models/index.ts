export * from './types.js';
export { SegmentTransformer, type SegmentState } from './segment-transformer.js';
export { MemBottleneck } from './mem-bottleneck.js';
export { createModel, resolveModelConfig, defaultModelConfig, modelKinds } from './registry.js';
