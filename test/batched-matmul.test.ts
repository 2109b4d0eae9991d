// Batched float32 products on their own kernel (native/src/matmul_ops.cpp: the batch entries in
// parallel, one oneDNN sgemm each): values and gradients against the same products in float64
// through ATen, for the layouts attention feeds it (head-split views, transposed keys, a relative
// key table broadcast over the batch, size-1 dims) on one and two threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { batchedMatmulKernel, F, getNumThreads, grad, manualSeed, randn, setNumThreads, tidy, type Tensor } from '../src/index.js';

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
