// One attention layer (nn/attention.ts MultiHeadAttention, relative positions, SPEC §10's sizes:
// B 16, H 256, 4 heads, 128 queries) forward + backward with and without skipping the keys the
// mask hides from whole blocks of queries (keyBlocks, F.bandedMatmul), for the masks of
// bench:models' dense kinds; the two settings alternate, the fastest of `reps` runs each (robust
// to a shared machine, where whole training steps vary by more than the difference).
//
//   node dist/scripts/probes/banded-attention-layer.js [--reps 20] [--threads 2]
import { grad, manualSeed, MultiHeadAttention, randn, segmentMask, setKeyBlockSkipping, setNumThreads, sinusoidalDistances, tidy, keyBlocks, type SegmentLayout } from '../../src/index.js';

const arg = (name: string, fallback: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1]! : fallback; };
const reps = Number(arg('reps', '20'));
setNumThreads(Number(arg('threads', '2')));
const B = 16, H = 256, K = 4;

const layouts: [string, SegmentLayout][] = [
  ['transformer (128 causal)', { cached: 0, read: 0, sequence: 128, write: 0 }],
  ['xl (cache 128, 128 causal)', { cached: 128, read: 0, sequence: 128, write: 0 }],
  ['mem-transformer (16 read, 128 causal)', { cached: 0, read: 16, sequence: 128, write: 0 }],
  ['rmt (16 read, 128 causal, 16 write)', { cached: 0, read: 16, sequence: 128, write: 16 }],
];
manualSeed(0);
const attn = new MultiHeadAttention(H, K, 0);
for (const [name, layout] of layouts) {
  const tq = layout.read + layout.sequence + layout.write, tk = layout.cached + tq;
  const bidirectional = layout.read > 1 || layout.write > 1;
  const mask = segmentMask(layout).keep();
  const r = sinusoidalDistances(tk - 1, bidirectional ? tk + tq - 1 : tk, H).keep();
  const u = randn([K, H / K]).keep(), v = randn([K, H / K]).keep();
  const query = randn([B, tq, H]).requiresGrad_().keep(), cache = randn([B, layout.cached, H]).keep();
  const weights = randn([B, tq, H]).keep();
  const time = (): number => tidy(() => {
    const t0 = performance.now();
    const out = attn.forward({ query, context: layout.cached ? [cache, query] : query, mask, positions: { u, v, r, bidirectional } });
    const [g] = grad(out.mul(weights).sum(), [query]);
    g!.sum().item();
    return performance.now() - t0;
  });
  const ms: Record<'on' | 'off', number[]> = { on: [], off: [] };
  for (let i = 0; i < reps; i++) {
    for (const side of (i % 2 ? ['off', 'on'] : ['on', 'off']) as ('on' | 'off')[]) {
      setKeyBlockSkipping(side === 'on');
      ms[side].push(time());
    }
  }
  setKeyBlockSkipping(true);
  const blocks = keyBlocks(mask);
  let area = 0;
  for (let b = 0; blocks && b < blocks.length; b += 4) area += (blocks[b + 1]! - blocks[b]!) * (blocks[b + 3]! - blocks[b + 2]!);
  const [on, off] = [Math.min(...ms.on), Math.min(...ms.off)];
  console.log(`${name.padEnd(40)} scores computed ${blocks ? ((100 * area) / (tq * tk)).toFixed(0) : 100} %: skipping ${on.toFixed(2)} ms, all keys ${off.toFixed(2)} ms (fastest of ${reps}): ${(off / on).toFixed(3)}x`);
}
