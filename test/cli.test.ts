// The engram command line, run as a user runs it (a child process of the built CLI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));

function engram(args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: cwd ?? process.cwd(), timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help works for the program and every command', () => {
  const top = engram(['--help']);
  assert.equal(top.status, 0);
  for (const cmd of ['train', 'eval', 'generate', 'export', 'experiment']) assert.match(top.stdout, new RegExp(`\\n  ${cmd} `));
  for (const cmd of ['train', 'eval', 'generate', 'export', 'experiment']) {
    const r = engram([cmd, '--help']);
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: engram ${cmd} `));
  }
  assert.match(engram(['train', '--help']).stdout, /--bptt <k>/);
  assert.match(engram(['generate', '--help']).stdout, /--temperature <t>/);
});

test('an invalid option value gives a clear error listing what is allowed, and exit status 2', () => {
  const r = engram(['train', '--model', 'lstm', '--lr', '-1', '--print-config']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /model\.kind \(--model\): must be one of 'transformer', 'xl', 'mem-transformer', 'mem-bottleneck', 'rmt', 'sequential', .* \(got 'lstm'\)/);
  assert.match(r.stderr, /optim\.lr \(--lr\): must be > 0 \(got -1\)/);
  assert.equal(r.stdout, '');

  const task = engram(['train', '--task', 'copy', '--source-length', '3', '--segments', '8', '--print-config']);
  assert.equal(task.status, 2);
  assert.match(task.stderr, /numSegments 8 leaves a segment of padding only .* use one of 1, 2, 3, 5, 9/);

  const gen = engram(['generate', 'no-such-run', '--temperature', '-1']);
  assert.equal(gen.status, 2);
  assert.match(gen.stderr, /--temperature: must be >= 0 \(got -1\)/);

  const unknown = engram(['train', '--learning-rate', '1']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown option '--learning-rate'/);

  const missing = engram(['eval', 'no-such-run']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no readable checkpoint in no-such-run/);
});

test('a config file gives the base and flags override it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'engram-cli-'));
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ model: { kind: 'rmt', numMemTokens: 4 }, train: { steps: 7 }, optim: { lr: 0.01 } }));
  const r = engram(['train', '--config', 'run.json', '--steps', '3', '--set', 'optim.betas=[0.9,0.98]', '--print-config'], dir);
  assert.equal(r.status, 0, r.stderr);
  const config = JSON.parse(r.stdout) as { model: { kind: string; numMemTokens: number }; train: { steps: number }; optim: { lr: number; betas: number[] } };
  assert.equal(config.model.kind, 'rmt');
  assert.equal(config.model.numMemTokens, 4);
  assert.equal(config.train.steps, 3);
  assert.equal(config.optim.lr, 0.01);
  assert.deepEqual(config.optim.betas, [0.9, 0.98]);
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ optim: { lr: 0.01, schedule: 'cosine' } }));
  const bad = engram(['train', '--config', 'bad.json', '--print-config'], dir);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /optim: unknown option 'schedule'; allowed: optimizer, lr, weightDecay/);
  rmSync(dir, { recursive: true });
});

test('train, then eval and generate from the run directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'engram-cli-'));
  const t = engram(['train', '--task', 'copy', '--source-length', '4', '--steps', '40', '--lr', '3e-3', '--eval-every', '0', '--out', 'run', '--progress', 'lines'], dir);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /step 40: loss [\d.]+ {2}acc [\d.]+ {2}exact [\d.]+/);
  assert.ok(existsSync(join(dir, 'run', 'checkpoint.json')));
  const again = engram(['train', '--task', 'copy', '--out', 'run'], dir);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already holds a run .*: resume it \(--resume\)/);
  const e = engram(['eval', 'run', '--json'], dir);
  assert.equal(e.status, 0, e.stderr);
  const metrics = JSON.parse(e.stdout) as { step: number; accuracy: number };
  assert.equal(metrics.step, 40);
  assert.ok(metrics.accuracy >= 0 && metrics.accuracy <= 1);
  const g = engram(['generate', 'run', '--samples', '2'], dir);
  assert.equal(g.status, 0, g.stderr);
  assert.match(g.stdout, /expected {2}\S+\ngenerated \S+/);
  assert.match(g.stdout, /\d\/2 answers exactly right/);
  rmSync(dir, { recursive: true });
});

test('experiment: a rerun skips finished cells and prints the table again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'engram-cli-'));
  writeFileSync(join(dir, 'recipe.json'), JSON.stringify({
    name: 'tiny-cli',
    base: { model: { layers: 1, dModel: 16, heads: 2, dInner: 32 }, data: { kind: 'task', name: 'copy', options: { sourceLength: 4 } }, train: { steps: 4, batchSize: 4, evalBatches: 1 } },
    models: [{ name: 'Baseline', config: { model: { kind: 'transformer' } } }, { name: 'XL', config: { model: { kind: 'xl' } } }],
    settingsTitle: 'segments',
    settings: [{ name: '2', x: 2, config: { data: { options: { numSegments: 2 } } } }],
  }));
  const first = engram(['experiment', 'recipe.json', '--out', 'exp', '--progress', 'none'], dir);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /\| model \\ segments \| 2 \|\n\|---\|---:\|\n\| Baseline \| \d\.\d{3} \|\n\| XL \| \d\.\d{3} \|/);
  assert.equal((first.stderr.match(/: training \(/g) ?? []).length, 2);
  const second = engram(['experiment', 'recipe.json', '--out', 'exp', '--progress', 'none'], dir);
  assert.equal(second.status, 0, second.stderr);
  assert.equal((second.stderr.match(/finished before, skipped/g) ?? []).length, 2);
  assert.equal((second.stderr.match(/: training \(/g) ?? []).length, 0);
  const table = (s: string) => s.slice(s.indexOf('| model'), s.indexOf('training time'));
  assert.equal(table(second.stdout), table(first.stdout));
  for (const f of ['results.md', 'results.json', 'plot.svg', 'baseline--2/result.json', 'xl--2/log.jsonl']) assert.ok(existsSync(join(dir, 'exp', f)), f);
  assert.match(readFileSync(join(dir, 'exp', 'plot.svg'), 'utf8'), /<svg/);
  const recipe = engram(['experiment', '--print-recipe']);
  assert.equal(recipe.status, 0);
  assert.equal((JSON.parse(recipe.stdout) as { name: string }).name, 'copy-rmt-vs-xl');
  rmSync(dir, { recursive: true });
});
