// F.expiringAttention (one native op) against F.composedExpiringAttention (ATen ops) at a corridor
// block's size: [B 32, K 4, M 64, N 600] weights over P 640 key positions, spans ~450 ± 50 (many
// cells on the ramp), ramp 64. Fastest of 7 runs of the forward, and of forward + backward.
//
//   node dist/scripts/probes/expiring-attention.js
import { F, grad, randn, tensor, tidy, type Tensor } from '../../src/index.js';

const B = 32, K = 4, M = 64, N = 600, P = 640;
const ageRow = Array.from({ length: N }, (_, j) => N - M - j); // memories N − M … 1, then the block 0 … −(M − 1)
const age = tensor(Array.from({ length: B }, () => ageRow), { dtype: 'int64' });
const content = randn([B, K, M, N]).requiresGrad_();
const byDistance = randn([B, K, M, P]).requiresGrad_();
const spans = randn([B, N]).mul(50).add(450).requiresGrad_();
const keys = { age, spans, ramp: 64, nearest: 0 };
const ways: [string, typeof F.expiringAttention][] = [['fused', F.expiringAttention], ['composed', F.composedExpiringAttention]];
for (const [name, weightsOf] of ways) {
  let forward = Infinity, both = Infinity;
  for (let r = 0; r < 7; r++) {
    tidy(() => {
      const t0 = performance.now();
      const y = weightsOf(content, byDistance, keys, { scale: 0.25 });
      y.sum().item();
      const t1 = performance.now();
      grad(y.mul(1.5).sum(), [content, byDistance, spans]).forEach((g: Tensor | null) => g!.sum().item());
      const t2 = performance.now();
      forward = Math.min(forward, t1 - t0);
      both = Math.min(both, t2 - t0);
    });
  }
  console.log(`${name.padEnd(9)} forward ${forward.toFixed(1)} ms, forward + backward ${both.toFixed(1)} ms`);
}
