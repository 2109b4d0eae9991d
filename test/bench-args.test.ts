import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cudaAvailable } from '../src/index.js';

// The benchmarks run for minutes: --help must print the usage and a mistyped flag must stop them
// before any work (bench/args.ts).
const bench = (name: string) => fileURLToPath(new URL(`../bench/${name}.js`, import.meta.url));

for (const name of ['models', 'generate', 'engine', 'distributed', 'span-scaling']) {
  test(`bench/${name}: --help prints the usage, an unknown flag exits 2 naming it`, () => {
    const help = spawnSync(process.execPath, [bench(name), '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /benchmark/i);
    assert.match(help.stdout, /--[a-z]/);
    const bad = spawnSync(process.execPath, [bench(name), '--no-such-flag'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown option '--no-such-flag'/);
  });
}

test('bench/models: a device or precision this machine cannot run is one line on stderr and status 2, before any work', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [bench('models'), '--models', 'xl', '--no-torch', ...args], { encoding: 'utf8', timeout: 60_000 });
  const cases: Array<[string[], RegExp]> = [[['--device', 'gpu'], /^bench:models: unknown device 'gpu'/], [['--precision', 'fp8'], /^bench:models: .*fp8/]];
  if (!cudaAvailable()) cases.push([['--device', 'cuda'], /^bench:models: device 'cuda': (this addon was built against a CPU-only libtorch|the addon has CUDA but no GPU is visible)/]);
  for (const [args, message] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line, no stack: ${r.stderr}`);
  }
});
