// What the feed-forward's element-wise passes cost next to its products, at bench:models sizes
// (2,048 rows = batch 16 x segment 128, H 256, FFN 1,024), the fastest of `reps` runs, three rounds:
// the first product with its bias (ATen's addmm: the bias copied into the output, then the product
// added to it) and without (mm: OpenBLAS zeroes the output first), and the passes over the hidden
// layer that a fused kernel could merge (the ReLU, the bias gradient's column sum). It decided that
// the feed-forward's bias, ReLU and column sums stay ATen's: each pass is about 0.3 ms of a
// ~380 ms training step (docs/results/benchmarks.md, "Other BLAS builds, and pinned threads").
//
//   node dist/scripts/probes/ff-passes.js [--reps 30] [--threads 2]
import { F, randn, setNumThreads, tidy, type Tensor } from '../../src/index.js';

const arg = (name: string, fallback: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1]! : fallback; };
const reps = Number(arg('reps', '30'));
setNumThreads(Number(arg('threads', '2')));
const N = 2048, H = 256, FFN = 1024;

const x = randn([N, H]).keep(), w1 = randn([FFN, H]).keep(), b1 = randn([FFN]).keep(), hidden = randn([N, FFN]).keep();

/** Milliseconds of fn, the fastest of `reps` (each ends in a sum read back, so that the work is done). */
function best(fn: () => Tensor): number {
  let fastest = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    tidy(() => fn().sum().item());
    fastest = Math.min(fastest, performance.now() - t);
  }
  return fastest;
}

for (let round = 1; round <= 3; round++) {
  const withBias = best(() => F.linear(x, w1, b1));
  const noBias = best(() => F.linear(x, w1, null));
  const sumOnly = best(() => hidden);
  const relu = best(() => hidden.relu()) - sumOnly;
  const columns = best(() => hidden.sum(0)) - best(() => b1);
  console.log(`round ${round}: x W1ᵀ + b1 ${withBias.toFixed(2)} ms, x W1ᵀ ${noBias.toFixed(2)} ms; over [${N}, ${FFN}]: ReLU ${relu.toFixed(2)} ms, column sum ${columns.toFixed(2)} ms (a full sum ${sumOnly.toFixed(2)} ms)`);
}
