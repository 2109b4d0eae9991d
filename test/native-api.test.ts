// The addon's surface: every function it exports is declared once on the TS side
// (src/tensor/native.ts) and vice versa, only the tensor layer imports it, and argument-type
// mistakes that slip past TypeScript still arrive as EngramErrors naming the op.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, nativeOpNames } from '../src/tensor/native.js';
import { EngramError, buildInfo } from '../src/index.js';

test('the addon exports exactly the declared functions (no orphan either way)', () => {
  const exported = Object.keys(native);
  const declared = new Set<string>(nativeOpNames);
  assert.equal(declared.size, nativeOpNames.length, 'a name is declared twice');
  const undeclared = exported.filter((n) => !declared.has(n));
  const missing = nativeOpNames.filter((n) => !(n in native));
  assert.deepEqual(undeclared, [], `exported by the addon but not declared in native.ts: ${undeclared.join(', ')}`);
  assert.deepEqual(missing, [], `declared in native.ts but not exported by the addon: ${missing.join(', ')}`);
  for (const n of nativeOpNames) assert.equal(typeof native[n], 'function', n);
});

test('only src/tensor imports the native addon', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && /tensor\/native(\.js)?['"]/.test(readFileSync(path, 'utf8'))) {
        const rel = relative(root, path);
        if (!rel.startsWith(join('src', 'tensor'))) offenders.push(rel);
      }
    }
  };
  for (const dir of ['src', 'cli']) walk(join(root, dir));
  assert.deepEqual(offenders, []);
});

test('a JS value of the wrong type reaching the addon is a config EngramError naming the op', () => {
  for (const [call, op] of [
    [() => native.zeros(['3'] as never, null, null), 'zeros'],
    [() => native.full([2], 'x' as never, null, null), 'full'],
  ] as const) {
    assert.throws(call, (e: unknown) =>
      e instanceof EngramError && e.kind === 'config' && e.op === op && /^\w+: invalid argument: /.test(e.message));
  }
});

test('loading the addon sets OMP_WAIT_POLICY=PASSIVE and OPENBLAS_THREAD_TIMEOUT=20 first, unless the user set them', () => {
  const nativeModule = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'tensor', 'native.js');
  const script = `const m = await import(${JSON.stringify(nativeModule)}); m.native.getNumThreads(); ` +
    `console.log(JSON.stringify([process.env.OMP_WAIT_POLICY, process.env.OPENBLAS_THREAD_TIMEOUT]));`;
  const run = (extra: Record<string, string>) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
    if (!('OMP_WAIT_POLICY' in extra)) delete env.OMP_WAIT_POLICY;
    if (!('OPENBLAS_THREAD_TIMEOUT' in extra)) delete env.OPENBLAS_THREAD_TIMEOUT;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as [string, string];
  };
  assert.deepEqual(run({}), ['PASSIVE', '20']);
  assert.deepEqual(run({ OPENBLAS_THREAD_TIMEOUT: '7', OMP_WAIT_POLICY: 'ACTIVE' }), ['ACTIVE', '7']);
});

test("buildInfo().openblas: the OpenBLAS libtorch runs its products on, and the kernels OPENBLAS_CORETYPE asks for", (t) => {
  const blas = buildInfo().openblas;
  if (blas === null) {
    t.skip('this libtorch does not run on OpenBLAS');
    return;
  }
  assert.match(blas.config, /^OpenBLAS \d+\.\d+/);
  assert.ok(blas.core.length > 0);
  // Prescott's kernels (SSE3) run on every x86-64 processor; a DYNAMIC_ARCH build has them.
  if (!/DYNAMIC_ARCH/.test(blas.config) || process.arch !== 'x64') return;
  const index = new URL('../src/index.js', import.meta.url).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { buildInfo } = await import(${JSON.stringify(index)}); console.log(buildInfo().openblas.core)`],
    { env: { ...process.env, OPENBLAS_CORETYPE: 'Prescott' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'Prescott');
});
