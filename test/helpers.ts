// Shared test utilities.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import {
  IGNORE_INDEX, PAD, buildInfo, cudaAvailable, deviceCheckMode, resolveDevice, setDefaultDtype, type Device, type NestedArray, type SegmentedTask, type Tensor, type TaskSample,
} from '../src/index.js';

/**
 * The devices the device-parameterised tests run on: ENGRAM_TEST_DEVICES (e.g. 'cpu,cuda'), else
 * the CPU, 'meta' (a stand-in for a GPU that checks every tensor's placement: deviceCheckMode) and
 * 'cuda' where this build has CUDA and a GPU is visible. A device asked for but not usable here
 * fails the tests that use it (resolveDevice's error), never silently skips.
 */
export function testDevices(): Device[] {
  const asked = process.env.ENGRAM_TEST_DEVICES?.split(',').map((d) => d.trim()).filter(Boolean);
  if (asked?.length) return asked as Device[];
  return cudaAvailable() ? ['cpu', 'meta', 'cuda'] : ['cpu', 'meta'];
}

/** Runs fn on `device`: on 'meta' inside deviceCheckMode (turned off after, whatever happens). */
async function onDevice(device: string, fn: (device: Device) => void | Promise<void>): Promise<void> {
  if (device !== 'meta') return fn(resolveDevice(device, 'deviceTest'));
  const was = deviceCheckMode(true);
  try {
    await fn(resolveDevice(device, 'deviceTest'));
  } finally {
    deviceCheckMode(was);
  }
}

/** Why CUDA tests are skipped here, or null when they run. */
export function cudaSkipReason(): string | null {
  if (testDevices().some((d) => d.startsWith('cuda'))) return null;
  if (process.env.ENGRAM_TEST_DEVICES) return `CUDA skipped: ENGRAM_TEST_DEVICES=${process.env.ENGRAM_TEST_DEVICES}`;
  return buildInfo().cuda
    ? 'CUDA skipped: the addon has CUDA but no GPU is visible'
    : 'CUDA skipped: the addon was built against a CPU-only libtorch (scripts/device/check.sh runs these on a GPU)';
}

/**
 * Registers `name [device]` once per test device (testDevices()); without CUDA, one skipped
 * `name [cuda]` whose skip line says why, so a run on a CPU machine shows what it did not check.
 */
export function deviceTest(name: string, fn: (device: Device) => void | Promise<void>): void {
  for (const d of testDevices()) test(`${name} [${d}]`, () => onDevice(d, fn));
  const skip = cudaSkipReason();
  if (skip) test(`${name} [cuda]`, { skip }, () => {});
}

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

/**
 * What every task's row shares: row lengths, padding after `length`, ids in the vocabulary,
 * answer positions among the scored ones, and each target the next token unless the task's
 * targets are labels (targetsAreNextTokens false).
 */
export function checkTaskRow(task: SegmentedTask, s: TaskSample): void {
  const T = task.numSegments * task.segmentLength;
  assert.equal(s.tokens.length, T);
  assert.equal(s.targets.length, T);
  assert.equal(s.answerMask.length, T);
  for (let p = 0; p < T; p++) {
    if (p >= task.length) {
      assert.equal(s.tokens[p], PAD, `position ${p} is segment padding`);
      assert.equal(s.targets[p], IGNORE_INDEX);
      assert.equal(s.answerMask[p], false);
      continue;
    }
    assert.ok(s.tokens[p]! > PAD && s.tokens[p]! < task.vocabSize, `token ${s.tokens[p]} at ${p} in [1, vocab)`);
    const t = s.targets[p]!;
    if (t !== IGNORE_INDEX) {
      assert.ok(t > PAD && t < task.vocabSize, `target ${t} at ${p}`);
      if (task.targetsAreNextTokens !== false && p + 1 < task.length) assert.equal(t, s.tokens[p + 1], `target at ${p} is the next token`);
    } else {
      assert.equal(s.answerMask[p], false, 'answer positions are scored');
    }
  }
}
