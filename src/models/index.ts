export * from './types.js';
export { SegmentTransformer, finalNormSchema, type SegmentState } from './segment-transformer.js';
export { MemBottleneck } from './mem-bottleneck.js';
export { SequentialTransformer, type SequentialState, type LayerContext } from './sequential.js';
export { AdaptiveSpanTransformer } from './adaptive-span.js';
export { ExpireSpanTransformer, type ExpireSpanState } from './expire-span.js';
export { CompressiveTransformer, type CompressiveState } from './compressive.js';
export { FeedbackTransformer, type FeedbackState } from './feedback.js';
export {
  createModel, resolveModelConfig, defaultModelConfig, modelKinds, modelKindSpecs, modelKindSpec, type UncheckedModelConfigInput, type CreateModelOptions,
} from './registry.js';
