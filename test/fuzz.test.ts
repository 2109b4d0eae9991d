// The fuzzer of test/fuzz.ts inside the suite: a few hundred hostile configurations, damaged
// checkpoints, odd run directories, strange corpora and real command lines, each of which must end
// in success or a clean error. A fixed seed (ENGRAM_FUZZ_SEED to vary it); `npm run fuzz` for more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz.js';

test('fuzz: hostile inputs end in success or a clean error and leave run directories loadable', async () => {
  const seed = Number(process.env.ENGRAM_FUZZ_SEED ?? 20261204);
  const report = await runFuzz({ cases: 320, seed, spawnEvery: 50, log: (l) => console.log(l) });
  console.log(`fuzz: seed ${seed}, ${report.run} cases (${Object.entries(report.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}) in ${report.seconds.toFixed(1)} s`);
  assert.ok(report.run >= 300);
  assert.deepEqual(report.failures.map((f) => `case ${f.index} (${f.kind}): ${f.problem.split('\n')[0]}`), [], `seed ${seed}: replay with npm run fuzz -- --seed ${seed} --case <i>`);
});
