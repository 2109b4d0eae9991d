export { nextCache } from './xl-cache.js';
export { MemoryTokens, type MemoryTokenMode } from './memory-tokens.js';
export {
  segmentMask, cachedSegmentMask, seesLaterKeys, rmtCacheSchema, type SegmentLayout, type RmtCacheOptions, type RmtCacheOptionsInput,
} from './segment-layout.js';
export * from './sequential-window.js';
export {
  Compressor, compress, advanceRawMemory, appendCompressed, attentionReconstructionLoss, compressiveSchema, completeCompressiveOptions,
  checkCompressiveScheme, overlapWindow,
  type CompressionFn, type CompressiveOptions, type CompressiveOptionsInput,
} from './compressive.js';
export * from './expire-span.js';
export {
  AdaptiveSpan, rampMask, trimmedWindow, referenceTrimmedWindow, DYNAMIC_INIT_FLOOR, adaptiveSpanSchema, type AdaptiveSpanOptions, type AdaptiveSpanOptionsInput,
} from './adaptive-span.js';
