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

test('setDefaultDtype changes the dtype of floating tensors made without one, and only accepts floats', async () => {
  const { setDefaultDtype, getDefaultDtype } = await import('../src/index.js');
  assert.equal(getDefaultDtype(), 'float32');
  setDefaultDtype('float64');
  try {
    assert.equal(randn([2]).dtype, 'float64');
    assert.equal(zeros([2]).dtype, 'float64');
    assert.equal(tensor([1.5]).dtype, 'float32'); // tensor() of JS numbers keeps its documented float32
  } finally {
    setDefaultDtype('float32');
  }
  assert.equal(randn([2]).dtype, 'float32');
  assert.throws(() => setDefaultDtype('int64'), (e: unknown) => e instanceof EngramError && e.kind === 'dtype');
});
