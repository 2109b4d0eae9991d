export { nextCache } from './xl-cache.js';
export { MemoryTokens, type MemoryTokenMode } from './memory-tokens.js';
export { segmentMask, seesLaterKeys, MaskCache, type SegmentLayout } from './segment-layout.js';
