// Gradients of every differentiable op against float64 central differences (gradcheck), at tiny
// sizes; then the autograd plumbing: backward, retainGraph, accumulation, detach, noGrad, grad().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, F, EngramError, gradcheck, grad, noGrad, enableGrad, isGradEnabled, liveTensors, tidy,
  tensor, zeros, ones, randn, manualSeed, cat, stack, where, einsum, relSkew,
} from '../src/index.js';
import { assertClose } from './helpers.js';

type Data = number | number[] | number[][] | number[][][] | number[][][][];
/** A float64 leaf that requires grad. */
const leaf = (data: Data) => tensor(data as number[], { dtype: 'float64', requiresGrad: true });
const rnd = (shape: number[]) => randn(shape, { dtype: 'float64' }).requiresGrad_();
const i64 = (data: number[] | number[][]) => tensor(data, { dtype: 'int64' });
const bool = (data: boolean[] | boolean[][]) => tensor(data);
/** Asserts that fn's analytic gradients match finite differences. */
function check(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts = {}): void {
  const r = gradcheck(fn, inputs, opts);
  assert.ok(r.ok, r.message);
}

// ---- gradcheck itself ---------------------------------------------------------------------------------

test('gradcheck passes correct gradients, catches wrong ones, and leaks nothing', () => {
  const x = leaf([0.5, -1.5, 2]);
  const before = liveTensors();
  const good = gradcheck((a) => a.mul(a).mul(a), [x]);
  assert.equal(liveTensors(), before);
  assert.equal(good.ok, true);
  assert.ok(good.maxError < 1e-6, good.message);
  assert.equal(good.worst!.input, 0);
  // x.detach() * x has analytic gradient x but true derivative 2x: the check must fail
  const bad = gradcheck((a) => a.detach().mul(a), [x]);
  assert.equal(liveTensors(), before);
  assert.equal(bad.ok, false);
  assert.match(bad.message, /FAILED/);
  assert.ok(bad.maxError > 1);
  const w = bad.worst!;
  assert.equal(w.input, 0);
  assert.ok(w.analytic !== 0);
  assertClose(tensor(w.numeric / w.analytic, { dtype: 'float64' }), 2, { atol: 1e-6 }); // 2x against x, whatever the weight
  assert.equal(x.grad, null); // gradcheck leaves .grad alone
});

test('gradcheck: float64 only for differentiated inputs; constants pass through; unused inputs', () => {
  const f32 = tensor([1, 2], { requiresGrad: true });
  assert.throws(() => gradcheck((a) => a.mul(2), [f32]), (e: unknown) =>
    e instanceof EngramError && e.kind === 'config' && e.op === 'gradcheck');
  assert.throws(() => gradcheck((a) => a.mul(2), [tensor([1], { dtype: 'float64' })]), (e: unknown) =>
    e instanceof EngramError && e.kind === 'config');
  // an int64 index and a float32 constant that do not require grad are fine
  const w = leaf([[1, 2], [3, 4], [5, 6]]);
  check((idx, weight, scale) => F.embedding(idx, weight).mul(scale), [i64([2, 0, 2]), w, tensor([2])]);
  // a non-contiguous input (a transposed leaf): element order is its logical C order
  const t = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float64' }).mT.detach().requiresGrad_();
  assert.equal(t.isContiguous(), false);
  check((a) => a.mul(tensor([[1, 10], [100, 1000], [-1, -10]], { dtype: 'float64' })).pow(2), [t]);
  // an input the output does not depend on has zero gradient both ways
  check((a, _b) => a.exp(), [leaf([1, 2]), leaf([3])]);
  // options are honoured: a tolerance too tight for central differences fails
  // (the truncation error of a step of 1e-2 on exp(3) is about 3e-4)
  assert.equal(gradcheck((a) => a.exp(), [leaf([3])], { eps: 1e-2, rtol: 0 }).ok, false);
  assert.equal(gradcheck((a) => a.exp(), [leaf([3])], { eps: 1e-2, rtol: 0, atol: 1e-3 }).ok, true);
});

// ---- elementwise ---------------------------------------------------------------------------------------

test('grad: arithmetic with broadcasting and scalars', () => {
  manualSeed(1);
  const a = rnd([2, 1]), b = rnd([3]), c = rnd([2, 3]);
  check((x, y) => x.add(y), [a, b]);
  check((x, y) => x.add(y, -2.5), [a, b]);
  check((x, y) => x.sub(y), [a, c]);
  check((x, y) => x.mul(y), [a, b]);
  check((x, y) => x.div(y), [c, leaf([1.5, -2, 3])]);
  check((x) => x.add(3).sub(1).mul(-2).div(4), [c]);
  check((x) => x.rsub(2), [c]);
  check((x) => x.rdiv(2), [leaf([0.5, -1.5, 2])]);
  check((x) => x.neg(), [c]);
  check((x, y, z) => x.addcmul(y, z, 0.5), [c, a, b]);
  check((x, y, z) => x.addcdiv(y, z, 2), [c, a, leaf([1.5, -2, 3])]);
  check((x, y) => x.lerp(y, 0.3), [c, b]);
  check((x, y) => x.maximum(y), [leaf([1, -2, 3]), leaf([[0, 0, 4], [2, -3, 0]])]);
  check((x, y) => x.minimum(y), [leaf([1, -2, 3]), leaf([[0, 0, 4], [2, -3, 0]])]);
  check((x, y) => x.atan2(y), [c, leaf([1.5, -2, 3])]);
  check((x) => x.remainder(1.5), [leaf([0.2, 2.1, -0.7])]);
});

test('grad: pow, exp, log and the other unary functions', () => {
  const pos = leaf([0.5, 1.3, 2.2]);
  const mixed = leaf([-1.7, -0.4, 0.3, 1.2, 2.5]);
  check((x) => x.pow(3), [mixed]);
  check((x) => x.pow(-1.5), [pos]);
  check((x, y) => x.pow(y), [pos, leaf([[2, -0.5, 1.5]])]);
  check((x) => x.rpow(2.5), [mixed]);
  for (const name of ['exp', 'expm1', 'sin', 'cos', 'tanh', 'sigmoid', 'logSigmoid', 'silu', 'erf', 'square', 'abs', 'relu'] as const) {
    check((x) => x[name](), [mixed]);
  }
  for (const name of ['log', 'log1p', 'log2', 'sqrt', 'rsqrt', 'reciprocal'] as const) {
    check((x) => x[name](), [pos]);
  }
  check((x) => x.gelu(), [mixed]);
  check((x) => x.gelu('tanh'), [mixed]);
  check((x) => x.softplus(), [mixed]);
  check((x) => x.softplus(2, 1), [mixed]); // crosses the threshold (beta * x > 1 for the last two)
  check((x) => x.leakyRelu(0.2), [mixed]);
  check((x) => F.relu(x).add(F.gelu(x)).add(F.silu(x)).add(F.sigmoid(x)).add(F.tanh(x)), [mixed]);
});

test('grad: clamp with numbers and tensors', () => {
  const x = leaf([-2, -0.5, 0.3, 1.7]);
  check((a) => a.clamp(-1, 1), [x]);
  check((a) => a.clampMin(0), [x]);
  check((a) => a.clampMax(0.5), [x]);
  check((a, lo, hi) => a.clamp(lo, hi), [x, leaf([-1, 0, 0, 0]), leaf([1, 1, 1, 1])]);
});

// ---- nn functions ----------------------------------------------------------------------------------------

test('grad: softmax, logSoftmax (dims 0 and -1)', () => {
  manualSeed(2);
  const x = rnd([2, 3]);
  check((a) => a.softmax(-1), [x]);
  check((a) => a.softmax(0), [x]);
  check((a) => a.logSoftmax(-1), [x]);
  check((a) => F.logSoftmax(a, 0), [x]);
  check((a) => F.softmax(a, 1), [x]);
});

test('grad: maskedSoftmax with a mask, scale != 1, a fully masked row, dim 0', () => {
  manualSeed(3);
  const x = rnd([3, 4]);
  const mask = bool([[false, true, false, false], [true, true, true, true], [false, false, false, true]]);
  check((a) => F.maskedSoftmax(a, mask, { scale: 0.7 }), [x]);
  check((a) => F.maskedSoftmax(a, mask, { scale: 2 }), [x]);
  check((a) => F.maskedSoftmax(a, null, { scale: 1.5 }), [x]);
  check((a) => F.maskedSoftmax(a, bool([[false], [true], [false]]), { dim: 0 }), [x]);
  // the fully masked row: zeros forward, zero gradient backward
  const y = F.maskedSoftmax(x, mask, { scale: 2 });
  assertClose(y.select(0, 1), [0, 0, 0, 0]);
  const [g] = grad(y.mul(tensor([[1, 2, 3, 4]], { dtype: 'float64' })).sum(), [x]);
  assertClose(g!.select(0, 1), [0, 0, 0, 0]);
  assertClose(g!.sum(1), [0, 0, 0], { atol: 1e-12 }); // softmax gradients sum to zero along the row
  // same values and gradient as softmax of the scaled, masked logits
  const ref = x.mul(0.7).maskedFill(mask, -Infinity).softmax(-1);
  const keep = bool([[true], [false], [true]]);
  assertClose(F.maskedSoftmax(x, mask, { scale: 0.7 }).maskedSelect(keep), ref.maskedSelect(keep).toArray(), { atol: 1e-12 });
});

test('grad: maskedSoftmax with masks broadcast over batch and heads ([Tq, Tk], [B, 1, Tq, Tk]), float64 and float32, against the composed ops', () => {
  manualSeed(9);
  const x = rnd([2, 3, 4, 5]);
  const causal = bool(Array.from({ length: 4 }, (_, i) => Array.from({ length: 5 }, (_, j) => j > i + 1))); // [Tq, Tk]
  const perBatch = randn([2, 1, 4, 5]).gt(0.3); // [B, 1, Tq, Tk], some rows fully masked
  perBatch.select(0, 1).select(1, 2).fill_(1); // batch 1, row 2: every key masked
  const window = randn([6, 9]).gt(0).narrow(0, 1, 4).narrow(1, 3, 5); // a view with a storage offset and row stride 9
  for (const mask of [causal, perBatch, window, null]) {
    check((a) => F.maskedSoftmax(a, mask, { scale: 0.6 }), [x]);
    check((a) => F.maskedSoftmax(a, mask), [x]);
  }
  for (const dtype of ['float64', 'float32'] as const) {
    const a = x.detach().to(dtype).requiresGrad_();
    const w = randn([2, 3, 4, 5], { dtype });
    for (const mask of [causal, perBatch, window]) {
      const ref = a.mul(0.6).maskedFill(mask, -Infinity).softmax(-1).maskedFill(mask, 0); // the NaN rows zeroed
      const y = F.maskedSoftmax(a, mask, { scale: 0.6 });
      assert.deepEqual(y.toArray(), ref.toArray()); // the same logits and ATen's softmax: bit for bit
      const [gy] = grad(y.mul(w).sum(), [a]);
      const [gr] = grad(ref.mul(w).sum(), [a]);
      assertClose(gy!, gr!.toArray() as number[], { atol: dtype === 'float32' ? 1e-6 : 1e-12 });
    }
  }
});

test('grad: bandedMatmul with the band on the output and on the left operand (float64: the composed version)', () => {
  manualSeed(32);
  const blocks = [1, 3, 0, 2, 3, 5, 2, 4]; // row 0 outside every block
  check((a, b) => F.bandedMatmul(a, b, blocks), [rnd([2, 5, 3]), rnd([2, 3, 4])]);
  check((a, b) => F.bandedMatmul(a, b, blocks, { left: true }), [rnd([2, 5, 4]), rnd([1, 4, 3])]);
  check((a, b) => F.weightedValues(a, b, blocks), [rnd([1, 2, 5, 4]), rnd([1, 2, 4, 3])]);
});

test('grad: splitHeads, every part used or one of them only', () => {
  manualSeed(33);
  const x = rnd([2, 3, 12]);
  check((t) => { const [k, v] = F.splitHeads(t, 2, 3); return k!.mul(2).add(v!.pow(2)); }, [x]);
  check((t) => F.splitHeads(t, 2, 3)[1]!.pow(2), [x]); // the keys take no gradient: zeros there
  check((t) => F.splitHeads(t.narrow(1, 1, 2), 3, 2)[2]!.mul(3), [x]); // a non-contiguous input
});

test('grad: softMaskRenorm against p and a broadcast mask; same values as the composed ops', () => {
  manualSeed(31);
  // p: attention weights [B, K, Tq, Tk] with a fully masked row (zeros); m in [0, 1] with exact 0s and 1s
  const p = F.maskedSoftmax(randn([2, 3, 4, 5], { dtype: 'float64' }), randn([2, 1, 4, 5]).gt(1)).detach().requiresGrad_();
  const mask = (shape: number[]) => randn(shape, { dtype: 'float64' }).mul(0.8).add(0.5).clamp(0, 1).detach().requiresGrad_();
  for (const shape of [[2, 3, 4, 5], [1, 3, 1, 5], [2, 1, 4, 5], [4, 5]]) {
    const m = mask(shape);
    check((a, mm) => F.softMaskRenorm(a, mm), [p, m]);
    check((a, mm) => F.softMaskRenorm(a, mm, { eps: 0.3 }), [p, m]);
    check((mm) => F.softMaskRenorm(p.detach(), mm), [m]); // only the mask requires grad
  }
  check((a, mm) => F.softMaskRenorm(a, mm, { dim: 2 }), [p, mask([2, 3, 4, 1])]);
  // float32: bit-identical forward to mul / sum / add / div, gradients equal to theirs up to rounding
  const p32 = p.detach().float().requiresGrad_(), m32 = mask([1, 3, 4, 5]).detach().float().requiresGrad_();
  const composed = (a: Tensor, mm: Tensor) => { const q = a.mul(mm); return q.div(q.sum(-1, true).add(1e-8)); };
  const w = randn([2, 3, 4, 5]);
  const fused = F.softMaskRenorm(p32, m32);
  assert.deepEqual(fused.toArray(), composed(p32, m32).toArray());
  const [gp, gm] = grad(fused.mul(w).sum(), [p32, m32]);
  const [rp, rm] = grad(composed(p32, m32).mul(w).sum(), [p32, m32]);
  assertClose(gp!, rp!.toArray() as number[], { atol: 1e-5 });
  assertClose(gm!, rm!.toArray() as number[], { atol: 1e-5 });
});

test('grad: layerNorm (input, weight, bias), linear, embedding (weight)', () => {
  manualSeed(4);
  const x = rnd([2, 3]), w = rnd([3]), b = rnd([3]);
  check((a, ww, bb) => F.layerNorm(a, 3, ww, bb), [x, w, b]);
  check((a) => F.layerNorm(a, [2, 3]), [x]);
  const lw = rnd([4, 3]), lb = rnd([4]);
  check((a, ww, bb) => F.linear(a, ww, bb), [x, lw, lb]);
  check((a, ww) => F.linear(a, ww), [rnd([2, 2, 3]), lw]);
  const emb = rnd([4, 2]);
  check((weight) => F.embedding(i64([[3, 1], [1, 0]]), weight), [emb]);
  // paddingIdx: that row gets no gradient (deliberately not the true derivative)
  const [g] = grad(F.embedding(i64([0, 1, 1]), emb, 1).sum(), [emb]);
  assertClose(g!, [[1, 1], [0, 0], [0, 0], [0, 0]]);
  const [gl] = grad(F.embedding(i64([3, 0, 3]), emb, -1).sum(), [emb]); // -1: the last row, as PyTorch
  assertClose(gl!, [[1, 1], [0, 0], [0, 0], [0, 0]]);
});

test('grad: linearOverCat (two pieces of rows, weight, bias): the gradients of linear over the cat, each piece its own', () => {
  manualSeed(12);
  const prefix = randn([2, 5, 3], { dtype: 'float64' }); // a detached cache
  const x = rnd([2, 4, 3]), w = rnd([6, 3]), b = rnd([6]);
  check((a, ww, bb) => F.linearOverCat(prefix, a, ww, bb), [x, w, b]);
  check((a, ww) => F.linearOverCat(prefix, a, ww), [x, w]);
  check((p, a, ww) => F.linearOverCat(p, a, ww), [prefix.detach().requiresGrad_(), x, w]); // both pieces take a gradient
  check((p, ww) => F.linearOverCat(p, x.detach(), ww), [prefix.detach().requiresGrad_(), w]); // the first piece only (MemBottleneck: memory, then a detached cache)
  check((ww) => F.linearOverCat(prefix, x.detach(), ww), [w]); // only the weight
  // float32: the same values and gradients as linear(cat(prefix, x)), bit for bit on this machine's BLAS; x's gradient is [B, T, in]
  const p32 = prefix.float(), x32 = x.detach().float().requiresGrad_(), w32 = w.detach().float().requiresGrad_();
  const g = randn([2, 9, 6]);
  const fused = F.linearOverCat(p32, x32, w32);
  const composed = F.linear(cat([p32, x32], 1), w32);
  assertClose(fused, composed.toArray() as number[], { atol: 1e-6 });
  const [fx, fw] = grad(fused.mul(g).sum(), [x32, w32]);
  const [cx, cw] = grad(composed.mul(g).sum(), [x32, w32]);
  assert.deepEqual(fx!.shape, [2, 4, 3]);
  assertClose(fx!, cx!.toArray() as number[], { atol: 1e-5 });
  assertClose(fw!, cw!.toArray() as number[], { atol: 1e-4 });
  assert.match(fused.gradFn ?? '', /LinearOverCat/);
  const [fp] = grad(F.linearOverCat(x32, p32, w32).mul(g).sum(), [x32]); // x first, the detached piece second
  assertClose(fp!, grad(F.linear(cat([x32, p32], 1), w32).mul(g).sum(), [x32])[0]!.toArray() as number[], { atol: 1e-5 });
  assert.throws(() => F.linearOverCat(randn([2, 5, 4]), x32, w32), EngramError); // the rows' widths differ
});

test('grad: skewAdd (content plus a skewed read of x) against its formula', () => {
  manualSeed(14);
  const content = rnd([2, 3, 4]), x = rnd([2, 3, 5]); // Tq 3, Tk 4, W 5: flat entries base + 4i + j of 15
  for (const base of [0, 1, 3]) {
    check((c, a) => F.skewAdd(c, a, base), [content, x]);
    const flat = x.detach().reshape([2, 15]);
    const expected = content.detach().add(flat.narrow(1, base, 12).reshape([2, 3, 4]));
    assertClose(F.skewAdd(content, x, base), expected.toArray() as number[], { atol: 1e-12 });
  }
  // rows apart by a stride wider than Tk: relSkew's read (base Tq − 1, rowStride W − 1), entry [i, j] = x[i, j + Tq − 1 − i]
  const wide = rnd([2, 3, 6]); // Tq 3, Tk 4, W = Tk + Tq − 1 = 6
  check((c, a) => F.skewAdd(c, a, 2, 5), [content, wide]);
  const w = wide.detach().toArray() as number[][][];
  const byHand = (content.detach().toArray() as number[][][]).map((m, b) => m.map((row, i) => row.map((v, j) => v + w[b]![i]![j + 2 - i]!)));
  assert.deepEqual(F.skewAdd(content, wide, 2, 5).toArray(), byHand);
  assert.deepEqual(F.skewAdd(content, wide, 2, 5).toArray(), content.detach().add(relSkew(wide.detach())).toArray());
  // float32 rows longer than a vector, content a transposed (non-contiguous) view: the composed add's sums exactly
  const content32 = randn([2, 2, 9, 40]).transpose(2, 3), wide32 = randn([2, 2, 40, 48]); // Tq 40, Tk 9, W 48
  assert.deepEqual(F.skewAdd(content32, wide32, 39, 47).toArray(), content32.add(relSkew(wide32)).toArray());
  assert.throws(() => F.skewAdd(content, wide, 0, 3), /rowStride must be at least Tk/);
  assert.throws(() => F.skewAdd(content, wide, 5, 5), /must be within/); // 5 + 2·5 + 4 = 19 > 18 entries
});

test('grad: feedForward (linear, ReLU, linear in one op) against the composed ops', () => {
  manualSeed(13);
  const x = rnd([2, 3, 4]), w1 = rnd([5, 4]), b1 = rnd([5]), w2 = rnd([3, 5]), b2 = rnd([3]);
  check((a, u, c, d, e) => F.feedForward(a, u, c, d, e), [x, w1, b1, w2, b2]);
  check((u, d) => F.feedForward(x.detach(), u, b1.detach(), d, b2.detach()), [w1, w2]);
  // float32: the composition's values and gradients (rectified units included: b1 shifted so that about half are off)
  const ps = [x, w1, b1, w2, b2].map((t) => t.detach().float().requiresGrad_());
  const [a, u, c, d, e] = ps as [Tensor, Tensor, Tensor, Tensor, Tensor];
  const composed = F.linear(F.linear(a, u, c).relu(), d, e);
  const fused = F.feedForward(a, u, c, d, e);
  assertClose(fused, composed.toArray() as number[], { atol: 1e-6 });
  const g = randn([2, 3, 3]);
  const gf = grad(fused.mul(g).sum(), ps), gc = grad(composed.mul(g).sum(), ps);
  gf.forEach((t, i) => assertClose(t!, gc[i]!.toArray() as number[], { atol: 1e-5 }));
  assert.match(fused.gradFn ?? '', /FeedForwardRelu/);
});

test('grad: crossEntropy (ignoreIndex, labelSmoothing, weight, reductions), nllLoss, mseLoss, bce', () => {
  manualSeed(5);
  const logits = rnd([3, 4]);
  const target = i64([1, -100, 3]);
  check((l) => F.crossEntropy(l, target), [logits]);
  check((l) => F.crossEntropy(l, i64([1, 2, 3]), { ignoreIndex: 2, labelSmoothing: 0.2 }), [logits]);
  check((l) => F.crossEntropy(l, target, { labelSmoothing: 0.1, reduction: 'sum' }), [logits]);
  check((l) => F.crossEntropy(l, target, { reduction: 'none' }), [logits]);
  check((l) => F.crossEntropy(l, i64([0, 2, 3]), { weight: tensor([1, 2, 0.5, 1], { dtype: 'float64' }) }), [logits]);
  check((l) => F.crossEntropy(l, i64([[1, 0]])), [rnd([1, 4, 2])]);
  // the ignored row gets exactly zero gradient
  const [g] = grad(F.crossEntropy(logits, target, { labelSmoothing: 0.1 }), [logits]);
  assertClose(g!.select(0, 1), [0, 0, 0, 0]);
  check((l) => F.nllLoss(l.logSoftmax(-1), target), [logits]);
  check((a, b) => F.mseLoss(a, b), [rnd([2, 3]), rnd([2, 3])]);
  check((a, b) => F.mseLoss(a, b, 'none'), [rnd([3]), rnd([3])]);
  check((a) => F.binaryCrossEntropyWithLogits(a, tensor([0, 1, 0.3], { dtype: 'float64' }), { posWeight: tensor([2, 1, 3], { dtype: 'float64' }) }), [rnd([3])]);
});

test('grad: matmul, mm, bmm, baddbmm, outer, einsum', () => {
  manualSeed(6);
  check((a, b) => a.matmul(b), [rnd([2, 3]), rnd([3, 2])]);
  check((a, b) => a.matmul(b), [rnd([2, 2, 3]), rnd([3])]);
  check((a, b) => a.matmul(b), [rnd([2, 1, 2, 3]), rnd([2, 3, 2])]); // broadcast batch dims
  check((a, b) => a.mm(b), [rnd([2, 3]), rnd([3, 2])]);
  check((a, b) => a.bmm(b), [rnd([2, 2, 3]), rnd([2, 3, 2])]);
  check((t, a, b) => t.baddbmm(a, b, { beta: 0.5, alpha: -2 }), [rnd([2, 2, 2]), rnd([2, 2, 3]), rnd([2, 3, 2])]);
  check((a, b) => a.outer(b), [rnd([2]), rnd([3])]);
  check((a, b) => einsum('bij,bjk->bik', a, b), [rnd([2, 2, 3]), rnd([2, 3, 2])]);
  check((a) => einsum('ii->', a), [rnd([3, 3])]);
  check((a, b) => einsum('i,j->ij', a, b), [rnd([2]), rnd([3])]);
});

test('grad: reductions', () => {
  manualSeed(7);
  const x = rnd([2, 3]);
  check((a) => a.sum(), [x]);
  check((a) => a.sum(-1, true), [x]);
  check((a) => a.sum([0, 1]), [x]);
  check((a) => a.sum(null, true), [x]);
  check((a) => a.mean(0), [x]);
  check((a) => a.mean(), [x]);
  const distinct = leaf([[0.3, -1.2, 2.5], [1.1, 0.7, -0.4]]);
  check((a) => a.max(), [distinct]);
  check((a) => a.max(-1), [distinct]);
  check((a) => a.min(0, true), [distinct]);
  check((a) => a.maxDim(1)[0], [distinct]);
  check((a) => a.minDim(-1, true)[0], [distinct]);
  check((a) => a.logsumexp(-1), [x]);
  check((a) => a.logsumexp([0, 1], true), [x]);
  check((a) => a.var(), [x]);
  check((a) => a.var(1, { correction: 0 }), [x]);
  check((a) => a.std(0), [x]);
  check((a) => a.std(null, { keepdim: true }), [x]);
  check((a) => a.norm(), [x]);
  check((a) => a.norm(1, -1), [distinct]);
  check((a) => a.norm(3, 0, true), [distinct]);
  check((a) => a.cumsum(-1), [x]);
  check((a) => a.cumsum(0), [x]);
  check((a) => a.cumprod(1), [distinct]);
  check((a) => a.prod(), [distinct]);
  check((a) => a.prod(-1), [distinct]);
  check((a) => a.prod(0, true), [distinct]);
  check((a) => a.topk(2)[0], [distinct]);
  check((a) => a.sort(0, true)[0], [distinct]);
});

test('grad: shape ops', () => {
  manualSeed(8);
  const x = rnd([2, 3, 2]);
  check((a) => a.reshape(3, -1), [x]);
  check((a) => a.view(6, 2), [x]);
  check((a) => a.permute(2, 0, 1), [x]);
  check((a) => a.transpose(0, -1).contiguous(), [x]);
  check((a) => a.mT, [x]);
  check((a) => a.flatten(1), [x]);
  check((a) => a.narrow(1, 1, 2), [x]);
  check((a) => a.slice(1, 0, null, 2), [x]);
  check((a) => a.slice(-1, -1), [x]);
  check((a) => a.select(1, -1), [x]);
  check((a, b) => cat([a, b], -1), [x, rnd([2, 3, 1])]);
  check((a, b) => stack([a, b], 1), [rnd([2, 3]), rnd([2, 3])]);
  check((a) => { const [p, q] = a.split([1, 2], 1); return p.mul(2).add(q.sum(1, true)); }, [x]);
  check((a) => a.split(1, 0)[1]!, [x]);
  check((a) => { const [p, q] = a.chunk(2, -1); return p!.mul(q!); }, [x]);
  check((a) => { const [p, q] = a.unbind(0); return p!.sub(q!.mul(3)); }, [x]);
  check((a) => a.expand(3, 2, 3).mul(tensor([[[1], [2]], [[3], [4]], [[5], [6]]], { dtype: 'float64' })), [rnd([2, 1])]);
  check((a, b) => a.expandAs(b).add(b), [rnd([1, 3]), rnd([2, 3])]);
  check((a) => a.unsqueeze(-1).squeeze(0), [rnd([1, 3])]);
  check((a) => a.squeeze(), [rnd([1, 3, 1])]);
  check((a) => F.pad(a, [2, 1], 'constant', 0.5), [rnd([1, 2, 3])]);
  check((a) => F.pad(a, [2, 1], 'reflect'), [rnd([1, 2, 3])]);
  check((a) => F.pad(a, [1, 2], 'replicate'), [rnd([1, 2, 3])]);
  check((a) => F.pad(a, [2, 1], 'circular'), [rnd([1, 2, 3])]);
  check((a) => F.pad(a, [1, -1, 0, 1]), [rnd([2, 3])]);
  check((a) => a.flip(0, -1), [x]);
  check((a) => a.roll([1, -1], [0, 1]), [x]);
  check((a) => a.repeat(2, 1, 3), [x]);
  check((a) => a.repeatInterleave(2, 1), [x]);
  check((a) => a.unfold(1, 2, 1), [x]);
  check((a) => a.tril(), [rnd([3, 3])]);
  check((a) => a.triu(1), [rnd([3, 3])]);
});

test('grad: indexing ops', () => {
  manualSeed(9);
  const x = rnd([3, 2]);
  check((a) => a.indexSelect(0, i64([2, 0, 2])), [x]);
  check((a) => a.indexSelect(-1, i64([1])), [x]);
  check((a) => a.gather(1, i64([[0, 0], [1, 0], [1, 1]])), [x]);
  const idx = i64([[0, 2], [1, 0]]);
  check((a, s) => a.scatter(1, idx, s), [rnd([2, 3]), rnd([2, 2])]);
  check((a) => a.scatter(1, idx, 0.5), [rnd([2, 3])]);
  check((a, s) => a.scatterAdd(0, i64([[0, 1], [0, 0]]), s), [rnd([2, 2]), rnd([2, 2])]);
  check((a, s) => a.scatterReduce(0, i64([0, 0, 2]), s, 'sum'), [rnd([3]), rnd([3])]);
  check((a, s) => a.scatterReduce(0, i64([0, 0, 2]), s, 'mean', false), [rnd([3]), rnd([3])]);
  check((a, s) => a.scatterReduce(0, i64([0, 0, 2]), s, 'amax'), [leaf([0.1, 0.2, 0.3]), leaf([0.5, 0.9, -1])]);
  check((a) => a.maskedFill(bool([true, false]), -3), [x]);
  check((a) => a.maskedSelect(bool([[true, false], [false, true], [true, true]])), [x]);
  const cond = bool([[true, false], [false, true], [true, true]]);
  check((a, b) => where(cond, a, b), [x, rnd([2])]);
  check((a) => where(cond, a, 0), [x]);
  check((a) => where(cond, 1, a), [x]);
  check((a) => a.index([i64([2, 0, 2]), i64([1, 1, 0])]), [x]);
  check((a) => a.index([null, i64([1, 0, 1])]), [x]);
  check((a) => a.index([bool([true, false, true])]), [x]);
  check((a, v) => a.indexPut([i64([0, 2])], v), [x, rnd([2, 2])]);
  check((a, v) => a.indexPut([i64([0, 0])], v, true), [x, rnd([2])]);
});

test('grad: conv1d, conv2d, pooling, dropout with p = 0', () => {
  manualSeed(10);
  check((x, w, b) => F.conv1d(x, w, b), [rnd([1, 2, 5]), rnd([3, 2, 3]), rnd([3])]);
  check((x, w) => F.conv1d(x, w, null, { stride: 2, padding: 1, dilation: 1 }), [rnd([2, 1, 5]), rnd([2, 1, 2])]);
  check((x, w) => F.conv1d(x, w, null, { dilation: 2, groups: 2 }), [rnd([1, 2, 6]), rnd([4, 1, 2])]);
  check((x, w, b) => F.conv2d(x, w, b, { padding: 1 }), [rnd([1, 1, 3, 3]), rnd([2, 1, 2, 2]), rnd([2])]);
  check((x) => F.avgPool1d(x, 2), [rnd([1, 2, 4])]);
  check((x) => F.avgPool1d(x, 3, { stride: 1, padding: 1 }), [rnd([1, 1, 4])]);
  check((x) => F.avgPool1d(x, 2, { ceilMode: true }), [rnd([1, 1, 5])]);
  const distinct = leaf([[[0.3, -1.2, 2.5, 1.1, 0.7, -0.4]]]);
  check((x) => F.maxPool1d(x, 2), [distinct]);
  check((x) => F.maxPool1d(x, 3, { stride: 1, padding: 1 }), [distinct]);
  check((x) => F.avgPool2d(x, 2), [rnd([1, 1, 4, 4])]);
  check((x) => F.maxPool2d(x, 2), [distinct.reshape(1, 1, 2, 3).detach().requiresGrad_()]);
  check((x) => F.adaptiveAvgPool1d(x, 4), [rnd([1, 1, 6])]);
  check((x) => F.dropout(x, 0), [rnd([2, 3])]);
  check((x) => F.dropout(x, 0.5, false), [rnd([2, 3])]);
});

test('grad: a small attention block end to end', () => {
  manualSeed(11);
  const q = rnd([1, 2, 3, 2]), k = rnd([1, 2, 3, 2]), v = rnd([1, 2, 3, 2]);
  const causal = ones([3, 3]).triu(1).bool();
  check((qq, kk, vv) => F.maskedSoftmax(qq.matmul(kk.mT), causal, { scale: 1 / Math.sqrt(2) }).matmul(vv), [q, k, v]);
});

// ---- autograd plumbing -------------------------------------------------------------------------------

test('backward with a gradient argument; backward of a non-scalar without one throws', () => {
  const x = leaf([1, 2, 3]);
  const y = x.mul(x);
  y.backward(tensor([1, 0.5, -1], { dtype: 'float64' }));
  assertClose(x.grad!, [2, 2, -6]);
  const z = x.mul(2);
  assert.throws(() => z.backward(), (e: unknown) => e instanceof EngramError && e.op === 'backward');
});

test('retainGraph: a second backward works only with it', () => {
  const x = leaf([1, 2]);
  const y = x.exp().sum();
  y.backward(undefined, { retainGraph: true });
  y.backward();
  assertClose(x.grad!, [2 * Math.E, 2 * Math.exp(2)]);
  const z = x.exp().sum();
  z.backward();
  assert.throws(() => z.backward(), (e: unknown) =>
    e instanceof EngramError && e.op === 'backward' && /second time|already been freed/.test(e.message));
});

test('gradients accumulate across backward calls; zeroGrad drops them; grad setter', () => {
  const x = leaf([1, -2]);
  x.mul(3).sum().backward();
  assertClose(x.grad!, [3, 3]);
  x.mul(x).sum().backward();
  assertClose(x.grad!, [5, -1]);
  x.zeroGrad();
  assert.equal(x.grad, null);
  x.mul(x).sum().backward();
  assertClose(x.grad!, [2, -4]);
  x.grad = tensor([7, 7], { dtype: 'float64' });
  assertClose(x.grad!, [7, 7]);
  x.grad = null;
  assert.equal(x.grad, null);
});

test('hasGrad: whether a gradient has accumulated, without leaving a handle behind', () => {
  const x = leaf([1, -2]);
  const before = liveTensors();
  assert.equal(x.hasGrad, false);
  tidy(() => x.mul(3).sum().backward());
  assert.equal(x.hasGrad, true);
  assert.equal(liveTensors(), before);
  x.zeroGrad();
  assert.equal(x.hasGrad, false);
});

test('leaf and graph metadata: requiresGrad, requiresGrad_, isLeaf, gradFn, retainGrad', () => {
  const x = tensor([1, 2], { dtype: 'float64' });
  assert.equal(x.requiresGrad, false);
  assert.equal(x.requiresGrad_(), x);
  assert.equal(x.requiresGrad, true);
  x.requiresGrad = false;
  assert.equal(x.requiresGrad, false);
  x.requiresGrad = true;
  assert.equal(x.isLeaf, true);
  assert.equal(x.gradFn, null);
  const y = x.mul(2);
  assert.equal(y.isLeaf, false);
  assert.match(y.gradFn!, /^MulBackward/);
  assert.equal(y.retainGrad(), y);
  y.sum().backward();
  assertClose(y.grad!, [1, 1]); // kept for a non-leaf only because of retainGrad
});

test('detach and detach_ cut the graph', () => {
  const x = leaf([1, 2, 3]);
  const d = x.detach();
  assert.equal(d.requiresGrad, false);
  assert.equal(d.gradFn, null);
  x.mul(d).sum().backward(); // d is a constant: d/dx (x * d) = d
  assertClose(x.grad!, [1, 2, 3]);
  const y = x.mul(2);
  assert.equal(y.detach_(), y);
  assert.equal(y.gradFn, null);
  assert.equal(y.requiresGrad, false);
  d.fill_(0); // detach shares memory
  assertClose(x, [0, 0, 0]);
});

test('noGrad records nothing; enableGrad turns recording back on', () => {
  const x = leaf([1, 2]);
  assert.equal(isGradEnabled(), true);
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    const inner = enableGrad(() => {
      assert.equal(isGradEnabled(), true);
      return x.mul(2);
    });
    assert.match(inner.gradFn!, /^MulBackward/);
    return x.mul(2).add(1);
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(y.gradFn, null);
  assert.equal(y.requiresGrad, false);
  assertClose(y, [3, 5]);
  // an exception inside restores the mode
  assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
  assert.equal(isGradEnabled(), true);
});

test('grad() returns gradients and leaves .grad untouched; allowUnused; createGraph', () => {
  const x = leaf([1, 2]), u = leaf([5]);
  const y = x.pow(3).sum();
  const [g] = grad(y, [x], { retainGraph: true });
  assertClose(g!, [3, 12]);
  assert.equal(x.grad, null);
  assert.throws(() => grad(y, [x, u], { retainGraph: true }), EngramError); // u is unused
  const [gx, gu] = grad(y, [x, u], { allowUnused: true, retainGraph: true });
  assertClose(gx!, [3, 12]);
  assert.equal(gu, null);
  const [g2] = grad(y, [x], { gradOutputs: [tensor(2, { dtype: 'float64' })] });
  assertClose(g2!, [6, 24]);
  // second derivative through createGraph: d2/dx2 x^3 = 6x
  const [first] = grad(x.pow(3).sum(), [x], { createGraph: true });
  assert.equal(first!.requiresGrad, true);
  const [second] = grad(first!.sum(), [x]);
  assertClose(second!, [6, 12]);
  assert.equal(x.grad, null);
  // several outputs at once
  const [gm] = grad([x.sum(), x.mul(x).sum()], [x]);
  assertClose(gm!, [3, 5]);
});

test('training-style loop inside tidy leaks nothing', () => {
  const w = leaf([[0.5, -0.5], [0.25, 1]]);
  const before = liveTensors();
  const losses: number[] = [];
  for (let step = 0; step < 3; step++) {
    tidy(() => {
      const loss = F.mseLoss(tensor([[1, 2]], { dtype: 'float64' }).matmul(w), zeros([1, 2], { dtype: 'float64' }));
      losses.push(loss.item());
      loss.backward();
      noGrad(() => w.sub_(w.grad!.mul(0.1)));
      w.zeroGrad();
    });
  }
  assert.equal(liveTensors(), before);
  // loss = mean((x w)^2) with x w = [1, 1.5] at the start: 1.625, and it decreases
  assertClose(tensor(losses[0]!, { dtype: 'float64' }), 1.625);
  assert.ok(losses[2]! < losses[1]! && losses[1]! < losses[0]!);
});
