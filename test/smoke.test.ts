import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, zeros, EngramError, liveTensors, tidy, randn } from '../src/index.js';
import { assertClose } from './helpers.js';

test('a tensor round-trips nested arrays and does arithmetic', () => {
  const a = tensor([[1, 2], [3, 4]]);
  assertClose(a.matmul(a).add(1), [[8, 11], [16, 23]]);
});

test('libtorch errors become EngramError with op, kind and message', () => {
  const a = tensor([[1, 2], [3, 4]]);
  assert.throws(() => a.matmul(zeros([3, 3])), (e: unknown) =>
    e instanceof EngramError && e.kind === 'shape' && e.op === 'matmul' && /cannot be multiplied/.test(e.message));
});

test('tidy frees what it does not return', () => {
  const before = liveTensors();
  const r = tidy(() => randn([10]).mul(2).sum());
  assert.equal(liveTensors(), before + 1);
  r.dispose();
  assert.equal(liveTensors(), before);
});
