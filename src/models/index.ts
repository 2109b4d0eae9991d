export * from './types.js';
export { SegmentTransformer, type SegmentState } from './segment-transformer.js';
export { MemBottleneck } from './mem-bottleneck.js';
export { SequentialTransformer, type SequentialState, type LayerContext } from './sequential.js';
export { AdaptiveSpanTransformer } from './adaptive-span.js';
export { ExpireSpanTransformer, type ExpireSpanState, type ExpireSpanTrace } from './expire-span.js';
export { CompressiveTransformer, type CompressiveState } from './compressive.js';
export { FeedbackTransformer, type FeedbackState } from './feedback.js';
export {
  createModel, resolveModelConfig, defaultModelConfig, modelKinds, sequentialKinds, memoryTokenKinds,
  adaptiveSpanSchema, expireSpanSchema, compressiveSchema, type ModelConfigInput,
} from './registry.js';
