// profile() / formatProfile() (src/tensor/profiler.ts): libtorch's profiler records the ops run
// inside, aggregated by name with self and total times; the result of the work comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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

test('profile() with callers and shapes: rows named by the ops that called them and their inputs\' shapes; a bad callers count is a config error', () => {
  const work = () => tidy(() => randn([6, 5]).matmul(randn([5, 3])).sum().item());
  const { rows } = profile(work, { callers: 1, shapes: true });
  const mm = rows.find((r) => r.name.endsWith('aten::mm [6,5] [5,3]'));
  assert.ok(mm, `no aten::mm row with its shapes among ${rows.map((r) => r.name).join(' | ')}`);
  assert.match(mm.name, /^aten::matmul > aten::mm /, 'the caller comes first');
  const plain = profile(work).rows.map((r) => r.name);
  assert.ok(plain.includes('aten::mm') && plain.every((n) => !n.includes(' > ') && !n.includes('[')), 'by default rows are op names alone');
  assert.throws(() => profile(work, { callers: -1 }), (e: Error & { kind?: string }) => e.kind === 'config' && /callers must be a whole number/.test(e.message));
  assert.ok(profile(work).rows.some((r) => r.name === 'aten::mm'), 'the profiler was not left running by the rejected call');
});

test('bench:models --profile with --profile-callers and --profile-shapes (smoke size), and a bad count stops it with one line', () => {
  const bench = fileURLToPath(new URL('../bench/models.js', import.meta.url));
  const r = spawnSync(process.execPath, [bench, '--smoke', '--models', 'transformer', '--profile', '--profile-callers', '1', '--profile-shapes', '--precision', 'float32'],
    { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { profile: Record<string, { top: { name: string }[] }> };
  const names = last.profile.transformer!.top.map((t) => t.name);
  assert.ok(names.some((n) => n.includes(' > ') && /\[\d+(,\d+)*\]/.test(n)), `callers and shapes in ${names.join(' | ')}`);
  const bad = spawnSync(process.execPath, [bench, '--smoke', '--profile', '--profile-callers', 'two'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--profile-callers two: give a whole number/);
});
