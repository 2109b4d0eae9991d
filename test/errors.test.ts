// Every failure arrives as an EngramError carrying a kind and the op's name, and the process
// survives all of them (no C++ exception reaches Node as a crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EngramError, F, tensor, zeros, ones, cat, arange, randint, scalar, tidy, liveTensors, cudaAvailable, type ErrorKind,
  engramError, rand, eye, linspace,
} from '../src/index.js';

/** Asserts fn throws an EngramError of this kind from this op (and, optionally, a message matching re). */
function throwsEngram(fn: () => unknown, kind: ErrorKind, op: string, re?: RegExp): EngramError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof EngramError, `expected an EngramError, got ${String(caught)}`);
  const e = caught as EngramError;
  assert.equal(e.name, 'EngramError');
  assert.equal(e.kind, kind, `kind of: ${e.message}`);
  assert.equal(e.op, op, `op of: ${e.message}`);
  if (re) assert.match(e.message, re);
  if (op) assert.ok(e.message.startsWith(`${op}: `), e.message);
  return e;
}

const i64 = (d: number[]) => tensor(d, { dtype: 'int64' });

test('shape mismatches: kind shape, with the op name and libtorch\'s message', () => {
  const e = throwsEngram(() => zeros([2]).add(zeros([3])), 'shape', 'add', /size of tensor a \(2\) must match/);
  assert.equal(e.torchMessage, e.message.slice('add: '.length));
  throwsEngram(() => ones([2, 3]).matmul(ones([2, 3])), 'shape', 'matmul', /cannot be multiplied/);
  throwsEngram(() => ones([2, 3]).mul(ones([3, 2])), 'shape', 'mul');
  throwsEngram(() => zeros([2]).add(1).sub(zeros([4])), 'shape', 'sub');
  throwsEngram(() => cat([zeros([2, 2]), zeros([2, 3])]), 'shape', 'cat');
  throwsEngram(() => zeros([6]).reshape(4, 2), 'shape', 'reshape', /invalid for input of size 6/);
  throwsEngram(() => zeros([2, 3]).transpose(0, 1).view(6), 'shape', 'view');
  throwsEngram(() => zeros([2]).sum(3), 'shape', 'sum', /out of range/);
  throwsEngram(() => zeros([2]).select(0, 5), 'shape', 'select');
  throwsEngram(() => zeros([2]).narrow(0, 1, 5), 'shape', 'narrow');
  throwsEngram(() => zeros([2]).gather(0, i64([5])), 'shape', 'gather');
  throwsEngram(() => F.linear(zeros([2, 3]), zeros([4, 2])), 'shape', 'linear');
  throwsEngram(() => F.layerNorm(zeros([2, 3]), 4), 'shape', 'layerNorm');
  throwsEngram(() => F.conv1d(zeros([1, 2, 5]), zeros([1, 3, 2])), 'shape', 'conv1d', /channels/);
  throwsEngram(() => zeros([2]).size(-2), 'shape', 'size');
  throwsEngram(() => tensor(new Float32Array(5), { shape: [2, 2] }), 'shape', 'fromArray');
  const x = zeros([2], { requiresGrad: true });
  throwsEngram(() => { x.grad = zeros([3]); }, 'shape', 'setGrad');
});

test('wrong dtypes: kind dtype', () => {
  throwsEngram(() => F.embedding(tensor([0, 1]), zeros([3, 2])), 'dtype', 'embedding', /indices/);
  throwsEngram(() => F.crossEntropy(zeros([2, 3]), tensor([0, 1])), 'dtype', 'crossEntropy');
  throwsEngram(() => tensor([[1]]).matmul(tensor([[1]], { dtype: 'float64' })), 'dtype', 'matmul');
  throwsEngram(() => zeros([2]).indexSelect(0, tensor([0])), 'dtype', 'indexSelect');
  const x = zeros([2]);
  throwsEngram(() => { x.grad = zeros([2], { dtype: 'float64' }); }, 'dtype', 'setGrad');
  throwsEngram(() => tensor(new Uint16Array([1])), 'dtype', 'tensor', /Uint16Array/);
});

test('invalid dtype names: kind dtype, naming the valid ones', () => {
  const cases: [() => unknown, string][] = [
    [() => zeros([2], { dtype: 'float128' as never }), 'zeros'],
    [() => tensor([1, 2], { dtype: 'complex64' as never }), 'tensor'],
    [() => ones([1]).to({ dtype: 'half' as never }), 'to'],
    [() => arange(3, undefined, 1, { dtype: 'double' as never }), 'arange'],
    [() => zeros([2]).sum(null, false, 'toString' as never), 'sum'], // not fooled by Object.prototype
  ];
  // (raised on the TS side before any native call, naming the op that was asked)
  for (const [make, op] of cases) throwsEngram(make, 'dtype', op, /unknown dtype '.*'; use one of .*float32/);
});

test('disposed tensors: kind disposed, from whichever op touches them', () => {
  const t = ones([2]);
  t.dispose();
  throwsEngram(() => t.add(1), 'disposed', 'addScalar', /disposed/);
  throwsEngram(() => t.shape, 'disposed', 'shape');
  throwsEngram(() => ones([2]).add(t), 'disposed', 'add');
  throwsEngram(() => t.item(), 'disposed', 'item');
  throwsEngram(() => cat([ones([1]), t]), 'disposed', 'cat');
  throwsEngram(() => F.softmax(t, 0), 'disposed', 'softmax');
  let inner!: ReturnType<typeof ones>;
  tidy(() => {
    inner = ones([3]);
  });
  assert.equal(inner.isDisposed, true);
  throwsEngram(() => inner.sum(), 'disposed', 'sum');
});

test('devices: a bad device string, and CUDA when it is not available', (t) => {
  throwsEngram(() => zeros([2], { device: 'gpu' as never }), 'device', 'zeros', /device string: gpu/);
  throwsEngram(() => ones([2]).to({ device: 'tpu' as never }), 'device', 'to', /device string: tpu/);
  throwsEngram(() => ones([2]).to({ device: 'cuda:x' as never }), 'device', 'to');
  if (cudaAvailable()) {
    t.skip('CUDA is available here');
    return;
  }
  throwsEngram(() => zeros([2], { device: 'cuda' }), 'device', 'zeros');
  throwsEngram(() => ones([2]).cuda(), 'device', 'to');
  throwsEngram(() => ones([2]).to('cuda:0'), 'device', 'to');
  throwsEngram(() => tensor([1, 2], { device: 'cuda' }), 'device', 'to');
  throwsEngram(() => scalar(1, { device: 'cuda' }), 'device', 'scalarTensor');
  throwsEngram(() => randint(0, 3, [2], { device: 'cuda' }), 'device', 'randint');
});

test('ragged nested arrays and item() on many elements: kind shape', () => {
  throwsEngram(() => tensor([[1, 2], [3]]), 'shape', 'tensor', /ragged/);
  throwsEngram(() => tensor([[1, 2], 3] as never), 'shape', 'tensor', /ragged/);
  throwsEngram(() => tensor([[[1], [2]], [[3]]]), 'shape', 'tensor', /ragged/);
  throwsEngram(() => zeros([2]).item(), 'shape', 'item', /one element, got 2/);
  throwsEngram(() => zeros([0]).item(), 'shape', 'item', /got 0/);
  assert.equal(zeros([1, 1]).item(), 0);
});

test('other kinds: config, torch, oom, and non-contiguous zero-copy views', () => {
  throwsEngram(() => F.dropout(ones([2]), -0.1), 'config', 'dropout');
  throwsEngram(() => F.crossEntropy(zeros([2, 3]), i64([0, 1]), { reduction: 'avg' as never }), 'config', 'crossEntropy');
  throwsEngram(() => ones([2]).clamp(ones([2]), 3), 'config', 'clamp');
  throwsEngram(() => zeros([2]).sum().backward(), 'torch', 'backward', /does not require grad/);
  throwsEngram(() => arange(0, 5, 0), 'torch', 'arange', /step must be nonzero/);
  throwsEngram(() => zeros([2 ** 50]), 'oom', 'zeros', /allocate/);
  throwsEngram(() => ones([2, 2]).transpose(0, 1).dataView(), 'shape', 'externalArrayBuffer', /contiguous/);
  const leaf = zeros([2], { requiresGrad: true });
  throwsEngram(() => leaf.add_(1), 'torch', 'add_Scalar', /in-place/);
});

test('the process survives every error, and failed ops leak no tensors', () => {
  const failing: (() => unknown)[] = [
    () => zeros([2]).add(zeros([3])),
    () => F.embedding(tensor([0.5]), zeros([3, 2])),
    () => zeros([2], { device: 'cuda:99' }),
    () => tensor([[1], []]),
    () => zeros([3]).item(),
    () => zeros([2 ** 50]),
    () => zeros([6]).reshape(5),
    () => ones([2]).indexSelect(0, i64([7])),
    () => F.crossEntropy(zeros([2, 3]), i64([0, 9])),
    () => ones([2]).scatterReduce(0, i64([0]), ones([1]), 'median' as never),
    () => F.pad(zeros([1, 1, 2]), [1, 1], 'wrap' as never),
  ];
  const before = liveTensors();
  for (let round = 0; round < 3; round++) {
    for (const fn of failing) assert.throws(() => tidy(fn), EngramError);
  }
  assert.equal(liveTensors(), before);
  // and the engine still computes
  assert.deepEqual(tensor([[1, 2], [3, 4]]).matmul(tensor([1, 1])).toArray(), [3, 7]);
});

test('shapes and sizes are checked before the addon: non-negative safe integers, a total bound', () => {
  const bad = /is not a non-negative integer/;
  throwsEngram(() => zeros([NaN]), 'shape', 'zeros', /size NaN at dim 0 of shape \[NaN\]/);
  throwsEngram(() => zeros([1.5]), 'shape', 'zeros', bad);
  throwsEngram(() => zeros(['3'] as never), 'shape', 'zeros', /size '3' at dim 0/);
  throwsEngram(() => ones([2, -1]), 'shape', 'ones', /at dim 1/);
  throwsEngram(() => rand([Infinity]), 'shape', 'rand', bad);
  throwsEngram(() => randint(0, 3, [2 ** 53]), 'shape', 'randint', bad);
  throwsEngram(() => zeros(3 as never), 'shape', 'zeros', /must be an array/);
  throwsEngram(() => zeros([2 ** 30, 2 ** 30, 2 ** 30]), 'shape', 'zeros', /more than the limit of 2\^53 - 1/);
  throwsEngram(() => eye(2.5), 'shape', 'eye', /n must be a non-negative integer, got 2.5/);
  throwsEngram(() => linspace(0, 1, -3), 'shape', 'linspace', /steps/);
  throwsEngram(() => tensor(new Float32Array(4), { shape: [2, NaN] }), 'shape', 'tensor', bad);
  // reshape and view take one -1, expand any number; nothing else negative or fractional
  const t = zeros([2, 3]);
  assert.deepEqual(t.reshape(-1).shape, [6]);
  assert.deepEqual(t.view(3, -1).shape, [3, 2]);
  assert.deepEqual(zeros([1, 1]).expand(-1, 4).shape, [1, 4]);
  assert.deepEqual(zeros([1, 1]).expand([-1, -1]).shape, [1, 1]);
  throwsEngram(() => t.reshape(-1, -1), 'shape', 'reshape', /or a single -1/);
  throwsEngram(() => t.view(2, 1.5), 'shape', 'view', bad);
  throwsEngram(() => t.expand(2, -2), 'shape', 'expand', /non-negative integer or -1/);
  throwsEngram(() => t.repeat(1, NaN), 'shape', 'repeat', bad);
  throwsEngram(() => F.layerNorm(t, [3.5]), 'shape', 'layerNorm', bad);
  throwsEngram(() => F.adaptiveAvgPool1d(zeros([1, 1, 4]), -2), 'shape', 'adaptiveAvgPool1d', /outputSize/);
});

test('tensor() data: numbers or booleans only, rows rectangular', () => {
  throwsEngram(() => tensor([1, 'a', null] as never), 'dtype', 'tensor', /element 1 is the string 'a'; tensor\(\) takes numbers or booleans/);
  throwsEngram(() => tensor([1, 2, null] as never), 'dtype', 'tensor', /element 2 is null/);
  throwsEngram(() => tensor([[1], [undefined]] as never), 'dtype', 'tensor', /element 1 is undefined/);
  throwsEngram(() => tensor({} as never), 'dtype', 'tensor', /element 0 is an object/);
  throwsEngram(() => tensor([[1, 2], [3]]), 'shape', 'tensor', /ragged/);
  assert.deepEqual(tensor([[true, false]]).toArray(), [[true, false]]);
  assert.deepEqual(tensor([NaN, -Infinity]).isnan().toArray(), [true, false]); // NaN is a number
});

test('libtorch errors sorted by their C++ type where it has one', () => {
  // TORCH_CHECK_INDEX raises c10::IndexError: 'shape' although the message names no shape
  throwsEngram(() => F.crossEntropy(zeros([2, 3]), i64([0, 9])), 'shape', 'crossEntropy', /Target 9 is out of bounds/);
  throwsEngram(() => zeros([2, 3]).transpose(0, 5), 'shape', 'transpose', /Dimension out of range/);
});

test('the factories name the op, and the message reads op: problem', () => {
  const cause = new Error('underlying');
  const e = engramError('numeric', 'train', 'loss is NaN at step 3', cause);
  assert.ok(e instanceof EngramError);
  assert.equal(e.kind, 'numeric');
  assert.equal(e.op, 'train');
  assert.equal(e.message, 'train: loss is NaN at step 3');
  assert.equal(e.torchMessage, 'loss is NaN at step 3');
  assert.equal(e.cause, cause);
  assert.equal(Object.keys(e).includes('cause'), false);
});
