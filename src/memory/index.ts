export { nextCache } from './xl-cache.js';
export { MemoryTokens, type MemoryTokenMode } from './memory-tokens.js';
export { segmentMask, cachedSegmentMask, seesLaterKeys, type SegmentLayout } from './segment-layout.js';
export {
  Compressor, compress, advanceRawMemory, appendCompressed, attentionReconstructionLoss, compressiveSchema, completeCompressiveOptions,
  type CompressionFn, type CompressiveOptions, type CompressiveOptionsInput,
} from './compressive.js';
export * from './expire-span.js';
export {
  AdaptiveSpan, rampMask, trimmedWindow, DYNAMIC_INIT_FLOOR, adaptiveSpanSchema, type AdaptiveSpanOptions, type AdaptiveSpanOptionsInput,
} from './adaptive-span.js';
