// Shared test utilities.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { setDefaultDtype, type NestedArray, type Tensor } from '../src/index.js';

function flat(v: NestedArray): number[] {
  return Array.isArray(v) ? v.flatMap(flat) : [Number(v)];
}

/** Asserts a tensor's values equal expected (nested arrays or a number) within atol + rtol * |expected|. */
export function assertClose(actual: Tensor, expected: NestedArray, { atol = 1e-5, rtol = 1e-5 } = {}): void {
  const exp = flat(expected);
  const act = flat(actual.toArray());
  assert.equal(act.length, exp.length, `expected ${exp.length} elements, got ${act.length}`);
  for (let i = 0; i < exp.length; i++) {
    const a = act[i]!, e = exp[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`element ${i}: got ${a}, expected ${e} (actual ${JSON.stringify(actual.toArray())})`);
    }
  }
}

export function assertShape(t: Tensor, shape: number[]): void {
  assert.deepEqual(t.shape, shape);
}

/** Path of a Python 3 that can `import torch`, or null (tests needing PyTorch skip without it). */
export function pythonWithTorch(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    if (py.startsWith('/') && !existsSync(py)) continue;
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

/** Runs fn with float64 as the default dtype (gradcheck of modules), restoring float32 after. */
export function inFloat64<T>(fn: () => T): T {
  setDefaultDtype('float64');
  try {
    return fn();
  } finally {
    setDefaultDtype('float32');
  }
}
