// Builds a model from its configuration: the return type follows `kind`.
import { EngramError } from '../tensor/index.js';
import { SegmentTransformer } from './segment-transformer.js';
import { MemBottleneck } from './mem-bottleneck.js';
import type { ModelConfig, ModelKind, SegmentModel } from './types.js';

export const modelKinds: readonly ModelKind[] = ['transformer', 'xl', 'mem-transformer', 'mem-bottleneck', 'rmt'];

/** SPEC §8's copy/reverse model: 4 layers, 4 heads, d_model 128, d_inner 256. */
export const defaultModelConfig: Omit<ModelConfig, 'kind' | 'vocabSize'> = {
  layers: 4, dModel: 128, heads: 4, dInner: 256, dropout: 0, norm: 'post', memLen: 0, numMemTokens: 0,
};

/** Fills defaults and checks the configuration, with errors that say what is allowed. */
export function resolveModelConfig(partial: Partial<ModelConfig> & Pick<ModelConfig, 'kind' | 'vocabSize'>): ModelConfig {
  const c: ModelConfig = { ...defaultModelConfig, ...partial };
  const known = new Set(Object.keys(defaultModelConfig).concat(['kind', 'vocabSize']));
  const unknown = Object.keys(partial).filter((k) => !known.has(k));
  const fail = (m: string) => { throw new EngramError(`model config: ${m}`, 'config'); };
  if (unknown.length) fail(`unknown option(s) ${unknown.join(', ')}; allowed: ${[...known].join(', ')}`);
  if (!modelKinds.includes(c.kind)) fail(`kind '${c.kind}' is not one of ${modelKinds.join(', ')}`);
  for (const k of ['vocabSize', 'layers', 'dModel', 'heads', 'dInner'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) fail(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.dModel % c.heads !== 0) fail(`dModel (${c.dModel}) must be divisible by heads (${c.heads})`);
  if (c.dModel % 2 !== 0) fail('dModel must be even (sinusoidal positions)');
  if (!(c.dropout >= 0 && c.dropout < 1)) fail(`dropout must be in [0, 1), got ${c.dropout}`);
  if (c.norm !== 'post' && c.norm !== 'pre') fail(`norm must be 'post' or 'pre', got '${c.norm}'`);
  if (!Number.isInteger(c.memLen) || c.memLen < 0) fail(`memLen must be a non-negative integer, got ${c.memLen}`);
  if (!Number.isInteger(c.numMemTokens) || c.numMemTokens < 0) fail(`numMemTokens must be a non-negative integer, got ${c.numMemTokens}`);
  if (c.kind === 'xl' && c.memLen === 0) fail("kind 'xl' needs memLen > 0 (memLen 0 is kind 'transformer')");
  if (c.kind === 'transformer' && c.memLen > 0) fail("kind 'transformer' has no cache: use kind 'xl' for memLen > 0");
  if ((c.kind === 'rmt' || c.kind === 'mem-transformer' || c.kind === 'mem-bottleneck') && c.numMemTokens === 0) {
    fail(`kind '${c.kind}' needs numMemTokens > 0`);
  }
  if (c.kind !== 'rmt' && c.kind !== 'mem-transformer' && c.kind !== 'mem-bottleneck' && c.numMemTokens > 0) {
    fail(`kind '${c.kind}' has no memory tokens (numMemTokens must be 0)`);
  }
  return c;
}

export function createModel(partial: Partial<ModelConfig> & Pick<ModelConfig, 'kind' | 'vocabSize'>): SegmentModel {
  const config = resolveModelConfig(partial);
  return config.kind === 'mem-bottleneck' ? new MemBottleneck(config) : new SegmentTransformer(config);
}
