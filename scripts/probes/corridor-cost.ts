// Cost of Expire-Span against Transformer-XL on the corridor recipe (recipes/expire-corridor.json;
// docs/results/expire-corridor): ms per training step and the trainer's peak heap (C-heap
// high-water mark at the end of the forward passes), for a few steps of the recipe's training.
//
//   node dist/scripts/probes/corridor-cost.js [--length 510] [--steps 30] [--models expire,xl]
//
// length 510: Expire-Span with L = 1024, Transformer-XL with mem 512, as the recipe's second
// setting. Each model in its own process (the C heap's high-water mark is per process).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { train } from '../../src/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const length = Number(arg('length', '510'));
const steps = Number(arg('steps', '30'));
const one = arg('one', '');

const base = { layers: 2, dModel: 64, heads: 4, dInner: 128 };
const models = {
  expire: { ...base, kind: 'expire-span' as const, memLen: length === 254 ? 512 : 1024, expireSpan: { initFraction: 0.45, ramp: 64, lossCoef: 0.0005 } },
  xl: { ...base, kind: 'xl' as const, memLen: 512 },
};

if (one) {
  const result = await train({
    model: models[one as keyof typeof models],
    data: { kind: 'task', name: 'corridor', options: { segmentLength: 64, length } },
    train: { steps, batchSize: 32, seed: 0, evalEvery: 0, logEvery: steps },
    optim: { optimizer: 'adam', lr: 0.001, clipGradNorm: 1 },
  });
  console.log(JSON.stringify({ model: one, msPerStep: result.secondsPerStep * 1000, peakHeapMiB: (result.peakHeapBytes ?? NaN) / 2 ** 20 }));
} else {
  console.log(`corridor length ${length}, ${steps} steps of the recipe's training (batch 32, segments of 64)`);
  for (const name of arg('models', 'expire,xl').split(',')) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--one', name, '--length', String(length), '--steps', String(steps)], { encoding: 'utf8' });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
    const { msPerStep, peakHeapMiB } = JSON.parse(line) as { msPerStep: number; peakHeapMiB: number };
    console.log(`  ${name === 'xl' ? 'Transformer-XL (mem 512)' : 'Expire-Span (L = 2 x corridor)'}: ${msPerStep.toFixed(0)} ms/step, peak heap ${peakHeapMiB.toFixed(0)} MiB`);
  }
}
