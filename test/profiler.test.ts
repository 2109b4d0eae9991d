// profile() / formatProfile() (src/tensor/profiler.ts): libtorch's profiler records the ops run
// inside, aggregated by name with self and total times; the result of the work comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProfile, profile, profileAsync, randn, tidy } from '../src/index.js';

test('profile() records the ops run inside it, by name, and returns the result', () => {
  const { result, rows } = profile(() => tidy(() => randn([64, 64]).matmul(randn([64, 64])).relu().sum().item()));
  assert.equal(typeof result, 'number');
  const mm = rows.find((r) => r.name === 'aten::mm');
  assert.ok(mm, `aten::mm not among ${rows.map((r) => r.name).join(', ')}`);
  assert.ok(mm.calls >= 1 && mm.totalUs >= mm.selfUs && mm.selfUs >= 0);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1]!.selfUs >= rows[i]!.selfUs, 'rows are sorted by self time');
  assert.match(formatProfile(rows, 5), /self ms/);
  // stopped: work after it is not recorded
  const again = profile(() => 1);
  assert.equal(again.rows.find((r) => r.name === 'aten::mm'), undefined);
});

test('profile() stops the profiler when the work throws', () => {
  assert.throws(() => profile(() => { throw new Error('boom'); }), /boom/);
  const { rows } = profile(() => tidy(() => randn([4, 4]).matmul(randn([4, 4])).sum().item()));
  assert.ok(rows.some((r) => r.name === 'aten::mm'));
});

test('profileAsync() records the ops of asynchronous work until its promise settles, and stops on a rejection', async () => {
  const { result, rows } = await profileAsync(async () => {
    await new Promise((resolve) => setImmediate(resolve)); // work after an await is still recorded
    return tidy(() => randn([8, 8]).matmul(randn([8, 8])).sum().item());
  });
  assert.equal(typeof result, 'number');
  assert.ok(rows.some((r) => r.name === 'aten::mm'), `aten::mm not among ${rows.map((r) => r.name).join(', ')}`);
  await assert.rejects(profileAsync(async () => { throw new Error('boom'); }), /boom/);
  // stopped by the rejection: profiling can start again and records afresh
  const { rows: after } = profile(() => tidy(() => randn([4, 4]).matmul(randn([4, 4])).sum().item()));
  assert.equal(after.find((r) => r.name === 'aten::mm')?.calls, 1);
});
