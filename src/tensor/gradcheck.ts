// Numerical gradient checking, as torch.autograd.gradcheck: the analytic gradient from libtorch's
// autograd against float64 central differences, element by element.
//
//   const r = gradcheck((a, b) => a.mul(b).sum(1), [a, b]);
//   assert.ok(r.ok, r.message);
import { grad, noGrad } from './autograd.js';
import { configError } from './errors.js';
import { tidy } from './scope.js';
import { tensor } from './creation.js';
import type { Device, Tensor } from './tensor.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** An element passes when |analytic - numeric| <= atol + rtol * |numeric| (defaults 1e-5, 1e-3). */
  atol?: number;
  rtol?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Largest |analytic - numeric| over all checked elements. */
  maxError: number;
  /** The element furthest outside its tolerance (or closest to it): input position, flat index. */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  /** One line for assertion messages. */
  message: string;
}

/**
 * Checks the gradient of fn with respect to every input that requires grad (those must be float64;
 * other inputs, such as index tensors and masks, are passed through unchanged). The scalar
 * differentiated is sum(fn(...inputs) * w) with fixed pseudo-random weights w, so every output
 * element counts. Nothing made here outlives the call.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3 } = opts;
  const checked = inputs.map((t, i) => (t.requiresGrad ? i : -1)).filter((i) => i >= 0);
  if (checked.length === 0) throw configError('gradcheck', 'no input requires grad; set requiresGrad on the inputs to check');
  for (const i of checked) {
    if (inputs[i]!.dtype !== 'float64') {
      throw configError('gradcheck', `input ${i} is ${inputs[i]!.dtype}; gradcheck needs float64 (convert with .double())`);
    }
  }
  return tidy(() => {
    const out = fn(...inputs);
    const weights = tensor(weightsFor(out.numel), { shape: out.shape, device: out.device as Device });
    const analytic = grad(out.mul(weights).sum(), checked.map((i) => inputs[i]!), { allowUnused: true });

    // Detached contiguous copies to perturb in place, one element at a time (flat index = C order).
    const copies = inputs.map((t) => (t.requiresGrad ? t.detach().contiguous().clone() : t));
    const loss = (): number => tidy(() => noGrad(() => fn(...copies).mul(weights).sum().item()));

    let maxError = 0, worstScore = -1;
    let worst: GradcheckResult['worst'] = null;
    checked.forEach((i, k) => {
      const flat = copies[i]!.view(-1);
      const values = flat.data() as Float64Array;
      const g = analytic[k] ? (analytic[k]!.to('cpu').contiguous().data() as Float64Array) : new Float64Array(values.length);
      for (let j = 0; j < values.length; j++) {
        const element = flat.narrow(0, j, 1);
        element.fill_(values[j]! + eps);
        const plus = loss();
        element.fill_(values[j]! - eps);
        const minus = loss();
        element.fill_(values[j]!);
        element.dispose();
        const numeric = (plus - minus) / (2 * eps);
        const error = Math.abs(g[j]! - numeric);
        const score = error / (atol + rtol * Math.abs(numeric));
        maxError = Math.max(maxError, error);
        if (score > worstScore || Number.isNaN(score)) {
          worstScore = Number.isNaN(score) ? Infinity : score;
          worst = { input: i, index: j, analytic: g[j]!, numeric };
        }
      }
    });
    const ok = worstScore <= 1;
    const w = worst as GradcheckResult['worst'];
    const message = w
      ? `gradcheck ${ok ? 'passed' : 'FAILED'}: input ${w.input}, element ${w.index}: analytic ${w.analytic}, numeric ${w.numeric} (max error ${maxError})`
      : 'gradcheck: no elements to check';
    return { ok, maxError, worst: w, message };
  });
}

// Fixed weights in [0.5, 1.5) with alternating signs: deterministic, and no draw from the global RNG.
function weightsFor(n: number): Float64Array {
  const w = new Float64Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    w[i] = (0.5 + s / 2147483647) * (i % 2 === 0 ? 1 : -1);
  }
  return w;
}
