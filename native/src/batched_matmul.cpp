// Batched matrix products (attention's q·kᵀ and p·v: many [T, D] x [D, T] products) spread over
// ATen's threads, each product on one BLAS thread.
//
// Why: ATen 1.13 on CPU without MKL computes bmm as a loop of gemm calls, and OpenBLAS's pthread
// build wakes its worker threads for each one. For attention's sizes that costs more than the
// arithmetic: measured on this 2-core machine, [64, 128, 64] x [64, 64, 128] takes 25.6 ms with
// OpenBLAS on 2 threads and 2.3 ms on 1 (PyTorch, same libraries), while one large product is
// faster on 2 (5.8 vs 9.7 ms at 1024 x 512 x 1024). So BLAS keeps both threads for large
// products (Linear), and batched ones run here: one BLAS thread, batch entries split over ATen's
// intra-op threads. Forward and backward both go through this path (a custom autograd Function),
// since the backward of a batched product is two more batched products.
//
// Where OpenBLAS is not the loaded BLAS (MKL, a CUDA build), on CUDA tensors, for non-float
// dtypes and for double backward, ATen's own matmul runs.
#include "engram.h"

#include <dlfcn.h>

namespace engram {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct OpenBlasThreads {
  void (*set)(int) = nullptr;
  int (*get)() = nullptr;
};

// OpenBLAS's thread controls, if libtorch's BLAS is OpenBLAS (already loaded: RTLD_NOLOAD).
const OpenBlasThreads& openBlas() {
  static const OpenBlasThreads found = [] {
    OpenBlasThreads r;
    for (const char* name : {"libopenblas.so.0", "libopenblasp.so.0", "libopenblas.so", "libblas.so.3"}) {
      void* lib = dlopen(name, RTLD_NOLOAD | RTLD_LAZY);
      if (!lib) continue;
      auto set = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
      auto get = reinterpret_cast<int (*)()>(dlsym(lib, "openblas_get_num_threads"));
      if (set && get) {
        r.set = set;
        r.get = get;
        break;
      }
    }
    return r;
  }();
  return found;
}

// One BLAS thread while alive; restores the previous count (also when an exception passes).
class SingleBlasThread {
 public:
  SingleBlasThread() : before_(openBlas().get()) { openBlas().set(1); }
  ~SingleBlasThread() { openBlas().set(before_); }
  SingleBlasThread(const SingleBlasThread&) = delete;
  SingleBlasThread& operator=(const SingleBlasThread&) = delete;

 private:
  int before_;
};

bool splitsWell(const at::Tensor& a, const at::Tensor& b) {
  auto floating = [](const at::Tensor& t) {
    return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
  };
  return openBlas().set && a.device().is_cpu() && b.device().is_cpu() && floating(a) && floating(b) &&
         a.scalar_type() == b.scalar_type();
}

// [N, n, k] x [N, k, m] -> [N, n, m], entries split over ATen's threads, one BLAS thread each.
at::Tensor splitBmm(const at::Tensor& a, const at::Tensor& b) {
  const int64_t N = a.size(0);
  // Detached: the worker threads do not share this thread's grad mode, and out= ops refuse
  // inputs that require grad (autograd is this Function's business, not theirs).
  const at::Tensor x = a.detach(), y = b.detach();
  at::Tensor out = at::empty({N, a.size(1), b.size(2)}, a.options().requires_grad(false));
  SingleBlasThread guard;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      at::Tensor o = out.select(0, i);
      at::mm_out(o, x.select(0, i), y.select(0, i));
    }
  });
  return out;
}

struct BatchedMatmul : public torch::autograd::Function<BatchedMatmul> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    ctx->save_for_backward({a, b});
    return splitBmm(a, b);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &a = saved[0], &b = saved[1];
    const at::Tensor g = grads[0];
    // create_graph (double backward) needs differentiable ops: ATen's.
    const bool graph = at::GradMode::is_enabled();
    auto product = [&](const at::Tensor& x, const at::Tensor& y) { return graph ? at::bmm(x, y) : splitBmm(x, y); };
    at::Tensor ga = ctx->needs_input_grad(0) ? product(g, b.transpose(1, 2)) : at::Tensor();
    at::Tensor gb = ctx->needs_input_grad(1) ? product(a.transpose(1, 2), g) : at::Tensor();
    return {ga, gb};
  }
};

}  // namespace

// at::matmul's semantics; products with batch dimensions on both sides (or a matrix times a
// batch) go through BatchedMatmul, broadcasting the batch dimensions as matmul does. A batch times
// a matrix stays with at::matmul, which folds it into one large product.
at::Tensor batchedMatmul(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() < 2 || b.dim() < 3 || !splitsWell(a, b)) return at::matmul(a, b);
  auto batchA = a.sizes().slice(0, a.dim() - 2), batchB = b.sizes().slice(0, b.dim() - 2);
  std::vector<int64_t> batch = at::infer_size(batchA, batchB);
  int64_t N = 1;
  for (int64_t s : batch) N *= s;
  const int64_t n = a.size(-2), k = a.size(-1), m = b.size(-1);
  TORCH_CHECK(b.size(-2) == k, "matmul: shapes ", a.sizes(), " and ", b.sizes(), " cannot be multiplied (", k,
              " vs ", b.size(-2), ")");
  auto expanded = [&](const at::Tensor& t, int64_t rows, int64_t cols) {
    std::vector<int64_t> shape(batch);
    shape.push_back(rows);
    shape.push_back(cols);
    return t.expand(shape).reshape({N, rows, cols});
  };
  at::Tensor out = BatchedMatmul::apply(expanded(a, n, k), expanded(b, k, m));
  std::vector<int64_t> shape(batch);
  shape.push_back(n);
  shape.push_back(m);
  return out.view(shape);
}

at::Tensor batchedBmm(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-D tensors, got ", a.dim(), "-D and ", b.dim(), "-D");
  TORCH_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ (", a.size(0), " vs ", b.size(0), ")");
  return splitsWell(a, b) ? batchedMatmul(a, b) : at::bmm(a, b);
}

/** Whether batched products run on the split path (OpenBLAS found): for benchmarks' notes. */
OP(batchedMatmulSplits) { return Napi::Boolean::New(info.Env(), openBlas().set != nullptr); }

}  // namespace engram
