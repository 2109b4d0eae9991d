// Cost of Expire-Span against Transformer-XL on the corridor recipe (recipes/expire-corridor.json;
// docs/results/expire-corridor): ms per training step and the trainer's peak heap (C-heap
// high-water mark at the end of the forward passes), for a few steps of the recipe's training.
//
//   node dist/scripts/probes/corridor-cost.js [--length 510] [--steps 30] [--models expire,xl]
//
// The cells come from the recipe itself (at --length 510: Expire-Span with L = 1024, Transformer-XL
// with mem 512). Each model in its own process (the C heap's high-water mark is per process).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { train } from '../../src/index.js';
import { experimentCells, parseRecipe } from '../../src/train/experiment.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const length = arg('length', '510');
const steps = Number(arg('steps', '30'));
const one = arg('one', '');

// The recipe's own cells at this length (its models and training), cut to `steps` steps without evaluation.
const recipe = parseRecipe(JSON.parse(readFileSync(fileURLToPath(new URL('../../../recipes/expire-corridor.json', import.meta.url)), 'utf8')));
const cells = experimentCells(recipe, '', { train: { steps, evalEvery: 0, logEvery: steps } }).filter((c) => c.setting === length);
if (cells.length === 0) {
  console.error(`--length ${length}: the corridor recipe has settings ${recipe.settings.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const models: Record<string, string> = { expire: 'Expire-Span (L = 2 x corridor)', xl: 'Transformer-XL (mem 512)' };

if (one) {
  const cell = cells.find((c) => c.model === models[one]);
  if (!cell) throw new Error(`--one ${one}: choose ${Object.keys(models).join(', ')}`);
  const result = await train(cell.config);
  console.log(JSON.stringify({ model: one, msPerStep: result.secondsPerStep * 1000, peakHeapMiB: (result.peakHeapBytes ?? NaN) / 2 ** 20 }));
} else {
  console.log(`corridor length ${length}, ${steps} steps of the recipe's training (recipes/expire-corridor.json)`);
  for (const name of arg('models', 'expire,xl').split(',')) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--one', name, '--length', length, '--steps', String(steps)], { encoding: 'utf8' });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
    const { msPerStep, peakHeapMiB } = JSON.parse(line) as { msPerStep: number; peakHeapMiB: number };
    console.log(`  ${models[name]}: ${msPerStep.toFixed(0)} ms/step, peak heap ${peakHeapMiB.toFixed(0)} MiB`);
  }
}
