// Batched matrix products ([..., M, K] @ [..., K, N] with two or more batch-shaped dims on both
// sides) that run the batch entries in parallel, one single-threaded sgemm each.
//
// Why: ATen's CPU bmm (libtorch 1.13) loops over the batch entries one after another, with a
// select, an as_strided and a BLAS call that spreads each small product over every thread.
// Attention's products are many small ones ([128, 64] x [64, 256] per batch row and head); there
// the threads spend their time handing work over, and `matmul` first copies operands whose batch
// dims cannot be folded into one (a head-split view [B, T, K, D] -> [B, K, T, D]).
// Measured on this machine, 2 threads (`node dist/scripts/probes/batched-matmul.js`, SPEC §10's
// attention: [16, 4, 128, 64] queries against 256 keys), forward / forward + backward ms:
// q · kᵀ 1.13 / 5.30 against ATen's 3.81 / 14.18, q · W_r R 0.87 / 4.21 against 2.56 / 8.68,
// a · v 1.11 / 5.18 against 2.80 / 10.24. Per entry, oneDNN's sgemm beats OpenBLAS's on one thread
// each (scripts/probes/batched-sgemm.c: 64 products of 128 x 256 x 64 in 1.11 against 1.48 ms).
// The entries are split with an OpenMP loop of our own: an at::parallel_for version of the same
// loop, tried first, was slower than ATen's bmm here.
//
// oneDNN's sgemm (a stable C entry point) is found in the libdnnl that libtorch itself loaded
// (Debian's libtorch links it); where there is none (pip torch links oneDNN statically, hidden),
// or for another dtype, device or autocast, `matmul` stays ATen's. Both are the same product up to
// float rounding; gradients come from the same kernel (dA = dC Bᵀ, dB = Aᵀ dC, summed over the
// dims that were broadcast, by the kernel itself). The kernel also runs banded products
// (bandedMatmul, weightedValues with blocks): masked attention's products over the keys each block
// of queries sees only.
#include "engram.h"

#include <ATen/ExpandUtils.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace engram {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// dnnl_status_t dnnl_sgemm(char transa, char transb, dnnl_dim_t M, N, K, float alpha, const float* A,
//   dnnl_dim_t lda, const float* B, dnnl_dim_t ldb, float beta, float* C, dnnl_dim_t ldc): row major.
using SgemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                        float*, int64_t);

// oneDNN's sgemm from the libdnnl libtorch loaded, or nullptr (pip's torch links oneDNN statically).
SgemmFn onednnSgemm() {
  static const SgemmFn fn = reinterpret_cast<SgemmFn>(loadedSymbol({"libdnnl.so"}, "dnnl_sgemm"));
  return fn;
}

SgemmFn findSgemm() {
  const char* off = std::getenv("ENGRAM_BATCHED_MATMUL");
  if (off && std::strcmp(off, "aten") == 0) return nullptr;  // A/B measurements: ATen's bmm everywhere
  return onednnSgemm();
}

// The batched kernel's sgemm.
SgemmFn sgemm() {
  static const SgemmFn fn = findSgemm();
  return fn;
}

// One operand matrix as sgemm reads it: row-major ('N', ld = row stride) or transposed ('T', the
// matrix's columns are rows in memory, ld = column stride).
struct MatrixLayout {
  char trans;
  int64_t ld;
};
// nullopt when neither of the last two dims has stride 1 (then the caller copies the operand). A dim
// of size 1 may carry any stride, so it constrains nothing.
c10::optional<MatrixLayout> layoutOf(int64_t rows, int64_t cols, int64_t rowStride, int64_t colStride) {
  if (rows == 1 && cols == 1) return MatrixLayout{'N', 1};
  if (cols == 1) return rowStride >= 1 ? c10::optional<MatrixLayout>(MatrixLayout{'N', rowStride}) : c10::nullopt;
  if (rows == 1) {
    if (colStride == 1) return MatrixLayout{'N', cols};
    return colStride >= 1 ? c10::optional<MatrixLayout>(MatrixLayout{'T', colStride}) : c10::nullopt;
  }
  if (colStride == 1 && rowStride >= cols) return MatrixLayout{'N', rowStride};
  if (rowStride == 1 && colStride >= rows) return MatrixLayout{'T', colStride};
  return c10::nullopt;
}

at::Tensor readable(const at::Tensor& t) {
  const int64_t n = t.dim();
  return layoutOf(t.size(n - 2), t.size(n - 1), t.stride(n - 2), t.stride(n - 1)) ? t : t.contiguous();
}


// A banded product: attention's products under a mask skip the keys the mask hides from a whole
// block of query rows (SPEC §10: "attention that skips masked work instead of computing and then
// zeroing it"). Row blocks {r0, r1, c0, c1} of the banded matrix W (rows ascending and disjoint;
// W is 1 inside a block, 0 elsewhere), placed on the output or on the left operand:
//   Output:      out = (a·b) ⊙ W     block: out[r0:r1, c0:c1]  = a[r0:r1, :] · b[:, c0:c1]
//   Left:        out = (a ⊙ W)·b     block: out[r0:r1, :]      = a[r0:r1, c0:c1] · b[c0:c1, :]
// and the two placements their gradients need besides (a given as the transposed operand):
//   OutputGrad:  out = a·(b ⊙ W)     block: out[:, c0:c1]     += a[:, r0:r1] · b[r0:r1, c0:c1]
//   LeftGrad:    out = (aᵀ ⊙ W)ᵀ·b   block: out[c0:c1, :]     += a[c0:c1, r0:r1] · b[r0:r1, :]
// Entries outside every block are zero; no product touches them.
enum class Band { None, Output, Left, OutputGrad, LeftGrad };
struct RowBlock {
  int64_t r0, r1, c0, c1;
};
using RowBlocks = std::vector<RowBlock>;

// Element (r, c) of a matrix with layout l at p.
inline float* elementAt(float* p, MatrixLayout l, int64_t r, int64_t c) { return l.trans == 'N' ? p + r * l.ld + c : p + c * l.ld + r; }
inline const float* elementAt(const float* p, MatrixLayout l, int64_t r, int64_t c) {
  return elementAt(const_cast<float*>(p), l, r, c);
}
void zeroRect(float* C, MatrixLayout l, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  if (r0 >= r1 || c0 >= c1) return;
  if (l.trans == 'N') {
    for (int64_t r = r0; r < r1; r++) std::memset(C + r * l.ld + c0, 0, sizeof(float) * static_cast<size_t>(c1 - c0));
  } else {
    for (int64_t c = c0; c < c1; c++) std::memset(C + c * l.ld + r0, 0, sizeof(float) * static_cast<size_t>(r1 - r0));
  }
}

// out[e] = a[e] @ b[e] for every entry e of the broadcast batch (banded by `blocks` as `band` says);
// a [..., M, K], b [..., K, N] with readable matrices; out [batch..., M, N] written in place (any
// strides with a unit one in its last two dims). Entries in parallel on ATen's threads, one
// single-threaded sgemm per entry (per block); with fewer entries than threads, one after another
// with sgemm's own threads.
void batchedProduct(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, Band band = Band::None, const RowBlocks& blocks = {}) {
  const int64_t n = out.dim(), M = out.size(n - 2), N = out.size(n - 1), K = a.size(a.dim() - 1);
  if (out.numel() == 0) return;
  if (K == 0) {
    out.zero_();
    return;
  }
  const at::IntArrayRef batch = out.sizes().slice(0, n - 2);
  std::vector<int64_t> aShape(batch.begin(), batch.end()), bShape(batch.begin(), batch.end());
  aShape.insert(aShape.end(), {M, K});
  bShape.insert(bShape.end(), {K, N});
  const at::Tensor ae = a.expand(aShape), be = b.expand(bShape);
  const auto la = *layoutOf(M, K, ae.stride(n - 2), ae.stride(n - 1));
  const auto lb = *layoutOf(K, N, be.stride(n - 2), be.stride(n - 1));
  const std::vector<int64_t> offA = batchOffsets(ae, batch), offB = batchOffsets(be, batch), offC = batchOffsets(out, batch);
  const float *ap = ae.data_ptr<float>(), *bp = be.data_ptr<float>();
  float* cp = out.data_ptr<float>();
  const SgemmFn gemm = sgemm();
  // C row-major with ldc, or column-major: then Cᵀ = Bᵀ Aᵀ, a row-major product of the swapped operands
  const auto lc = *layoutOf(M, N, out.stride(n - 2), out.stride(n - 1));
  const auto flip = [](char t) { return t == 'N' ? 'T' : 'N'; };
  // C[m0:m0+m, n0:n0+n] (beta 0: =, 1: +=) A[m0:, k0:k0+k] · B[k0:, n0:]
  const auto part = [&](const float* A, const float* Bm, float* C, int64_t m0, int64_t n0, int64_t k0, int64_t m, int64_t nn, int64_t k, float beta) {
    if (m == 0 || nn == 0) return 0;
    float* Cs = elementAt(C, lc, m0, n0);
    if (k == 0) {
      if (beta == 0.0f) zeroRect(Cs, lc, 0, m, 0, nn);
      return 0;
    }
    const float *As = elementAt(A, la, m0, k0), *Bs = elementAt(Bm, lb, k0, n0);
    return lc.trans == 'N' ? gemm(la.trans, lb.trans, m, nn, k, 1.0f, As, la.ld, Bs, lb.ld, beta, Cs, lc.ld)
                           : gemm(flip(lb.trans), flip(la.trans), nn, m, k, 1.0f, Bs, lb.ld, As, la.ld, beta, Cs, lc.ld);
  };
  // entry e's product into its output; `accumulate`: added to what an earlier entry with the same
  // output (a gradient summed over broadcast dims) wrote there
  const auto entry = [&](int64_t e, bool accumulate) {
    const float *A = ap + offA[e], *Bm = bp + offB[e];
    float* C = cp + offC[e];
    const float beta = accumulate ? 1.0f : 0.0f;
    if (band == Band::None) return part(A, Bm, C, 0, 0, 0, M, N, K, beta);
    int status = 0;
    if (band == Band::OutputGrad || band == Band::LeftGrad) {  // the blocks' row ranges are the reduction: sum into zeros
      if (!accumulate) zeroRect(C, lc, 0, M, 0, N);
      for (const RowBlock& q : blocks) {
        status |= band == Band::OutputGrad ? part(A, Bm, C, 0, q.c0, q.r0, M, q.c1 - q.c0, q.r1 - q.r0, 1.0f)
                                           : part(A, Bm, C, q.c0, 0, q.r0, q.c1 - q.c0, N, q.r1 - q.r0, 1.0f);
      }
      return status;
    }
    int64_t row = 0;  // rows before it are written
    for (const RowBlock& q : blocks) {
      if (!accumulate) zeroRect(C, lc, row, q.r0, 0, N);  // rows outside every block
      if (band == Band::Output) {
        if (!accumulate) zeroRect(C, lc, q.r0, q.r1, 0, q.c0), zeroRect(C, lc, q.r0, q.r1, q.c1, N);
        status |= part(A, Bm, C, q.r0, q.c0, 0, q.r1 - q.r0, q.c1 - q.c0, K, beta);
      } else {
        status |= part(A, Bm, C, q.r0, 0, q.c0, q.r1 - q.r0, N, q.c1 - q.c0, beta);
      }
      row = q.r1;
    }
    if (!accumulate) zeroRect(C, lc, row, M, 0, N);
    return status;
  };
  // Entries that share an output (out expanded along batch dims: stride 0) sum into it, one after
  // another in entry order on one thread; groups of them (or single entries) in parallel. Only an
  // expanded output has such entries: any other has one entry per group, in order.
  std::vector<int64_t> order(offC.size());
  for (size_t e = 0; e < order.size(); e++) order[e] = static_cast<int64_t>(e);
  bool shared = false;
  for (int64_t d = 0; d < n - 2; d++) shared = shared || (out.stride(d) == 0 && out.size(d) > 1);
  if (shared) std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return offC[x] < offC[y]; });
  std::vector<int64_t> groupStart;  // indices into order where a new output begins, then order.size()
  for (size_t i = 0; i < order.size(); i++) {
    if (i == 0 || offC[order[i]] != offC[order[i - 1]]) groupStart.push_back(static_cast<int64_t>(i));
  }
  groupStart.push_back(static_cast<int64_t>(order.size()));
  const int64_t groups = static_cast<int64_t>(groupStart.size()) - 1;
  const auto group = [&](int64_t gi) {
    int status = 0;
    for (int64_t i = groupStart[gi]; i < groupStart[gi + 1]; i++) status |= entry(order[i], i > groupStart[gi]);
    return status;
  };
  int failed = 0;  // a status from inside the parallel loop (no exception may leave an OpenMP region)
  if (groups >= at::get_num_threads() && groups > 1) {
    const int threads = at::get_num_threads();
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : failed)
    for (int64_t gi = 0; gi < groups; gi++) failed |= group(gi);
  } else {
    for (int64_t gi = 0; gi < groups; gi++) failed |= group(gi);
  }
  TORCH_CHECK(failed == 0, "batched matmul: oneDNN's sgemm failed (status bits ", failed, ")");
}

// The product's batch shape: a's and b's batch dims broadcast.
std::vector<int64_t> batchShape(const at::Tensor& a, const at::Tensor& b) {
  return at::infer_size(a.sizes().slice(0, a.dim() - 2), b.sizes().slice(0, b.dim() - 2));
}

at::Tensor product(const at::Tensor& a, const at::Tensor& b, Band band = Band::None, const RowBlocks& blocks = {}) {
  std::vector<int64_t> shape = batchShape(a, b);
  shape.insert(shape.end(), {a.size(a.dim() - 2), b.size(b.dim() - 1)});
  at::Tensor out = at::empty(shape, a.options());
  batchedProduct(a, b, out, band, blocks);
  return out;
}

RowBlocks rowBlocks(const std::vector<int64_t>& flat) {
  RowBlocks blocks;
  for (size_t i = 0; i + 3 < flat.size(); i += 4) blocks.push_back({flat[i], flat[i + 1], flat[i + 2], flat[i + 3]});
  return blocks;
}
// Checks blocks of a banded [rows, cols] matrix: rows ascending and disjoint, ranges inside it.
void checkBlocks(const std::vector<int64_t>& flat, int64_t rows, int64_t cols) {
  TORCH_CHECK(flat.size() % 4 == 0, "banded matmul: blocks must be [r0, r1, c0, c1] quadruples, got ", flat.size(), " numbers");
  int64_t row = 0;
  for (const RowBlock& q : rowBlocks(flat)) {
    TORCH_CHECK(q.r0 >= row && q.r0 < q.r1 && q.r1 <= rows && 0 <= q.c0 && q.c0 <= q.c1 && q.c1 <= cols, "banded matmul: block [", q.r0, ", ",
                q.r1, ") x [", q.c0, ", ", q.c1, ") must lie in the [", rows, ", ", cols, "] band matrix after the block before it");
    row = q.r1;
  }
}
// W of the blocks as a float [rows, cols] tensor (1 inside a block), for the composed version.
at::Tensor bandMatrix(const RowBlocks& blocks, int64_t rows, int64_t cols, const at::TensorOptions& options) {
  at::Tensor w = at::zeros({rows, cols}, at::kFloat);
  for (const RowBlock& q : blocks) w.slice(0, q.r0, q.r1).slice(1, q.c0, q.c1).fill_(1);
  return w.to(options);
}

// The gradient of an operand t from the full product-shaped gradient g [batch..., rows, cols]: summed
// over the batch dims t was broadcast along. When t is dense and not broadcast, g was written in t's
// own layout (see gradLike), so the views between t and its source (a head split) need no copy.
at::Tensor reduceTo(const at::Tensor& g, const at::Tensor& t) {
  return g.sizes() == t.sizes() ? g : at::sum_to(g, t.sizes());
}
// Otherwise the gradient is row-major, or column-major where t's matrices are (a transposed view such
// as keys.mT): then the transpose between t and its source hands on a row-major gradient.
at::Tensor gradLike(const at::Tensor& t, at::IntArrayRef shape) {
  if (t.sizes() == shape && t.is_non_overlapping_and_dense()) return at::empty_like(t);
  const int64_t n = t.dim();
  if (t.stride(n - 2) == 1 && t.size(n - 2) > 1 && t.size(n - 1) > 1) {
    std::vector<int64_t> swapped(shape.begin(), shape.end());
    std::swap(swapped[shape.size() - 1], swapped[shape.size() - 2]);
    return at::empty(swapped, t.options()).transpose(-1, -2);
  }
  return at::empty(shape, t.options());
}

// The gradient of operand t, the product-shaped [batch..., rows, cols] gradient summed over the batch
// dims t was broadcast along (a relative key table [K, D, R] shared by the batch): `product` writes
// into an output of shape `shape`. A broadcast t's gradient is its own shape, expanded: the kernel
// then sums the entries sharing a matrix into it (no product-sized temporary, no separate sum),
// unless the reduction or the product is empty (zeros, which an expanded output cannot take in place).
template <typename Product>
at::Tensor operandGrad(const at::Tensor& t, const std::vector<int64_t>& shape, int64_t inner, Product product) {
  if (t.sizes() != at::IntArrayRef(shape) && inner > 0 && c10::multiply_integers(shape) > 0 && at::is_expandable_to(t.sizes(), shape)) {
    at::Tensor grad = at::empty(t.sizes(), t.options());
    at::Tensor expanded = grad.expand(shape);
    product(expanded);
    return grad;
  }
  at::Tensor full = gradLike(t, shape);
  product(full);
  return reduceTo(full, t);
}

// mergeHeads: a [B, K, Tq, Tk] @ b [B, K, Tk, D] written as [B, Tq, K·D], the heads side by side
// as an output projection reads them (the kernel writes each head's product at its column offset,
// so the transpose and flatten after an attention's weighted values cost no copy, nor their gradient).
// band Output or Left with blocks (flat quadruples): the banded product above.
struct BatchedMatmul : public torch::autograd::Function<BatchedMatmul> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b, bool mergeHeads, int64_t band,
                            std::vector<int64_t> blocks) {
    at::Tensor ar = readable(a), br = readable(b);
    ctx->save_for_backward({ar, br});
    ctx->saved_data["mergeHeads"] = mergeHeads;
    ctx->saved_data["band"] = band;
    ctx->saved_data["blocks"] = blocks;
    const Band placed = static_cast<Band>(band);
    const RowBlocks rb = rowBlocks(blocks);
    if (!mergeHeads) return product(ar, br, placed, rb);
    const int64_t B = a.size(0), K = a.size(1), Tq = a.size(2), D = b.size(3);
    at::Tensor merged = at::empty({B, Tq, K, D}, a.options());
    at::Tensor heads = merged.transpose(1, 2);  // [B, K, Tq, D] view: row stride K·D
    batchedProduct(ar, br, heads, placed, rb);
    return merged.view({B, Tq, K * D});
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &a = saved[0], &b = saved[1];
    const Band band = static_cast<Band>(ctx->saved_data["band"].toInt());
    const RowBlocks blocks = rowBlocks(ctx->saved_data["blocks"].toIntVector());
    at::Tensor g = grads[0];
    if (ctx->saved_data["mergeHeads"].toBool()) g = g.reshape({a.size(0), a.size(2), a.size(1), b.size(3)}).transpose(1, 2);
    g = readable(g);
    at::Tensor da, db;
    const int64_t n = g.dim();
    std::vector<int64_t> batch(g.sizes().begin(), g.sizes().end() - 2);
    // out = (a b) ⊙ W: dA = (g ⊙ W) bᵀ, dB = aᵀ (g ⊙ W); out = (a ⊙ W) b: dA = (g bᵀ) ⊙ W, dB = (a ⊙ W)ᵀ g
    const Band bandA = band == Band::Output ? Band::Left : band == Band::Left ? Band::Output : Band::None;
    const Band bandB = band == Band::Output ? Band::OutputGrad : band == Band::Left ? Band::LeftGrad : Band::None;
    if (ctx->needs_input_grad(0)) {  // dA = dC Bᵀ  [batch..., M, K]
      std::vector<int64_t> shape = batch;
      shape.insert(shape.end(), {g.size(n - 2), a.size(a.dim() - 1)});
      da = operandGrad(a, shape, g.size(n - 1), [&](at::Tensor& out) { batchedProduct(g, b.transpose(-1, -2), out, bandA, blocks); });
    }
    if (ctx->needs_input_grad(1)) {  // dB = Aᵀ dC  [batch..., K, N]
      std::vector<int64_t> shape = batch;
      shape.insert(shape.end(), {b.size(b.dim() - 2), g.size(n - 1)});
      db = operandGrad(b, shape, g.size(n - 2), [&](at::Tensor& out) { batchedProduct(a.transpose(-1, -2), g, out, bandB, blocks); });
    }
    return {da, db, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// ---- dense products ----------------------------------------------------------------------------

namespace {

// OpenBLAS's kernel sets that use AVX-512 (its corename); any other on an AVX-512 processor leaves
// half of each vector unused. Measured on a Zen 5 with OpenBLAS 0.3.21 (scripts/probes/linear-sgemm.c,
// SPEC §10's 12 linear products): its Haswell kernels 178-207 GFLOP/s, its own choice (Cooperlake)
// 368-371, oneDNN's sgemm 300-351 (docs/results/benchmarks.md, "Dense products on oneDNN where
// OpenBLAS is held to AVX2").
bool openblasNarrowerThanCpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx512f")) return false;
  const char* core = openblasCore();
  if (!core) return false;  // another BLAS (MKL uses the processor's widest vectors itself)
  for (const char* wide : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    if (std::strcmp(core, wide) == 0) return false;
  }
  return true;
#else
  return false;
#endif
}

bool decideDense() {
  if (onednnSgemm() == nullptr) return false;
  const char* choice = std::getenv("ENGRAM_DENSE_MATMUL");
  if (choice && std::strcmp(choice, "aten") == 0) return false;
  if (choice && std::strcmp(choice, "onednn") == 0) return true;
  return openblasNarrowerThanCpu();
}

// Whether t, an operand of a dense product, goes to oneDNN: float32 on the CPU with Engram's kernels
// on (setNativeKernels), autocast off, and the decision above made for oneDNN.
bool onDenseKernel(const at::Tensor& t) {
  return denseOnOneDnn() && nativeCpu(t) && t.scalar_type() == at::kFloat && !anyAutocastOn();
}

// C = a b on oneDNN (a, b 2-D float32, any strides) into a fresh contiguous tensor of `shape` (its
// M·N entries laid out as the [M, N] product; default [M, N]): no view of it is ever returned, so
// autograd lets callers modify a product in place.
at::Tensor sgemmProduct(const at::Tensor& a, const at::Tensor& b, at::IntArrayRef shape = {}) {
  const at::Tensor ar = readable(a), br = readable(b);
  const int64_t M = ar.size(0), K = ar.size(1), N = br.size(1);
  at::Tensor c = shape.empty() ? at::empty({M, N}, ar.options()) : at::empty(shape, ar.options());
  TORCH_CHECK(c.numel() == M * N, "dense matmul: an output of ", c.numel(), " entries for a [", M, ", ", N, "] product");
  if (M == 0 || N == 0) return c;
  if (K == 0) return c.zero_();
  const MatrixLayout la = *layoutOf(M, K, ar.stride(0), ar.stride(1)), lb = *layoutOf(K, N, br.stride(0), br.stride(1));
  const int status = onednnSgemm()(la.trans, lb.trans, M, N, K, 1.0f, ar.data_ptr<float>(), la.ld, br.data_ptr<float>(), lb.ld, 0.0f,
                                  c.data_ptr<float>(), N);
  TORCH_CHECK(status == 0, "dense matmul: oneDNN's sgemm failed with status ", status);
  return c;
}

// y = x wᵀ, x [.., in] float32; the products of forward and backward on oneDNN (the bias is added
// after it, in place: its gradient is the sum of the output's). Under create_graph the backward's
// products are ATen's, so that second derivatives exist.
struct DenseLinear : public torch::autograd::Function<DenseLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    ctx->save_for_backward({x2, w});
    ctx->saved_data["shape"] = x.sizes().vec();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = w.size(0);
    return sgemmProduct(x2, w.t(), shape);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x2 = saved[0], &w = saved[1];
    const at::Tensor g = grads[0].reshape({-1, w.size(0)});  // [N, out]
    const bool graph = at::GradMode::is_enabled();
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      const std::vector<int64_t> shape = ctx->saved_data["shape"].toIntVector();
      dx = graph ? g.mm(w).view(shape) : sgemmProduct(g, w, shape);
    }
    if (ctx->needs_input_grad(1)) dw = graph ? g.t().mm(x2) : sgemmProduct(g.t(), x2);
    return {dx, dw};
  }
};

}  // namespace

bool denseOnOneDnn() {
  static const bool on = decideDense();
  return on;
}

at::Tensor denseMm(const at::Tensor& a, const at::Tensor& b) {
  const bool graph = at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());  // sgemmProduct records none
  if (onDenseKernel(a) && onDenseKernel(b) && a.dim() == 2 && b.dim() == 2 && !graph) return sgemmProduct(a, b);
  return a.mm(b);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b) {
  const at::Tensor* bias = b && b->defined() ? &*b : nullptr;
  const bool dense = onDenseKernel(x) && onDenseKernel(w) && x.dim() >= 2 && w.dim() == 2 && x.size(-1) == w.size(1) &&
                     (!bias || (onDenseKernel(*bias) && bias->dim() == 1 && bias->size(0) == w.size(0)));
  if (!dense) return at::linear(x, w, b);
  at::Tensor y = DenseLinear::apply(x, w);
  return bias ? y.add_(*bias) : y;
}

const char* openblasCore() {
  using NameFn = char* (*)();
  static const auto fn = reinterpret_cast<NameFn>(loadedSymbol({"libopenblas", "libblas.so"}, "openblas_get_corename"));
  return fn ? fn() : nullptr;
}

const char* openblasConfig() {
  using NameFn = char* (*)();
  static const auto fn = reinterpret_cast<NameFn>(loadedSymbol({"libopenblas", "libblas.so"}, "openblas_get_config"));
  return fn ? fn() : nullptr;
}

namespace {

// Whether the batched kernel runs this product (both operands batched: ≥ 3 dims; float32 on the
// CPU, autocast off, oneDNN's sgemm found); anything else is ATen's matmul.
bool batchedKernelFor(const at::Tensor& a, const at::Tensor& b) {
  return a.dim() >= 3 && b.dim() >= 3 && nativeCpu(a) && b.is_cpu() && a.scalar_type() == at::kFloat &&
         b.scalar_type() == at::kFloat && !autocastOn(c10::DeviceType::CPU) && sgemm() != nullptr &&
         a.size(a.dim() - 1) == b.size(b.dim() - 2);
}

}  // namespace

// engram.h
std::vector<int64_t> batchOffsets(const at::Tensor& t, at::IntArrayRef batch) {
  int64_t count = 1;
  for (int64_t s : batch) count *= s;
  std::vector<int64_t> offsets(static_cast<size_t>(count));
  std::vector<int64_t> index(batch.size(), 0);
  int64_t offset = 0;
  for (int64_t e = 0; e < count; e++) {
    offsets[static_cast<size_t>(e)] = offset;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; d--) {  // odometer over the batch dims
      if (++index[d] < batch[d]) {
        offset += t.stride(d);
        break;
      }
      offset -= t.stride(d) * (batch[d] - 1);
      index[d] = 0;
    }
  }
  return offsets;
}

// matmul(a, b): ATen's matmul semantics (broadcasting batch dims); batched products through the
// kernel above where it applies.
OP(matmul) {
  const at::Tensor &a = T(info, 0), &b = T(info, 1);
  if (!batchedKernelFor(a, b)) return R(info, at::matmul(a, b));
  // infer_size throws ATen's own message when the batch dims do not broadcast
  return R(info, BatchedMatmul::apply(a, b, false, static_cast<int64_t>(Band::None), std::vector<int64_t>{}));
}

// bandedMatmul(a [..., M, K], b [..., K, N], blocks, left): (a b) ⊙ W, or (a ⊙ W) b with `left`,
// W the band of the row blocks (flat [r0, r1, c0, c1, ...]) over [M, N] or [M, K]: the kernel's
// products skip what W zeros; elsewhere matmul and a product with W, the same values.
OP(bandedMatmul) {
  const at::Tensor &a = T(info, 0), &b = T(info, 1);
  const std::vector<int64_t> blocks = IL(info, 2);
  const bool left = B(info, 3);
  TORCH_CHECK(a.dim() >= 2 && b.dim() >= 2, "bandedMatmul: a and b must be matrices or batches of them, got ", a.sizes(), " and ", b.sizes());
  const int64_t M = a.size(a.dim() - 2), cols = left ? a.size(a.dim() - 1) : b.size(b.dim() - 1);
  checkBlocks(blocks, M, cols);
  if (!batchedKernelFor(a, b)) {
    const at::Tensor w = bandMatrix(rowBlocks(blocks), M, cols, a.options());
    return R(info, left ? at::matmul(a * w, b) : at::matmul(a, b) * w);
  }
  return R(info, BatchedMatmul::apply(a, b, false, static_cast<int64_t>(left ? Band::Left : Band::Output), blocks));
}

// weightedValues(weights [B, K, Tq, Tk], values [B, K, Tk, D], blocks | null) -> [B, Tq, K·D]: each
// head's weighted sum of its values, the heads side by side (attention's last product before the
// output projection). = matmul(weights, values).transpose(1, 2).flatten(2), without the copy where
// the kernel runs it; with blocks, of the weights banded by them (the keys a mask hides skipped).
OP(weightedValues) {
  const at::Tensor &a = T(info, 0), &b = T(info, 1);
  TORCH_CHECK(a.dim() == 4 && b.dim() == 4 && a.size(0) == b.size(0) && a.size(1) == b.size(1) && a.size(3) == b.size(2),
              "weightedValues: weights must be [B, K, Tq, Tk] and values [B, K, Tk, D], got ", a.sizes(), " and ", b.sizes());
  const bool banded = !isNone(info[2]);
  const std::vector<int64_t> blocks = banded ? IL(info, 2) : std::vector<int64_t>{};
  if (banded) checkBlocks(blocks, a.size(2), a.size(3));
  if (!batchedKernelFor(a, b)) {
    const at::Tensor weights = banded ? a * bandMatrix(rowBlocks(blocks), a.size(2), a.size(3), a.options()) : a;
    return R(info, at::matmul(weights, b).transpose(1, 2).flatten(2));
  }
  return R(info, BatchedMatmul::apply(a, b, true, static_cast<int64_t>(banded ? Band::Left : Band::None), blocks));
}

// batchedMatmulKernel() -> 'onednn' when batched float32 products run the kernel above, 'aten' when not.
OP(batchedMatmulKernel) { return Napi::String::New(info.Env(), sgemm() ? "onednn" : "aten"); }

}  // namespace engram
