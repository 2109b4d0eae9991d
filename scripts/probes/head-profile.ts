// Per-head diagnostics of a finished run, read from its log (issue 13, item 4: Adaptive-Span's
// span profile), so the picture needs no checkpoint: the trainer logs every eval's per-head
// diagnostics (Adaptive-Span: the learned span z of each head) in log.jsonl.
//
//   node dist/scripts/probes/head-profile.js RUN_DIR [--name spans] [--out DIR]
//
// Writes into DIR (default RUN_DIR/..):
//   <name>-by-head.svg        the last eval's value per layer and head (bars grouped by layer)
//   <name>-over-training.svg  every head's value at each eval, one line per layer·head
//   <name>-profile.json       { steps, values: [eval][layer][head] }
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { groupedBars } from '../../src/inspect/plots.js';
import { writeFileAtomic } from '../../src/tensor/serialize.js';
import { lineChart } from '../../src/train/plot.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const runDir = process.argv[2];
if (!runDir || runDir.startsWith('--')) {
  console.error('usage: head-profile RUN_DIR [--name spans] [--out DIR]');
  process.exit(2);
}
const name = arg('name', 'spans');
const outDir = arg('out', join(runDir, '..'));

interface EvalRecord { type: string; step: number; diagnostics?: { perHead?: Record<string, number[][]> } }
const evals = readFileSync(join(runDir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
  .map((l) => JSON.parse(l) as EvalRecord)
  .filter((r) => r.type === 'eval' && r.diagnostics?.perHead?.[name]);
if (evals.length === 0) {
  console.error(`head-profile: ${runDir}/log.jsonl has no eval with per-head '${name}'; name one the run logs (Adaptive-Span logs 'spans')`);
  process.exit(1);
}
const steps = evals.map((e) => e.step);
const values = evals.map((e) => e.diagnostics!.perHead![name]!); // [eval][layer][head]
const last = values[values.length - 1]!;
const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as { model?: { kind?: string } };
const kind = config.model?.kind ?? 'model';

const write = (file: string, text: string) =>
  writeFileAtomic(join(outDir, file), async (fh) => { await fh.write(new TextEncoder().encode(text)); });

await write(`${name}-by-head.svg`, groupedBars({
  title: `${kind}: ${name} per layer and head at step ${steps[steps.length - 1]}`,
  values: last,
  groupLabel: (l) => `layer ${l}`,
  barLabel: (h) => `head ${h}`,
  yLabel: `${name} (tokens)`,
}));
await write(`${name}-over-training.svg`, lineChart({
  title: `${kind}: ${name} of every head during training`,
  xLabel: 'step',
  yLabel: `${name} (tokens)`,
  series: last.flatMap((heads, l) => heads.map((_, h) => ({
    name: `layer ${l} head ${h}`,
    points: values.map((v, i) => ({ x: steps[i]!, y: v[l]?.[h] ?? null })),
  }))),
  xTicks: steps.filter((_, i) => i % Math.ceil(steps.length / 8) === 0).map((x) => ({ x, label: String(x) })),
}));
await write(`${name}-profile.json`, `${JSON.stringify({ run: runDir, steps, values })}\n`);
const fmt = (v: number) => v.toFixed(1).padStart(6);
console.log(`${name} per layer (rows) and head (columns) at step ${steps[steps.length - 1]}:`);
for (const [l, heads] of last.entries()) console.log(`  layer ${l}: ${heads.map(fmt).join('')}`);
