// Builds a model from its configuration, with errors that say what is allowed. Every kind has one
// entry (ModelKindSpec), written beside its model class: its constructor, its option keys (schemas
// and defaults, from src/memory; a key such as `initialMemory` may belong to several kinds), a
// check of their combinations, and its rules on memLen / numMemTokens (which also give
// training's default sizes: src/train/config.ts memoryDefaults). This file only collects the entries and applies them the same way to
// every kind, so the training configuration and the typed API check a configuration alike.
import { configError, resolveDevice, type Device, type DeviceSpec } from '../tensor/index.js';
import { memTransformerKind, rmtKind, transformerKind, xlKind } from './segment-transformer.js';
import { memBottleneckKind } from './mem-bottleneck.js';
import { sequentialKind } from './sequential.js';
import { adaptiveSpanKind } from './adaptive-span.js';
import { expireSpanKind } from './expire-span.js';
import { compressiveKind } from './compressive.js';
import { feedbackKind } from './feedback.js';
import type { AnyModelKindSpec, CommonModelConfig, ModelConfig, ModelConfigInput, ModelKind, SegmentModel, SizeRule } from './types.js';

/** Every kind's entry, in the order kinds are listed to users. */
export const modelKindSpecs: readonly AnyModelKindSpec[] = [
  transformerKind, xlKind, memTransformerKind, memBottleneckKind, rmtKind,
  sequentialKind, adaptiveSpanKind, expireSpanKind, compressiveKind, feedbackKind,
];

export const modelKinds: readonly ModelKind[] = modelKindSpecs.map((s) => s.kind);

/** The entry of a kind, or undefined when there is no such kind. */
export const modelKindSpec = (kind: string): AnyModelKindSpec | undefined => modelKindSpecs.find((s) => s.kind === kind);

/** SPEC §8's copy/reverse model: 4 layers, 4 heads, d_model 128, d_inner 256. */
export const defaultModelConfig: Omit<CommonModelConfig, 'vocabSize'> = {
  layers: 4, dModel: 128, heads: 4, dInner: 256, dropout: 0, norm: 'post', memLen: 0, numMemTokens: 0, previousToken: false,
};

/** The configuration keys of the kinds' options, each with the kinds that own it. */
const optionOwners = new Map<string, ModelKind[]>();
for (const s of modelKindSpecs) for (const o of s.options) optionOwners.set(o.key, [...(optionOwners.get(o.key) ?? []), s.kind]);

/** A configuration read from a file or built from untyped values: checked at run time only. */
export type UncheckedModelConfigInput = { kind: string; vocabSize: number } & Record<string, unknown>;

/** The op named by every error of resolveModelConfig and checkSize. */
const op = 'resolveModelConfig';

/** Fills defaults and checks the configuration, with errors that say what is allowed. */
export function resolveModelConfig(input: ModelConfigInput): ModelConfig;
export function resolveModelConfig(input: UncheckedModelConfigInput): ModelConfig;
export function resolveModelConfig(input: ModelConfigInput | UncheckedModelConfigInput): ModelConfig {
  const given = input as Record<string, unknown>;
  const known = new Set([...Object.keys(defaultModelConfig), ...optionOwners.keys(), 'kind', 'vocabSize']);
  const unknown = Object.keys(given).filter((k) => !known.has(k));
  if (unknown.length) throw configError(op, `unknown option(s) ${unknown.join(', ')}; allowed: ${[...known].join(', ')}`);
  const spec = modelKindSpec(input.kind);
  if (!spec) throw configError(op, `kind '${input.kind}' is not one of ${modelKinds.join(', ')}`);
  const kind = spec.kind;
  // Key order as saved in checkpoints: the sizes, the mechanisms' option keys, then the input's own.
  const c: Record<string, unknown> = { ...defaultModelConfig, ...Object.fromEntries([...optionOwners.keys()].map((k) => [k, null])), ...given };
  for (const [key, owners] of optionOwners) {
    if (owners.includes(kind)) continue;
    if (given[key] !== undefined && given[key] !== null) {
      throw configError(op, `${key} options belong to kind${owners.length > 1 ? 's' : ''} ${owners.map((o) => `'${o}'`).join(', ')}, not '${kind}'`);
    }
    c[key] = null;
  }
  for (const { key, schema, complete } of spec.options) {
    // Left out (or null, as configurations saved before the option existed): the defaults.
    const r = schema.safeParse(given[key] ?? undefined);
    if (!r.success) throw configError(op, `${key}: ${r.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ')}`);
    c[key] = complete ? complete(r.data as never, c as unknown as CommonModelConfig) : r.data;
  }
  const n = c as unknown as CommonModelConfig;
  for (const k of ['vocabSize', 'layers', 'dModel', 'heads', 'dInner'] as const) {
    if (!Number.isInteger(n[k]) || n[k] <= 0) throw configError(op, `${k} must be a positive integer, got ${n[k]}`);
  }
  if (n.dModel % n.heads !== 0) throw configError(op, `dModel (${n.dModel}) must be divisible by heads (${n.heads})`);
  if (n.dModel % 2 !== 0) throw configError(op, 'dModel must be even (sinusoidal positions)');
  if (!(n.dropout >= 0 && n.dropout < 1)) throw configError(op, `dropout must be in [0, 1), got ${n.dropout}`);
  if (typeof n.previousToken !== 'boolean') throw configError(op, `previousToken must be true or false, got ${JSON.stringify(n.previousToken)}`);
  if (n.norm !== 'post' && n.norm !== 'pre') throw configError(op, `norm must be 'post' or 'pre', got '${n.norm}'`);
  if (!Number.isInteger(n.memLen) || n.memLen < 0) throw configError(op, `memLen must be a non-negative integer, got ${n.memLen}`);
  if (!Number.isInteger(n.numMemTokens) || n.numMemTokens < 0) throw configError(op, `numMemTokens must be a non-negative integer, got ${n.numMemTokens}`);
  checkSize(kind, 'memLen', 'cache', n.memLen, spec.memLen);
  checkSize(kind, 'numMemTokens', 'memory tokens', n.numMemTokens, spec.numMemTokens);
  const problem = spec.check?.(c as never);
  if (problem) throw configError(op, problem);
  return c as unknown as ModelConfig;
}

/** A kind's rule on one memory size. */
function checkSize(kind: ModelKind, name: string, what: string, size: number, rule: SizeRule): void {
  if (rule.use === 'required' && size === 0) throw configError(op, `kind '${kind}' needs ${name} > 0${rule.reason ? ` (${rule.reason})` : ''}`);
  if (rule.use === 'none' && size > 0) throw configError(op, `kind '${kind}' has no ${what}${rule.instead ? `: ${rule.instead}` : ` (${name} must be 0)`}`);
}

export interface CreateModelOptions {
  /**
   * Where the parameters live ('cpu', 'cuda', 'cuda:N', 'auto'; default 'cpu'). The model is
   * initialised on the CPU and then moved, so a seed gives the same weights on every device.
   */
  device?: DeviceSpec | Device;
}

/** Builds the model a configuration describes (filling its defaults first), on options.device. */
export function createModel(input: ModelConfigInput, options: CreateModelOptions = {}): SegmentModel {
  const config = resolveModelConfig(input);
  const device = resolveDevice(options.device, 'createModel'); // before building: a bad device fails fast
  // The entry of config.kind gets a configuration of its own kind.
  const model = (modelKindSpec(config.kind)!.build as (c: ModelConfig) => SegmentModel)(config);
  return device === 'cpu' ? model : model.to(device);
}
