export { Module } from './module.js';
export { Linear, OutputHead, Embedding, TokenEmbedding, LayerNorm, Dropout, FeedForward } from './layers.js';
export { MultiHeadAttention, KeyValueCache, keyBlocks, distanceBlocks, setKeyBlockSkipping, KEY_BLOCK_ROWS, type RelativePositions, type AttentionInput } from './attention.js';
export { DecoderLayer, type LayerOptions } from './decoder-layer.js';
export { sinusoidalDistances, relShift, relSkew } from './positions.js';
export { TensorCache } from './tensor-cache.js';
