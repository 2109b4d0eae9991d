// Gradient-mode scopes and functional gradients on libtorch's autograd.
import { native } from './native.js';
import { fromId, type Tensor } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs fn with gradient recording off (PyTorch's torch.no_grad()). */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);

/** Runs fn with gradient recording on, e.g. inside noGrad. */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);

export const isGradEnabled = (): boolean => native.isGradEnabled();

export interface GradOptions {
  gradOutputs?: Tensor[];
  retainGraph?: boolean;
  /** Record the gradient computation itself, for higher-order gradients. */
  createGraph?: boolean;
  /** Give null for inputs the outputs do not depend on instead of throwing. */
  allowUnused?: boolean;
}

/** Gradients of outputs with respect to inputs, leaving every .grad untouched (torch.autograd.grad). */
export function grad(outputs: Tensor | Tensor[], inputs: Tensor[], o: GradOptions = {}): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ids = native.autogradGrad(
    outs.map((t) => t.id),
    inputs.map((t) => t.id),
    o.gradOutputs ? o.gradOutputs.map((t) => t.id) : null,
    o.retainGraph ?? o.createGraph ?? false,
    o.createGraph ?? false,
    o.allowUnused ?? false,
  );
  return ids.map((id) => (id === null ? null : fromId(id)));
}
