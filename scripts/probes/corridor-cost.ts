// Cost of Expire-Span against Transformer-XL on the corridor recipe (recipes/expire-corridor.json;
// docs/results/expire-corridor): ms per training step and the trainer's peak heap (C-heap
// high-water mark at the end of the forward passes), for a few steps of the recipe's training.
//
//   node dist/scripts/probes/corridor-cost.js [--length 510] [--steps 30] [--models expire,xl] [--rounds 1]
//                                              [--from docs/results/expire-corridor]
//                                              [--profile [--profile-callers N] [--profile-shapes] [--profile-top N]]
//
// The cells come from the recipe itself (at --length 510: Expire-Span with L = 1024, Transformer-XL
// with mem 512). Each model in its own process (the C heap's high-water mark is per process), the
// models in turn, `rounds` times. Models: expire, xl, and expire-no-span-loss (Expire-Span with the
// span loss off: no gradient then reaches the segments that are not scored).
// --from: each cell starts from the weights the experiment in that directory trained
// (train.initFrom), so the steps are timed at the trained state (spans converged) rather than at
// the first steps. --profile: libtorch's profiler around the steps, the top ops of each model
// (--profile-top N of them, default 15; --profile-callers N names each op with the N ops that
// called it, --profile-shapes with its inputs' shapes: ProfileOptions).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatProfile, profileAsync, train } from '../../src/index.js';
import { experimentCells, parseRecipe, type ExperimentCell } from '../../src/train/experiment.js';
import type { TrainConfig } from '../../src/train/config.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const length = arg('length', '510');
const steps = Number(arg('steps', '30'));
const from = arg('from', '');
const one = arg('one', '');
const profiled = process.argv.includes('--profile');
const profileOptions = { callers: Number(arg('profile-callers', '0')), shapes: process.argv.includes('--profile-shapes') };
const profileTop = Number(arg('profile-top', '15'));
const profileArgs = profiled
  ? ['--profile', '--profile-callers', String(profileOptions.callers), '--profile-top', String(profileTop), ...(profileOptions.shapes ? ['--profile-shapes'] : [])]
  : [];

// The recipe's own cells at this length (its models and training), cut to `steps` steps without evaluation.
const recipe = parseRecipe(JSON.parse(readFileSync(fileURLToPath(new URL('../../../recipes/expire-corridor.json', import.meta.url)), 'utf8')));
const cells = experimentCells(recipe, from, { train: { steps, evalEvery: 0, logEvery: steps } }).filter((c) => c.setting === length);
if (cells.length === 0) {
  console.error(`--length ${length}: the corridor recipe has settings ${recipe.settings.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const withoutSpanLoss = (c: TrainConfig): TrainConfig => ({ ...c, model: { ...c.model, expireSpan: { ...c.model.expireSpan!, lossCoef: 0 } } });
const models: Record<string, { label: string; cell: string; config?: (c: TrainConfig) => TrainConfig }> = {
  expire: { label: 'Expire-Span (L = 2 x corridor)', cell: 'Expire-Span (L = 2 x corridor)' },
  xl: { label: 'Transformer-XL (mem 512)', cell: 'Transformer-XL (mem 512)' },
  'expire-no-span-loss': { label: 'Expire-Span, span loss off', cell: 'Expire-Span (L = 2 x corridor)', config: withoutSpanLoss },
};

if (one) {
  const model = models[one];
  const cell: ExperimentCell | undefined = cells.find((c) => c.model === model?.cell);
  if (!model || !cell) throw new Error(`--one ${one}: choose ${Object.keys(models).join(', ')}`);
  let config = from ? { ...cell.config, train: { ...cell.config.train, initFrom: cell.dir } } : cell.config;
  if (model.config) config = model.config(config);
  const { result, rows } = profiled ? await profileAsync(() => train(config), profileOptions) : { result: await train(config), rows: null };
  if (rows) console.log(formatProfile(rows, profileTop));
  console.log(JSON.stringify({ model: one, msPerStep: result.secondsPerStep * 1000, peakHeapMiB: (result.peakHeapBytes ?? NaN) / 2 ** 20 }));
} else {
  const rounds = Number(arg('rounds', '1'));
  console.log(`corridor length ${length}, ${steps} steps of the recipe's training (recipes/expire-corridor.json)${from ? `, from the weights trained in ${from}` : ''}`);
  for (let round = 0; round < rounds; round++) {
    for (const name of arg('models', 'expire,xl').split(',')) {
      const args = [fileURLToPath(import.meta.url), '--one', name, '--length', length, '--steps', String(steps), ...(from ? ['--from', from] : []), ...profileArgs];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
      if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
      const lines = r.stdout.trim().split('\n');
      const { msPerStep, peakHeapMiB } = JSON.parse(lines.pop() ?? '') as { msPerStep: number; peakHeapMiB: number };
      console.log(`  ${models[name]!.label}: ${msPerStep.toFixed(0)} ms/step, peak heap ${peakHeapMiB.toFixed(0)} MiB`);
      if (profiled) console.log(lines.join('\n'));
    }
  }
}
