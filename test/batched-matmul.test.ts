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
  /** operands in float32, built from leaves that require grad (the leaves are returned too) */
  make: () => { a: Tensor; b: Tensor; leaves: Tensor[] };
}

const leaf = (shape: number[]) => randn(shape).requiresGrad_();
const CASES: Case[] = [
  { name: 'contiguous [2,3,5,4] @ [2,3,4,6]', make: () => { const a = leaf([2, 3, 5, 4]), b = leaf([2, 3, 4, 6]); return { a, b, leaves: [a, b] }; } },
  {
    name: 'head-split q @ kᵀ from one [B,T,2,K,D] projection',
    make: () => {
      const kv = leaf([3, 7, 2, 2, 8]);
      const q = kv.select(2, 0).transpose(1, 2), k = kv.select(2, 1).transpose(1, 2); // [3, 2, 7, 8], strided
      return { a: q, b: k.mT, leaves: [kv] };
    },
  },
  {
    name: 'relative key table [K,D,R] broadcast over the batch',
    make: () => { const q = leaf([4, 2, 5, 8]), rk = leaf([2, 8, 9]); return { a: q, b: rk, leaves: [q, rk] }; },
  },
  {
    name: 'batch dims broadcast both ways [2,1,..] @ [1,3,..]',
    make: () => { const a = leaf([2, 1, 4, 3]), b = leaf([1, 3, 3, 5]); return { a, b, leaves: [a, b] }; },
  },
  {
    name: 'transposed dense operand (a column-major gradient)',
    make: () => { const x = leaf([2, 6, 5]), b = leaf([2, 6, 3]); return { a: x.mT, b, leaves: [x, b] }; },
  },
  { name: 'one query row [2,4,1,8] @ [2,4,8,10]', make: () => { const a = leaf([2, 4, 1, 8]), b = leaf([2, 4, 8, 10]); return { a, b, leaves: [a, b] }; } },
  { name: 'one column [3,5,6] @ [3,6,1]', make: () => { const a = leaf([3, 5, 6]), b = leaf([3, 6, 1]); return { a, b, leaves: [a, b] }; } },
  { name: 'inner size 1 [3,4,1] @ [3,1,5]', make: () => { const a = leaf([3, 4, 1]), b = leaf([3, 1, 5]); return { a, b, leaves: [a, b] }; } },
  {
    name: 'expanded operand (stride 0 inside the matrix)',
    make: () => { const a = leaf([2, 1, 4]), b = leaf([2, 4, 3]); return { a: a.expand(2, 5, 4), b, leaves: [a, b] }; },
  },
];

test('batched float32 products and their gradients equal float64 ATen products, on 1 and 2 threads', () => {
  const before = getNumThreads();
  try {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      for (const c of CASES) {
        tidy(() => {
          manualSeed(3);
          const { a, b, leaves } = c.make();
          const product = a.matmul(b);
          const weights = randn(product.shape); // a fixed, non-uniform gradient of the product
          product.mul(weights).sum().backward();
          const grads = leaves.map((l) => l.grad!.detach().clone());
          // the same in float64: ATen's matmul (the kernel runs float32 only)
          const leaves64 = leaves.map((l) => l.detach().to('float64').requiresGrad_());
          const { a: a64, b: b64 } = rebuildIn64(c, leaves64);
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

/** The case's views applied to float64 leaves (the same ops as make(), on the given tensors). */
function rebuildIn64(c: Case, leaves: Tensor[]): { a: Tensor; b: Tensor } {
  switch (c.name) {
    case 'head-split q @ kᵀ from one [B,T,2,K,D] projection': {
      const kv = leaves[0]!;
      return { a: kv.select(2, 0).transpose(1, 2), b: kv.select(2, 1).transpose(1, 2).mT };
    }
    case 'transposed dense operand (a column-major gradient)':
      return { a: leaves[0]!.mT, b: leaves[1]! };
    case 'expanded operand (stride 0 inside the matrix)':
      return { a: leaves[0]!.expand(2, 5, 4), b: leaves[1]! };
    default:
      return { a: leaves[0]!, b: leaves[1]! };
  }
}

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
