// The span family's two attention pieces, old composition against new op, at bench:models sizes
// (B 16, K 4, M 128 queries, D 64; Adaptive-Span at the maximum: w 512 ranks over 639 keys),
// forward + backward, alternating, the fastest of `reps` runs each (robust to a shared machine):
//   soft mask     p·m / (Σ p·m + 1e-8), m [1, K, M, Tk]: mul/sum/add/div  vs  F.softMaskRenorm
//   positions     q · keyPe by distance: matmul + gather  vs  skewedKeyPositions (no gather)
// and F.softMaskRenorm's forward alone against forward + backward (its backward's cost).
//
//   node dist/scripts/probes/span-ops.js [--reps 15] [--threads 2]
import { arange, F, grad, rand, randn, setNumThreads, tidy, type Tensor } from '../../src/index.js';
import { skewedKeyPositions } from '../../src/nn/positions.js';

const arg = (name: string, fallback: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1]! : fallback; };
const reps = Number(arg('reps', '15'));
setNumThreads(Number(arg('threads', '2')));
const B = 16, K = 4, M = 128, D = 64, w = 512, C = w - 1, Tk = C + M;

const p = F.softmax(randn([B, K, M, Tk]), -1).requiresGrad_().keep();
const m = rand([1, K, M, Tk]).requiresGrad_().keep();
const q = randn([B, K, M, D]).requiresGrad_().keep();
const keyPe = randn([D, w]).requiresGrad_().keep();
const rank = arange(C, C + M, 1, { dtype: 'int64' }).unsqueeze(1).sub(arange(0, Tk, 1, { dtype: 'int64' })).clamp(0, w - 1).keep(); // [M, Tk]
const weights = randn([B, K, M, Tk]).keep();

const composed = () => { const x = p.mul(m); return x.div(x.sum(-1, true).add(1e-8)); };
const fused = () => F.softMaskRenorm(p, m);
const gathered = () => q.matmul(keyPe).gather(-1, rank.view(1, 1, M, Tk).expand(B, K, M, Tk));
const skewed = () => skewedKeyPositions(q, keyPe, C, Tk);

/** Milliseconds of forward + backward (gradients of every input). */
function time(fn: () => Tensor, inputs: Tensor[]): number {
  return tidy(() => {
    const t0 = performance.now();
    const out = fn();
    const g = grad(out.mul(weights).sum(), inputs);
    g[0]!.sum().item();
    return performance.now() - t0;
  });
}
const best = (xs: number[]) => Math.min(...xs).toFixed(1);
const pairs: [string, () => Tensor, () => Tensor, Tensor[]][] = [
  ['soft mask: composed vs F.softMaskRenorm', composed, fused, [p, m]],
  ['positions: gather vs skewedKeyPositions', gathered, skewed, [q, keyPe]],
];
for (const [label, before, after, inputs] of pairs) {
  const a: number[] = [], b: number[] = [];
  for (let i = 0; i < reps; i++) { a.push(time(before, inputs)); b.push(time(after, inputs)); }
  console.log(`${label}: ${best(a)} ms vs ${best(b)} ms (fastest of ${reps}, forward + backward, [${B}, ${K}, ${M}, ${Tk}])`);
}
{
  const forward: number[] = [], both: number[] = [];
  for (let i = 0; i < reps; i++) {
    forward.push(tidy(() => { const t0 = performance.now(); fused().sum().item(); return performance.now() - t0; }));
    both.push(time(fused, [p, m]));
  }
  console.log(`soft mask: F.softMaskRenorm forward ${best(forward)} ms, forward + backward ${best(both)} ms (fastest of ${reps}, [${B}, ${K}, ${M}, ${Tk}])`);
}
