// Attention's products with and without skipping the keys a mask hides from whole blocks of
// queries (nn/attention.ts keyBlocks, F.bandedMatmul), in one process: training steps of SPEC §10's
// configuration (4 layers, H 256, 4 heads, FFN 1024, segment 128, batch 16, Adam; bench:models'
// models), the two settings alternating round by round on the same model, so that the machine's
// drift falls on both. Prints each kind's median ms per step with and without, the median of the
// rounds' ratios (all keys / skipping) and the ratio of the fastest rounds.
//
//   node dist/scripts/probes/banded-attention.js [--models transformer,xl,mem-transformer,rmt]
//                                                 [--rounds 6] [--steps 3] [--threads 2]
import { setKeyBlockSkipping, setNumThreads, type ModelConfig } from '../../src/index.js';
import { EngramBench } from '../../bench/engram-bench.js';

const arg = (name: string, fallback: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1]! : fallback; };
const rounds = Number(arg('rounds', '6')), steps = Number(arg('steps', '3'));
setNumThreads(Number(arg('threads', '2')));

const BASE = { vocabSize: 256, layers: 4, dModel: 256, heads: 4, dInner: 1024, dropout: 0, norm: 'post' as const, previousToken: false, adaptiveSpan: null, expireSpan: null, compressive: null };
const SETUPS: Record<string, { config: Partial<ModelConfig>; segments: number; bptt: number; carry: boolean }> = {
  transformer: { config: { kind: 'transformer', memLen: 0, numMemTokens: 0 }, segments: 1, bptt: 0, carry: false },
  xl: { config: { kind: 'xl', memLen: 128, numMemTokens: 0 }, segments: 1, bptt: 0, carry: true },
  'mem-transformer': { config: { kind: 'mem-transformer', memLen: 0, numMemTokens: 16 }, segments: 1, bptt: 0, carry: false },
  'mem-bottleneck': { config: { kind: 'mem-bottleneck', memLen: 128, numMemTokens: 16 }, segments: 1, bptt: 0, carry: true },
  rmt: { config: { kind: 'rmt', memLen: 0, numMemTokens: 16 }, segments: 2, bptt: 1, carry: true },
  sequential: { config: { kind: 'sequential', memLen: 512, numMemTokens: 0 }, segments: 1, bptt: 0, carry: true },
  'adaptive-span': { // bench:models' short spans: windows trimmed to 64 keys
    config: { kind: 'adaptive-span', memLen: 512, numMemTokens: 0, adaptiveSpan: { ramp: 32, init: 0, lossCoef: 2e-6, dynamic: false, trimStep: 64 } }, segments: 1, bptt: 0, carry: true,
  },
};
const kinds = arg('models', 'transformer,xl,mem-transformer,rmt').split(',');
for (const k of kinds) if (!SETUPS[k]) throw new Error(`--models: unknown ${k}; choose from ${Object.keys(SETUPS).join(',')}`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const kind of kinds) {
  const s = SETUPS[kind]!;
  const bench = new EngramBench({ config: { ...BASE, ...s.config } as ModelConfig, segments: s.segments, bptt: s.bptt, carry: s.carry, batch: 16, segmentLength: 128 });
  bench.train(2); // warm-up
  const ms: Record<'on' | 'off', number[]> = { on: [], off: [] };
  for (let r = 0; r < rounds; r++) {
    for (const side of (r % 2 ? ['off', 'on'] : ['on', 'off']) as ('on' | 'off')[]) {
      setKeyBlockSkipping(side === 'on');
      bench.train(1); // the first step after a switch builds nothing new, but is not timed either
      ms[side].push((bench.train(steps).seconds * 1000) / steps);
    }
  }
  setKeyBlockSkipping(true);
  const [on, off] = [median(ms.on), median(ms.off)];
  const paired = median(ms.on.map((t, r) => ms.off[r]! / t)); // each round's two settings minutes apart at most
  console.log(`${kind.padEnd(16)} skipping ${on.toFixed(1)} ms/step, all keys ${off.toFixed(1)} ms/step; median of the rounds' ratios ${paired.toFixed(3)}x, fastest ${(Math.min(...ms.off) / Math.min(...ms.on)).toFixed(3)}x`);
  console.log(`${''.padEnd(16)} rounds, skipping: ${ms.on.map((x) => x.toFixed(0)).join(' ')}; all keys: ${ms.off.map((x) => x.toFixed(0)).join(' ')}`);
}
