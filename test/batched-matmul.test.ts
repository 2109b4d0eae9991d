// Batched float32 products on their own kernel (native/src/matmul_ops.cpp: the batch entries in
// parallel, one oneDNN sgemm each): values and gradients against the same products in float64
// through ATen, for the layouts attention feeds it (head-split views, transposed keys, a relative
// key table broadcast over the batch, size-1 dims) on one and two threads; banded products (bandedMatmul,
// weightedValues with blocks) against float64 products with their band.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { batchedMatmulKernel, F, getNumThreads, grad, manualSeed, randn, setNumThreads, tensor, tidy, type Tensor } from '../src/index.js';

/** max |x - y| / max(1, max |y|) over two tensors of one shape. */
function relativeError(x: Tensor, y: Tensor): number {
  return tidy(() => {
    const diff = x.to('float64').sub(y.to('float64')).abs().max().item() as number;
    return diff / Math.max(1, y.to('float64').abs().max().item() as number);
  });
}

interface Case {
  name: string;
  /** shapes of the leaves (float32 randn, then float64 copies) */
  leaves: number[][];
  /** the operands, as views of the leaves */
  operands: (leaves: Tensor[]) => { a: Tensor; b: Tensor };
}

const plain = ([a, b]: Tensor[]) => ({ a: a!, b: b! });
const CASES: Case[] = [
  { name: 'contiguous [2,3,5,4] @ [2,3,4,6]', leaves: [[2, 3, 5, 4], [2, 3, 4, 6]], operands: plain },
  {
    name: 'head-split q @ kᵀ from one [B,T,2,K,D] projection', // [3, 2, 7, 8] each, strided
    leaves: [[3, 7, 2, 2, 8]],
    operands: ([kv]) => ({ a: kv!.select(2, 0).transpose(1, 2), b: kv!.select(2, 1).transpose(1, 2).mT }),
  },
  { name: 'relative key table [K,D,R] broadcast over the batch', leaves: [[4, 2, 5, 8], [2, 8, 9]], operands: plain },
  { name: 'batch dims broadcast both ways [2,1,..] @ [1,3,..]', leaves: [[2, 1, 4, 3], [1, 3, 3, 5]], operands: plain },
  { name: 'transposed dense operand (a column-major gradient)', leaves: [[2, 6, 5], [2, 6, 3]], operands: ([x, b]) => ({ a: x!.mT, b: b! }) },
  { name: 'one query row [2,4,1,8] @ [2,4,8,10]', leaves: [[2, 4, 1, 8], [2, 4, 8, 10]], operands: plain },
  { name: 'one column [3,5,6] @ [3,6,1]', leaves: [[3, 5, 6], [3, 6, 1]], operands: plain },
  { name: 'inner size 1 [3,4,1] @ [3,1,5]', leaves: [[3, 4, 1], [3, 1, 5]], operands: plain },
  { name: 'expanded operand (stride 0 inside the matrix)', leaves: [[2, 1, 4], [2, 4, 3]], operands: ([a, b]) => ({ a: a!.expand(2, 5, 4), b: b! }) },
];

test('batched float32 products and their gradients equal float64 ATen products, on 1 and 2 threads', () => {
  const before = getNumThreads();
  try {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      for (const c of CASES) {
        tidy(() => {
          manualSeed(3);
          const leaves = c.leaves.map((shape) => randn(shape).requiresGrad_());
          const { a, b } = c.operands(leaves);
          const product = a.matmul(b);
          const weights = randn(product.shape); // a fixed, non-uniform gradient of the product
          product.mul(weights).sum().backward();
          const grads = leaves.map((l) => l.grad!.detach().clone());
          // the same in float64: ATen's matmul (the kernel runs float32 only)
          const leaves64 = leaves.map((l) => l.detach().to('float64').requiresGrad_());
          const { a: a64, b: b64 } = c.operands(leaves64);
          const product64 = a64.matmul(b64);
          product64.mul(weights.to('float64')).sum().backward();
          assert.ok(relativeError(product, product64) < 1e-5, `${c.name} (${threads} threads): product off by ${relativeError(product, product64)}`);
          leaves64.forEach((l64, i) => {
            const err = relativeError(grads[i]!, l64.grad!);
            assert.ok(err < 1e-5, `${c.name} (${threads} threads): gradient of leaf ${i} off by ${err}`);
          });
        });
      }
    }
  } finally {
    setNumThreads(before);
  }
});

test('weightedValues (heads side by side, written in place) equals matmul, transpose and flatten, with the same gradients', () => {
  const before = getNumThreads();
  try {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      tidy(() => {
        manualSeed(7);
        const weights = randn([3, 4, 5, 6]).softmax(-1).requiresGrad_();
        const kv = randn([3, 6, 2, 4, 8]).requiresGrad_(); // values as a strided view of a joint projection
        const values = (t: Tensor) => t.permute(2, 0, 3, 1, 4).select(0, 1); // [3, 4, 6, 8]
        const out = F.weightedValues(weights, values(kv));
        assert.deepEqual(out.shape, [3, 5, 32]);
        const w = randn([3, 5, 32]);
        const [dWeights, dKv] = grad(out.mul(w).sum(), [weights, kv]);
        const weights64 = weights.detach().to('float64').requiresGrad_(), kv64 = kv.detach().to('float64').requiresGrad_();
        const reference = weights64.matmul(values(kv64)).transpose(1, 2).flatten(2);
        const [rWeights, rKv] = grad(reference.mul(w.to('float64')).sum(), [weights64, kv64]);
        assert.ok(relativeError(out, reference) < 1e-5, `values off by ${relativeError(out, reference)}`);
        assert.ok(relativeError(dWeights!, rWeights!) < 1e-5, `weights' gradient off by ${relativeError(dWeights!, rWeights!)}`);
        assert.ok(relativeError(dKv!, rKv!) < 1e-5, `values' gradient off by ${relativeError(dKv!, rKv!)}`);
      });
    }
  } finally {
    setNumThreads(before);
  }
});

test('the batched kernel is in use where libtorch brought oneDNN (Debian libtorch), and ATen when asked', () => {
  // Debian's libtorch links libdnnl; a libtorch without a loadable one (pip torch links oneDNN
  // statically) reports 'aten', and the test above then checks ATen's float32 against its float64
  const maps = existsSync('/proc/self/maps') ? readFileSync('/proc/self/maps', 'utf8') : '';
  const expected = process.env.ENGRAM_BATCHED_MATMUL === 'aten' || !/libdnnl\.so/.test(maps) ? 'aten' : 'onednn';
  assert.equal(batchedMatmulKernel(), expected);
});

test('batched products keep matmul semantics: mismatched inner sizes and batch dims that do not broadcast fail', () => {
  tidy(() => {
    assert.throws(() => randn([2, 3, 4]).matmul(randn([2, 5, 6])));
    assert.throws(() => randn([2, 3, 4]).matmul(randn([3, 4, 6])));
    // empty products: no rows, and an inner size of 0 (zeros)
    assert.deepEqual(randn([2, 0, 3]).matmul(randn([2, 3, 4])).shape, [2, 0, 4]);
    assert.deepEqual(randn([2, 3, 0]).matmul(randn([2, 0, 4])).toArray(), [[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]]);
    // 2-D operands and vectors still follow ATen's matmul
    assert.deepEqual(randn([2, 3, 4]).matmul(randn([4, 6])).shape, [2, 3, 6]);
    assert.deepEqual(randn([5, 3, 4]).matmul(randn([4])).shape, [5, 3]);
  });
});

// ---- banded products (attention's products skipping the keys a mask hides) ----------------------------

/** W of row blocks over [rows, cols] as a float64 tensor (1 inside a block). */
function bandOf(blocks: readonly number[], rows: number, cols: number): Tensor {
  const w = new Float64Array(rows * cols);
  for (let b = 0; b < blocks.length; b += 4) {
    for (let r = blocks[b]!; r < blocks[b + 1]!; r++) w.fill(1, r * cols + blocks[b + 2]!, r * cols + blocks[b + 3]!);
  }
  return tensor(w, { dtype: 'float64', shape: [rows, cols] });
}

test('banded products (a b) ⊙ W and (a ⊙ W) b and their gradients equal float64 products with W, on 1 and 2 threads', () => {
  const before = getNumThreads();
  // rows 0-1 and 6 outside every block, an empty column range, blocks of causal shape
  const blocks = [2, 4, 0, 5, 4, 6, 3, 3, 7, 9, 1, 9];
  const cases: { name: string; leaves: number[][]; operands: (l: Tensor[]) => { a: Tensor; b: Tensor }; left: boolean; rows: number; cols: number }[] = [
    { name: 'scores q kᵀ (head-split views, output band)', leaves: [[2, 9, 2, 3, 4]], operands: ([kv]) => ({ a: kv!.select(2, 0).transpose(1, 2), b: kv!.select(2, 1).transpose(1, 2).mT }), left: false, rows: 9, cols: 9 },
    { name: 'position scores against [K, D, R] broadcast over the batch (output band)', leaves: [[2, 3, 9, 4], [3, 4, 11]], operands: plain, left: false, rows: 9, cols: 11 },
    { name: 'weights times values (left band)', leaves: [[2, 3, 9, 12], [2, 3, 12, 5]], operands: plain, left: true, rows: 9, cols: 12 },
  ];
  try {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      for (const c of cases) {
        tidy(() => {
          manualSeed(5);
          const leaves = c.leaves.map((shape) => randn(shape).requiresGrad_());
          const { a, b } = c.operands(leaves);
          const product = F.bandedMatmul(a, b, blocks, { left: c.left });
          const weights = randn(product.shape);
          product.mul(weights).sum().backward();
          const leaves64 = leaves.map((l) => l.detach().to('float64').requiresGrad_());
          const { a: a64, b: b64 } = c.operands(leaves64);
          const w = bandOf(blocks, c.rows, c.cols);
          const reference = c.left ? a64.mul(w).matmul(b64) : a64.matmul(b64).mul(w);
          reference.mul(weights.to('float64')).sum().backward();
          const label = `${c.name} (${threads} threads)`;
          assert.ok(relativeError(product, reference) < 1e-5, `${label}: product off by ${relativeError(product, reference)}`);
          leaves.forEach((l, i) => assert.ok(relativeError(l.grad!, leaves64[i]!.grad!) < 1e-5, `${label}: gradient of leaf ${i} off by ${relativeError(l.grad!, leaves64[i]!.grad!)}`));
          if (!c.left) assert.equal(product.narrow(-2, 0, 2).abs().max().item(), 0, `${label}: rows outside every block are zero`);
          // the float64 operands take the composed version (the kernel is float32): the same product
          assert.ok(relativeError(F.bandedMatmul(a64, b64, blocks, { left: c.left }), reference) < 1e-12, `${label}: composed version`);
        });
      }
    }
  } finally {
    setNumThreads(before);
  }
});

test('weightedValues with blocks: the weights banded, the heads side by side, with the gradients of matmul', () => {
  tidy(() => {
    manualSeed(8);
    const blocks = [0, 3, 0, 4, 3, 7, 2, 6];
    const weights = randn([2, 3, 7, 6]).requiresGrad_(), values = randn([2, 3, 6, 4]).requiresGrad_();
    const out = F.weightedValues(weights, values, blocks);
    const w = randn(out.shape);
    const [dWeights, dValues] = grad(out.mul(w).sum(), [weights, values]);
    const weights64 = weights.detach().to('float64').requiresGrad_(), values64 = values.detach().to('float64').requiresGrad_();
    const reference = weights64.mul(bandOf(blocks, 7, 6)).matmul(values64).transpose(1, 2).flatten(2);
    const [rWeights, rValues] = grad(reference.mul(w.to('float64')).sum(), [weights64, values64]);
    assert.ok(relativeError(out, reference) < 1e-5, `values off by ${relativeError(out, reference)}`);
    assert.ok(relativeError(dWeights!, rWeights!) < 1e-5, `weights' gradient off by ${relativeError(dWeights!, rWeights!)}`);
    assert.ok(relativeError(dValues!, rValues!) < 1e-5, `values' gradient off by ${relativeError(dValues!, rValues!)}`);
  });
});

test('banded products refuse blocks that overlap, run backwards or leave the band matrix, naming the block', () => {
  tidy(() => {
    const [a, b] = [randn([2, 5, 3]), randn([2, 3, 4])];
    assert.throws(() => F.bandedMatmul(a, b, [0, 3, 0, 4, 2, 5, 0, 4]), /block \[2, 5\) x \[0, 4\) must lie in the \[5, 4\] band matrix after the block before it/);
    assert.throws(() => F.bandedMatmul(a, b, [0, 3, 0, 5]), /block \[0, 3\) x \[0, 5\)/);
    assert.throws(() => F.bandedMatmul(a, b, [3, 2, 0, 1]), /block \[3, 2\)/);
    assert.throws(() => F.bandedMatmul(a, b, [0, 3, 0]), /quadruples, got 3 numbers/);
    assert.throws(() => F.bandedMatmul(a, b, [0, 2, 0, 4], { left: true }), /\[5, 3\] band matrix/); // left: W over a's [M, K]
    assert.throws(() => F.weightedValues(randn([1, 2, 3, 4]), randn([1, 2, 4, 5]), [0, 4, 0, 4]), /\[3, 4\] band matrix/);
  });
});
