export { nextCache } from './xl-cache.js';
export { MemoryTokens, type MemoryTokenMode } from './memory-tokens.js';
export { segmentMask, cachedSegmentMask, seesLaterKeys, type SegmentLayout } from './segment-layout.js';
export { Compressor, compress, advanceRawMemory, appendCompressed, contentAttention, attentionReconstructionLoss, type CompressionFn } from './compressive.js';
export * from './expire-span.js';
export { AdaptiveSpan, rampMask, trimmedWindow, DYNAMIC_INIT_FLOOR } from './adaptive-span.js';
