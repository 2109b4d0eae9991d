// F.expiringAttention (one native op, position scores per key or from the table q · keyPe) against
// F.composedExpiringAttention (ATen ops) at a corridor block's size: [B 32, K 4, M 64, Tk] weights,
// D 16, P 640 key positions, ramp 64, for a few key counts Tk: the memories are the Tk − M most
// recent, spans ~ (Tk − M) ± 20 (many cells on the ramp). Fastest of 7 runs of the forward, and of
// forward + backward. The crossover between 'per-key' and 'table' sets the op's kPerKeyCost,
// by which 'auto' (the default) chooses from the cells seen.
//
//   node dist/scripts/probes/expiring-attention.js [--keys 80,160,320,600]
import { F, grad, randn, tensor, tidy, type PositionScores, type Tensor } from '../../src/index.js';

const i = process.argv.indexOf('--keys');
const keyCounts = (i >= 0 ? process.argv[i + 1]! : '80,160,320,600').split(',').map(Number);
const B = 32, K = 4, M = 64, D = 16, P = 640;
const queries = randn([B, K, M, D]).requiresGrad_();
const keyPe = randn([D, P]).requiresGrad_();

type Way = [string, (c: Tensor, keys: Parameters<typeof F.expiringAttention>[3]) => Tensor];
const fused = (positions: PositionScores): Way[1] => (c, keys) => F.expiringAttention(c, queries, keyPe, keys, { scale: 0.25, positions });
const ways: Way[] = [
  ['fused, per key', fused('per-key')],
  ['fused, table', fused('table')],
  ['fused, auto', fused('auto')],
  ['composed', (c, keys) => F.composedExpiringAttention(c, queries, keyPe, keys, { scale: 0.25 })],
];
for (const Tk of keyCounts) {
  const memories = Tk - M;
  const ageRow = Array.from({ length: Tk }, (_, j) => memories - j); // memories Tk − M … 1, then the block 0 … −(M − 1)
  const age = tensor(Array.from({ length: B }, () => ageRow), { dtype: 'int64' });
  const content = randn([B, K, M, Tk]).requiresGrad_();
  const spans = randn([B, Tk]).mul(20).add(memories).clampMin(1).requiresGrad_();
  const keys = { age, spans, ramp: 64, nearest: 0 };
  console.log(`Tk ${Tk} (${memories} memories), P ${P}:`);
  for (const [name, weightsOf] of ways) {
    let forward = Infinity, both = Infinity;
    for (let r = 0; r < 7; r++) {
      tidy(() => {
        const t0 = performance.now();
        const y = weightsOf(content, keys);
        y.sum().item();
        const t1 = performance.now();
        grad(y.mul(1.5).sum(), [content, queries, keyPe, spans]).forEach((g: Tensor | null) => g!.sum().item());
        const t2 = performance.now();
        forward = Math.min(forward, t1 - t0);
        both = Math.min(both, t2 - t0);
      });
    }
    console.log(`  ${name.padEnd(15)} forward ${forward.toFixed(1).padStart(6)} ms, forward + backward ${both.toFixed(1).padStart(6)} ms`);
  }
}
