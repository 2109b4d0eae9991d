// Parameter groups for weight decay, as people expect from AdamW (nanoGPT, minGPT, timm): decay
// shrinks the weight matrices of maps, never the parameters whose value means something on its
// own scale (biases, norm gains, memory tokens, position biases and tables, span parameters).
import type { Tensor } from '../tensor/index.js';
import type { ParamGroupSpec } from './optimizers.js';

/** What the grouping needs of a model: its parameters under dotted names (nn's Module has it). */
export interface HasNamedParameters {
  namedParameters(): [string, Tensor][];
}

/** Whether a parameter (by its dotted name) takes weight decay. */
export type DecayRule = (name: string, param: Tensor) => boolean;

/**
 * The default rule: a parameter decays when it is called `weight` (the last part of its dotted
 * name) and has 2 or more dims, i.e. the weights of linear maps, embeddings and convolutions.
 * Nothing else decays: biases and LayerNorm gains (1-d), memory tokens (`init`), Transformer-XL's
 * u and v, key position tables (`keyPe`), Adaptive-Span's span parameters (`spanRatio`,
 * `spanWeight`, `spanBias`), Expire-Span's span predictors (`spanPredictors.*`: their weight is a
 * [1, H] map, but decaying it would pull every span towards the initial p·L, a prior the span loss
 * already sets), Feedback's `mergeLogits`, the previous-token table (`previous`). A new parameter
 * that is not a map's `weight` does not decay unless a caller's rule says so.
 */
export const decaysByDefault: DecayRule = (name, param) =>
  param.ndim >= 2 && (name === 'weight' || name.endsWith('.weight')) && !name.startsWith('spanPredictors.');

/**
 * Splits a model's parameters into a group with weightDecay and one with none, each in the
 * model's order, for Adam/AdamW/SGD (as `new AdamW(weightDecayGroups(model, 0.1))`). With
 * weightDecay 0 there is nothing to split: one group of every parameter in the model's order,
 * exactly what `model.parameters()` gives. Empty groups are left out.
 */
export function weightDecayGroups<O extends { weightDecay: number }>(
  model: HasNamedParameters,
  weightDecay: number,
  decays: DecayRule = decaysByDefault,
): ParamGroupSpec<O>[] {
  const named = model.namedParameters();
  if (weightDecay === 0) return [{ params: named.map(([, p]) => p) } as ParamGroupSpec<O>];
  const decay: Tensor[] = [];
  const keep: Tensor[] = [];
  for (const [name, p] of named) (decays(name, p) ? decay : keep).push(p);
  const groups = [
    { params: decay, weightDecay },
    { params: keep, weightDecay: 0 },
  ] as ParamGroupSpec<O>[];
  return groups.filter((g) => g.params.length > 0);
}
