// Expire-Span's attention from queries, keys and values to the heads' outputs, four ways, at a
// corridor block's size: [B 32, K 4, M 64] queries over Tk keys, D 16, P 640 key positions, ramp 64,
// for a few key counts Tk (the memories are the Tk − M most recent, spans ~ (Tk − M) ± 20: many cells
// on the ramp). F.expiringAttend (one op, no weights table), F.expiringAttention's weights (position
// scores per key or from the table q · keyPe) then the values, and F.composedExpiringAttention then
// the values. Fastest of 7 runs of the forward, and of forward + backward (gradients of q, k, v,
// keyPe and the spans). The crossover between 'per-key' and 'table' sets expiringAttention's
// kPerKeyCost, by which 'auto' (its default) chooses from the cells seen.
//
//   node dist/scripts/probes/expiring-attention.js [--keys 80,160,320,600] [--threads N]
import { F, grad, randn, setNumThreads, tensor, tidy, type ExpiringKeysInput, type PositionScores, type Tensor } from '../../src/index.js';

const arg = (name: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1] : undefined; };
const keyCounts = (arg('keys') ?? '80,160,320,600').split(',').map(Number);
if (arg('threads')) setNumThreads(Number(arg('threads')));
const B = 32, K = 4, M = 64, D = 16, P = 640;
const queries = randn([B, K, M, D]).requiresGrad_();
const keyPe = randn([D, P]).requiresGrad_();

type Way = [string, (k: Tensor, v: Tensor, keys: ExpiringKeysInput) => Tensor];
const weightsThenValues = (positions: PositionScores): Way[1] => (k, v, keys) =>
  F.weightedValues(F.expiringAttention(queries.matmul(k.mT), queries, keyPe, keys, { scale: 0.25, positions }), v);
const ways: Way[] = [
  ['attend (one op)', (k, v, keys) => F.expiringAttend(queries, k, v, keyPe, keys, { scale: 0.25 })],
  ['weights per key', weightsThenValues('per-key')],
  ['weights, table', weightsThenValues('table')],
  ['composed', (k, v, keys) => F.weightedValues(F.composedExpiringAttention(queries.matmul(k.mT), queries, keyPe, keys, { scale: 0.25 }), v)],
];
for (const Tk of keyCounts) {
  const memories = Tk - M;
  const ageRow = Array.from({ length: Tk }, (_, j) => memories - j); // memories Tk − M … 1, then the block 0 … −(M − 1)
  const age = tensor(Array.from({ length: B }, () => ageRow), { dtype: 'int64' });
  const keysT = randn([B, K, Tk, D]).requiresGrad_(), values = randn([B, K, Tk, D]).requiresGrad_();
  const spans = randn([B, Tk]).mul(20).add(memories).clampMin(1).requiresGrad_();
  const keys = { age, spans, ramp: 64, nearest: 0 };
  console.log(`Tk ${Tk} (${memories} memories), P ${P}:`);
  for (const [name, attend] of ways) {
    let forward = Infinity, both = Infinity;
    for (let r = 0; r < 7; r++) {
      tidy(() => {
        const t0 = performance.now();
        const y = attend(keysT, values, keys);
        y.sum().item();
        const t1 = performance.now();
        grad(y.mul(1.5).sum(), [queries, keysT, values, keyPe, spans]).forEach((g: Tensor | null) => g!.sum().item());
        const t2 = performance.now();
        forward = Math.min(forward, t1 - t0);
        both = Math.min(both, t2 - t0);
      });
    }
    console.log(`  ${name.padEnd(16)} forward ${forward.toFixed(1).padStart(6)} ms, forward + backward ${both.toFixed(1).padStart(6)} ms`);
  }
}
