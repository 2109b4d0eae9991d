// profile() / formatProfile() (src/tensor/profiler.ts): libtorch's profiler records the ops run
// inside, aggregated by name with self and total times; the result of the work comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProfile, profile, randn, tidy } from '../src/index.js';

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
