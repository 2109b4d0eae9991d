// Fused optimiser updates over lists of tensors: the tensor layer's side of src/optim. Each call
// is one native call for the whole list (native/src/autograd_ops.cpp), so an optimiser makes one
// per parameter group per step; the arithmetic follows torch.optim's single-tensor updates.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

const ids = (ts: Tensor[]): number[] => ts.map((t) => t.id);

export interface AdamHyper {
  /** The step count the bias corrections use (1 on the first update). */
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW's decoupled decay (p <- p * (1 - lr * weightDecay)) instead of L2 added to the gradient. */
  decoupled: boolean;
}

/** Adam / AdamW on params (which must have gradients) and their moment buffers, in place. */
export function adamStep(params: Tensor[], expAvg: Tensor[], expAvgSq: Tensor[], h: AdamHyper): void {
  native.adamStep(ids(params), ids(expAvg), ids(expAvgSq), h.step, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.decoupled);
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** The buffers are new: they take the gradient as it is (PyTorch's clone), undamped. */
  firstStep: boolean;
}

/** SGD on params (which must have gradients); momentumBuffers is empty when momentum is 0. */
export function sgdStep(params: Tensor[], momentumBuffers: Tensor[], h: SgdHyper): void {
  native.sgdStep(ids(params), ids(momentumBuffers), h.lr, h.momentum, h.dampening, h.weightDecay, h.nesterov, h.firstStep);
}

/** Drops the gradients of every tensor (PyTorch's zero_grad(set_to_none=True)), in one call. */
export function zeroGrads(ts: Tensor[]): void {
  native.zeroGrad(ids(ts));
}

/**
 * Scales the gradients in place so that their joint normType-norm is at most maxNorm (as
 * torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
 */
export function clipGradNormOf(params: Tensor[], maxNorm: number, normType: number): number {
  return native.clipGradNorm(ids(params), maxNorm, normType);
}
