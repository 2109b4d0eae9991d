// The backward of attention's keys and values split into heads, at Transformer-XL's bench:models
// size (a [16, 256, 512] joint projection of 256 keys, 4 heads of 64): F.splitHeads (one pass
// writing both parts' gradients into the projection's layout) against view, permute and unbind
// (autograd stacks the two gradients, then copies the stack into the projection's layout).
// Backward only, given gradients for both parts; the two alternate, fastest of `reps` each.
//
//   node dist/scripts/probes/split-heads.js [--reps 20] [--rounds 3] [--threads 2]
import { F, grad, randn, setNumThreads, tidy, type Tensor } from '../../src/index.js';

const arg = (name: string, fallback: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1]! : fallback; };
const reps = Number(arg('reps', '20')), rounds = Number(arg('rounds', '3'));
setNumThreads(Number(arg('threads', '2')));
const B = 16, T = 256, K = 4, D = 64;

const x = randn([B, T, 2 * K * D]).requiresGrad_().keep();
const gradients = [randn([B, K, T, D]).keep(), randn([B, K, T, D]).keep()];
const split = () => F.splitHeads(x, 2, K);
const composed = () => x.view(B, T, 2, K, D).permute(2, 0, 3, 1, 4).unbind(0);

/** Milliseconds of the backward alone. */
function time(parts: () => Tensor[]): number {
  return tidy(() => {
    const outs = parts();
    const t0 = performance.now();
    const [g] = grad(outs, [x], { gradOutputs: gradients });
    g!.view(-1).narrow(0, 0, 1).item();
    return performance.now() - t0;
  });
}
for (let r = 0; r < rounds; r++) {
  const ms = { split: [] as number[], composed: [] as number[] };
  for (let i = 0; i < reps; i++) {
    ms.split.push(time(split));
    ms.composed.push(time(composed));
  }
  console.log(`round ${r + 1}: F.splitHeads ${Math.min(...ms.split).toFixed(2)} ms, view/permute/unbind ${Math.min(...ms.composed).toFixed(2)} ms (fastest of ${reps})`);
}
