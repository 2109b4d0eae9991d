import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
