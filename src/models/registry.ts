// Builds a model from its configuration, with errors that say what is allowed. Each mechanism's
// options have their schema and defaults here, so the training configuration and the typed API
// check them the same way.
import { z } from 'zod';
import { EngramError } from '../tensor/index.js';
import { SegmentTransformer } from './segment-transformer.js';
import { MemBottleneck } from './mem-bottleneck.js';
import { SequentialTransformer } from './sequential.js';
import { AdaptiveSpanTransformer } from './adaptive-span.js';
import { ExpireSpanTransformer } from './expire-span.js';
import { CompressiveTransformer } from './compressive.js';
import { FeedbackTransformer } from './feedback.js';
import type { AdaptiveSpanOptions, CompressiveOptions, ExpireSpanOptions, ModelConfig, ModelKind, SegmentModel } from './types.js';

export const modelKinds: readonly ModelKind[] = [
  'transformer', 'xl', 'mem-transformer', 'mem-bottleneck', 'rmt',
  'sequential', 'adaptive-span', 'expire-span', 'compressive', 'feedback',
];

/** Kinds that keep a window of memLen past positions with learned key positions (SPEC §1–§4, §7). */
export const sequentialKinds: readonly ModelKind[] = ['sequential', 'adaptive-span', 'expire-span', 'compressive', 'feedback'];

/** Kinds with memory tokens. */
export const memoryTokenKinds: readonly ModelKind[] = ['mem-transformer', 'mem-bottleneck', 'rmt'];

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);

export const adaptiveSpanSchema = z.strictObject({
  ramp: positiveInt.default(32),
  init: fraction.default(0),
  lossCoef: z.number().min(0).default(2e-6),
  dynamic: z.boolean().default(false),
  trimStep: positiveInt.default(64),
});
export const expireSpanSchema = z.strictObject({
  ramp: positiveInt.default(32),
  initFraction: z.number().gt(0).lt(1).default(0.1),
  preDiv: z.number().gt(0).default(1),
  lossCoef: z.number().min(0).default(1e-6),
  noisy: z.boolean().default(false),
  drop: z.boolean().default(true),
});
export const compressiveSchema = z.strictObject({
  /** Default: memLen. */
  compressedLen: positiveInt.optional(),
  rate: positiveInt.default(3),
  fn: z.enum(['mean', 'max', 'conv']).default('conv'),
  reconstruction: z.boolean().default(true),
});

/** SPEC §8's copy/reverse model: 4 layers, 4 heads, d_model 128, d_inner 256. */
export const defaultModelConfig: Omit<ModelConfig, 'kind' | 'vocabSize'> = {
  layers: 4, dModel: 128, heads: 4, dInner: 256, dropout: 0, norm: 'post', memLen: 0, numMemTokens: 0, previousToken: false,
  adaptiveSpan: null, expireSpan: null, compressive: null,
};

/** A configuration as a user writes it: mechanism options partial (their defaults are filled in). */
export type ModelConfigInput = Partial<Omit<ModelConfig, 'adaptiveSpan' | 'expireSpan' | 'compressive'>> & Pick<ModelConfig, 'kind' | 'vocabSize'> & {
  adaptiveSpan?: Partial<AdaptiveSpanOptions> | null;
  expireSpan?: Partial<ExpireSpanOptions> | null;
  compressive?: Partial<CompressiveOptions> | null;
};

/** Fills defaults and checks the configuration, with errors that say what is allowed. */
export function resolveModelConfig(partial: ModelConfigInput): ModelConfig {
  const known = new Set(Object.keys(defaultModelConfig).concat(['kind', 'vocabSize']));
  const unknown = Object.keys(partial).filter((k) => !known.has(k));
  const fail = (m: string): never => { throw new EngramError(`model config: ${m}`, 'config'); };
  if (unknown.length) fail(`unknown option(s) ${unknown.join(', ')}; allowed: ${[...known].join(', ')}`);
  const kind = partial.kind;
  if (!modelKinds.includes(kind)) fail(`kind '${kind}' is not one of ${modelKinds.join(', ')}`);
  const options = <T>(name: 'adaptiveSpan' | 'expireSpan' | 'compressive', owner: ModelKind, schema: z.ZodType<T>): T | null => {
    const given = partial[name];
    if (kind !== owner) {
      if (given) fail(`${name} options belong to kind '${owner}', not '${kind}'`);
      return null;
    }
    const r = schema.safeParse(given ?? {});
    if (!r.success) fail(`${name}: ${r.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ')}`);
    return r.data as T;
  };
  const c: ModelConfig = {
    ...defaultModelConfig,
    ...partial,
    adaptiveSpan: options('adaptiveSpan', 'adaptive-span', adaptiveSpanSchema),
    expireSpan: options('expireSpan', 'expire-span', expireSpanSchema),
    compressive: null,
  };
  const compressive = options('compressive', 'compressive', compressiveSchema);
  if (compressive) c.compressive = { ...compressive, compressedLen: compressive.compressedLen ?? c.memLen };
  for (const k of ['vocabSize', 'layers', 'dModel', 'heads', 'dInner'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) fail(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.dModel % c.heads !== 0) fail(`dModel (${c.dModel}) must be divisible by heads (${c.heads})`);
  if (c.dModel % 2 !== 0) fail('dModel must be even (sinusoidal positions)');
  if (!(c.dropout >= 0 && c.dropout < 1)) fail(`dropout must be in [0, 1), got ${c.dropout}`);
  if (typeof c.previousToken !== 'boolean') fail(`previousToken must be true or false, got ${JSON.stringify(c.previousToken)}`);
  if (c.norm !== 'post' && c.norm !== 'pre') fail(`norm must be 'post' or 'pre', got '${c.norm}'`);
  if (!Number.isInteger(c.memLen) || c.memLen < 0) fail(`memLen must be a non-negative integer, got ${c.memLen}`);
  if (!Number.isInteger(c.numMemTokens) || c.numMemTokens < 0) fail(`numMemTokens must be a non-negative integer, got ${c.numMemTokens}`);
  if (c.kind === 'xl' && c.memLen === 0) fail("kind 'xl' needs memLen > 0 (memLen 0 is kind 'transformer')");
  if (c.kind === 'transformer' && c.memLen > 0) fail("kind 'transformer' has no cache: use kind 'xl' for memLen > 0");
  if (sequentialKinds.includes(c.kind) && c.memLen === 0) fail(`kind '${c.kind}' needs memLen > 0 (its maximum span L)`);
  if (memoryTokenKinds.includes(c.kind) && c.numMemTokens === 0) fail(`kind '${c.kind}' needs numMemTokens > 0`);
  if (!memoryTokenKinds.includes(c.kind) && c.numMemTokens > 0) fail(`kind '${c.kind}' has no memory tokens (numMemTokens must be 0)`);
  return c;
}

const constructors: Record<ModelKind, new (config: ModelConfig) => SegmentModel> = {
  'transformer': SegmentTransformer,
  'xl': SegmentTransformer,
  'mem-transformer': SegmentTransformer,
  'rmt': SegmentTransformer,
  'mem-bottleneck': MemBottleneck,
  'sequential': SequentialTransformer,
  'adaptive-span': AdaptiveSpanTransformer,
  'expire-span': ExpireSpanTransformer,
  'compressive': CompressiveTransformer,
  'feedback': FeedbackTransformer,
};

export function createModel(partial: ModelConfigInput): SegmentModel {
  const config = resolveModelConfig(partial);
  return new constructors[config.kind](config);
}
