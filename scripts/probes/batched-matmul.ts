// The batched products of one attention layer at SPEC §10's size (B 16, K 4 heads, D 64, Tq 128,
// Tk 256: segment and XL memory), forward alone and forward + backward, as `matmul` runs them in
// this process: Engram's batched kernel (native/src/matmul_ops.cpp) or, with
// ENGRAM_BATCHED_MATMUL=aten in the environment, ATen's bmm. Fastest of `--rounds` runs, ms.
//
//   node dist/scripts/probes/batched-matmul.js [--threads 2] [--rounds 20]
//   ENGRAM_BATCHED_MATMUL=aten node dist/scripts/probes/batched-matmul.js
import { batchedMatmulKernel, grad, randn, setNumThreads, tidy, type Tensor } from '../../src/index.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
setNumThreads(arg('--threads', 2));
const rounds = arg('--rounds', 20);
const B = 16, K = 4, D = 64, Tq = 128, Tk = 256;

// queries from a [B, Tq, K·D] projection and keys/values from one [B, Tk, 2, K, D] projection, split
// into heads by views (strided, as attention.ts makes them); W_r R [K, D, Tk] shared by the batch
const query = randn([B, Tq, K * D]).requiresGrad_();
const keyValue = randn([B, Tk, 2 * K * D]).requiresGrad_();
const relative = randn([K, D, Tk]).requiresGrad_();
const weights = randn([B, K, Tq, Tk]).softmax(-1).requiresGrad_();
const q = () => query.view(B, Tq, K, D).transpose(1, 2);
const kv = () => keyValue.view(B, Tk, 2, K, D).permute(2, 0, 3, 1, 4).unbind(0);

const products: [string, () => Tensor, Tensor[]][] = [
  ['scores q · kᵀ  [B,K,Tq,D] x [B,K,D,Tk]', () => q().matmul(kv()[0]!.mT), [query, keyValue]],
  ['positions q · W_r R  [B,K,Tq,D] x [K,D,Tk]', () => q().matmul(relative), [query, relative]],
  ['values a · v  [B,K,Tq,Tk] x [B,K,Tk,D]', () => weights.matmul(kv()[1]!), [weights, keyValue]],
];
console.log(`batched products run on: ${batchedMatmulKernel()} (${arg('--threads', 2)} threads), fastest of ${rounds}`);
for (const [name, product, inputs] of products) {
  let forward = Infinity, both = Infinity;
  for (let r = 0; r < rounds; r++) {
    tidy(() => {
      const t0 = performance.now();
      const y = product();
      const t1 = performance.now();
      grad(y.sum(), inputs);
      const t2 = performance.now();
      forward = Math.min(forward, t1 - t0);
      both = Math.min(both, t2 - t0);
    });
  }
  console.log(`  ${name.padEnd(46)} forward ${forward.toFixed(2).padStart(6)} ms   forward + backward ${both.toFixed(2).padStart(6)} ms`);
}
