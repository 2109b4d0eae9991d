// Forward values of every op of the Tensor class, the factories (creation.ts) and F (functional.ts),
// against small hand-computed results. The last test checks that every op name appears here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Tensor, F, EngramError, tidy, liveTensors,
  tensor, scalar, zeros, ones, empty, full, eye, zerosLike, onesLike, fullLike, arange, linspace,
  manualSeed, rand, randn, randint, randperm, randLike, randnLike, bernoulli, multinomial,
  cat, stack, where, einsum, grad, noGrad,
} from '../src/index.js';
import * as creation from '../src/tensor/creation.js';
import { assertClose, assertShape } from './helpers.js';

const f64 = (x: number[] | number[][] | number[][][]) => tensor(x, { dtype: 'float64' });
const i64 = (x: number[] | number[][]) => tensor(x, { dtype: 'int64' });
const same = (t: Tensor, expected: unknown) => assert.deepEqual(t.toArray(), expected);
const flat = (t: Tensor) => Array.from(t.to('float64').data() as Float64Array);
const { E, PI, LN2, log, exp, sqrt } = Math;

// ---- data paths ----------------------------------------------------------------------------------

test('tensor() from nested arrays: shapes, default and explicit dtypes', () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  assertShape(a, [2, 3]);
  assert.equal(a.dtype, 'float32');
  same(a, [[1, 2, 3], [4, 5, 6]]);
  same(tensor([[[1], [2]]]), [[[1], [2]]]);
  const s = tensor(2.5);
  assertShape(s, []);
  assert.equal(s.item(), 2.5);
  assertShape(tensor([]), [0]);
  const b = tensor([[true, false], [false, true]]);
  assert.equal(b.dtype, 'bool');
  same(b, [[true, false], [false, true]]);
  for (const dtype of ['float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'float16', 'bfloat16'] as const) {
    const t = tensor([[1, 2], [3, 4]], { dtype });
    assert.equal(t.dtype, dtype);
    same(t, [[1, 2], [3, 4]]);
  }
  same(tensor([0, 1, 2], { dtype: 'bool' }), [false, true, true]);
  assert.equal(tensor([1.7, -1.7], { dtype: 'int64' }).toArray().toString(), '1,-1'); // truncation, as .long()
  const g = tensor([1, 2], { requiresGrad: true });
  assert.equal(g.requiresGrad, true);
});

test('tensor() from TypedArrays of each dtype; data() returns the same kind of array', () => {
  const cases: [ArrayBufferView & ArrayLike<number | bigint>, string][] = [
    [new Float32Array([1.5, -2]), 'float32'],
    [new Float64Array([1.5, -2]), 'float64'],
    [new BigInt64Array([5n, -9007199254740993n]), 'int64'],
    [new Int32Array([7, -2147483648]), 'int32'],
    [new Int16Array([7, -32768]), 'int16'],
    [new Int8Array([7, -128]), 'int8'],
    [new Uint8Array([7, 255]), 'uint8'],
  ];
  for (const [arr, dtype] of cases) {
    const t = tensor(arr);
    assert.equal(t.dtype, dtype);
    assertShape(t, [2]);
    const d = t.data();
    assert.equal(d.constructor, arr.constructor);
    assert.deepEqual(Array.from(d as ArrayLike<number>), Array.from(arr as ArrayLike<number>));
  }
  // int64 beyond 2^53 survives data() exactly
  assert.equal((tensor(new BigInt64Array([-9007199254740993n])).data() as BigInt64Array)[0], -9007199254740993n);
  // shape option, and the ambiguous arrays with an explicit dtype
  same(tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] }), [[1, 2], [3, 4], [5, 6]]);
  same(tensor(new Uint8Array([1, 0, 1]), { dtype: 'bool' }), [true, false, true]);
  same(tensor(new Uint16Array([0x3c00, 0xc000]), { dtype: 'float16' }), [1, -2]);
  same(tensor(new Uint16Array([0x3f80, 0x4049]), { dtype: 'bfloat16' }), [1, 3.140625]);
  // a TypedArray with another requested dtype converts
  const c = tensor(new Int32Array([1, 2]), { dtype: 'float64' });
  assert.equal(c.dtype, 'float64');
  same(c, [1, 2]);
  assert.throws(() => tensor(new Uint16Array([1])), (e: unknown) => e instanceof EngramError && e.kind === 'dtype');
  assert.throws(() => tensor(new Float32Array(5), { shape: [2, 2] }), (e: unknown) => e instanceof EngramError && e.kind === 'shape');
});

test('data(), toArray(), item() copy out values', () => {
  const t = tensor([[1, 2], [3, 4]]);
  const d = t.data() as Float32Array;
  assert.deepEqual(Array.from(d), [1, 2, 3, 4]);
  d[0] = 100; // a copy: the tensor does not change
  same(t, [[1, 2], [3, 4]]);
  // data() of a non-contiguous tensor is in C order of its logical shape
  assert.deepEqual(Array.from(t.transpose(0, 1).data() as Float32Array), [1, 3, 2, 4]);
  same(i64([[1, -2]]), [[1, -2]]);
  assert.equal(tensor(3.5).item(), 3.5);
  assert.equal(tensor([[7]], { dtype: 'int64' }).item(), 7);
  assert.equal(tensor([true]).item(), 1);
  assert.equal(tensor([1, 2]).sum().item(), 3);
  assert.deepEqual(Array.from(tensor([true, false]).data() as Uint8Array), [1, 0]);
  assert.equal(tensor(5).toArray(), 5);
});

test('dataView() aliases memory; tensor(dataView) aliases it again; tensor(TypedArray) copies', () => {
  const t = tensor([1, 2, 3, 4]);
  const view = t.dataView() as Float32Array;
  assert.ok(view instanceof Float32Array);
  assert.deepEqual(Array.from(view), [1, 2, 3, 4]);
  view[0] = 10; // write through the view changes the tensor
  same(t, [10, 2, 3, 4]);
  t.mul_(2); // an in-place op shows in the view
  assert.deepEqual(Array.from(view), [20, 4, 6, 8]);

  const u = tensor(view); // no copy
  u.fill_(0.5);
  same(t, [0.5, 0.5, 0.5, 0.5]);
  t.add_(1);
  same(u, [1.5, 1.5, 1.5, 1.5]);
  const part = tensor(view.subarray(1, 3)); // an offset view aliases the right elements
  part.fill_(-1);
  same(t, [1.5, -1, -1, 1.5]);
  // the memory outlives dispose() of the original while a view holds it
  t.dispose();
  same(u, [1.5, -1, -1, 1.5]);
  view[3] = 9;
  same(u, [1.5, -1, -1, 9]);

  const js = new Float32Array([1, 2, 3]);
  const c = tensor(js); // a copy of JS-owned memory
  js[0] = 100;
  same(c, [1, 2, 3]);
  c.fill_(0);
  assert.deepEqual(Array.from(js), [100, 2, 3]);

  const i = tensor([5, 6], { dtype: 'int64' });
  const iv = i.dataView() as BigInt64Array;
  iv[1] = 60n;
  same(i, [5, 60]);
  // a non-contiguous tensor has no zero-copy view
  assert.throws(() => tensor([[1, 2], [3, 4]]).transpose(0, 1).dataView(), EngramError);
});

test('to(), float(), double(), long(), bool(), cpu(), clone(); bfloat16 and float16 rounding', () => {
  const a = tensor([1.25, -2.75]);
  assert.equal(a.double().dtype, 'float64');
  same(a.long(), [1, -2]);
  same(a.bool(), [true, true]);
  same(tensor([0, 2]).bool(), [false, true]);
  assert.equal(a.to('float64').float().dtype, 'float32');
  assert.equal(a.cpu().device, 'cpu');
  assert.equal(a.to({ dtype: 'int32', device: 'cpu' }).dtype, 'int32');
  // to() without a change returns the same memory; copy: true and clone() do not
  const same32 = a.to('float32');
  same32.fill_(7);
  same(a, [7, 7]);
  const copied = a.to({ dtype: 'float32', copy: true });
  const cl = a.clone();
  copied.fill_(1);
  cl.fill_(2);
  same(a, [7, 7]);
  // bfloat16 keeps 8 significant bits (round to nearest even); float16 keeps 11
  const b = tensor([1, 1.00390625, 1.01171875, 3.14159, 65504 * 4], { dtype: 'float64' }).to('bfloat16');
  assert.equal(b.dtype, 'bfloat16');
  same(b, [1, 1, 1.015625, 3.140625, 262144]);
  assert.deepEqual(Array.from(b.data() as Uint16Array, (v) => v.toString(16)), ['3f80', '3f80', '3f82', '4049', '4880']);
  const h = f64([1, 3.14159, 1e-8, 70000]).to('float16');
  same(h, [1, 3.140625, 0, Infinity]);
  assert.deepEqual(Array.from(h.data() as Uint16Array, (v) => v.toString(16)), ['3c00', '4248', '0', '7c00']);
  assertClose(b.to('float32').add(1), [2, 2, 2.015625, 4.140625, 262145]);
});

test('dtype promotion follows PyTorch', () => {
  const i = i64([1, 2]);
  const r1 = i.add(2);
  assert.equal(r1.dtype, 'int64');
  same(r1, [3, 4]);
  const r2 = i.mul(0.5);
  assert.equal(r2.dtype, 'float32');
  same(r2, [0.5, 1]);
  assert.equal(i.div(2).dtype, 'float32'); // true division
  same(i.div(2), [0.5, 1]);
  assert.equal(i.add(tensor([0.5, 0.5])).dtype, 'float32');
  assert.equal(tensor([1]).add(f64([1])).dtype, 'float64');
  assert.equal(tensor([1], { dtype: 'int32' }).add(i64([1])).dtype, 'int64');
  assert.equal(tensor([1], { dtype: 'uint8' }).add(tensor([1], { dtype: 'int8' })).dtype, 'int16');
  // zero-dim tensors promote only across categories
  assert.equal(tensor([1]).add(scalar(1, { dtype: 'float64' })).dtype, 'float32');
  assert.equal(i.add(scalar(1, { dtype: 'float64' })).dtype, 'float64');
  assert.equal(tensor([true]).add(1).dtype, 'int64');
  assert.equal(tensor([1], { dtype: 'bfloat16' }).add(1.5).dtype, 'bfloat16');
  assert.equal(i.gt(1).dtype, 'bool');
  assert.equal(i.sum().dtype, 'int64');
  assert.equal(tensor([1], { dtype: 'int32' }).sum().dtype, 'int64');
  assert.equal(i.mean(null, false, 'float64').dtype, 'float64');
});

// ---- metadata and lifetime ---------------------------------------------------------------------------

test('metadata: shape, dtype, device, ndim, numel, size, strides, isContiguous, toString', () => {
  const t = zeros([2, 3, 4]);
  assert.deepEqual(t.shape, [2, 3, 4]);
  assert.equal(t.dtype, 'float32');
  assert.equal(t.device, 'cpu');
  assert.equal(t.ndim, 3);
  assert.equal(t.numel, 24);
  assert.equal(t.size(), 24);
  assert.equal(t.size(1), 3);
  assert.equal(t.size(-1), 4);
  assert.throws(() => t.size(3), (e: unknown) => e instanceof EngramError && e.kind === 'shape' && e.op === 'size');
  assert.deepEqual(t.strides(), [12, 4, 1]);
  assert.equal(t.isContiguous(), true);
  const tt = t.transpose(0, 2);
  assert.deepEqual(tt.strides(), [1, 4, 12]);
  assert.equal(tt.isContiguous(), false);
  assert.equal(tensor([1, 2]).toString(), 'Tensor(shape=[2], dtype=float32, device=cpu) [1,2]');
  assert.equal(scalar(3).ndim, 0);
  assert.equal(scalar(3).numel, 1);
});

test('dispose, Symbol.dispose, isDisposed, keep, tidy', () => {
  const before = liveTensors();
  const t = ones([2]);
  assert.equal(t.isDisposed, false);
  t.dispose();
  t.dispose(); // harmless
  assert.equal(t.isDisposed, true);
  assert.equal(t.toString(), 'Tensor(disposed)');
  const u = ones([2]);
  u[Symbol.dispose]();
  assert.equal(u.isDisposed, true);
  let kept!: Tensor, inner!: Tensor;
  const out = tidy(() => {
    kept = ones([1]).keep();
    inner = ones([1]).mul(2);
    return { value: ones([1]).add(1) };
  });
  assert.equal(inner.isDisposed, true);
  same(kept, [1]);
  same(out.value, [2]);
  kept.dispose();
  out.value.dispose();
  assert.equal(liveTensors(), before);
});

// ---- factories -------------------------------------------------------------------------------------

test('constant factories', () => {
  const s = scalar(3);
  assertShape(s, []);
  assert.equal(s.dtype, 'float32');
  assert.equal(s.item(), 3);
  assert.equal(scalar(2, { dtype: 'int64' }).dtype, 'int64');
  same(zeros([2, 2]), [[0, 0], [0, 0]]);
  assert.equal(zeros([1], { dtype: 'int32' }).dtype, 'int32');
  same(ones([2], { dtype: 'int64' }), [1, 1]);
  assertShape(empty([3, 0]), [3, 0]);
  assert.equal(empty([2], { dtype: 'float64' }).dtype, 'float64');
  same(full([2], 0.5), [0.5, 0.5]);
  assert.equal(full([2], 0.5).dtype, 'float32');
  assert.equal(full([2], 3).dtype, 'int64'); // as torch.full: the value's kind decides
  assert.equal(full([2], true).dtype, 'bool');
  assert.equal(full([2], 3, { dtype: 'float64' }).dtype, 'float64');
  same(eye(2), [[1, 0], [0, 1]]);
  same(eye(2, 3), [[1, 0, 0], [0, 1, 0]]);
  const base = tensor([[1, 2]], { dtype: 'int32' });
  const zl = zerosLike(base), ol = onesLike(base), fl = fullLike(base, 7);
  same(zl, [[0, 0]]);
  same(ol, [[1, 1]]);
  same(fl, [[7, 7]]);
  assert.deepEqual([zl.dtype, ol.dtype, fl.dtype], ['int32', 'int32', 'int32']);
  const z = zeros([2], { requiresGrad: true });
  assert.equal(z.requiresGrad, true);
  assert.equal(z.isLeaf, true);
});

test('arange and linspace', () => {
  const a = arange(5);
  assert.equal(a.dtype, 'int64');
  same(a, [0, 1, 2, 3, 4]);
  same(arange(2, 5), [2, 3, 4]);
  same(arange(5, 0, -2), [5, 3, 1]);
  const f = arange(1, 2, 0.25);
  assert.equal(f.dtype, 'float32');
  same(f, [1, 1.25, 1.5, 1.75]);
  const d = arange(0, 3, 1, { dtype: 'float64' });
  assert.equal(d.dtype, 'float64');
  same(d, [0, 1, 2]);
  same(arange(0), []);
  const l = linspace(0, 1, 5);
  assert.equal(l.dtype, 'float32');
  same(l, [0, 0.25, 0.5, 0.75, 1]);
  same(linspace(2, -2, 3, { dtype: 'float64' }), [2, 0, -2]);
  same(linspace(3, 3, 1), [3]);
});

test('random: manualSeed reproduces every generator; values in range', () => {
  const draw = () => tidy(() => {
    const r = [rand([4]), randn([4]), randint(0, 10, [4]), randperm(6), randLike(zeros([3])), randnLike(zeros([3])),
      bernoulli(full([6], 0.5)), multinomial(tensor([0.2, 0.3, 0.5]), 4, true), zeros([3]).uniform_(-2, 2),
      zeros([3]).normal_(5, 0.1), F.dropout(ones([8]), 0.5)];
    return r.map(flat);
  });
  manualSeed(1234);
  const first = draw();
  manualSeed(1234);
  assert.deepEqual(draw(), first);
  manualSeed(4321);
  assert.notDeepEqual(draw(), first);

  manualSeed(0);
  const u = rand([2000]);
  assert.equal(u.dtype, 'float32');
  assert.ok(u.min().item() >= 0 && u.max().item() < 1);
  assertClose(u.mean(), 0.5, { atol: 0.03 });
  assert.equal(rand([2], { dtype: 'float64' }).dtype, 'float64');
  const n = randn([10000], { dtype: 'float64' });
  assertClose(n.mean(), 0, { atol: 0.05 });
  assertClose(n.std(), 1, { atol: 0.05 });
  assertShape(randn([2, 3]), [2, 3]);
  const ri = randint(-3, 4, [5000]);
  assert.equal(ri.dtype, 'int64');
  assert.equal(ri.min().item(), -3);
  assert.equal(ri.max().item(), 3);
  assert.equal(randint(0, 5, [2], { dtype: 'int32' }).dtype, 'int32');
  const p = randperm(10);
  assert.equal(p.dtype, 'int64');
  same(p.sort()[0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const un = zeros([2000], { dtype: 'float64' }).uniform_(-2, 3);
  assert.ok(un.min().item() >= -2 && un.max().item() < 3);
  assertClose(un.mean(), 0.5, { atol: 0.15 });
  const nn = zeros([5000]).normal_(5, 2);
  assertClose(nn.mean(), 5, { atol: 0.1 });
  assertClose(nn.std(), 2, { atol: 0.1 });
  assertShape(randLike(zeros([2, 5])), [2, 5]);
  assert.equal(randnLike(zeros([2], { dtype: 'float64' })).dtype, 'float64');
});

test('bernoulli and multinomial', () => {
  manualSeed(7);
  same(bernoulli(tensor([0, 1, 0, 1])), [0, 1, 0, 1]); // probabilities 0 and 1 are certain
  const b = bernoulli(zeros([10000], { dtype: 'float64' }), 0.3);
  assert.equal(b.dtype, 'float64');
  assert.equal(b.eq(0).logicalOr(b.eq(1)).all().item(), 1);
  assertClose(b.mean(), 0.3, { atol: 0.02 });
  const fromProbs = bernoulli(full([10000], 0.8));
  assertClose(fromProbs.mean(), 0.8, { atol: 0.02 });
  same(multinomial(tensor([0, 0, 1, 0]), 3, true), [2, 2, 2]);
  const two = multinomial(tensor([0.5, 0.5, 0, 0]), 2, false);
  same(two.sort()[0], [0, 1]);
  assertShape(multinomial(tensor([[0.5, 0.5], [0.1, 0.9]]), 3, true), [2, 3]);
});

test('cat, stack (negative dims), where (broadcasting, scalars), einsum', () => {
  const a = tensor([[1, 2]]), b = tensor([[3, 4]]);
  same(cat([a, b]), [[1, 2], [3, 4]]);
  same(cat([a, b], -1), [[1, 2, 3, 4]]);
  same(cat([a, tensor([[5, 6], [7, 8]])], 0), [[1, 2], [5, 6], [7, 8]]);
  same(stack([tensor([1, 2]), tensor([3, 4])]), [[1, 2], [3, 4]]);
  same(stack([tensor([1, 2]), tensor([3, 4])], -1), [[1, 3], [2, 4]]);
  const cond = tensor([[true], [false]]);
  same(where(cond, tensor([1, 2, 3]), tensor([-1, -2, -3])), [[1, 2, 3], [-1, -2, -3]]);
  same(where(cond, tensor([1, 2, 3]), 0), [[1, 2, 3], [0, 0, 0]]);
  same(where(cond, 9, tensor([1, 2, 3])), [[9, 9, 9], [1, 2, 3]]);
  same(where(tensor([true, false]), 1.5, -1), [1.5, -1]);
  const m = tensor([[1, 2], [3, 4]]), n = tensor([[5, 6], [7, 8]]);
  same(einsum('ij,jk->ik', m, n), [[19, 22], [43, 50]]);
  same(einsum('ii->', m), 5);
  same(einsum('ij->ji', m), [[1, 3], [2, 4]]);
  same(einsum('i,j->ij', tensor([1, 2]), tensor([3, 4])), [[3, 4], [6, 8]]);
  same(einsum('bi,bi->b', m, n), [17, 53]);
  same(einsum('bhqd,bhkd->bhqk', m.reshape(1, 1, 2, 2), n.reshape(1, 1, 2, 2)), [[[[17, 23], [39, 53]]]]);
});

// ---- elementwise ----------------------------------------------------------------------------------------

test('binary arithmetic with broadcasting', () => {
  const col = tensor([[1], [2]]), row = tensor([10, 20, 30]);
  same(col.add(row), [[11, 21, 31], [12, 22, 32]]);
  same(col.add(row, 2), [[21, 41, 61], [22, 42, 62]]);
  same(row.add(1, 3), [13, 23, 33]);
  same(col.sub(row), [[-9, -19, -29], [-8, -18, -28]]);
  same(row.sub(5), [5, 15, 25]);
  same(row.rsub(5), [-5, -15, -25]);
  same(col.mul(row), [[10, 20, 30], [20, 40, 60]]);
  same(row.mul(-0.5), [-5, -10, -15]);
  same(row.div(col), [[10, 20, 30], [5, 10, 15]]);
  same(row.div(4), [2.5, 5, 7.5]);
  same(tensor([1, 2, 4]).rdiv(8), [8, 4, 2]);
  same(tensor([2, 3]).pow(2), [4, 9]);
  same(tensor([2, 3]).pow(tensor([[3], [0]])), [[8, 27], [1, 1]]);
  assertClose(tensor([4, 9]).pow(0.5), [2, 3]);
  same(tensor([0, 1, 3]).rpow(2), [1, 2, 8]);
  same(tensor([-3, 3, 5.5]).remainder(2), [1, 1, 1.5]); // sign of the divisor, as Python
  same(tensor([-3, 3]).remainder(tensor([2, -2])), [1, -1]);
  same(tensor([-7, 7, 7.5]).floorDivide(2), [-4, 3, 3]);
  same(i64([-7, 7]).floorDivide(i64([2, -2])), [-4, -4]);
  same(tensor([[1, 5]]).maximum(tensor([[3], [0]])), [[3, 5], [1, 5]]);
  same(tensor([[1, 5]]).minimum(tensor([[3], [0]])), [[1, 3], [0, 0]]);
  assertClose(tensor([1, -1, 0]).atan2(tensor([1, -1, -1])), [PI / 4, -3 * PI / 4, PI]);
  same(tensor([1, 1]).addcmul(tensor([2, 3]), tensor([4, 5]), 0.5), [5, 8.5]);
  same(tensor([1, 1]).addcmul(tensor([2, 3]), tensor([4, 5])), [9, 16]);
  same(tensor([1, 1]).addcdiv(tensor([2, 3]), tensor([4, 6]), 2), [2, 2]);
  same(tensor([0, 10]).lerp(tensor([10, 20]), 0.25), [2.5, 12.5]);
});

test('comparisons and logical ops', () => {
  const a = tensor([1, 2, 3]), b = tensor([3, 2, 1]);
  same(a.eq(b), [false, true, false]);
  same(a.eq(2), [false, true, false]);
  same(a.ne(b), [true, false, true]);
  same(a.ne(2), [true, false, true]);
  same(a.lt(b), [true, false, false]);
  same(a.lt(2), [true, false, false]);
  same(a.le(b), [true, true, false]);
  same(a.le(2), [true, true, false]);
  same(a.gt(b), [false, false, true]);
  same(a.gt(2), [false, false, true]);
  same(a.ge(b), [false, true, true]);
  same(a.ge(2), [false, true, true]);
  same(a.gt(tensor([[0], [5]])), [[true, true, true], [false, false, false]]);
  const p = tensor([true, true, false, false]), q = tensor([true, false, true, false]);
  same(p.eq(true), [true, true, false, false]);
  same(p.logicalAnd(q), [true, false, false, false]);
  same(p.logicalOr(q), [true, true, true, false]);
  same(p.logicalXor(q), [false, true, true, false]);
  same(p.logicalNot(), [false, false, true, true]);
  same(tensor([0, 2]).logicalNot(), [true, false]);
});

test('unary math', () => {
  const x = f64([-1, 0, 0.5, 2]);
  same(x.neg(), [1, -0, -0.5, -2]);
  same(x.abs(), [1, 0, 0.5, 2]);
  same(f64([4, 0.25]).sqrt(), [2, 0.5]);
  same(f64([4, 0.25]).rsqrt(), [0.5, 2]);
  same(x.square(), [1, 0, 0.25, 4]);
  same(f64([2, -4]).reciprocal(), [0.5, -0.25]);
  assertClose(x.exp(), [1 / E, 1, exp(0.5), E * E]);
  assertClose(f64([1e-10, 1]).expm1(), [1e-10, E - 1], { rtol: 1e-9, atol: 0 });
  assertClose(f64([1, E, 0.5]).log(), [0, 1, -LN2]);
  assertClose(f64([1e-10, E - 1]).log1p(), [1e-10, 1], { rtol: 1e-9, atol: 0 });
  same(f64([8, 0.5]).log2(), [3, -1]);
  assertClose(f64([PI / 2, PI / 6]).sin(), [1, 0.5]);
  assertClose(f64([0, PI / 3]).cos(), [1, 0.5]);
  assertClose(x.tanh(), [Math.tanh(-1), 0, Math.tanh(0.5), Math.tanh(2)]);
  const sig = (v: number) => 1 / (1 + exp(-v));
  assertClose(x.sigmoid(), [sig(-1), 0.5, sig(0.5), sig(2)]);
  assertClose(x.logSigmoid(), [log(sig(-1)), -LN2, log(sig(0.5)), log(sig(2))]);
  same(x.relu(), [0, 0, 0.5, 2]);
  assertClose(x.silu(), [-sig(-1), 0, 0.5 * sig(0.5), 2 * sig(2)]);
  assertClose(f64([-1, 0, 1]).gelu(), [-0.15865525393145707, 0, 0.8413447460685429]);
  assertClose(f64([-1, 0, 1]).gelu('tanh'), [-0.15880800939172324, 0, 0.8411919906082768]);
  assertClose(f64([0, 1, 30]).softplus(), [LN2, log(1 + E), 30]);
  assertClose(f64([0, 1]).softplus(2), [LN2 / 2, log(1 + exp(2)) / 2]);
  same(f64([5]).softplus(1, 4), [5]); // above the threshold: linear
  same(x.leakyRelu(), [-0.01, 0, 0.5, 2]);
  same(x.leakyRelu(0.5), [-0.5, 0, 0.5, 2]);
  assertClose(f64([0, 0.5, -2]).erf(), [0, 0.5204998778130465, -0.9953222650189527]);
  const r = f64([-1.5, -0.5, 0.5, 1.5, 2.5, 2.7]);
  same(r.floor(), [-2, -1, 0, 1, 2, 2]);
  same(r.ceil(), [-1, -0, 1, 2, 3, 3]);
  same(r.round(), [-2, -0, 0, 2, 2, 3]); // half to even
  same(r.trunc(), [-1, -0, 0, 1, 2, 2]);
  same(f64([-3, 0, 2]).sign(), [-1, 0, 1]);
  const special = f64([NaN, Infinity, -Infinity, 1]);
  same(special.isnan(), [true, false, false, false]);
  same(special.isfinite(), [false, false, false, true]);
});

test('clamp, clampMin, clampMax (numbers, null, tensors)', () => {
  const x = tensor([-2, 0, 3]);
  same(x.clamp(-1, 1), [-1, 0, 1]);
  same(x.clamp(0), [0, 0, 3]);
  same(x.clamp(null, 1), [-2, 0, 1]);
  same(x.clampMin(-1), [-1, 0, 3]);
  same(x.clampMax(2), [-2, 0, 2]);
  same(x.clamp(tensor([-1, 1, 1]), tensor([0, 2, 2])), [-1, 1, 2]);
  same(x.clamp(tensor([[0], [-5]]), null), [[0, 0, 3], [-2, 0, 3]]);
  same(i64([-5, 5]).clamp(-1, 1), [-1, 1]);
  assert.throws(() => x.clamp(tensor([0]), 1), (e: unknown) => e instanceof EngramError && e.kind === 'config' && e.op === 'clamp');
});

test('softmax and logSoftmax (method and F), negative dims, dtype', () => {
  const e = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219];
  assertClose(tensor([1, 2, 3]).softmax(0), e);
  assertClose(F.softmax(tensor([1, 2, 3]), -1), e);
  const m = tensor([[1, 2, 3], [1, 1, 1]]);
  assertClose(m.softmax(-1), [e, [1 / 3, 1 / 3, 1 / 3]]);
  assertClose(m.softmax(0), [[0.5, 1 / (1 + 1 / E), 1 / (1 + exp(-2))], [0.5, 1 / (1 + E), 1 / (1 + exp(2))]]);
  assert.equal(tensor([1, 2]).softmax(0, 'float64').dtype, 'float64');
  const ls = e.map(log);
  assertClose(tensor([1, 2, 3]).logSoftmax(-1), ls);
  assertClose(F.logSoftmax(m, 1), [ls, [-log(3), -log(3), -log(3)]]);
  assert.equal(F.logSoftmax(tensor([1, 2]), 0, 'float64').dtype, 'float64');
  // large logits stay finite
  assertClose(tensor([1000, 1000]).softmax(0), [0.5, 0.5]);
});

// ---- in place -------------------------------------------------------------------------------------------

test('in-place ops return this and change the tensor', () => {
  const x = tensor([1, 2, 3]);
  assert.equal(x.add_(1), x);
  same(x, [2, 3, 4]);
  x.add_(tensor([1, 1, 1]));
  same(x, [3, 4, 5]);
  x.add_(tensor([1, 2, 3]), -1);
  same(x, [2, 2, 2]);
  x.add_(1, 2);
  same(x, [4, 4, 4]);
  x.sub_(1);
  x.sub_(tensor([0, 1, 2]));
  same(x, [3, 2, 1]);
  x.mul_(2).mul_(tensor([1, 2, 3]));
  same(x, [6, 8, 6]);
  x.div_(2).div_(tensor([3, 4, 3]));
  same(x, [1, 1, 1]);
  const m = tensor([[0, 0], [0, 0]]);
  m.add_(tensor([1, 2])); // the other operand broadcasts
  same(m, [[1, 2], [1, 2]]);
  same(tensor([-3, 0, 3]).clamp_(-1, 1), [-1, 0, 1]);
  same(tensor([-3, 0, 3]).clamp_(null, 1), [-3, 0, 1]);
  same(tensor([1, 2]).zero_(), [0, 0]);
  same(tensor([1, 2]).fill_(7), [7, 7]);
  same(tensor([1, 2], { dtype: 'bool' }).fill_(false), [false, false]);
  same(zeros([2, 2]).copy_(tensor([5, 6])), [[5, 6], [5, 6]]);
  const ci = zeros([2], { dtype: 'int64' }).copy_(tensor([1.9, -1.9]));
  same(ci, [1, -1]);
  same(tensor([[1, 2], [3, 4]]).maskedFill_(tensor([true, false]), -1), [[-1, 2], [-1, 4]]);
  same(zeros([4]).indexPut_([i64([0, 0, 3])], tensor([1, 2, 3]), true), [3, 0, 0, 3]);
  same(zeros([4]).indexPut_([i64([0, 3])], tensor([5])), [5, 0, 0, 5]);
  same(zeros([2, 2]).indexPut_([i64([1]), i64([0])], tensor([9])), [[0, 0], [9, 0]]);
});

// ---- matrix products ---------------------------------------------------------------------------------------

test('matmul (2-d, vector, batched broadcast), mm, bmm, baddbmm, outer', () => {
  const a = tensor([[1, 2], [3, 4]]), b = tensor([[5, 6], [7, 8]]);
  same(a.matmul(b), [[19, 22], [43, 50]]);
  same(a.matmul(tensor([1, 1])), [3, 7]);
  same(tensor([1, 1]).matmul(a), [4, 6]);
  same(tensor([1, 2]).matmul(tensor([3, 4])), 11);
  const batch = stack([a, b]); // [2, 2, 2]
  same(batch.matmul(eye(2).mul(2)), [[[2, 4], [6, 8]], [[10, 12], [14, 16]]]);
  same(a.matmul(stack([eye(2), eye(2).mul(-1)])), [[[1, 2], [3, 4]], [[-1, -2], [-3, -4]]]);
  assertShape(ones([3, 1, 2, 4]).matmul(ones([5, 4, 6])), [3, 5, 2, 6]);
  same(a.mm(b), [[19, 22], [43, 50]]);
  same(tensor([[1, 2, 3]]).mm(tensor([[1], [1], [1]])), [[6]]);
  same(batch.bmm(stack([eye(2), a])), [[[1, 2], [3, 4]], [[23, 34], [31, 46]]]);
  const base = ones([2, 2, 2]);
  same(base.baddbmm(batch, stack([eye(2), eye(2)]), { beta: 0.5, alpha: 2 }), [[[2.5, 4.5], [6.5, 8.5]], [[10.5, 12.5], [14.5, 16.5]]]);
  same(base.baddbmm(batch, stack([eye(2), eye(2)])), [[[2, 3], [4, 5]], [[6, 7], [8, 9]]]);
  same(tensor([1, 2]).outer(tensor([3, 4, 5])), [[3, 4, 5], [6, 8, 10]]);
});

// ---- reductions -----------------------------------------------------------------------------------------

test('sum, mean, prod: all, dim, negative dim, dim lists, keepdim, dtype', () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  same(x.sum(), 21);
  same(x.sum(0), [5, 7, 9]);
  same(x.sum(-1), [6, 15]);
  same(x.sum([0, 1]), 21);
  same(x.sum(1, true), [[6], [15]]);
  same(x.sum(null, true), [[21]]);
  assert.equal(x.sum(0, false, 'float64').dtype, 'float64');
  same(x.mean(), 3.5);
  same(x.mean(-2), [2.5, 3.5, 4.5]);
  same(x.mean(1, true), [[2], [5]]);
  same(x.mean(null, true), [[3.5]]);
  same(x.prod(), 720);
  same(x.prod(1), [6, 120]);
  same(x.prod(-2, true), [[4, 10, 18]]);
  same(x.prod(null, true), [[720]]);
  same(i64([[1, 2], [3, 4]]).sum(0), [4, 6]);
});

test('max, min, maxDim, minDim, argmax, argmin', () => {
  const x = tensor([[1, 5, 3], [4, 2, 6]]);
  same(x.max(), 6);
  same(x.min(), 1);
  same(x.max(0), [4, 5, 6]);
  same(x.min(-1), [1, 2]);
  same(x.max([0, 1]), 6);
  same(x.max(1, true), [[5], [6]]);
  same(x.max(null, true), [[6]]);
  const [mv, mi] = x.maxDim(1);
  same(mv, [5, 6]);
  same(mi, [1, 2]);
  assert.equal(mi.dtype, 'int64');
  const [nv, ni] = x.minDim(0, true);
  same(nv, [[1, 2, 3]]);
  same(ni, [[0, 1, 0]]);
  same(x.argmax(), 5);
  same(x.argmax(-1), [1, 2]);
  same(x.argmin(0), [0, 1, 0]);
  same(x.argmin(1, true), [[0], [1]]);
});

test('cumsum, cumprod, logsumexp, var, std, norm', () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  same(x.cumsum(-1), [[1, 3, 6], [4, 9, 15]]);
  same(x.cumsum(0), [[1, 2, 3], [5, 7, 9]]);
  const ic = i64([1, 2, 3]).cumsum(0);
  assert.equal(ic.dtype, 'int64');
  same(ic, [1, 3, 6]);
  assert.equal(x.cumsum(0, 'float64').dtype, 'float64');
  same(tensor([1, 2, 3, 4]).cumprod(0), [1, 2, 6, 24]);
  same(x.cumprod(-1), [[1, 2, 6], [4, 20, 120]]);
  const lse = 3 + log(1 + exp(-1) + exp(-2));
  assertClose(tensor([1, 2, 3]).logsumexp(0), lse);
  assertClose(x.logsumexp(-1, true), [[lse], [lse + 3]]);
  assertClose(x.logsumexp([0, 1]), 6 + log(1 + exp(-1) + exp(-2) + exp(-3) + exp(-4) + exp(-5)));
  assertClose(tensor([1000, 1000]).logsumexp(0), 1000 + LN2);
  const v = tensor([1, 2, 3, 4]);
  assertClose(v.var(), 5 / 3);
  assertClose(v.var(null, { correction: 0 }), 1.25);
  assertClose(v.std(), sqrt(5 / 3));
  assertClose(v.std(0, { correction: 0 }), sqrt(1.25));
  assertClose(x.var(1), [1, 1]);
  assertClose(x.var(0, { keepdim: true }), [[4.5, 4.5, 4.5]]);
  assertClose(x.std(-1, { keepdim: true }), [[1], [1]]);
  assertClose(tensor([3, 4]).norm(), 5);
  assertClose(tensor([3, -4]).norm(1), 7);
  assertClose(tensor([3, -4]).norm(Infinity), 4);
  assertClose(tensor([[3, 4], [6, 8]]).norm(2, -1), [5, 10]);
  assertClose(tensor([[3, 4], [6, 8]]).norm(2, 0, true), [[sqrt(45), sqrt(80)]]);
  assertClose(tensor([[3, 4]]).norm(2, null, true), [[5]]);
});

test('all, any, sort, argsort, topk', () => {
  const b = tensor([[true, false], [true, true]]);
  same(b.all(), false);
  same(b.any(), true);
  same(b.all(1), [false, true]);
  same(b.any(-1, true), [[true], [true]]);
  same(b.all(null, true), [[false]]);
  same(tensor([0, 2]).all(), false);
  same(tensor([0, 2]).any(), true);
  const x = tensor([[3, 1, 2], [0, 5, 4]]);
  const [sv, si] = x.sort();
  same(sv, [[1, 2, 3], [0, 4, 5]]);
  same(si, [[1, 2, 0], [0, 2, 1]]);
  const [dv, di] = x.sort(0, true);
  same(dv, [[3, 5, 4], [0, 1, 2]]);
  same(di, [[0, 1, 1], [1, 0, 0]]);
  same(x.argsort(), [[1, 2, 0], [0, 2, 1]]);
  same(x.argsort(-1, true), [[0, 2, 1], [1, 2, 0]]);
  const [tv, ti] = tensor([1, 5, 3, 4]).topk(2);
  same(tv, [5, 4]);
  same(ti, [1, 3]);
  const [lv, li] = tensor([1, 5, 3, 4]).topk(2, -1, { largest: false });
  same(lv, [1, 3]);
  same(li, [0, 2]);
  const [cv] = x.topk(1, 0);
  same(cv, [[3, 5, 4]]);
  const [uv] = tensor([1, 5, 3, 4]).topk(3, 0, { sorted: false });
  same(uv.sort()[0], [3, 4, 5]);
});

// ---- shape ---------------------------------------------------------------------------------------------

test('reshape, view, permute, transpose, mT, contiguous, flatten', () => {
  const x = arange(6);
  same(x.reshape(2, 3), [[0, 1, 2], [3, 4, 5]]);
  same(x.reshape([3, -1]), [[0, 1], [2, 3], [4, 5]]);
  same(x.view(-1, 2), [[0, 1], [2, 3], [4, 5]]);
  const v = x.view(2, 3);
  v.fill_(1); // a view shares memory
  same(x, [1, 1, 1, 1, 1, 1]);
  const y = arange(6).reshape(1, 2, 3);
  const p = y.permute(2, 0, 1);
  assertShape(p, [3, 1, 2]);
  same(p, [[[0, 3]], [[1, 4]], [[2, 5]]]);
  same(y.permute([0, 2, 1]), [[[0, 3], [1, 4], [2, 5]]]);
  same(y.transpose(0, -1), [[[0], [3]], [[1], [4]], [[2], [5]]]);
  same(y.mT, [[[0, 3], [1, 4], [2, 5]]]);
  const t = y.mT;
  assert.equal(t.isContiguous(), false);
  assert.throws(() => t.view(6), (e: unknown) => e instanceof EngramError && e.op === 'view');
  const c = t.contiguous();
  assert.equal(c.isContiguous(), true);
  same(c.view(6), [0, 3, 1, 4, 2, 5]);
  const z = zeros([2, 3, 4]);
  assertShape(z.flatten(), [24]);
  assertShape(z.flatten(1), [2, 12]);
  assertShape(z.flatten(0, -2), [6, 4]);
});

test('expand, expandAs, squeeze, unsqueeze', () => {
  const x = tensor([[1, 2, 3]]);
  same(x.expand(2, -1), [[1, 2, 3], [1, 2, 3]]);
  same(x.expand([2, 2, 3]).sum(), 24);
  same(tensor([[1], [2]]).expandAs(zeros([2, 3])), [[1, 1, 1], [2, 2, 2]]);
  const s = zeros([1, 2, 1]);
  assertShape(s.squeeze(), [2]);
  assertShape(s.squeeze(-1), [1, 2]);
  assertShape(s.squeeze(1), [1, 2, 1]); // not size 1: unchanged
  assertShape(tensor([1, 2]).unsqueeze(0), [1, 2]);
  same(tensor([1, 2]).unsqueeze(-1), [[1], [2]]);
});

test('narrow, slice (with step, negative bounds), select', () => {
  const x = arange(10);
  same(x.narrow(0, 2, 3), [2, 3, 4]);
  same(x.narrow(-1, -3, 2), [7, 8]);
  same(x.slice(0, 1, 8, 3), [1, 4, 7]);
  same(x.slice(0, -3), [7, 8, 9]);
  same(x.slice(0, null, -7), [0, 1, 2]);
  same(x.slice(0, null, null, 4), [0, 4, 8]);
  same(x.slice(0, 20, 30), []);
  const m = arange(12).reshape(3, 4);
  same(m.slice(-1, 1, null, 2), [[1, 3], [5, 7], [9, 11]]);
  same(m.slice(0, 1), [[4, 5, 6, 7], [8, 9, 10, 11]]);
  same(m.select(0, 1), [4, 5, 6, 7]);
  same(m.select(-1, -1), [3, 7, 11]);
  same(m.narrow(1, 1, 2), [[1, 2], [5, 6], [9, 10]]);
});

test('split, chunk, unbind', () => {
  const x = arange(5);
  assert.deepEqual(x.split(2).map((t) => t.toArray()), [[0, 1], [2, 3], [4]]);
  assert.deepEqual(x.split([1, 4]).map((t) => t.toArray()), [[0], [1, 2, 3, 4]]);
  assert.deepEqual(x.chunk(2).map((t) => t.toArray()), [[0, 1, 2], [3, 4]]);
  const m = arange(6).reshape(2, 3);
  assert.deepEqual(m.split(1, -1).map((t) => t.toArray()), [[[0], [3]], [[1], [4]], [[2], [5]]]);
  assert.deepEqual(m.chunk(3, 1).map((t) => t.shape), [[2, 1], [2, 1], [2, 1]]);
  assert.deepEqual(m.unbind().map((t) => t.toArray()), [[0, 1, 2], [3, 4, 5]]);
  assert.deepEqual(m.unbind(-1).map((t) => t.toArray()), [[0, 3], [1, 4], [2, 5]]);
});

test('repeat, repeatInterleave, flip, roll, unfold, asStrided, tril, triu', () => {
  same(tensor([1, 2]).repeat(2, 2), [[1, 2, 1, 2], [1, 2, 1, 2]]);
  same(tensor([[1], [2]]).repeat([1, 3]), [[1, 1, 1], [2, 2, 2]]);
  same(tensor([1, 2]).repeatInterleave(2), [1, 1, 2, 2]);
  same(tensor([[1, 2], [3, 4]]).repeatInterleave(2, 0), [[1, 2], [1, 2], [3, 4], [3, 4]]);
  same(tensor([[1, 2], [3, 4]]).repeatInterleave(2, -1), [[1, 1, 2, 2], [3, 3, 4, 4]]);
  same(tensor([[1, 2], [3, 4]]).repeatInterleave(2), [1, 1, 2, 2, 3, 3, 4, 4]);
  const m = tensor([[1, 2], [3, 4]]);
  same(m.flip(0), [[3, 4], [1, 2]]);
  same(m.flip(-1), [[2, 1], [4, 3]]);
  same(m.flip([0, 1]), [[4, 3], [2, 1]]);
  same(tensor([1, 2, 3, 4]).roll(1, 0), [4, 1, 2, 3]);
  same(tensor([1, 2, 3, 4]).roll(-1, -1), [2, 3, 4, 1]);
  same(tensor([[1, 2, 3], [4, 5, 6]]).roll([1, -1], [0, 1]), [[5, 6, 4], [2, 3, 1]]);
  same(tensor([1, 2, 3, 4, 5]).unfold(0, 2, 2), [[1, 2], [3, 4]]);
  same(tensor([1, 2, 3, 4]).unfold(-1, 3, 1), [[1, 2, 3], [2, 3, 4]]);
  // asStrided: overlapping windows (stride 1 between rows), from storage offset 1.
  same(tensor([0, 1, 2, 3, 4]).asStrided([2, 3], [1, 1], 1), [[1, 2, 3], [2, 3, 4]]);
  const sq = arange(1, 10).reshape(3, 3);
  same(sq.tril(), [[1, 0, 0], [4, 5, 0], [7, 8, 9]]);
  same(sq.tril(-1), [[0, 0, 0], [4, 0, 0], [7, 8, 0]]);
  same(sq.tril(1), [[1, 2, 0], [4, 5, 6], [7, 8, 9]]);
  same(sq.triu(), [[1, 2, 3], [0, 5, 6], [0, 0, 9]]);
  same(sq.triu(1), [[0, 2, 3], [0, 0, 6], [0, 0, 0]]);
  same(sq.triu(-1), [[1, 2, 3], [4, 5, 6], [0, 8, 9]]);
  same(ones([2, 2, 3]).tril(), [[[1, 0, 0], [1, 1, 0]], [[1, 0, 0], [1, 1, 0]]]); // batched
});

// ---- indexing -----------------------------------------------------------------------------------------

test('indexSelect, gather, scatter, scatterAdd, scatterReduce', () => {
  const x = tensor([[1, 2], [3, 4], [5, 6]]);
  same(x.indexSelect(0, i64([2, 0])), [[5, 6], [1, 2]]);
  same(x.indexSelect(-1, i64([1])), [[2], [4], [6]]);
  same(tensor([[1, 2], [3, 4]]).gather(1, i64([[0, 0], [1, 0]])), [[1, 1], [4, 3]]);
  same(tensor([[1, 2], [3, 4]]).gather(0, i64([[1, 0]])), [[3, 2]]);
  same(tensor([[1, 2], [3, 4]]).gather(-1, i64([[1], [0]])), [[2], [3]]);
  const z = zeros([2, 3]);
  same(z.scatter(1, i64([[0, 2], [1, 0]]), tensor([[1, 2], [3, 4]])), [[1, 0, 2], [4, 3, 0]]);
  same(z.scatter(-1, i64([[0, 2], [1, 0]]), 7), [[7, 0, 7], [7, 7, 0]]);
  same(z, [[0, 0, 0], [0, 0, 0]]); // out of place
  same(zeros([3]).scatterAdd(0, i64([0, 0, 2]), tensor([1, 2, 3])), [3, 0, 3]);
  const base = tensor([1, 2, 3]), idx = i64([0, 0, 2]), src = tensor([5, 6, 7]);
  same(base.scatterReduce(0, idx, src, 'sum'), [12, 2, 10]);
  same(base.scatterReduce(0, idx, src, 'prod'), [30, 2, 21]);
  same(base.scatterReduce(0, idx, src, 'mean'), [4, 2, 5]);
  same(base.scatterReduce(0, idx, src, 'amax'), [6, 2, 7]);
  same(base.scatterReduce(0, idx, src, 'amin'), [1, 2, 3]);
  same(base.scatterReduce(0, idx, src, 'mean', false), [5.5, 2, 7]);
  same(base.scatterReduce(0, idx, src, 'amin', false), [5, 2, 7]);
});

test('maskedFill (broadcast mask), maskedSelect, nonzero, index, indexPut', () => {
  const x = tensor([[1, 2], [3, 4]]);
  same(x.maskedFill(tensor([true, false]), -1), [[-1, 2], [-1, 4]]);
  same(x.maskedFill(tensor([[false], [true]]), 0), [[1, 2], [0, 0]]);
  same(x, [[1, 2], [3, 4]]);
  same(tensor([true, false]).maskedFill(tensor([false, true]), true), [true, true]);
  same(x.maskedSelect(x.gt(2)), [3, 4]);
  same(x.maskedSelect(tensor([false, true])), [2, 4]);
  same(tensor([[0, 1], [1, 0]]).nonzero(), [[0, 1], [1, 0]]);
  same(tensor([0, 3, 0, 4]).nonzero(), [[1], [3]]);
  const m = arange(9).reshape(3, 3);
  same(m.index([i64([0, 2]), i64([1, 0])]), [1, 6]);
  same(m.index([null, i64([2, 0])]), [[2, 0], [5, 3], [8, 6]]);
  same(m.index([i64([-1])]), [[6, 7, 8]]);
  same(m.index([tensor([true, false, true])]), [[0, 1, 2], [6, 7, 8]]);
  same(m.index([m.gt(6)]), [7, 8]);
  same(zeros([3]).indexPut([i64([0, 0, 2])], tensor([1, 2, 3]), true), [3, 0, 3]);
  same(zeros([3]).indexPut([i64([0, 2])], tensor([5])), [5, 0, 5]);
  same(zeros([2, 2]).indexPut([null, i64([1])], tensor([[1], [2]])), [[0, 1], [0, 2]]);
  same(zeros([3]).indexPut([tensor([true, false, true])], tensor([4])), [4, 0, 4]);
});

// ---- F ------------------------------------------------------------------------------------------------

test('F activations', () => {
  const x = f64([-1, 0, 2]);
  same(F.relu(x), [0, 0, 2]);
  assertClose(F.gelu(x), [-0.15865525393145707, 0, 1.9544997361036416]);
  assertClose(F.gelu(x, 'tanh'), [-0.15880800939172324, 0, 1.954597694087775]);
  assertClose(F.silu(x), [-1 / (1 + E), 0, 2 / (1 + exp(-2))]);
  assertClose(F.sigmoid(x), [1 / (1 + E), 0.5, 1 / (1 + exp(-2))]);
  assertClose(F.tanh(x), [Math.tanh(-1), 0, Math.tanh(2)]);
});

test('F.maskedSoftmax: mask, scale, fully masked rows, no mask, dim', () => {
  const x = tensor([[1, 2, 3], [1, 2, 3]]);
  const mask = tensor([[false, false, true], [true, true, true]]);
  const y = F.maskedSoftmax(x, mask, { scale: 2 });
  assertClose(y, [[1 / (1 + exp(2)), 1 / (1 + exp(-2)), 0], [0, 0, 0]]);
  assert.equal(y.isnan().any().item(), 0);
  assertClose(F.maskedSoftmax(x, null), [[0.09003057, 0.24472847, 0.66524096], [0.09003057, 0.24472847, 0.66524096]]);
  // a broadcast mask [1, 3], and a softmax over dim 0
  assertClose(F.maskedSoftmax(x, tensor([[true, false, false]])), [[0, 1 / (1 + E), 1 / (1 + exp(-1))], [0, 1 / (1 + E), 1 / (1 + exp(-1))]]);
  assertClose(F.maskedSoftmax(tensor([[1, 5], [3, 5]]), tensor([[false, true], [false, true]]), { dim: 0 }), [[1 / (1 + exp(2)), 0], [1 / (1 + exp(-2)), 0]]);
});

test('F.layerNorm of a 2x3, with weight and bias, over two dims', () => {
  const x = tensor([[1, 2, 3], [2, 4, 6]]);
  const s1 = 1 / sqrt(2 / 3 + 1e-5), s2 = 2 / sqrt(8 / 3 + 1e-5);
  assertClose(F.layerNorm(x, 3), [[-s1, 0, s1], [-s2, 0, s2]]);
  assertClose(F.layerNorm(x, [3], tensor([1, 2, 3]), tensor([0, 1, 0])), [[-s1, 1, 3 * s1], [-s2, 1, 3 * s2]]);
  assertClose(F.layerNorm(x, [3], null, tensor([1, 1, 1]), 0), [[1 - sqrt(1.5), 1, 1 + sqrt(1.5)], [1 - sqrt(1.5), 1, 1 + sqrt(1.5)]]);
  // over [2, 3]: mean 3, biased variance 8/3
  const s = 1 / sqrt(8 / 3 + 1e-5);
  assertClose(F.layerNorm(x, [2, 3]), [[-2 * s, -s, 0], [-s, s, 3 * s]]);
});

test('F.dropout: train statistics, eval identity, p = 0 and 1, bad p', () => {
  manualSeed(3);
  const x = ones([20000]);
  const y = F.dropout(x, 0.25);
  const kept = y.ne(0);
  assertClose(kept.float().mean(), 0.75, { atol: 0.015 });
  assertClose(y.maskedSelect(kept).max(), 4 / 3);
  assertClose(y.maskedSelect(kept).min(), 4 / 3);
  assertClose(y.mean(), 1, { atol: 0.02 });
  same(F.dropout(tensor([1, 2, 3]), 0.5, false), [1, 2, 3]);
  same(F.dropout(tensor([1, 2, 3]), 0), [1, 2, 3]);
  same(F.dropout(tensor([1, 2, 3]), 1), [0, 0, 0]);
  assert.throws(() => F.dropout(x, 1.5), (e: unknown) => e instanceof EngramError && e.kind === 'config' && e.op === 'dropout');
});

test('F.embedding, F.linear', () => {
  const w = tensor([[1, 2], [3, 4], [5, 6]]);
  same(F.embedding(i64([[2, 0], [1, 1]]), w), [[[5, 6], [1, 2]], [[3, 4], [3, 4]]]);
  same(F.embedding(tensor([2], { dtype: 'int32' }), w), [[5, 6]]);
  same(F.embedding(i64([0, 1]), w, 0), [[1, 2], [3, 4]]); // paddingIdx changes gradients only
  const lw = tensor([[1, 0], [0, 1], [1, 1]]);
  same(F.linear(tensor([[1, 2]]), lw, tensor([0, 0, 1])), [[1, 2, 4]]);
  same(F.linear(tensor([[[1, 2]], [[3, 4]]]), lw), [[[1, 2, 3]], [[3, 4, 7]]]);
  same(F.linear(tensor([1, 2]), lw, null), [1, 2, 3]);
});

test('F.crossEntropy: reductions, ignoreIndex, weight, labelSmoothing, [N, C, d]', () => {
  const logits = tensor([[1, 2, 3], [1, 2, 3]]);
  const l2 = -log(0.6652409557748219), l0 = -log(0.09003057317038046); // 0.4076..., 2.4076...
  assertClose(F.crossEntropy(logits, i64([2, 0])), (l2 + l0) / 2);
  assertClose(F.crossEntropy(logits, i64([2, 0]), { reduction: 'sum' }), l2 + l0);
  assertClose(F.crossEntropy(logits, i64([2, 0]), { reduction: 'none' }), [l2, l0]);
  assertClose(F.crossEntropy(logits, i64([2, -100])), l2); // the ignored row does not count in the mean
  assertClose(F.crossEntropy(logits, i64([2, 0]), { ignoreIndex: 0 }), l2);
  assertClose(F.crossEntropy(logits, i64([2, 0]), { ignoreIndex: 0, reduction: 'none' }), [l2, 0]);
  assertClose(F.crossEntropy(logits, i64([2, 0]), { weight: tensor([1, 1, 3]) }), (3 * l2 + l0) / 4);
  const smooth = (0.9 * l2) + 0.1 * (l2 + (l2 + 1) + (l2 + 2)) / 3;
  assertClose(F.crossEntropy(logits.narrow(0, 0, 1), i64([2]), { labelSmoothing: 0.1 }), smooth);
  assertClose(F.crossEntropy(logits, i64([2, -100]), { labelSmoothing: 0.1 }), smooth);
  // [N, C, d]: classes along dim 1
  const l3 = logits.narrow(0, 0, 1).unsqueeze(-1).expand(1, 3, 2); // both positions logits [1, 2, 3]
  assertClose(F.crossEntropy(l3, i64([[2, 0]]), { reduction: 'none' }), [[l2, l0]]);
});

test('F.nllLoss, F.mseLoss, F.binaryCrossEntropyWithLogits', () => {
  const lp = tensor([[1, 2, 3], [1, 2, 3]]).logSoftmax(-1);
  const l2 = -log(0.6652409557748219), l0 = -log(0.09003057317038046);
  assertClose(F.nllLoss(lp, i64([2, 0])), (l2 + l0) / 2);
  assertClose(F.nllLoss(lp, i64([2, 0]), { reduction: 'none', ignoreIndex: 2 }), [0, l0]);
  assertClose(F.nllLoss(lp, i64([2, 0]), { weight: tensor([2, 1, 1]), reduction: 'sum' }), l2 + 2 * l0);
  assertClose(F.mseLoss(tensor([1, 2, 3]), tensor([1, 1, 1])), 5 / 3);
  same(F.mseLoss(tensor([1, 2, 3]), tensor([1, 1, 1]), 'sum'), 5);
  same(F.mseLoss(tensor([1, 2, 3]), tensor([1, 1, 1]), 'none'), [0, 1, 4]);
  const x = tensor([0, 2]), y = tensor([1, 0]);
  const a = LN2, b = log(1 + exp(2));
  assertClose(F.binaryCrossEntropyWithLogits(x, y), (a + b) / 2);
  assertClose(F.binaryCrossEntropyWithLogits(x, y, { reduction: 'none' }), [a, b]);
  assertClose(F.binaryCrossEntropyWithLogits(x, y, { weight: tensor([2, 1]), reduction: 'sum' }), 2 * a + b);
  assertClose(F.binaryCrossEntropyWithLogits(x, y, { posWeight: tensor([3]), reduction: 'none' }), [3 * a, b]);
});

test('F.conv1d with a known kernel: bias, padding, stride, dilation, groups, channels', () => {
  const x = tensor([[[1, 2, 3, 4, 5]]]);
  const w = tensor([[[1, 0, -1]]]);
  same(F.conv1d(x, w), [[[-2, -2, -2]]]);
  same(F.conv1d(x, w, tensor([0.5])), [[[-1.5, -1.5, -1.5]]]);
  same(F.conv1d(x, w, null, { padding: 1 }), [[[-2, -2, -2, -2, 4]]]);
  same(F.conv1d(x, w, null, { stride: 2 }), [[[-2, -2]]]);
  same(F.conv1d(x, w, null, { dilation: 2 }), [[[-4]]]);
  const two = tensor([[[1, 2, 3], [4, 5, 6]]]);
  same(F.conv1d(two, tensor([[[1, 1]], [[1, -1]]]), null, { groups: 2 }), [[[3, 5], [-1, -1]]]);
  same(F.conv1d(two, tensor([[[1, 0], [0, 2]]])), [[[11, 14]]]);
  same(F.conv1d(two, tensor([[[1, 0], [0, 0]], [[0, 0], [0, 1]]])), [[[1, 2], [5, 6]]]);
});

test('F.conv2d', () => {
  const x = arange(1, 10, 1, { dtype: 'float32' }).reshape(1, 1, 3, 3);
  same(F.conv2d(x, tensor([[[[1, 0], [0, 1]]]])), [[[[6, 8], [12, 14]]]]);
  same(F.conv2d(x, tensor([[[[1]]]]), tensor([1]), { stride: 2 }), [[[[2, 4], [8, 10]]]]);
  same(F.conv2d(x, ones([1, 1, 3, 3]), null, { padding: 1 }), [[[[12, 21, 16], [27, 45, 33], [24, 39, 28]]]]);
});

test('F pooling: avg and max, 1-d and 2-d, stride, padding, ceilMode; adaptiveAvgPool1d', () => {
  const x = tensor([[[1, 3, 2, 5, 4, 0]]]);
  same(F.avgPool1d(x, 2), [[[2, 3.5, 2]]]);
  assertClose(F.avgPool1d(x, 3, { stride: 1 }), [[[2, 10 / 3, 11 / 3, 3]]]);
  same(F.avgPool1d(tensor([[[1, 2, 3, 4]]]), 2, { padding: 1 }), [[[0.5, 2.5, 2]]]); // zeros counted
  same(F.avgPool1d(tensor([[[1, 2, 3, 4, 5]]]), 2, { ceilMode: true }), [[[1.5, 3.5, 5]]]);
  same(F.maxPool1d(x, 2), [[[3, 5, 4]]]);
  same(F.maxPool1d(x, 2, { stride: 1 }), [[[3, 3, 5, 5, 4]]]);
  same(F.maxPool1d(x, 2, { padding: 1 }), [[[1, 3, 5, 0]]]);
  same(F.maxPool1d(tensor([[[1, 2, 3, 4, 5]]]), 2, { ceilMode: true }), [[[2, 4, 5]]]);
  const img = arange(1, 17, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
  same(F.avgPool2d(img, 2), [[[[3.5, 5.5], [11.5, 13.5]]]]);
  same(F.maxPool2d(img, 2), [[[[6, 8], [14, 16]]]]);
  same(F.maxPool2d(img, [1, 4]), [[[[4], [8], [12], [16]]]]);
  same(F.avgPool2d(img, 3, { stride: 1 }), [[[[6, 7], [10, 11]]]]);
  same(F.adaptiveAvgPool1d(tensor([[[1, 2, 3, 4, 5, 6]]]), 3), [[[1.5, 3.5, 5.5]]]);
  same(F.adaptiveAvgPool1d(tensor([[[1, 2, 3, 4, 5, 6]]]), 4), [[[1.5, 2.5, 4.5, 5.5]]]);
  same(F.adaptiveAvgPool1d(tensor([[[1, 2, 3, 4, 5, 6]]]), 1), [[[3.5]]]);
});

test('F.pad: constant (value, 2 dims, negative), reflect, replicate, circular', () => {
  const x = tensor([[[1, 2, 3]]]);
  same(F.pad(x, [2, 1]), [[[0, 0, 1, 2, 3, 0]]]);
  same(F.pad(x, [2, 1], 'constant', 9), [[[9, 9, 1, 2, 3, 9]]]);
  same(F.pad(x, [2, 1], 'reflect'), [[[3, 2, 1, 2, 3, 2]]]);
  same(F.pad(x, [2, 1], 'replicate'), [[[1, 1, 1, 2, 3, 3]]]);
  same(F.pad(x, [2, 1], 'circular'), [[[2, 3, 1, 2, 3, 1]]]);
  const m = tensor([[1, 2], [3, 4]]);
  same(F.pad(m, [1, 0, 0, 1]), [[0, 1, 2], [0, 3, 4], [0, 0, 0]]);
  same(F.pad(m, [-1, 0]), [[2], [4]]);
  same(F.pad(m.reshape(1, 1, 2, 2), [1, 1, 1, 1], 'replicate'), [[[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]]);
  same(F.pad(m.reshape(1, 1, 2, 2), [1, 0, 1, 0], 'reflect'), [[[[4, 3, 4], [2, 1, 2], [4, 3, 4]]]]);
});

// ---- coverage ---------------------------------------------------------------------------------------

// Forward values live here; the autograd members (backward, grad, detach, ...) are exercised in
// ops-grad.test.ts and cuda() in errors.test.ts, so those files count too.
test('setData_: the handle holds the new data (shape, dtype, values), keeps requires_grad, drops the grad; the source stays usable', () => {
  const p = tensor([1, 2, 3]).requiresGrad_(true);
  p.mul(2).sum().backward();
  assert.ok(p.grad !== null);
  const src = tensor([[4, 5], [6, 7]], { dtype: 'float64' });
  assert.equal(p.setData_(src), p);
  assert.deepEqual(p.shape, [2, 2]);
  assert.equal(p.dtype, 'float64');
  assert.deepEqual(p.toArray(), [[4, 5], [6, 7]]);
  assert.equal(p.requiresGrad, true);
  assert.equal(p.grad, null);
  assert.equal(src.requiresGrad, false);
  assert.deepEqual(src.toArray(), [[4, 5], [6, 7]]);
  p.dispose();
  src.dispose();
});

test('copyRows_ writes src into rows [at, at + n) along dim in place, and checks the fit', () => {
  const t = zeros([2, 4, 3]);
  const src = tensor([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]); // [2, 2, 3]
  assert.equal(t.copyRows_(1, 1, src), t);
  assert.deepEqual(t.toArray(), [
    [[0, 0, 0], [1, 2, 3], [4, 5, 6], [0, 0, 0]],
    [[0, 0, 0], [7, 8, 9], [10, 11, 12], [0, 0, 0]],
  ]);
  assert.throws(() => t.copyRows_(1, 3, src), /./); // rows 3..5 do not fit in 4
  t.dispose();
  src.dispose();
});

test('F.expiringAttention and F.composedExpiringAttention: distances from ages, the soft and hard masks, renormalised', () => {
  tidy(() => {
    // Keys at ages 1, 0, −1 from query 0 (distances 1, 0, −1; then 2, 1, 0 from query 1), spans 0.5, 10, 10, ramp 1.
    const content = zeros([1, 1, 2, 3]);
    // Query 0 scores distance 1 at ln 3 (q · keyPe with D = 1: q = [1, 0], keyPe = [0, ln 3, 0]).
    const queries = tensor([[[[1], [0]]]]), keyPe = tensor([[0, Math.log(3), 0]]);
    const keys = { age: tensor([[1, 0, -1]], { dtype: 'int64' }), spans: tensor([[0.5, 10, 10]]), ramp: 1, nearest: 0 };
    // Query 0: softmax over keys 0, 1 = [3/4, 1/4] (key 2 is later); key 0's mask (0.5 − 1)/1 + 1 = 0.5
    // gives [3/8, 1/4] / (5/8) = [0.6, 0.4]. Query 1: key 0's mask is 0 (blocked); keys 1, 2 share.
    const expected = [[[[0.6, 0.4, 0], [0, 0.5, 0.5]]]];
    for (const positions of ['per-key', 'table'] as const) assertClose(F.expiringAttention(content, queries, keyPe, keys, { positions }), expected, { atol: 1e-6 });
    assertClose(F.composedExpiringAttention(content, queries, keyPe, keys), expected, { atol: 1e-6 });
  });
});

test('F.linearRow equals F.linear for one row (the matrix-vector path) and for several rows (the fallback)', () => {
  tidy(() => {
    const w = randn([300, 256]), b = randn([300]); // 76,800 entries: above the matrix-vector threshold
    const row = randn([1, 1, 256]);
    assertClose(F.linearRow(row, w, b), F.linear(row, w, b).toArray() as number[][][], { atol: 1e-4 });
    assertClose(F.linearRow(row, w), F.linear(row, w).toArray() as number[][][], { atol: 1e-4 });
    const rows = randn([2, 3, 256]);
    assertClose(F.linearRow(rows, w, b), F.linear(rows, w, b).toArray() as number[][][], { atol: 1e-4 });
    assert.deepEqual(F.linearRow(row, w, b).shape, [1, 1, 300]);
  });
});

test('F.attendRow: one query row over strided keys, with and without positions, equals the composed attention; float64 and gradients go through ATen', () => {
  manualSeed(11);
  tidy(() => {
    const [B, K, D, Tk, R] = [3, 4, 16, 37, 50];
    // keys and values as a cache holds them: rows of a larger buffer (heads strided), and W_r R's last Tk distances
    const k = randn([B, K, 64, D]).narrow(2, 5, Tk), v = randn([B, K, 64, D]).narrow(2, 9, Tk);
    const q = randn([B, K, 1, D]), u = randn([K, D]), w = randn([K, D]);
    const P = randn([K, D, R]).narrow(2, R - Tk, Tk);
    const scale = 1 / Math.sqrt(D);
    const composed = (positions: { contentBias?: Tensor; positionKeys?: Tensor; positionBias?: Tensor }, qq = q, kk = k, vv = v) => {
      let s = (positions.contentBias ? qq.add(positions.contentBias.unsqueeze(1)) : qq).matmul(kk.mT);
      if (positions.positionKeys) s = s.add((positions.positionBias ? qq.add(positions.positionBias.unsqueeze(1)) : qq).matmul(positions.positionKeys));
      return s.mul(scale).softmax(-1).matmul(vv).transpose(1, 2).flatten(2); // [B, 1, K D]
    };
    for (const positions of [{}, { contentBias: u, positionKeys: P, positionBias: w }, { positionKeys: P.contiguous() }]) {
      const fast = noGrad(() => F.attendRow(q, k, v, positions, scale));
      assert.deepEqual(fast.shape, [B, 1, K * D]);
      const diff = fast.sub(composed(positions)).abs().max().item() as number;
      assert.ok(diff <= 1e-5, `differs by ${diff}`);
    }
    // float64 (the ATen path) matches to rounding; with gradients wanted, the result is differentiable
    const [q64, k64, v64, u64, P64, w64] = [q, k, v, u, P, w].map((t) => t.double());
    const exact = F.attendRow(q64!, k64!, v64!, { contentBias: u64!, positionKeys: P64!, positionBias: w64! }, scale);
    assert.ok((exact.sub(composed({ contentBias: u64!, positionKeys: P64!, positionBias: w64! }, q64!, k64!, v64!)).abs().max().item() as number) <= 1e-12);
    const qg = q.detach().requiresGrad_();
    const [g] = grad(F.attendRow(qg, k, v, { contentBias: u, positionKeys: P, positionBias: w }, scale).sum(), [qg]);
    assert.deepEqual(g!.shape, [B, K, 1, D]);
    assert.ok((g!.abs().sum().item() as number) > 0);
    assert.throws(() => F.attendRow(randn([B, K, 2, D]), k, v, {}, scale), /attendRow: q must be \[B, K, 1, D\]/);
    assert.throws(() => F.attendRow(q, k, v, { positionKeys: randn([K, D, Tk + 1]) }, scale), /positionKeys must be \[K, D, Tk\]/);
  });
});

test('F.expiringAttend: queries over expiring keys (some blocked, a row that sees none, keys seen beyond the position table) equal expiringAttention then the values, gradients included', () => {
  manualSeed(12);
  tidy(() => {
    const [B, K, D, Tk, P] = [3, 2, 8, 23, 20]; // row 1's spans of 50 see keys at distances up to 26 >= P: the last column
    const k = randn([B, K, 32, D]).narrow(2, 3, Tk), v = randn([B, K, Tk, D]), keyPe = randn([D, P]);
    const age = tensor(Array.from({ length: B }, () => Array.from({ length: Tk }, (_, j) => Tk - 1 - j)), { dtype: 'int64' }); // [B, Tk]: the newest key at 0
    const spans = tensor([Array.from({ length: Tk }, (_, j) => (j * 7) % 30), Array.from({ length: Tk }, () => 50), Array.from({ length: Tk }, () => -5)]); // row 2 sees nothing
    const keys = { age, spans, ramp: 4, nearest: 1 };
    const scale = 1 / Math.sqrt(D);
    const composed = (qq: Tensor, kk: Tensor, vv: Tensor, pe: Tensor, ks: typeof keys) => F.expiringAttention(qq.matmul(kk.mT), qq, pe, ks, { scale }).matmul(vv).transpose(1, 2).flatten(2);
    for (const Tq of [1, 5]) {
      const q = randn([B, Tq, K, D]).transpose(1, 2); // [B, K, Tq, D] as the projection's view
      const keysQ = { ...keys, age: age.add(Tq - 1) }; // the last query at the block's end: the newest key at distance 0 from it
      const fast = noGrad(() => F.expiringAttend(q, k, v, keyPe, keysQ, { scale }));
      assert.deepEqual(fast.shape, [B, Tq, K * D]);
      const diff = fast.sub(composed(q, k, v, keyPe, keysQ)).abs().max().item() as number;
      assert.ok(diff <= 1e-5, `${Tq} rows: differs by ${diff}`);
      assert.equal(fast.select(0, 2).abs().sum().item(), 0); // no key seen: zeros
      const [q64, k64, v64, pe64, spans64] = [q, k, v, keyPe, spans].map((t) => t.double().requiresGrad_());
      const keys64 = { ...keysQ, spans: spans64! };
      const inputs = [q64!, k64!, v64!, pe64!, spans64!];
      const weigh = (y: Tensor) => y.mul(arange(0, y.numel, 1, { dtype: 'float64' }).view(y.shape).sin()).sum(); // distinct weights for every output
      const fused = F.expiringAttend(q64!, k64!, v64!, pe64!, keys64, { scale });
      assert.ok((fused.sub(composed(q64!, k64!, v64!, pe64!, keys64)).abs().max().item() as number) <= 1e-12);
      const fusedGrads = grad(weigh(fused), inputs);
      const composedGrads = grad(weigh(composed(q64!, k64!, v64!, pe64!, keys64)), inputs);
      ['q', 'k', 'v', 'keyPe', 'spans'].forEach((name, i) => {
        const d = fusedGrads[i]!.sub(composedGrads[i]!).abs().max().item() as number;
        assert.ok(d <= 1e-10, `${Tq} rows: d${name} differs by ${d}`);
        assert.ok((composedGrads[i]!.abs().sum().item() as number) > 0, `d${name} is all zeros: the test checks nothing`);
      });
    }
    const q = randn([B, K, 1, D]);
    assert.throws(() => F.expiringAttend(q, k, v, keyPe, { ...keys, age: age.float() }, { scale }), /age must be int64 \[B, Tk\]/);
    assert.throws(() => F.expiringAttend(q, k, v.narrow(2, 0, 4), keyPe, keys, { scale }), /k and v \[B, K, Tk, D\]/);
  });
});

test('F.weightedValues: each head weights its values, the heads side by side', () => {
  // B 1, K 2 heads, Tq 1, Tk 2, D 2
  const weights = tensor([[[[0.25, 0.75]], [[1, 0]]]]);
  const values = tensor([[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]]);
  same(F.weightedValues(weights, values), [[[2.5, 3.5, 5, 6]]]);
  same(F.weightedValues(weights.to('float64'), values.to('float64')), [[[2.5, 3.5, 5, 6]]]);
});

test('F.bandedMatmul: the product inside the row blocks, zero outside; with left, the left operand banded', () => {
  // a [3, 2], b [2, 3]; blocks: row 0 keeps columns [0, 1), row 1 none, row 2 keeps [1, 3)
  const a = tensor([[[1, 2], [3, 4], [5, 6]]]), b = tensor([[[1, 0, 1], [0, 1, 1]]]);
  const blocks = [0, 1, 0, 1, 2, 3, 1, 3];
  same(F.bandedMatmul(a, b, blocks), [[[1, 0, 0], [0, 0, 0], [0, 6, 11]]]);
  same(F.bandedMatmul(a.to('float64'), b.to('float64'), blocks), [[[1, 0, 0], [0, 0, 0], [0, 6, 11]]]);
  // left: W over a's [3, 2]: row 0 uses a[0, 0] only, row 2 a[2, 1] only
  const left = [0, 1, 0, 1, 2, 3, 1, 2];
  same(F.bandedMatmul(a, b, left, { left: true }), [[[1, 0, 1], [0, 0, 0], [0, 6, 6]]]);
  same(F.weightedValues(tensor([[[[0.5, 0.5]]]]), tensor([[[[1, 2], [3, 4]]]]), [0, 1, 1, 2]), [[[1.5, 2]]]);
});

test('F.splitHeads: the parts of a joint projection split into heads, as views (x.view, permute, unbind)', () => {
  // x [1, 2, 8]: 2 parts of 2 heads of size 2
  const x = tensor([[[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]]]);
  const [k, v] = F.splitHeads(x, 2, 2);
  same(k!, [[[[0, 1], [8, 9]], [[2, 3], [10, 11]]]]);
  same(v!, [[[[4, 5], [12, 13]], [[6, 7], [14, 15]]]]);
  const parts = F.splitHeads(x.to('float64'), 4, 1); // four parts of one head
  assert.equal(parts.length, 4);
  same(parts[3]!, [[[[6, 7], [14, 15]]]]);
  assert.throws(() => F.splitHeads(x, 3, 2), /splitHeads: x must be \[B, T, parts·heads·D\], got \[1, 2, 8\] for 3 parts of 2 heads/);
});

test('F.relShiftAdd: Transformer-XL rel_shift (pad, view, drop a row) plus content, by hand', () => {
  // padded rows [0 1 2 3], [0 4 5 6] read flat from element Tq = 2: 2 3 0 | 4 5 6
  const x = tensor([[[[1, 2, 3], [4, 5, 6]]]]);
  same(F.relShiftAdd(null, x), [[[[2, 3, 0], [4, 5, 6]]]]);
  same(F.relShiftAdd(ones([1, 1, 2, 3]), x), [[[[3, 4, 1], [5, 6, 7]]]]);
  same(F.relShiftAdd(null, x.to('float64')), [[[[2, 3, 0], [4, 5, 6]]]]);
  same(F.relShiftAdd(null, x.narrow(-2, 1, 1)), [[[[4, 5, 6]]]]); // one query: nothing moves
});

test('F.decoderLayerRow: one decoder layer for one row over a cache, against the layer written out with F ops (post-/pre-LN, positions none/relative, float32/float64)', () => {
  // B 2, H 4 (K 2 heads of D 2), FFN 6; 2 cached rows + the new one; P holds 4 distances (3 used)
  const B = 2, H = 4, K = 2, D = 2, filled = 2, used = 3;
  for (const dtype of ['float32', 'float64'] as const) {
    manualSeed(21);
    const r = (shape: number[]) => randn(shape).to(dtype);
    const w = {
      ln1: [r([H]), r([H]), 1e-5], q: [r([H, H]), null], kv: [r([2 * H, H]), null], out: [r([H, H]), r([H])],
      ln2: [r([H]), r([H]), 1e-5], up: [r([6, H]), r([6])], down: [r([H, 6]), r([H])],
    } as const;
    const h = r([B, 1, H]), earlier = [r([B, K, filled, D]), r([B, K, filled, D])];
    const u = r([K, D]), v = r([K, D]), P = r([K, D, 4]);
    for (const pre of [false, true]) {
      for (const relative of [false, true]) {
        const keys = zeros([B, K, 4, D], { dtype }), values = zeros([B, K, 4, D], { dtype });
        keys.narrow(2, 0, filled).copy_(earlier[0]!);
        values.narrow(2, 0, filled).copy_(earlier[1]!);
        const positions = relative ? { kind: 'relative' as const, contentBias: u, positionKeys: P, positionBias: v } : { kind: 'none' as const };
        const got = F.decoderLayerRow(h, w, { keys, values, filled, used }, positions, { pre, scale: 0.5 });
        // written out: the new row's key and value after the earlier ones, attention over all three
        const norm = (x: Tensor, n: typeof w.ln1) => F.layerNorm(x, H, n[0], n[1], n[2]);
        const a = pre ? norm(h, w.ln1) : h;
        const q = F.linear(a, w.q[0]).view(B, 1, K, D).transpose(1, 2); // [B, K, 1, D]
        const [kNew, vNew] = F.linear(a, w.kv[0]).view(B, 1, 2, K, D).permute(2, 0, 3, 1, 4).unbind(0);
        const k = cat([earlier[0]!, kNew!], 2), vv = cat([earlier[1]!, vNew!], 2); // [B, K, 3, D]
        let scores = q.add(relative ? u.unsqueeze(1) : 0).matmul(k.mT); // [B, K, 1, 3]
        if (relative) scores = scores.add(q.add(v.unsqueeze(1)).matmul(P.narrow(2, 1, used)));
        const mixed = scores.mul(0.5).softmax(-1).matmul(vv).transpose(1, 2).flatten(2); // [B, 1, H]
        const attended = F.linear(mixed, w.out[0], w.out[1]);
        const ff = (x: Tensor) => F.linear(F.linear(x, w.up[0], w.up[1]).relu(), w.down[0], w.down[1]);
        let expected: Tensor;
        if (pre) {
          const x = h.add(attended);
          expected = x.add(ff(norm(x, w.ln2)));
        } else {
          const x = norm(h.add(attended), w.ln1);
          expected = norm(x.add(ff(x)), w.ln2);
        }
        const tol = dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 1e-5, rtol: 1e-5 };
        assertClose(got, expected.toArray() as number[][][], tol);
        assertClose(keys.narrow(2, filled, 1), kNew!.toArray() as number[][][][], tol);
        assertClose(values.narrow(2, filled, 1), vNew!.toArray() as number[][][][], tol);
      }
    }
  }
});

test('every op of Tensor, creation.ts and F is exercised by the op tests', () => {
  const here = fileURLToPath(import.meta.url);
  const source = ['ops-forward', 'ops-grad', 'errors']
    .map((name) => readFileSync(here.replace(/ops-forward\.test\.js$/, `${name}.test.js`), 'utf8'))
    .join('\n');
  const skip = new Set(['constructor']);
  const members = Object.getOwnPropertyNames(Tensor.prototype).filter((n) => !skip.has(n));
  const missing = [
    ...members.filter((n) => !new RegExp(`\\.${n.replace('$', '\\$')}\\b`).test(source)).map((n) => `Tensor.${n}`),
    ...Object.keys(creation).filter((n) => !new RegExp(`\\b${n}\\(`).test(source)).map((n) => `creation.${n}`),
    ...Object.keys(F).filter((n) => !new RegExp(`F\\.${n}\\(`).test(source)).map((n) => `F.${n}`),
  ];
  assert.deepEqual(missing, [], `ops without a forward test: ${missing.join(', ')}`);
});
