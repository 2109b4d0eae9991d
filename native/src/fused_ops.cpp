// Fused ops with hand-written backward passes: the pattern for adding one is a
// torch::autograd::Function subclass (forward saves what backward needs) plus an OP wrapper.
// They cost one native call instead of several and keep fewer intermediates alive for backward.
#include "engram.h"

#include <ATen/ExpandUtils.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace engram {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Loops compiled twice, for x86-64-v3 (AVX2, FMA) and the baseline the addon is built for, the CPU
// choosing at load time (target_clones).
#if defined(__GNUC__) && defined(__x86_64__)
#define ENGRAM_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ENGRAM_ROW_KERNEL
#endif

// Σ a_d b_d over D in eight independent sums, and y += s · x: written eight lanes at a time so that
// the compiler's straight-line vectoriser (on at -O2) packs them into one AVX2 register in the
// ENGRAM_ROW_KERNEL clones (two SSE ones in the baseline) without reordering any one sum.
template <typename scalar_t>
inline scalar_t dot(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t D) {
  scalar_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int l = 0; l < 8; l++) s[l] += a[d + l] * b[d + l];
  for (; d < D; d++) s[0] += a[d] * b[d];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
template <typename scalar_t>
inline void axpy(scalar_t* __restrict__ y, scalar_t a, const scalar_t* __restrict__ x, int64_t D) {
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int l = 0; l < 8; l++) y[d + l] += a * x[d + l];
  for (; d < D; d++) y[d] += a * x[d];
}

// maskedSoftmax(x, mask|null, scale, dim) = softmax(scale * x with masked positions at -inf).
// Backward needs only the output y: dx = scale * y * (dy - sum(dy * y)). The unfused version keeps
// the scaled and the masked logits alive as well. Rows fully masked give zeros, not NaN.
//
// On the CPU over the last dim (float32 / float64, contiguous x, a mask broadcast over leading dims
// only), the logits are made in one pass (scale and mask together, where the composed ops make
// x * scale and then mask it), ATen's softmax runs over them, the masked positions of y are zeroed
// only where a row is fully masked (elsewhere exp(-inf) is 0 already), and backward is one pass per
// row (ATen's softmax backward and then the scale would be two). Elsewhere the same ATen ops.
namespace {
// Offsets of mask row r for every row r of x [..., Tq, Tk] (mask expanded to x's shape; rows in x's
// row-major order), or empty when the mask's last dim is not contiguous.
std::vector<int64_t> maskRowOffsets(const at::Tensor& mask, const at::Tensor& x) {
  const at::Tensor m = mask.expand(x.sizes());
  const int64_t n = x.dim();
  if (m.size(n - 1) > 1 && m.stride(n - 1) != 1) return {};
  return batchOffsets(m, x.sizes().slice(0, n - 1));
}
// One row of the logits: l = mask ? -inf : s * x; returns how many positions are open. One row of
// the backward: d = s * y * (g - Σ g·y). Vectorised (omp simd; ENGRAM_ROW_KERNEL: an AVX2
// clone where the processor has it).
template <typename scalar_t>
ENGRAM_ROW_KERNEL int64_t maskedLogitsRow(const scalar_t* __restrict__ x, const bool* __restrict__ m, scalar_t* __restrict__ l, scalar_t s,
                                          int64_t n) {
  const scalar_t ninf = -std::numeric_limits<scalar_t>::infinity();
  int64_t open = 0;
#pragma omp simd reduction(+ : open)
  for (int64_t j = 0; j < n; j++) {
    const bool masked = m[j];
    l[j] = masked ? ninf : x[j] * s;
    open += masked ? 0 : 1;
  }
  return open;
}
template <typename scalar_t>
ENGRAM_ROW_KERNEL void softmaxBackwardRow(const scalar_t* __restrict__ y, const scalar_t* __restrict__ g, scalar_t* __restrict__ d, scalar_t s,
                                          int64_t n) {
  scalar_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; j++) sum += g[j] * y[j];
#pragma omp simd
  for (int64_t j = 0; j < n; j++) d[j] = s * y[j] * (g[j] - sum);
}
bool softmaxRowsNative(const at::Tensor& x, int64_t dim) {
  const int64_t n = x.dim();
  return nativeCpu(x) && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && n >= 1 && (dim == -1 || dim == n - 1) &&
         x.is_contiguous() && x.numel() > 0;
}
}  // namespace

struct MaskedSoftmax : public torch::autograd::Function<MaskedSoftmax> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const c10::optional<at::Tensor>& mask,
                            double scale, int64_t dim) {
    at::Tensor y;
    std::vector<int64_t> offsets;
    const bool rows = softmaxRowsNative(x, dim) && (!mask || (mask->scalar_type() == at::kBool && mask->is_cpu() &&
                                                              at::is_expandable_to(mask->sizes(), x.sizes()) &&
                                                              !(offsets = maskRowOffsets(*mask, x)).empty()));
    if (rows && !mask) {
      y = at::softmax(scale == 1.0 ? x : x * scale, -1);
    } else if (rows) {
      const int64_t Tk = x.size(x.dim() - 1), count = x.numel() / Tk;
      at::Tensor logits = at::empty_like(x);
      bool fullyMasked = false;  // some row has no unmasked position (its softmax is 0/0)
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "maskedSoftmax", [&] {
        const scalar_t* xp = x.data_ptr<scalar_t>();
        scalar_t* lp = logits.data_ptr<scalar_t>();
        const bool* mp = mask->data_ptr<bool>();
        const scalar_t s = static_cast<scalar_t>(scale);
        std::atomic<bool> anyFull{false};
        at::parallel_for(0, count, std::max<int64_t>(1, (1 << 14) / Tk), [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; r++) {
            if (maskedLogitsRow(xp + r * Tk, mp + offsets[static_cast<size_t>(r)], lp + r * Tk, s, Tk) == 0) anyFull = true;
          }
        });
        fullyMasked = anyFull;
      });
      y = at::softmax(logits, -1);
      if (fullyMasked) y.masked_fill_(*mask, 0.0);
    } else {
      at::Tensor logits = scale == 1.0 ? x : x * scale;
      // x * scale is a new tensor, masked in place (no copy of the scores); x itself is the caller's
      if (mask) {
        if (scale == 1.0 || !at::is_expandable_to(mask->sizes(), logits.sizes())) {
          logits = logits.masked_fill(*mask, -std::numeric_limits<double>::infinity());
        } else {
          logits.masked_fill_(*mask, -std::numeric_limits<double>::infinity());
        }
      }
      y = at::softmax(logits, dim);
      // All-masked rows are 0/0 = NaN; zeroing the masked positions (in place, no new tensor)
      // clears them and leaves every other row as it is (its masked positions are 0 already).
      if (mask) y.masked_fill_(*mask, 0.0);
    }
    ctx->save_for_backward({y});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dim"] = dim;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto y = ctx->get_saved_variables()[0];
    double scale = ctx->saved_data["scale"].toDouble();
    int64_t dim = ctx->saved_data["dim"].toInt();
    const at::Tensor dy = grads[0].contiguous();
    if (softmaxRowsNative(y, dim) && dy.scalar_type() == y.scalar_type()) {
      // one pass per row: dx = scale * y * (dy - sum(dy * y))
      at::Tensor dx = at::empty_like(y);
      const int64_t Tk = y.size(y.dim() - 1), count = y.numel() / Tk;
      AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "maskedSoftmax backward", [&] {
        const scalar_t *yp = y.data_ptr<scalar_t>(), *gp = dy.data_ptr<scalar_t>();
        scalar_t* dp = dx.data_ptr<scalar_t>();
        const scalar_t s = static_cast<scalar_t>(scale);
        at::parallel_for(0, count, std::max<int64_t>(1, (1 << 14) / Tk), [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; r++) {
            softmaxBackwardRow(yp + r * Tk, gp + r * Tk, dp + r * Tk, s, Tk);
          }
        });
      });
      return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
    }
    // ATen's softmax backward kernel: y * (dy - sum(dy * y)) in one pass.
    auto dx = at::_softmax_backward_data(dy, y, dim, y.scalar_type());
    if (scale != 1.0) dx.mul_(scale);
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// softMaskRenorm(p, m, eps, dim) = p·m / (Σ_dim p·m + eps): a soft mask m (broadcast to p) applied
// to attention weights p after the softmax, the row renormalised (Adaptive-Span's ramp, Expire-Span's
// mask). The forward runs the same ATen ops as the composed version (bit-identical); backward keeps
// p, m and the row sums s only (no product or quotient of p's size) and, with q = p·m, y = q / s:
//   dq = (dy − Σ dy·q / s) / s,   dp = dq·m,   dm = Σ over m's broadcast dims of dq·p.
namespace {
// One row of softMaskRenorm's backward, q = p·m, y = q / s: c = Σ dy·q, dq = (dy − c / s) / s, then
// dp = dq·m (written) and dm += dq·p (accumulated: rows sharing a mask row add into it in turn).
template <typename scalar_t>
ENGRAM_ROW_KERNEL void softMaskRenormBackwardRow(const scalar_t* __restrict__ dy, const scalar_t* __restrict__ p, const scalar_t* __restrict__ m,
                                                 scalar_t s, scalar_t* __restrict__ dp, scalar_t* __restrict__ dm, int64_t n) {
  scalar_t c = 0;
#pragma omp simd reduction(+ : c)
  for (int64_t j = 0; j < n; j++) c += dy[j] * (p[j] * m[j]);
  const scalar_t t = c / s;
  if (dp && dm) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const scalar_t dq = (dy[j] - t) / s;
      dp[j] = dq * m[j];
      dm[j] += dq * p[j];
    }
  } else if (dp) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) dp[j] = (dy[j] - t) / s * m[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) dm[j] += (dy[j] - t) / s * p[j];
  }
}
}  // namespace

struct SoftMaskRenorm : public torch::autograd::Function<SoftMaskRenorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& p, const at::Tensor& m, double eps, int64_t dim) {
    at::Tensor q = p * m;
    at::Tensor s = q.sum(dim, true).add_(eps);
    ctx->save_for_backward({p, m, s});
    ctx->saved_data["dim"] = dim;
    return q.div_(s);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &p = saved[0], &m = saved[1], &s = saved[2];
    int64_t dim = ctx->saved_data["dim"].toInt();
    const bool needP = ctx->needs_input_grad(0), needM = ctx->needs_input_grad(1);
    if (auto rows = backwardRows(p, m, s, grads[0], dim, needP, needM)) return {rows->first, rows->second, at::Tensor(), at::Tensor()};
    const auto& dy = grads[0];
    at::Tensor q = p * m;
    at::Tensor dq = dy - (dy * q).sum(dim, true).div_(s);
    dq.div_(s);
    at::Tensor dp, dm;
    if (needP) dp = at::sum_to(dq * m, p.sizes()).to(p.scalar_type());
    if (needM) dm = at::sum_to(dq.mul_(p), m.sizes()).to(m.scalar_type());
    return {dp, dm, at::Tensor(), at::Tensor()};
  }

  // On the CPU over the last dim (float32 / float64; p, m and s contiguous, m broadcast to p over
  // leading dims only): one pass per row of p (its two loops over a row that stays in cache), reading
  // dy, p and m and writing dp, where the ATen ops above make about twenty passes over p's size and
  // allocate five tensors of it. The rows that share a mask row (its broadcast dims) are one
  // thread's, summed into dm in row order, so dm does not depend on the threads. Else nullopt: the
  // ATen ops.
  static c10::optional<std::pair<at::Tensor, at::Tensor>> backwardRows(const at::Tensor& p, const at::Tensor& m, const at::Tensor& s,
                                                                       const at::Tensor& gradOut, int64_t dim, bool needP, bool needM) {
    const int64_t n = p.dim();
    if (!softmaxRowsNative(p, dim) || m.scalar_type() != p.scalar_type() || s.scalar_type() != p.scalar_type() ||
        gradOut.scalar_type() != p.scalar_type() || !m.is_contiguous() || !s.is_contiguous()) {
      return c10::nullopt;
    }
    const int64_t Tk = p.size(n - 1), count = p.numel() / Tk;
    if (m.size(m.dim() - 1) != Tk || !at::is_expandable_to(m.sizes(), p.sizes()) || gradOut.sizes() != p.sizes() || s.numel() != count) return c10::nullopt;
    const at::Tensor dy = gradOut.contiguous();
    const std::vector<int64_t> maskRows = maskRowOffsets(m, p);  // the mask row of each row of p
    // (mask row, row of p) sorted: the rows of p grouped by their mask row, in row order within a group
    std::vector<std::pair<int64_t, int64_t>> order(static_cast<size_t>(count));
    for (int64_t r = 0; r < count; r++) order[static_cast<size_t>(r)] = {maskRows[static_cast<size_t>(r)], r};
    std::sort(order.begin(), order.end());
    std::vector<int64_t> groupStart{0};
    for (int64_t i = 1; i < count; i++) {
      if (order[static_cast<size_t>(i)].first != order[static_cast<size_t>(i - 1)].first) groupStart.push_back(i);
    }
    groupStart.push_back(count);
    const int64_t groups = static_cast<int64_t>(groupStart.size()) - 1;
    at::Tensor dp = needP ? at::empty_like(p) : at::Tensor();
    at::Tensor dm = needM ? at::zeros_like(m) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "softMaskRenorm backward", [&] {
      const scalar_t *dyp = dy.data_ptr<scalar_t>(), *pp = p.data_ptr<scalar_t>(), *mp = m.data_ptr<scalar_t>(), *sp = s.data_ptr<scalar_t>();
      scalar_t* dpp = needP ? dp.data_ptr<scalar_t>() : nullptr;
      scalar_t* dmp = needM ? dm.data_ptr<scalar_t>() : nullptr;
      const int64_t grain = std::max<int64_t>(1, (1 << 14) / (Tk * std::max<int64_t>(1, count / groups)));
      at::parallel_for(0, groups, grain, [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; g++) {
          for (int64_t i = groupStart[static_cast<size_t>(g)]; i < groupStart[static_cast<size_t>(g + 1)]; i++) {
            const auto [mo, r] = order[static_cast<size_t>(i)];
            softMaskRenormBackwardRow(dyp + r * Tk, pp + r * Tk, mp + mo, sp[r], dpp ? dpp + r * Tk : nullptr, dmp ? dmp + mo : nullptr, Tk);
          }
        }
      });
    });
    return std::make_pair(dp, dm);
  }
};

// l[s] = e^(l[s] − top) for s < count, returning their sum: the exponentials of a softmax row
// (top its maximum, so every argument is ≤ 0). In float32 eight at a time in straight-line vector
// arithmetic (libm's expf is one call per element; GCC's vector extensions, so that each clone of
// ENGRAM_ROW_KERNEL gets its own instructions): x = n·ln 2 + r with |r| ≤ ln 2 / 2 (n rounded to
// nearest by the 1.5·2^23 shifter), e^r from its degree-7 Taylor polynomial (truncation error
// under 1e-8; in a scan of [−90, 0] against double-precision exp the relative error stayed below
// 1e-7, under float32's epsilon; test/expire-span.test.ts holds it to ATen's softmax), 2^n built in
// the exponent bits; below −87 (e^x under float32's smallest normal number) 0, NaN stays NaN. l
// must have room for count rounded up to a multiple of 8 (the tail is padded with −inf, giving 0).
// Doubles: std::exp.
typedef float Floats8 __attribute__((vector_size(32)));
typedef int32_t Ints8 __attribute__((vector_size(32)));
ENGRAM_ROW_KERNEL float softmaxExpRow(float* l, int64_t count, float top) {
  const int64_t padded = (count + 7) / 8 * 8;
  std::fill(l + count, l + padded, -std::numeric_limits<float>::infinity());
  Floats8 sum{};
  for (int64_t s = 0; s < padded; s += 8) {
    Floats8 x;
    std::memcpy(&x, l + s, sizeof x);
    x -= top;
    const Ints8 vanishes = x < -87.0f;
    x = vanishes ? Floats8{} - 87.0f : x;
    const float shifter = 12582912.0f;
    const Floats8 n = (x * 1.44269504088896341f + shifter) - shifter;
    const Floats8 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln 2 in two parts: n·ln 2 exactly enough
    Floats8 p = Floats8{} + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const Ints8 bits = (__builtin_convertvector(n, Ints8) + 127) << 23;
    const Floats8 e = vanishes ? Floats8{} : p * (Floats8)bits;
    std::memcpy(l + s, &e, sizeof e);
    sum += e;
  }
  return ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
}
inline double softmaxExpRow(double* l, int64_t count, double top) {
  double sum = 0;
  for (int64_t s = 0; s < count; s++) sum += (l[s] = std::exp(l[s] - top));
  return sum;
}

// One row (b, k, i) of expiringAttention's forward over the `count` keys it sees (index key[s],
// position column[s], soft mask m[s]): logits l_s = scale · (content[key_s] + q · keyPe[:, column_s])
// (per key: peRows [P, D]; else `table` is this row's q · keyPe [P]), a = softmax(l) over them,
// u = m·a, y = u / (Σ u + eps) written at key[s] and 0 at every other of the Tk keys; returns
// Σ u + eps. l scratch for count rounded up to a multiple of 8. Seeing no key: zeros, returns eps.
// The weights of one expiring row from its logits l [count] (the keys it sees) and their soft masks
// m: l becomes u = m · softmax(l); returns Z = Σ u + eps (the weights are u / Z). top: max of l;
// l has softmaxExpRow's room. Shared by the weights op (expiringForwardRow), the attention op
// (expiringRowForward) and decoding's layer (expiringHead), so that all weigh the keys with the same
// arithmetic. (Always inlined: each caller's target clone gets its own instructions.)
template <typename scalar_t>
__attribute__((always_inline)) inline scalar_t expiringMaskedSoftmax(scalar_t* __restrict__ l, const scalar_t* __restrict__ m, int64_t count, scalar_t top,
                                                                     scalar_t eps) {
  const scalar_t inverse = scalar_t(1) / softmaxExpRow(l, count, top);
  scalar_t z = 0;
#pragma omp simd reduction(+ : z)
  for (int64_t s = 0; s < count; s++) z += (l[s] = m[s] * (l[s] * inverse));
  return z + eps;
}

template <typename scalar_t>
ENGRAM_ROW_KERNEL scalar_t expiringForwardRow(const scalar_t* __restrict__ content, const scalar_t* __restrict__ q, const scalar_t* __restrict__ peRows,
                                              const scalar_t* __restrict__ table, const int64_t* __restrict__ key, const int64_t* __restrict__ column,
                                              const scalar_t* __restrict__ m, int64_t count, int64_t D, int64_t Tk, scalar_t scale, scalar_t eps,
                                              scalar_t* __restrict__ l, scalar_t* __restrict__ out) {
  scalar_t top = -std::numeric_limits<scalar_t>::infinity();
  for (int64_t s = 0; s < count; s++) {
    const scalar_t position = peRows ? dot(q, peRows + column[s] * D, D) : table[column[s]];
    l[s] = (content[key[s]] + position) * scale;
    top = std::max(top, l[s]);
  }
  const scalar_t z = expiringMaskedSoftmax(l, m, count, top, eps);
  const scalar_t toY = scalar_t(1) / z;
  std::fill(out, out + Tk, scalar_t(0));
  for (int64_t s = 0; s < count; s++) out[key[s]] = l[s] * toY;
  return z;
}

// One row (b, k, i) of expiringAttention's backward (the maths above ExpiringAttention): from the
// row's output y, its gradient g and Z, over the keys it sees: the content gradient dc (written at
// every key: 0 where unseen), and added into dq [D] and dTable (per key: this batch row's [P, D];
// else this row's [P]) and dspan [Tk]. ys, gs, du, ds [count] scratch.
template <typename scalar_t>
ENGRAM_ROW_KERNEL void expiringBackwardRow(const scalar_t* __restrict__ y, const scalar_t* __restrict__ g, scalar_t z, const scalar_t* __restrict__ q,
                                           const scalar_t* __restrict__ peRows, const int64_t* __restrict__ key, const int64_t* __restrict__ column,
                                           const scalar_t* __restrict__ m, const uint8_t* __restrict__ onRamp, int64_t count, int64_t D, int64_t Tk,
                                           scalar_t scale, scalar_t ramp, scalar_t* __restrict__ dc, scalar_t* __restrict__ dq, scalar_t* __restrict__ dTable,
                                           scalar_t* __restrict__ dspan, scalar_t* __restrict__ ys, scalar_t* __restrict__ gs, scalar_t* __restrict__ du,
                                           scalar_t* __restrict__ ds) {
  scalar_t gy = 0;  // Σ g·y (over the seen keys: y is 0 elsewhere)
  for (int64_t s = 0; s < count; s++) {
    ys[s] = y[key[s]];
    gs[s] = g[key[s]];
    gy += gs[s] * ys[s];
  }
  const scalar_t inverse = scalar_t(1) / z;
  scalar_t duy = 0;  // Σ du·y
#pragma omp simd reduction(+ : duy)
  for (int64_t s = 0; s < count; s++) duy += (du[s] = (gs[s] - gy) * inverse) * ys[s];
  const scalar_t c2 = duy * z;  // Σ dL/da · a
  // p = y Z / m is the softmax's a (m > 0 where seen); ds = scale · a · (m·du − Σ dL/da · a); the
  // span's gradient a·du / R where the clamp passes it (kept in ys)
#pragma omp simd
  for (int64_t s = 0; s < count; s++) {
    const scalar_t p = ys[s] * z / m[s];
    ds[s] = scale * p * (m[s] * du[s] - c2);
    ys[s] = onRamp[s] ? p * du[s] / ramp : scalar_t(0);
  }
  std::fill(dc, dc + Tk, scalar_t(0));  // blocked keys: y = 0, no gradient
  for (int64_t s = 0; s < count; s++) {
    const int64_t j = key[s], col = column[s];
    dc[j] = ds[s];
    dspan[j] += ys[s];
    if (peRows) {
      axpy(dq, ds[s], peRows + col * D, D);
      axpy(dTable + col * D, ds[s], q, D);
    } else {
      dTable[col] += ds[s];
    }
  }
}

// Expire-Span's loops below (expiringRowMasks, and expiringAttend's) are compiled three times: for
// x86-64-v4 (AVX-512: sixteen floats to a register, and 32 registers, which hold a head's query and
// gradient rows and eight partial sums without spilling), x86-64-v3 and the baseline. The same lane arithmetic in each (64-byte vectors: one register on
// v4, two on v3), so every clone gives the same floats.
#if defined(__GNUC__) && defined(__x86_64__)
#define ENGRAM_WIDE_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ENGRAM_WIDE_KERNEL
#endif

// Per key j of a batch row, for query i: the soft mask m_j = clamp((e_j − d_ij)/R + 1, 0, 1), 0 where
// blocked (d_ij < nearest or (e_j − d_ij)/R + 1 ≤ 0), and onRamp_j = 1 where the clamp passes the
// span's gradient ((e − d)/R + 1 ≤ 1), else 0: which keys a query sees, for both expiring ops
// (ExpiringAttention's SeenKeys, expiringAttend's ExpiringRow).
template <typename scalar_t>
ENGRAM_WIDE_KERNEL void expiringRowMasks(const int64_t* __restrict__ age, const scalar_t* __restrict__ spans, int64_t Tk, int64_t i, scalar_t ramp,
                                         int64_t nearest, scalar_t* __restrict__ m, scalar_t* __restrict__ onRamp) {
#pragma omp simd
  for (int64_t j = 0; j < Tk; j++) {
    const int64_t d = age[j] + i;
    const scalar_t unclamped = (spans[j] - static_cast<scalar_t>(d)) / ramp + scalar_t(1);
    const bool seen = (d >= nearest) & (unclamped > 0);  // (& and selects, no branches: the loop vectorises)
    const scalar_t clamped = unclamped < scalar_t(1) ? unclamped : scalar_t(1);
    m[j] = seen ? clamped : scalar_t(0);
    onRamp[j] = (seen & (unclamped <= scalar_t(1))) ? scalar_t(1) : scalar_t(0);
  }
}

// expiringAttention: Expire-Span's attention weights in one op, from the content scores, the
// queries and the key position table, without any table of the weights' size but the weights.
//   content [B, K, Tq, Tk] (q · kᵀ), queries q [B, K, Tq, D], keyPe [D, P] (column d: distance d),
//   age int64 [B, Tk] (key j sits at distance d_ij = age_j + i from query i), spans e [B, Tk];
//   per row (b, k, i):
//   m_j = clamp((e_j − d_ij) / R + 1, 0, 1)                      soft mask
//   blocked_j = d_ij < nearest or m_j ≤ 0
//   s_j = scale · (content_j + q_i · keyPe[:, clamp(d_ij, 0, P − 1)]), −inf where blocked
//   a = softmax(s) (0 where blocked: an all-blocked row gives zeros)
//   y_j = m_j a_j / Z,   Z = Σ_j m_j a_j + eps
// The position scores come one of two ways (`positions`): per key, a D-long dot product for each
// key a row sees (cost ∝ the keys seen, which is what a short-span Expire-Span saves), or from the
// table q · keyPe of every distance [B, K, Tq, P], one matrix product (cheaper per score, but ∝ P
// whatever is kept); 0 chooses per key when the cells seen cost less that way (perKeyCheaper).
// For backward this keeps y and Z [B, K, Tq] (and q, keyPe), and recomputes m and a = y Z / m (m > 0
// wherever a > 0). With g = dL/dy, du = (g − Σ g·y) / Z; dL/da = m·du, dL/dm = a·du; ds = scale · a ·
// (m·du − Σ m·du·a) with Σ m·du·a = Σ du·y·Z; ds goes to content and, through the key's distance
// column, to q and keyPe; dL/de = Σ over heads and queries of dL/dm / R where 0 ≤ (e − d)/R + 1 ≤ 1.
// CPU only (one pass per row, softmax included: expiringForwardRow, expiringBackwardRow); other devices compose the ops in TS
// (composedExpiringAttention: the table, a gather by distance, maskedSoftmax, softMaskRenorm).
struct ExpiringAttention : public torch::autograd::Function<ExpiringAttention> {
  // Per key, a seen cell's dot product of D costs about as much as 1.5 table columns (a matrix
  // product's column is cheaper per multiply, but the table is written, read, zeroed and read again
  // in backward): measured with scripts/probes/expiring-attention.ts (per key ahead at 160 and 320
  // of 640 positions, the table at 600 with nearly every key seen).
  static constexpr double kPerKeyCost = 1.5;

  // Whether position scores per key cost less than the table: the (query, key) cells seen, counted
  // per key from its span (query i sees key j while nearest ≤ age_j + i and e_j − age_j − i + R > 0,
  // the bounds SeenKeys tests, up to rounding), against Tq · P table entries per batch row.
  template <typename scalar_t>
  static bool perKeyCheaper(const int64_t* age, const scalar_t* spans, int64_t B, int64_t Tq, int64_t Tk, double ramp, int64_t nearest, int64_t P) {
    double seen = 0;
    for (int64_t n = 0; n < B * Tk; n++) {
      const double first = std::max<double>(0, static_cast<double>(nearest - age[n]));
      const double end = std::min<double>(static_cast<double>(Tq), std::ceil(static_cast<double>(spans[n]) - static_cast<double>(age[n]) + ramp));
      seen += std::max(0.0, end - first);
    }
    return seen * kPerKeyCost < static_cast<double>(B * Tq * P);
  }

  // The keys query i of batch row b sees (d ≥ nearest and m > 0), shared by every head: each one's
  // index j, soft mask m_j, key position column clamp(d, 0, P − 1), and whether it is on the ramp
  // ((e − d)/R + 1 ≤ 1, where the clamp passes the span's gradient). The rows' loops run over these
  // only: a short-span Expire-Span sees a fraction of the keys it holds.
  template <typename scalar_t>
  struct SeenKeys {
    std::vector<int64_t> key, column;
    std::vector<scalar_t> m;
    std::vector<uint8_t> onRamp;
    int64_t count = 0;
    std::vector<scalar_t> maskAll, rampAll;  // expiringRowMasks' [Tk], compacted into the above
    explicit SeenKeys(int64_t Tk) : key(Tk), column(Tk), m(Tk), onRamp(Tk), maskAll(Tk), rampAll(Tk) {}
    void build(const int64_t* age, const scalar_t* spans, int64_t Tk, int64_t i, scalar_t ramp, int64_t nearest, int64_t P) {
      expiringRowMasks(age, spans, Tk, i, ramp, nearest, maskAll.data(), rampAll.data());
      count = 0;
      for (int64_t j = 0; j < Tk; j++) {
        if (maskAll[j] == scalar_t(0)) continue;  // blocked
        key[count] = j;
        column[count] = std::min(std::max(age[j] + i, int64_t(0)), P - 1);
        m[count] = maskAll[j];
        onRamp[count] = rampAll[j] != scalar_t(0);
        count++;
      }
    }
  };

  // Calls row(row, seen, scratch) for every row (b, k, i) of [B, K, Tq], in parallel over (b, i):
  // each query's seen keys are found once and shared by its K heads; scratch [Tk + 8] per task.
  template <typename scalar_t, typename RowFn>
  static void forEachRow(const int64_t* age, const scalar_t* spans, int64_t B, int64_t K, int64_t Tq, int64_t Tk, scalar_t ramp,
                         int64_t nearest, int64_t P, const RowFn& row) {
    at::parallel_for(0, B * Tq, 16, [&](int64_t begin, int64_t end) {
      SeenKeys<scalar_t> seen(Tk);
      std::vector<scalar_t> scratch(Tk + 8);
      for (int64_t bi = begin; bi < end; bi++) {
        const int64_t b = bi / Tq, i = bi % Tq;
        seen.build(age + b * Tk, spans + b * Tk, Tk, i, ramp, nearest, P);
        for (int64_t k = 0; k < K; k++) row((b * K + k) * Tq + i, seen, scratch.data());
      }
    });
  }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& content, const at::Tensor& queries, const at::Tensor& keyPe,
                            const at::Tensor& age, const at::Tensor& spans, double ramp, int64_t nearest, double scale, double eps,
                            int64_t positions) {
    TORCH_CHECK(content.device().is_cpu(), "expiringAttention runs on the CPU; other devices compose it from ATen ops");
    TORCH_CHECK(content.dim() == 4 && queries.dim() == 4 && keyPe.dim() == 2 && age.dim() == 2 && spans.dim() == 2,
                "expiringAttention: content [B, K, Tq, Tk], queries [B, K, Tq, D], keyPe [D, P], age [B, Tk], spans [B, Tk]");
    TORCH_CHECK(age.scalar_type() == at::kLong, "expiringAttention: age must be int64");
    const int64_t B = content.size(0), K = content.size(1), Tq = content.size(2), Tk = content.size(3);
    const int64_t D = queries.size(3), P = keyPe.size(1);
    TORCH_CHECK(queries.size(0) == B && queries.size(1) == K && queries.size(2) == Tq && keyPe.size(0) == D && P > 0,
                "expiringAttention: queries must be [B, K, Tq, D] with content's B, K, Tq, and keyPe [D, P] with P > 0");
    TORCH_CHECK(age.size(0) == B && age.size(1) == Tk && spans.size(0) == B && spans.size(1) == Tk,
                "expiringAttention: age and spans must be [B, Tk] with content's B and Tk");
    TORCH_CHECK(positions >= 0 && positions <= 2, "expiringAttention: positions must be 0 (choose), 1 (per key) or 2 (table)");
    at::Tensor c = content.contiguous();
    at::Tensor q = queries.to(c.scalar_type()).contiguous();
    at::Tensor pe = keyPe.to(c.scalar_type());
    at::Tensor a = age.contiguous();
    at::Tensor e = spans.to(c.scalar_type()).contiguous();
    bool perKey = positions == 1;
    if (positions == 0) {
      AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "expiringAttentionChoice", [&] {
        perKey = perKeyCheaper(a.data_ptr<int64_t>(), e.data_ptr<scalar_t>(), B, Tq, Tk, ramp, nearest, P);
      });
    }
    // Per key: keyPe's columns as rows [P, D]; else the table q · keyPe [B, K, Tq, P] (a bfloat16
    // product under autocast, as the composed version's, read in float32).
    at::Tensor table = perKey ? pe.t().contiguous() : at::matmul(q, pe).to(c.scalar_type()).contiguous();
    at::Tensor y = at::empty_like(c);
    at::Tensor Z = at::empty({B, K, Tq}, c.options());
    AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "expiringAttention", [&] {
      const scalar_t* cp = c.data_ptr<scalar_t>();
      const scalar_t* qp = q.data_ptr<scalar_t>();
      const scalar_t* tp = table.data_ptr<scalar_t>();
      const int64_t* ap = a.data_ptr<int64_t>();
      const scalar_t* ep = e.data_ptr<scalar_t>();
      const scalar_t r = static_cast<scalar_t>(ramp), sc = static_cast<scalar_t>(scale), epsilon = static_cast<scalar_t>(eps);
      scalar_t* yp = y.data_ptr<scalar_t>();
      scalar_t* zp = Z.data_ptr<scalar_t>();
      forEachRow<scalar_t>(ap, ep, B, K, Tq, Tk, r, nearest, P, [&](int64_t row, const SeenKeys<scalar_t>& seen, scalar_t* scratch) {
        zp[row] = expiringForwardRow(cp + row * Tk, qp + row * D, perKey ? tp : nullptr, perKey ? nullptr : tp + row * P, seen.key.data(),
                                     seen.column.data(), seen.m.data(), seen.count, D, Tk, sc, epsilon, scratch, yp + row * Tk);
      });
    });
    ctx->save_for_backward({y, Z, a, e, q, pe});
    ctx->saved_data["ramp"] = ramp;
    ctx->saved_data["nearest"] = nearest;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["perKey"] = perKey;
    ctx->saved_data["spansType"] = static_cast<int64_t>(spans.scalar_type());
    ctx->saved_data["queriesType"] = static_cast<int64_t>(queries.scalar_type());
    ctx->saved_data["keyPeType"] = static_cast<int64_t>(keyPe.scalar_type());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &Z = saved[1], &a = saved[2], &e = saved[3], &q = saved[4], &pe = saved[5];
    const double ramp = ctx->saved_data["ramp"].toDouble(), scale = ctx->saved_data["scale"].toDouble();
    const int64_t nearest = ctx->saved_data["nearest"].toInt();
    const bool perKey = ctx->saved_data["perKey"].toBool();
    const int64_t B = y.size(0), K = y.size(1), Tq = y.size(2), Tk = y.size(3), D = q.size(3), P = pe.size(1);
    at::Tensor g = grads[0].to(y.scalar_type()).contiguous();
    at::Tensor dContent = at::empty_like(y);
    at::Tensor dSpans = at::zeros({B, Tk}, y.options());
    // Per key: dq [B, K, Tq, D] and each batch row's own d(keyPe columns) [B, P, D] (summed after,
    // in a fixed order); else d(table) [B, K, Tq, P], taken through the matrix product after.
    at::Tensor peRows = perKey ? pe.t().contiguous() : at::Tensor();  // [P, D]
    at::Tensor dq = perKey ? at::zeros_like(q) : at::Tensor();
    at::Tensor dTable = perKey ? at::zeros({B, P, D}, y.options()) : at::zeros({B, K, Tq, P}, y.options());
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "expiringAttentionBackward", [&] {
      const scalar_t* yp = y.data_ptr<scalar_t>();
      const scalar_t* zp = Z.data_ptr<scalar_t>();
      const int64_t* ap = a.data_ptr<int64_t>();
      const scalar_t* ep = e.data_ptr<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      const scalar_t* qp = q.data_ptr<scalar_t>();
      const scalar_t* prp = perKey ? peRows.data_ptr<scalar_t>() : nullptr;
      scalar_t* dqp = perKey ? dq.data_ptr<scalar_t>() : nullptr;
      scalar_t* dcp = dContent.data_ptr<scalar_t>();
      scalar_t* dtp = dTable.data_ptr<scalar_t>();
      scalar_t* dsp = dSpans.data_ptr<scalar_t>();
      const scalar_t r = static_cast<scalar_t>(ramp), sc = static_cast<scalar_t>(scale);
      // One task per batch row b: its queries and heads add to its own rows of dSpans (and dTable).
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        SeenKeys<scalar_t> seen(Tk);
        std::vector<scalar_t> scratch(4 * Tk);
        scalar_t *ys = scratch.data(), *gs = ys + Tk, *du = gs + Tk, *ds = du + Tk;
        for (int64_t b = begin; b < end; b++) {
          for (int64_t i = 0; i < Tq; i++) {
            seen.build(ap + b * Tk, ep + b * Tk, Tk, i, r, nearest, P);
            for (int64_t k = 0; k < K; k++) {
              const int64_t row = (b * K + k) * Tq + i;
              expiringBackwardRow(yp + row * Tk, gp + row * Tk, zp[row], qp + row * D, prp, seen.key.data(), seen.column.data(), seen.m.data(),
                                  seen.onRamp.data(), seen.count, D, Tk, sc, r, dcp + row * Tk, perKey ? dqp + row * D : nullptr,
                                  perKey ? dtp + b * P * D : dtp + row * P, dsp + b * Tk, ys, gs, du, ds);
            }
          }
        }
      });
    });
    at::Tensor dKeyPe;
    if (perKey) {
      dKeyPe = dTable.sum(0).t();  // [D, P]
    } else {
      dq = at::matmul(dTable, pe.t());                                            // [B, K, Tq, D]
      dKeyPe = at::mm(q.reshape({-1, D}).t(), dTable.reshape({-1, P}));           // [D, P]
      // (bfloat16 products where autocast is on here; cast back below)
    }
    const auto type = [&](const char* key) { return static_cast<at::ScalarType>(ctx->saved_data[key].toInt()); };
    return {dContent, dq.to(type("queriesType")), dKeyPe.to(type("keyPeType")), at::Tensor(), dSpans.to(type("spansType")),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// relShiftAdd(content | null, x) = content + relShift(x), x and content [..., Tq, Tk]: Transformer-XL's
// rel_shift exactly as the composed version (nn/positions.ts relShift: pad a zero column on the left,
// view as [..., Tk+1, Tq], drop the first row, view back) and the sum, in one pass. In that padded
// and re-viewed layout, entry [i, j] is element f = Tq + i·Tk + j of the padded rows [Tq, Tk+1]:
// row r = f / (Tk+1), column c = f % (Tk+1), the pad when c = 0 and x[r, c-1] otherwise, so every
// entry (the wrapped ones the causal mask removes included) equals the composed version's. Each
// element of x lands in at most one entry, so the gradient is a gather: dx[r, c-1] = g[i, j] for the
// (i, j) of f = r·(Tk+1) + c, 0 where there is none; dcontent = g. The composed version pads, copies,
// slices and adds, and its backward allocates and scatters through the same views. CPU float32 and
// float64; other dtypes and devices compose the ATen ops.
namespace {
at::Tensor relShiftComposed(const at::Tensor& x) {
  const int64_t n = x.dim(), Tq = x.size(n - 2), Tk = x.size(n - 1);
  std::vector<int64_t> lead(x.sizes().begin(), x.sizes().end() - 2), viewed = lead, back = lead;
  viewed.insert(viewed.end(), {Tk + 1, Tq});
  back.insert(back.end(), {Tq, Tk});
  return at::constant_pad_nd(x, {1, 0}).view(viewed).slice(n - 2, 1).view(back);
}
// One row of relShiftAdd: o[j] = content[j] + (the shifted row's entry j). Along the row the
// padded layout's position (r, c) moves on by one per entry, so the row is runs of x's row r
// (x[r, c-1 ...], contiguous: vectorised) broken where c wraps to the pad's 0 and r moves on; each
// entry gets the same sum as one entry at a time would (content + 0 at the pad).
template <typename scalar_t>
ENGRAM_ROW_KERNEL void relShiftRow(const scalar_t* __restrict__ xm, const scalar_t* __restrict__ content, scalar_t* __restrict__ o, int64_t Tk, int64_t r,
                                   int64_t c) {
  int64_t j = 0;
  while (j < Tk) {
    if (c == 0) {  // the pad
      o[j] = content ? content[j] + scalar_t(0) : scalar_t(0);
      j++, c = 1;
      continue;
    }
    const int64_t n = std::min(Tk - j, Tk + 1 - c);  // entries before the next wrap
    const scalar_t* __restrict__ src = xm + r * Tk + c - 1;
    if (content) {
#pragma omp simd
      for (int64_t t = 0; t < n; t++) o[j + t] = content[j + t] + src[t];
    } else {
      std::memcpy(o + j, src, static_cast<size_t>(n) * sizeof(scalar_t));
    }
    j += n, c += n;
    if (c == Tk + 1) c = 0, r++;
  }
}
template <typename scalar_t>
void relShiftRows(const scalar_t* x, const scalar_t* content, scalar_t* out, int64_t mats, int64_t Tq, int64_t Tk) {
  at::parallel_for(0, mats, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, Tq * Tk)), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; m++) {
      for (int64_t i = 0; i < Tq; i++) {
        const int64_t f = Tq + i * Tk;
        relShiftRow(x + m * Tq * Tk, content ? content + m * Tq * Tk + i * Tk : nullptr, out + m * Tq * Tk + i * Tk, Tk, f / (Tk + 1), f % (Tk + 1));
      }
    }
  });
}
// dx[r, c-1] = g[e] for e = r·(Tk+1) + c − Tq inside [0, Tq·Tk), else 0: per row of dx, one
// contiguous run of g between zeros.
template <typename scalar_t>
void relShiftGrad(const scalar_t* g, scalar_t* dx, int64_t mats, int64_t Tq, int64_t Tk) {
  at::parallel_for(0, mats, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, Tq * Tk)), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; m++) {
      const scalar_t* gm = g + m * Tq * Tk;
      scalar_t* dm = dx + m * Tq * Tk;
      for (int64_t r = 0; r < Tq; r++) {
        const int64_t e0 = r * (Tk + 1) - Tq;  // e at c = 0
        const int64_t lo = std::min(Tk + 1, std::max<int64_t>(1, -e0)), hi = std::max(lo - 1, std::min(Tk, Tq * Tk - 1 - e0));  // c in [lo, hi] read g
        scalar_t* row = dm + r * Tk;
        std::fill(row, row + (lo - 1), scalar_t(0));
        if (hi >= lo) std::memcpy(row + lo - 1, gm + e0 + lo, static_cast<size_t>(hi - lo + 1) * sizeof(scalar_t));
        std::fill(row + hi, row + Tk, scalar_t(0));
      }
    }
  });
}
bool relShiftNative(const at::Tensor& t) {
  return nativeCpu(t) && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}
}  // namespace

// content + relShift(x) (content given) or relShift(x) (content undefined: autograd Functions take no
// undefined inputs, so that case is its own Function below).
static at::Tensor relShiftForward(const at::Tensor& content, const at::Tensor& x) {
  const int64_t n = x.dim(), Tq = x.size(n - 2), Tk = x.size(n - 1);
  const at::Tensor xc = x.contiguous();
  const at::Tensor cc = content.defined() ? content.expand(x.sizes()).contiguous() : at::Tensor();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const int64_t mats = Tq * Tk == 0 ? 0 : x.numel() / (Tq * Tk);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relShiftAdd", [&] {
    relShiftRows<scalar_t>(xc.data_ptr<scalar_t>(), cc.defined() ? cc.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(), mats, Tq, Tk);
  });
  return out;
}
static at::Tensor relShiftBackward(const at::Tensor& gradOut) {
  const at::Tensor g = gradOut.contiguous();
  const int64_t n = g.dim(), Tq = g.size(n - 2), Tk = g.size(n - 1);
  at::Tensor dx = at::empty(g.sizes(), g.options());
  const int64_t mats = Tq * Tk == 0 ? 0 : g.numel() / (Tq * Tk);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "relShiftAdd backward", [&] {
    relShiftGrad<scalar_t>(g.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>(), mats, Tq, Tk);
  });
  return dx;
}

struct RelShiftAdd : public torch::autograd::Function<RelShiftAdd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& content, const at::Tensor& x) {
    ctx->saved_data["contentShape"] = content.sizes().vec();
    return relShiftForward(content, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor dContent, dx;
    if (ctx->needs_input_grad(0)) dContent = at::sum_to(grads[0], ctx->saved_data["contentShape"].toIntVector());
    if (ctx->needs_input_grad(1)) dx = relShiftBackward(grads[0]);
    return {dContent, dx};
  }
};
struct RelShift : public torch::autograd::Function<RelShift> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) { return relShiftForward(at::Tensor(), x); }
  static variable_list backward(AutogradContext* ctx, variable_list grads) { return {relShiftBackward(grads[0])}; }
};

OP(relShiftAdd) {
  const c10::optional<at::Tensor> content = OT(info, 0);
  const at::Tensor& x = T(info, 1);
  TORCH_CHECK(x.dim() >= 2, "relShiftAdd: x must be [..., Tq, Tk]");
  const bool native = relShiftNative(x) && (!content || (relShiftNative(*content) && content->scalar_type() == x.scalar_type() &&
                                                         at::is_expandable_to(content->sizes(), x.sizes())));
  if (!native) {
    at::Tensor shifted = relShiftComposed(x);
    return R(info, content ? *content + shifted : shifted);
  }
  return R(info, content ? RelShiftAdd::apply(*content, x) : RelShift::apply(x));
}

// skewAdd(content [..., Tq, Tk], x [..., Tq, W], base, rowStride) = content + the skewed read of x:
// entry [i, j] adds x's flat entry base + i·rowStride + j of its matrix (Tq·W entries; the last read,
// base + (Tq − 1)·rowStride + Tk − 1, inside it; rows apart by rowStride ≥ Tk, or one row). Two users:
// the learned key positions of a sliding window (nn/positions.ts skewedKeyPositions, rowStride = Tk)
// and relative positions that see later keys (relSkew's read, base = Tq − 1, rowStride = W − 1).
// Composed, as a strided view and an add, the view's backward fills a zero [..., Tq·W] tensor and
// then copies the gradient into it (two passes); here each matrix's gradient is written once: each
// row where it lands, zeros in the gaps. The forward is the same add.
static at::Tensor skewedView(const at::Tensor& x, int64_t base, int64_t rowStride, at::IntArrayRef shape) {
  const int64_t n = x.dim(), perMatrix = x.size(n - 2) * x.size(n - 1);
  const at::Tensor flat = x.reshape({-1, perMatrix});  // [mats, Tq·W]
  std::vector<int64_t> strides(n, 0);
  strides[n - 1] = 1;
  strides[n - 2] = rowStride;
  for (int64_t d = n - 3, step = perMatrix; d >= 0; d--) {  // the lead dims row-major over the matrices
    strides[d] = step;
    step *= shape[d];
  }
  return flat.as_strided(shape, strides, flat.storage_offset() + base);
}
struct SkewAdd : public torch::autograd::Function<SkewAdd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& content, const at::Tensor& x, int64_t base, int64_t rowStride) {
    ctx->saved_data["base"] = base;
    ctx->saved_data["rowStride"] = rowStride;
    ctx->saved_data["xShape"] = x.sizes().vec();
    return content + skewedView(x, base, rowStride, content.sizes());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor g = grads[0].contiguous();
    at::Tensor dx;
    if (ctx->needs_input_grad(1)) {
      const auto xShape = ctx->saved_data["xShape"].toIntVector();
      const int64_t base = ctx->saved_data["base"].toInt(), rowStride = ctx->saved_data["rowStride"].toInt(), n = g.dim();
      const int64_t perMatrix = xShape[n - 2] * xShape[n - 1], Tq = g.size(n - 2), Tk = g.size(n - 1), written = Tq * Tk;
      const int64_t mats = written == 0 ? 0 : g.numel() / written;
      dx = at::empty(xShape, g.options());
      const int64_t bytes = static_cast<int64_t>(g.element_size());
      const char* gp = static_cast<const char*>(g.data_ptr());
      char* dp = static_cast<char*>(dx.data_ptr());
      at::parallel_for(0, mats, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, perMatrix)), [&](int64_t begin, int64_t end) {
        for (int64_t m = begin; m < end; m++) {
          char* d = dp + m * perMatrix * bytes;
          int64_t filled = 0;  // entries of this matrix written so far
          for (int64_t i = 0; i < Tq; i++) {
            const int64_t at = base + i * rowStride;
            std::memset(d + filled * bytes, 0, static_cast<size_t>((at - filled) * bytes));
            std::memcpy(d + at * bytes, gp + (m * written + i * Tk) * bytes, static_cast<size_t>(Tk * bytes));
            filled = at + Tk;
          }
          std::memset(d + filled * bytes, 0, static_cast<size_t>((perMatrix - filled) * bytes));
        }
      });
    }
    return {ctx->needs_input_grad(0) ? grads[0] : at::Tensor(), dx, at::Tensor(), at::Tensor()};
  }
};

OP(skewAdd) {
  const at::Tensor &content = T(info, 0), &x = T(info, 1);
  const int64_t base = I(info, 2), n = x.dim();
  TORCH_CHECK(n >= 2 && content.dim() == n, "skewAdd: content [..., Tq, Tk] and x [..., Tq, W] must have the same number of dims");
  TORCH_CHECK(content.sizes().slice(0, n - 1) == x.sizes().slice(0, n - 1), "skewAdd: content and x must agree in every dim but the last");
  const int64_t Tq = content.size(n - 2), Tk = content.size(n - 1);
  const int64_t rowStride = isNone(info[3]) ? Tk : I(info, 3);
  TORCH_CHECK(Tq <= 1 || rowStride >= Tk, "skewAdd: rowStride must be at least Tk (rows of the read may not overlap)");
  TORCH_CHECK(base >= 0 && (Tq == 0 || Tk == 0 || base + (Tq - 1) * rowStride + Tk <= x.size(n - 2) * x.size(n - 1)),
              "skewAdd: base + (Tq − 1)·rowStride + Tk must be within x's Tq·W entries");
  const bool native = nativeCpu(x) && content.is_cpu() && x.scalar_type() == content.scalar_type() && x.is_contiguous() && !autocastOn(c10::DeviceType::CPU);
  if (!native) return R(info, content + skewedView(x, base, rowStride, content.sizes()));
  return R(info, SkewAdd::apply(content, x, base, rowStride));
}

// splitHeads(x [B, T, P·H], parts P, heads K) -> P tensors [B, K, T, D] (D = H/K): the parts of a
// joint projection (attention's keys and values) split into heads, as views of x (no copy). Their
// backward writes the parts' gradients into one [B, T, P·H] tensor in one pass, in its order (ATen's
// strided copies, and zeros for a part without a gradient, where that pass does not apply). Composed, as view, permute and unbind, autograd stacks the parts'
// gradients into a new [P, B, K, T, D] tensor and then copies that into x's layout: two passes over
// the whole gradient (the first ones a Transformer-XL step's profile shows after the products).
struct SplitHeads : public torch::autograd::Function<SplitHeads> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t parts, int64_t heads) {
    ctx->saved_data["shape"] = x.sizes().vec();
    ctx->saved_data["parts"] = parts;
    ctx->saved_data["heads"] = heads;
    const at::Tensor split = byHeads(x.contiguous(), parts, heads);
    variable_list out;
    for (int64_t p = 0; p < parts; p++) out.push_back(split.select(0, p));
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t parts = ctx->saved_data["parts"].toInt(), heads = ctx->saved_data["heads"].toInt();
    at::TensorOptions options;
    for (const at::Tensor& g : grads) if (g.defined()) options = g.options();
    at::Tensor dx = at::empty(ctx->saved_data["shape"].toIntVector(), options);
    const at::Tensor split = byHeads(dx, parts, heads);
    bool rows = nativeCpu(dx);  // every part's head rows of D entries contiguous: copied row by row below
    for (const at::Tensor& g : grads) rows = rows && g.defined() && g.is_cpu() && g.scalar_type() == dx.scalar_type() && g.stride(3) == 1;
    if (!rows) {
      for (int64_t p = 0; p < parts; p++) {
        if (grads[p].defined()) split.select(0, p).copy_(grads[p]);
        else split.select(0, p).zero_();
      }
      return {dx, at::Tensor(), at::Tensor()};
    }
    // dx[b, t] = [part 0: head 0 … head K−1 | part 1: …], each head's row of D entries read from
    // grads[p][b, k, t]: dx written in order, one row of P·H entries per (b, t) (ATen's strided copy
    // per part measured 2-3 ms for a [16, 4, 256, 64] part here)
    const int64_t B = dx.size(0), T = dx.size(1), D = dx.size(2) / (parts * heads), bytes = static_cast<int64_t>(dx.element_size());
    char* out = static_cast<char*>(dx.data_ptr());
    at::parallel_for(0, B * T, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const int64_t b = r / T, t = r % T;
        char* row = out + r * parts * heads * D * bytes;
        for (int64_t p = 0; p < parts; p++) {
          const at::Tensor& g = grads[p];
          const char* src = static_cast<const char*>(g.data_ptr()) + (b * g.stride(0) + t * g.stride(2)) * bytes;
          for (int64_t k = 0; k < heads; k++, row += D * bytes) std::memcpy(row, src + k * g.stride(1) * bytes, static_cast<size_t>(D * bytes));
        }
      }
    });
    return {dx, at::Tensor(), at::Tensor()};
  }
  // x [B, T, P·K·D] (contiguous) -> the view [P, B, K, T, D]
  static at::Tensor byHeads(const at::Tensor& x, int64_t parts, int64_t heads) {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2) / (parts * heads);
    return x.view({B, T, parts, heads, D}).permute({2, 0, 3, 1, 4});
  }
};

OP(splitHeads) {
  const at::Tensor& x = T(info, 0);
  const int64_t parts = I(info, 1), heads = I(info, 2);
  TORCH_CHECK(parts >= 1 && heads >= 1 && x.dim() == 3 && x.size(2) % (parts * heads) == 0, "splitHeads: x must be [B, T, parts·heads·D], got ",
              x.sizes(), " for ", parts, " parts of ", heads, " heads");
  return RL(info, SplitHeads::apply(x, parts, heads));
}

// Under autocast the scores and queries arrive in bfloat16 (matmul outputs): the weights are made
// in float32 (the casts, outside the Function, are differentiable).
OP(expiringAttention) {
  return R(info, ExpiringAttention::apply(autocastFloat(T(info, 0)), autocastFloat(T(info, 1)), autocastFloat(T(info, 2)), T(info, 3),
                                          T(info, 4), D(info, 5), I(info, 6), D(info, 7), D(info, 8), I(info, 9)));
}

// linearOverCat(first [.., P, in], second [.., T, in], weight [out, in], bias|null)
//   = linear(cat(first, second, -2), weight, bias): keys and values of two pieces of rows, such as
// a detached cache and a block's rows. The backward computes the input gradient of the pieces that
// take one only; autograd through cat computes it for all P + T rows (a [.. (P + T), out] x
// [out, in] product) and then drops a detached piece's share (Transformer-XL's cache as long as the
// block: half of that product; a 512-row cache over a 128-row block: four fifths). The forward
// product and the weight's gradient are linear's (dW = g^T cat, as ATen's mm backward computes it
// for a transposed weight). Under autocast or for other dtypes it is linear over the cat.
struct LinearOverCat : public torch::autograd::Function<LinearOverCat> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& first, const at::Tensor& second, const at::Tensor& weight) {
    at::Tensor context = at::cat({first, second}, -2);
    ctx->save_for_backward({context, weight});
    ctx->saved_data["firstRows"] = first.size(-2);
    return engram::linear(context, weight, c10::nullopt);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &context = saved[0], &weight = saved[1];
    const int64_t P = ctx->saved_data["firstRows"].toInt(), rows = context.size(-2);
    const at::Tensor& g = grads[0];  // [.., P + T, out]
    at::Tensor dFirst, dSecond, dWeight;
    // The pieces' gradients as one 2-D product each (the narrowed rows copied, as matmul would).
    auto piece = [&](int64_t start, int64_t length) {
      std::vector<int64_t> shape = g.sizes().vec();
      shape[shape.size() - 2] = length;
      shape.back() = weight.size(1);
      return denseMm(g.narrow(-2, start, length).reshape({-1, g.size(-1)}), weight).view(shape);
    };
    if (ctx->needs_input_grad(0)) dFirst = piece(0, P);          // [.., P, in]
    if (ctx->needs_input_grad(1)) dSecond = piece(P, rows - P);  // [.., T, in]
    if (ctx->needs_input_grad(2)) dWeight = denseMm(g.reshape({-1, g.size(-1)}).t(), context.reshape({-1, context.size(-1)}));
    return {dFirst, dSecond, dWeight};
  }
};

OP(linearOverCat) {
  const at::Tensor &first = T(info, 0), &second = T(info, 1), &weight = T(info, 2);
  const c10::optional<at::Tensor> bias = OT(info, 3);
  const auto type = second.scalar_type();
  const bool fused = !anyAutocastOn() && (type == at::kFloat || type == at::kDouble) &&
                     first.scalar_type() == type && weight.scalar_type() == type && first.dim() == second.dim() && second.dim() >= 2 &&
                     weight.dim() == 2 && first.device() == second.device() && weight.device() == second.device();
  if (!fused) return R(info, engram::linear(at::cat({first, second}, -2), weight, bias));
  at::Tensor y = LinearOverCat::apply(first, second, weight);
  return R(info, bias ? y + *bias : y);
}

// feedForward(x [.., in], w1 [F, in], b1 [F], w2 [out, F], b2 [out]) = linear(relu(linear(x, w1, b1)), w2, b2):
// the position-wise feed-forward without dropout. The hidden layer is rectified in place and kept
// once (it is both the second product's input and the ReLU's mask), and backward masks the hidden
// gradient in place: composed, relu allocates a second [.., F] tensor and threshold_backward a third.
// The products are linear's, and their gradients the products ATen's mm backward computes, on the library
// that linear uses (denseMm, matmul_ops.cpp).
struct FeedForwardRelu : public torch::autograd::Function<FeedForwardRelu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                            const at::Tensor& b2) {
    at::Tensor hidden = engram::linear(x, w1, b1);
    hidden.relu_();
    ctx->save_for_backward({x, hidden, w1, w2});
    return engram::linear(hidden, w2, b2);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &hidden = saved[1], &w1 = saved[2], &w2 = saved[3];
    const at::Tensor g = grads[0].reshape({-1, w2.size(0)});  // [N, out]
    const at::Tensor h = hidden.reshape({-1, w1.size(0)});    // [N, F]
    at::Tensor dx, dw1, db1, dw2, db2;
    if (ctx->needs_input_grad(3)) dw2 = denseMm(g.t(), h);
    if (ctx->needs_input_grad(4)) db2 = g.sum(0);
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      at::Tensor dh = denseMm(g, w2);  // [N, F], then zero where the ReLU was off
      at::threshold_backward_out(dh, dh, h, 0);  // ATen's vectorised kernel, written over dh
      if (ctx->needs_input_grad(1)) dw1 = denseMm(dh.t(), x.reshape({-1, x.size(-1)}));
      if (ctx->needs_input_grad(2)) db1 = dh.sum(0);
      if (ctx->needs_input_grad(0)) dx = denseMm(dh, w1).view(x.sizes());
    }
    return {dx, dw1, db1, dw2, db2};
  }
};

OP(feedForward) {
  const at::Tensor &x = T(info, 0), &w1 = T(info, 1), &b1 = T(info, 2), &w2 = T(info, 3), &b2 = T(info, 4);
  const auto type = x.scalar_type();
  const bool same = [&] {
    for (const at::Tensor* t : {&w1, &b1, &w2, &b2}) {
      if (t->scalar_type() != type || t->device() != x.device()) return false;
    }
    return true;
  }();
  const bool fused = same && (type == at::kFloat || type == at::kDouble) && !anyAutocastOn() &&
                     x.dim() >= 2 && w1.dim() == 2 && w2.dim() == 2 && w1.size(0) == w2.size(1);
  if (!fused) return R(info, engram::linear(at::relu(engram::linear(x, w1, b1)), w2, b2));
  return R(info, FeedForwardRelu::apply(x, w1, b1, w2, b2));
}

OP(softMaskRenorm) { return R(info, SoftMaskRenorm::apply(T(info, 0), T(info, 1), D(info, 2), I(info, 3))); }

// Under autocast the scores arrive in bfloat16 (a matmul's output): the softmax runs in float32
// (the cast, outside the Function, is differentiable).
OP(maskedSoftmax) { return R(info, MaskedSoftmax::apply(autocastFloat(T(info, 0)), OT(info, 1), D(info, 2), I(info, 3))); }

// The row ops' per-head loops (decoding one token), with dot and axpy (top of the file) in eight
// lanes, which AVX2 packs into one register (ENGRAM_ROW_KERNEL): on this machine the baseline build
// left the two row ops at about a tenth of a cached token's time.

// One head of attendRow: out [D] = Σ_j softmax_j(scale · (qc · k_j + qp · P[:, j])) v_j, with keys and
// values rows `keyStride` / `valueStride` apart, P (or null) [D, Tk] rows `positionStride` apart; s [Tk + 8] scratch
// (softmaxExpRow's room).
ENGRAM_ROW_KERNEL static void attendHead(const float* qc, const float* qp, const float* keys, int64_t keyStride, const float* P,
                                         int64_t positionStride, const float* values, int64_t valueStride, int64_t Tk, int64_t D,
                                         float scale, float* s, float* out) {
  for (int64_t j = 0; j < Tk; j++) s[j] = dot(qc, keys + j * keyStride, D);
  if (P)
    for (int64_t d = 0; d < D; d++) axpy(s, qp[d], P + d * positionStride, Tk);
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < Tk; j++) top = std::max(top, s[j] *= scale);
  const float sum = softmaxExpRow(s, Tk, top);
  std::fill(out, out + D, 0.0f);
  for (int64_t j = 0; j < Tk; j++) axpy(out, s[j] / sum, values + j * valueStride, D);
}

// attendHead for a query row q [D] with Transformer-XL's biases u, w [D] (or null): (q + u) · k_j and
// (q + w) · P[:, j]; qc, qp [D] scratch.
static void attendBiasedHead(const float* q, const float* u, const float* w, const float* keys, int64_t keyStride, const float* P,
                             int64_t positionStride, const float* values, int64_t valueStride, int64_t Tk, int64_t D, float scale,
                             float* qc, float* qp, float* s, float* out) {
  for (int64_t d = 0; d < D; d++) {
    qc[d] = u ? q[d] + u[d] : q[d];
    qp[d] = w ? q[d] + w[d] : q[d];
  }
  attendHead(qc, qp, keys, keyStride, P, positionStride, values, valueStride, Tk, D, scale, s, out);
}

// attendRow(q [B, K, 1, D], k [B, K, Tk, D], v [B, K, Tk, D], contentBias u [K, D] | null,
//           positionKeys P [K, D, Tk] | null, positionBias w [K, D] | null, scale) -> [B, 1, K·D]:
// one query row's attention over keys that it all sees (decoding one token over a key/value cache),
//   s_j = scale · ((q + u) · k_j + (q + w) · P[:, j]),   a = softmax(s),   out = Σ_j a_j v_j,
// the heads' outputs side by side, as the output projection reads them. Transformer-XL's relative
// positions are u, w = its biases and P = W_r R for distances Tk − 1 ... 0 (one query: no shift).
// On the CPU in float32 with autocast off and no gradient wanted, one loop per (batch row, head)
// over the keys: the composed version's three batched products each loop over the heads inside
// ATen with several dispatches per head, which cost more than the products at this size. Anything
// else composes the same maths from ATen ops (equal up to float rounding); the decision is here.
static at::Tensor attendRowTensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const c10::optional<at::Tensor>& u,
                                  const c10::optional<at::Tensor>& P, const c10::optional<at::Tensor>& w, double scale) {
  TORCH_CHECK(q.dim() == 4 && q.size(2) == 1 && k.dim() == 4 && v.sizes() == k.sizes(),
              "attendRow: q must be [B, K, 1, D], k and v [B, K, Tk, D]");
  const int64_t B = q.size(0), K = q.size(1), Dh = q.size(3), Tk = k.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(1) == K && k.size(3) == Dh, "attendRow: k must be [B, K, Tk, D] with q's B, K and D");
  TORCH_CHECK(Tk > 0, "attendRow: no keys to attend to");
  TORCH_CHECK(!P || (P->dim() == 3 && P->size(0) == K && P->size(1) == Dh && P->size(2) == Tk), "attendRow: positionKeys must be [K, D, Tk]");
  for (const auto* bias : {&u, &w}) TORCH_CHECK(!*bias || ((*bias)->dim() == 2 && (*bias)->size(0) == K && (*bias)->size(1) == Dh), "attendRow: biases must be [K, D]");
  const auto cpuFloat = [](const c10::optional<at::Tensor>& t) { return !t || (nativeCpu(*t) && t->scalar_type() == at::kFloat); };
  const auto wantsGrad = [](const c10::optional<at::Tensor>& t) { return t && t->requires_grad(); };
  const bool grad = at::GradMode::is_enabled() && (wantsGrad(q) || wantsGrad(k) || wantsGrad(v) || wantsGrad(u) || wantsGrad(P) || wantsGrad(w));
  if (!cpuFloat(q) || !cpuFloat(k) || !cpuFloat(v) || !cpuFloat(u) || !cpuFloat(P) || !cpuFloat(w) || autocastOn(c10::DeviceType::CPU) || grad) {
    at::Tensor scores = at::matmul(u ? q + u->unsqueeze(1) : q, k.transpose(-1, -2));  // [B, K, 1, Tk]
    if (P) scores = scores + at::matmul(w ? q + w->unsqueeze(1) : q, *P);
    at::Tensor a = at::softmax(autocastFloat(scores) * scale, -1);
    return at::matmul(a, v).transpose(1, 2).flatten(2);
  }
  const at::Tensor qc = q.contiguous(), kc = k.stride(3) == 1 ? k : k.contiguous(), vc = v.stride(3) == 1 ? v : v.contiguous();
  const at::Tensor Pc = !P ? at::Tensor() : P->stride(2) == 1 ? *P : P->contiguous();
  const at::Tensor uc = u ? u->contiguous() : at::Tensor(), wc = w ? w->contiguous() : at::Tensor();
  at::Tensor out = at::empty({B, 1, K * Dh}, q.options());
  const float *qp = qc.data_ptr<float>(), *kp = kc.data_ptr<float>(), *vp = vc.data_ptr<float>();
  const float *pp = P ? Pc.data_ptr<float>() : nullptr, *up = u ? uc.data_ptr<float>() : nullptr, *wp = w ? wc.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const float sc = static_cast<float>(scale);
  // in parallel only where a chunk holds about 2^20 multiply-adds: a head here is ~3·Tk·D of them,
  // less than waking another thread costs
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(1, 3 * Tk * Dh));
  at::parallel_for(0, B * K, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> s(Tk + 8), qContent(Dh), qPosition(Dh);
    for (int64_t bh = begin; bh < end; bh++) {
      const int64_t b = bh / K, h = bh % K;
      attendBiasedHead(qp + bh * Dh, up ? up + h * Dh : nullptr, wp ? wp + h * Dh : nullptr, kp + b * kc.stride(0) + h * kc.stride(1), kc.stride(2),
                       pp ? pp + h * Pc.stride(0) : nullptr, pp ? Pc.stride(1) : 0, vp + b * vc.stride(0) + h * vc.stride(1), vc.stride(2), Tk, Dh, sc,
                       qContent.data(), qPosition.data(), s.data(), op + bh * Dh);
    }
  });
  return out;
}
OP(attendRow) { return R(info, attendRowTensor(T(info, 0), T(info, 1), T(info, 2), OT(info, 3), OT(info, 4), OT(info, 5), D(info, 6))); }

// One head of decoderLayerRow's expiring attention over the `count` keys the row sees (index key[s], keyPe row column[s],
// soft mask m[s]): y = m · softmax(scale · (q · k + q · keyPe[column])), out [D] = Σ y v / (Σ y + eps);
// peRows [P, D]; y [count + 8] scratch (softmaxExpRow's room). No key seen: zeros. (expiringAttend's
// loops read keys through panels, a copy per call: for one decoded row a copy of the whole cache per
// layer, so this row reads the cache buffers in place, a key at a time.)
ENGRAM_ROW_KERNEL static void expiringHead(const float* q, const float* keys, int64_t keyStride, const float* peRows, const float* values,
                                           int64_t valueStride, const int64_t* key, const int64_t* column, const float* m, int64_t count,
                                           int64_t D, float scale, float eps, float* y, float* out) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t s = 0; s < count; s++) {
    y[s] = (dot(q, keys + key[s] * keyStride, D) + dot(q, peRows + column[s] * D, D)) * scale;
    top = std::max(top, y[s]);
  }
  const float z = expiringMaskedSoftmax(y, m, count, top, eps);  // y = m·a, Z = Σ m·a + eps
  std::fill(out, out + D, 0.0f);
  for (int64_t s = 0; s < count; s++) axpy(out, y[s] / z, values + key[s] * valueStride, D);
}

// ---- expiringAttend: Expire-Span's attention in one op, weights never stored -------------------------
// The keys one query row (b, i) sees, laid out for loops along the keys (shared by the row's heads):
// [first, end) the range of key indices outside which none is seen; per key j in it the soft mask
// m_j and onRamp_j (expiringRowMasks); and the runs of keys whose ages fall by one from key to
// key, so that their distances d_ij = age_j + i, and with them their key position columns, are
// consecutive too, cut to distances 0 … P − 1. A seen key outside those (only with spans beyond
// L or nearest < 0: in a model d < e + R ≤ L + R = P) is a run of its own at the clamped column, as
// the composed ops read it. Memories are dropped in chunks, so a row's keys are a few such runs.
template <typename scalar_t>
struct ExpiringRow {
  std::vector<scalar_t> m, onRamp;                     // [Tk], read on [first, end)
  std::vector<int64_t> runStart, runEnd, runDistance;  // runDistance: the distance of the run's first key (the largest)
  int64_t first = 0, end = 0;
  explicit ExpiringRow(int64_t Tk) : m(Tk), onRamp(Tk) {}
  void build(const int64_t* age, const scalar_t* spans, int64_t Tk, int64_t i, scalar_t ramp, int64_t nearest, int64_t P) {
    scalar_t* mp = m.data();
    expiringRowMasks(age, spans, Tk, i, ramp, nearest, mp, onRamp.data());
    first = 0;
    while (first < Tk && mp[first] == scalar_t(0)) first++;
    end = Tk;
    while (end > first && mp[end - 1] == scalar_t(0)) end--;
    if (first == Tk) first = end = 0;  // none seen: an empty range
    runStart.clear();
    runEnd.clear();
    runDistance.clear();
    for (int64_t j = first; j < end;) {
      const int64_t d = age[j] + i;
      if (mp[j] == scalar_t(0)) {  // blocked: −inf whatever its position
        j++;
        continue;
      }
      int64_t k = j + 1;
      if (d < 0 || d >= P) {
        // seen beyond the table (spans longer than L, or nearest < 0): its position is the nearest
        // column's, as the composed ops clamp it; a run of its own
        runStart.push_back(j);
        runEnd.push_back(k);
        runDistance.push_back(std::min(std::max(d, int64_t(0)), P - 1));
        j = k;
        continue;
      }
      while (k < end && age[k] == age[k - 1] - 1 && age[k] + i >= 0) k++;  // distances fall by one, stay ≤ d < P
      runStart.push_back(j);
      runEnd.push_back(k);
      runDistance.push_back(d);
      j = k;
    }
  }
};

// 64 bytes of lanes in GCC's vector types (sixteen floats, eight doubles); the head size a constant
// DH where it is 16, 32 or 64 (the loops over it unroll, and the query, gradient and accumulator rows
// stay in registers), else the runtime D in plain loops. (GCC warns that passing such vectors
// changes the ABI between the clones: these helpers are always inlined, so no vector crosses a call.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename scalar_t>
constexpr int64_t kLanes = 64 / static_cast<int64_t>(sizeof(scalar_t));
template <typename scalar_t>
struct LanesOf;
template <>
struct LanesOf<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct LanesOf<double> {
  typedef double type __attribute__((vector_size(64)));
};
template <typename scalar_t>
using Lanes = typename LanesOf<scalar_t>::type;
template <typename scalar_t>
__attribute__((always_inline)) inline Lanes<scalar_t> loadLanes(const scalar_t* p) {
  Lanes<scalar_t> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename scalar_t>
__attribute__((always_inline)) inline void storeLanes(scalar_t* p, const Lanes<scalar_t>& v) {
  std::memcpy(p, &v, sizeof v);
}

// out[w] = Σ_d x[d] · (a[d·pitchA + w] + b[d·pitchB + w]) (b may be null) for a register of w: dot
// products of x with that many columns at once, in eight partial sums over d (one chain of additions
// would wait on each one's latency), added pairwise at the end.
template <typename scalar_t, int64_t DH>
__attribute__((always_inline)) inline void columnDots(const scalar_t* __restrict__ x, const scalar_t* __restrict__ a, int64_t pitchA,
                                                      const scalar_t* __restrict__ b, int64_t pitchB, int64_t D, scalar_t* __restrict__ out) {
  typedef Lanes<scalar_t> V;
  V acc[8] = {};
  const int64_t Dn = DH > 0 ? DH : D;
#pragma GCC unroll 64
  for (int64_t d = 0; d < Dn; d++, a += pitchA) {  // (pointers moved on, not d · pitch: sixteen row addresses would not fit in registers)
    acc[d & 7] += x[d] * loadLanes(a);
    if (b) {
      acc[d & 7] += x[d] * loadLanes(b);
      b += pitchB;
    }
  }
  storeLanes(out, ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// Logits of one head of row (b, i): l_j = scale · (q · k_j + q · keyPe[:, d_ij]) for the keys of its
// runs, −inf for every other key of [first, end) and where m_j = 0. Both products go a register of
// keys at a time through panels, [chunks, D, W] blocks of W consecutive columns (keyPanels: this
// head's keys, key j in chunk j / W; pePanels: keyPe's columns in reverse, distance d at P − 1 − d,
// so that a run's falling distances are read forwards), whose D rows lie at fixed offsets from one
// pointer. The content scores fill whole chunks over [first, end); each run's position scores fill
// the chunks of its reversed columns in posBuf [pePanels' columns], then are added along the run.
// Returns the maximum. l [chunks · W].
template <typename scalar_t, int64_t DH>
ENGRAM_WIDE_KERNEL scalar_t expiringRowLogits(const ExpiringRow<scalar_t>& row, const scalar_t* __restrict__ q, const scalar_t* __restrict__ keyPanels,
                                              const scalar_t* __restrict__ pePanels, int64_t P, int64_t D, scalar_t scale, scalar_t* __restrict__ l,
                                              scalar_t* __restrict__ posBuf) {
  constexpr int64_t W = kLanes<scalar_t>;
  const int64_t Dn = DH > 0 ? DH : D, first = row.first, end = row.end;
  if (end <= first) return -std::numeric_limits<scalar_t>::infinity();
  for (int64_t c = first / W; c * W < end; c++) columnDots<scalar_t, DH>(q, keyPanels + c * Dn * W, W, nullptr, 0, D, l + c * W);
  for (size_t r = 0; r < row.runStart.size(); r++) {
    const int64_t j0 = row.runStart[r], j1 = row.runEnd[r], reversed = P - 1 - row.runDistance[r];  // the run's first key's reversed column
    for (int64_t c = reversed / W; c * W < reversed + (j1 - j0); c++) columnDots<scalar_t, DH>(q, pePanels + c * Dn * W, W, nullptr, 0, D, posBuf + c * W);
    const scalar_t* position = posBuf + reversed - j0;  // + j
#pragma omp simd
    for (int64_t j = j0; j < j1; j++) l[j] += position[j];
  }
  // keys in no run and blocked keys (m = 0, the same set) get −inf
  const scalar_t* m = row.m.data();
  constexpr scalar_t blocked = -std::numeric_limits<scalar_t>::infinity();
#pragma omp simd
  for (int64_t j = first; j < end; j++) l[j] = m[j] == scalar_t(0) ? blocked : l[j] * scale;
  scalar_t top = blocked;
#pragma omp simd reduction(max : top)
  for (int64_t j = first; j < end; j++) top = l[j] > top ? l[j] : top;
  return top;
}

// One head of query row (b, i): out [D] = Σ_j y_j v_j, y = m · softmax(l) / (Σ m · softmax(l) + eps)
// over the keys the row sees (values rows [Tk, D]); l, posBuf scratch (expiringRowLogits). Where
// a backward is to come, kept [Tk] (or null) receives u_j = m_j a_j on [first, end) and z (or null)
// Z = Σ u + eps: the weights are y = u / Z. No key seen: zeros.
template <typename scalar_t, int64_t DH>
ENGRAM_WIDE_KERNEL void expiringRowForward(const ExpiringRow<scalar_t>& row, const scalar_t* __restrict__ q, const scalar_t* __restrict__ keyPanels,
                                           const scalar_t* __restrict__ pePanels, const scalar_t* __restrict__ values, int64_t P, int64_t D, scalar_t scale,
                                           scalar_t eps, scalar_t* __restrict__ l, scalar_t* __restrict__ posBuf, scalar_t* __restrict__ out,
                                           scalar_t* __restrict__ kept, scalar_t* __restrict__ zOut) {
  const scalar_t top = expiringRowLogits<scalar_t, DH>(row, q, keyPanels, pePanels, P, D, scale, l, posBuf);
  const int64_t first = row.first, end = row.end;
  const scalar_t z = end > first ? expiringMaskedSoftmax(l + first, row.m.data() + first, end - first, top, eps) : eps;  // l = u = m·a
  if (kept) std::copy(l + first, l + end, kept + first);
  if (zOut) *zOut = z;
#pragma omp simd
  for (int64_t j = first; j < end; j++) l[j] /= z;  // y
  if constexpr (DH > 0) {
    typedef Lanes<scalar_t> V;
    constexpr int64_t W = kLanes<scalar_t>, NV = DH / W;
    V acc[4][NV] = {};  // four keys' sums at a time: independent chains
    int64_t j = first;
    for (; j + 4 <= end; j += 4)
#pragma GCC unroll 16
      for (int64_t c = 0; c < 4 * NV; c++) acc[c / NV][c % NV] += l[j + c / NV] * loadLanes(values + (j + c / NV) * DH + (c % NV) * W);
    for (; j < end; j++)
#pragma GCC unroll 8
      for (int64_t c = 0; c < NV; c++) acc[0][c] += l[j] * loadLanes(values + j * DH + c * W);
#pragma GCC unroll 8
    for (int64_t c = 0; c < NV; c++) storeLanes(out + c * W, (acc[0][c] + acc[1][c]) + (acc[2][c] + acc[3][c]));
  } else {
    std::fill(out, out + D, scalar_t(0));
    for (int64_t j = first; j < end; j++) axpy(out, l[j], values + j * D, D);
  }
}

// The backward of one expiringRowForward from its output's gradient g [D] (the maths above
// ExpiringAttention, with dL/dy_j = g · v_j) from the forward's u and Z (kept, z): y = u / Z, a = u / m, then
//   dv_j += y_j g,   dk_j += ds_j q,   dPe[d_ij] += ds_j q,   dq = Σ_j ds_j (k_j + keyPe[:, d_ij]),
//   dspan_j += a_j du_j / R where onRamp.
// keys [Tk, D] rows; valuePanels [chunks, D, W] (as expiringRowLogits' keyPanels); peRows [P, D]
// (keyPe's columns as rows); dk, dv [Tk, D] and dPe [P, D] (this batch row's), dspan [Tk]; a, y, du
// [chunks · W] scratch.
template <typename scalar_t, int64_t DH>
ENGRAM_WIDE_KERNEL void expiringRowBackward(const ExpiringRow<scalar_t>& row, const scalar_t* __restrict__ q, const scalar_t* __restrict__ keys,
                                            const scalar_t* __restrict__ valuePanels, const scalar_t* __restrict__ peRows, int64_t D, scalar_t scale,
                                            scalar_t ramp, const scalar_t* __restrict__ kept, scalar_t z, const scalar_t* __restrict__ g,
                                            scalar_t* __restrict__ dq, scalar_t* __restrict__ dk, scalar_t* __restrict__ dv, scalar_t* __restrict__ dPe,
                                            scalar_t* __restrict__ dspan, scalar_t* __restrict__ a, scalar_t* __restrict__ y, scalar_t* __restrict__ du) {
  typedef Lanes<scalar_t> V;
  constexpr int64_t W = kLanes<scalar_t>, NV = DH > 0 ? DH / W : 1;
  V qv[NV] = {}, gv[NV] = {}, dqKeys[NV] = {}, dqPositions[NV] = {};  // (DH > 0)
  if constexpr (DH > 0) {
#pragma GCC unroll 8
    for (int64_t c = 0; c < NV; c++) {
      qv[c] = loadLanes(q + c * W);
      gv[c] = loadLanes(g + c * W);
    }
  } else {
    std::fill(dq, dq + D, scalar_t(0));
  }
  const int64_t first = row.first, end = row.end;
  if (end > first) {
    const int64_t Dn = DH > 0 ? DH : D;
    for (int64_t c = first / W; c * W < end; c++) columnDots<scalar_t, DH>(g, valuePanels + c * Dn * W, W, nullptr, 0, D, du + c * W);  // dL/dy_j = g · v_j
    const scalar_t* m = row.m.data();
    const scalar_t* onRamp = row.onRamp.data();
    scalar_t gy = 0;  // Σ (dL/dy)·y
#pragma omp simd reduction(+ : gy)
    for (int64_t j = first; j < end; j++) {
      y[j] = kept[j] / z;
      a[j] = m[j] > scalar_t(0) ? kept[j] / m[j] : scalar_t(0);  // the softmax's a (m > 0 wherever a key is seen)
      gy += du[j] * y[j];
    }
    scalar_t duy = 0;  // Σ du·y
#pragma omp simd reduction(+ : duy)
    for (int64_t j = first; j < end; j++) duy += (du[j] = (du[j] - gy) / z) * y[j];
    const scalar_t c2 = duy * z;  // Σ dL/da · a
    // ds_j (kept in du) and the spans' gradient; 0 where blocked (a = 0)
#pragma omp simd
    for (int64_t j = first; j < end; j++) {
      dspan[j] += onRamp[j] * (a[j] * du[j] / ramp);
      du[j] = scale * a[j] * (m[j] * du[j] - c2);
    }
    for (size_t r = 0; r < row.runStart.size(); r++) {
      const int64_t j0 = row.runStart[r], d0 = row.runDistance[r];
      for (int64_t j = j0; j < row.runEnd[r]; j++) {
        if (a[j] == scalar_t(0)) continue;  // blocked (or e^(l − max) underflowed): no gradient
        const scalar_t ds = du[j], yj = y[j];
        const int64_t column = d0 - (j - j0);
        if constexpr (DH > 0) {
#pragma GCC unroll 8
          for (int64_t c = 0; c < NV; c++) {
            const int64_t o = c * W;
            dqKeys[c] += ds * loadLanes(keys + j * DH + o);
            dqPositions[c] += ds * loadLanes(peRows + column * DH + o);
            storeLanes(dk + j * DH + o, loadLanes(dk + j * DH + o) + ds * qv[c]);
            storeLanes(dPe + column * DH + o, loadLanes(dPe + column * DH + o) + ds * qv[c]);
            storeLanes(dv + j * DH + o, loadLanes(dv + j * DH + o) + yj * gv[c]);
          }
        } else {
          axpy(dq, ds, keys + j * D, D);
          axpy(dq, ds, peRows + column * D, D);
          axpy(dk + j * D, ds, q, D);
          axpy(dPe + column * D, ds, q, D);
          axpy(dv + j * D, yj, g, D);
        }
      }
    }
  }
  if constexpr (DH > 0) {
#pragma GCC unroll 8
    for (int64_t c = 0; c < NV; c++) storeLanes(dq + c * W, dqKeys[c] + dqPositions[c]);
  }
}
#pragma GCC diagnostic pop

// expiringAttend(q [B, K, Tq, D], k [B, K, Tk, D], v [B, K, Tk, D], keyPe [D, P], age int64 [B, Tk], spans [B, Tk],
//                ramp, nearest, scale, eps) -> [B, Tq, K·D]:
// Expire-Span's attention: expiringAttention's weights y of q · kᵀ (key j at distance age_j + i
// from query i), then Σ_j y_ij v_j, the heads side by side as the output projection reads them. On
// the CPU in float32 or float64 with autocast off, one pass per (query row, head) along the keys the
// row sees (ExpiringRow, found once per row for its heads), a register of keys at a time against the
// keys and key positions laid out in panels; it keeps each row's u = m·a and Z, and its own backward
// writes every gradient in one more pass per row: no table of content scores, or of the weights'
// or the scores' gradients, is made, and the weights path's products (q · kᵀ, y · v and their four
// gradients) are folded into the passes. Anything else is q · kᵀ, ExpiringAttention and · v from
// ATen (equal up to float rounding).
struct ExpiringAttend : public torch::autograd::Function<ExpiringAttend> {
  // Queries per block of the loops: their keys found once, then the heads one by one.
  static constexpr int64_t kRowBlock = 16;

  // [B, K, T, D] as panels [B, K, chunks, D, W], chunks = ⌈T / W⌉ + 1, zeros past T (a run's or
  // range's last register reads whole chunks): the whole chunks in one transposed copy (ATen's
  // strided copy: a plain element loop here took 9.6 % of Expire-Span's corridor step at 510 under
  // perf, where this copy does not show), the rest zeroed, the last rows copied in.
  template <typename scalar_t>
  static at::Tensor panels(const at::Tensor& t) {
    constexpr int64_t W = kLanes<scalar_t>;
    const int64_t B = t.size(0), K = t.size(1), T = t.size(2), D = t.size(3), whole = T / W, chunks = (T + W - 1) / W + 1;
    at::Tensor out = at::empty({B, K, chunks, D, W}, t.options());
    const at::Tensor rows = t.contiguous();
    if (whole > 0) out.narrow(2, 0, whole).copy_(rows.narrow(2, 0, whole * W).view({B, K, whole, W, D}).transpose(3, 4));
    out.narrow(2, whole, chunks - whole).zero_();
    if (T > whole * W) out.select(2, whole).narrow(3, 0, T - whole * W).copy_(rows.narrow(2, whole * W, T - whole * W).transpose(2, 3));
    return out;
  }
  // keyPe [D, P] reversed along P (distance d at column P − 1 − d) as panels [chunks, D, W], zeros past P.
  template <typename scalar_t>
  static at::Tensor positionPanels(const at::Tensor& keyPe) {
    constexpr int64_t W = kLanes<scalar_t>;
    const int64_t D = keyPe.size(0), P = keyPe.size(1), chunks = (P + W - 1) / W + 1;
    at::Tensor out = at::empty({chunks, D, W}, keyPe.options());
    const scalar_t* src = keyPe.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    for (int64_t c = 0; c < chunks; c++)
      for (int64_t d = 0; d < D; d++)
        for (int64_t w = 0; w < W; w++) {
          const int64_t r = c * W + w;
          dst[(c * D + d) * W + w] = r < P ? src[d * keyPe.stride(0) + (P - 1 - r) * keyPe.stride(1)] : scalar_t(0);
        }
    return out;
  }

  template <typename scalar_t, int64_t DH>
  static void forwardLoops(const at::Tensor& q, const at::Tensor& keyPanels, const at::Tensor& v, const at::Tensor& pePanels, int64_t P, const at::Tensor& age,
                           const at::Tensor& spans, double ramp, int64_t nearest, double scale, double eps, at::Tensor& out, at::Tensor* kept, at::Tensor* Z) {
    const int64_t B = q.size(0), K = q.size(1), Tq = q.size(2), Dh = q.size(3), Tk = v.size(2), chunk = keyPanels.size(2) * keyPanels.size(3) * keyPanels.size(4);
    const int64_t posRoom = pePanels.size(0) * pePanels.size(2);
    const scalar_t *qp = q.data_ptr<scalar_t>(), *kpp = keyPanels.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>(), *ppp = pePanels.data_ptr<scalar_t>();
    const int64_t* ap = age.data_ptr<int64_t>();
    const scalar_t* ep = spans.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    scalar_t *keptp = kept ? kept->data_ptr<scalar_t>() : nullptr, *zp = Z ? Z->data_ptr<scalar_t>() : nullptr;
    const scalar_t sc = static_cast<scalar_t>(scale), r = static_cast<scalar_t>(ramp), epsilon = static_cast<scalar_t>(eps);
    // Tasks of up to kRowBlock queries of one batch row: their keys found once (ExpiringRow), then
    // head by head, so that a head's panels and values stay in the first-level cache over its rows
    // (row by row over the heads, a row's heads read four times as much, from the second level).
    const int64_t blocks = (Tq + kRowBlock - 1) / kRowBlock;
    at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<ExpiringRow<scalar_t>> rows(std::min(Tq, kRowBlock), ExpiringRow<scalar_t>(Tk));
      std::vector<scalar_t> l(chunk / Dh), posBuf(posRoom);
      for (int64_t task = begin; task < end; task++) {
        const int64_t b = task / blocks, i0 = (task % blocks) * kRowBlock, n = std::min(kRowBlock, Tq - i0);
        for (int64_t i = 0; i < n; i++) rows[i].build(ap + b * Tk, ep + b * Tk, Tk, i0 + i, r, nearest, P);
        for (int64_t h = 0; h < K; h++) {
          for (int64_t i = i0; i < i0 + n; i++) {
            const int64_t bhi = (b * K + h) * Tq + i;
            expiringRowForward<scalar_t, DH>(rows[i - i0], qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2), kpp + (b * K + h) * chunk, ppp,
                                             vp + (b * K + h) * Tk * Dh, P, Dh, sc, epsilon, l.data(), posBuf.data(), op + (b * Tq + i) * K * Dh + h * Dh,
                                             keptp ? keptp + bhi * Tk : nullptr, zp ? zp + bhi : nullptr);
          }
        }
      }
    });
  }

  template <typename scalar_t, int64_t DH>
  static void backwardLoops(const at::Tensor& q, const at::Tensor& k, const at::Tensor& valuePanels, const at::Tensor& peRows, const at::Tensor& age,
                            const at::Tensor& spans, const at::Tensor& kept, const at::Tensor& Z, const at::Tensor& g, double ramp, int64_t nearest,
                            double scale, at::Tensor& dq, at::Tensor& dk, at::Tensor& dv, at::Tensor& dPe, at::Tensor& dSpans) {
    const int64_t B = q.size(0), K = q.size(1), Tq = q.size(2), Dh = q.size(3), Tk = k.size(2), P = peRows.size(0);
    const int64_t chunk = valuePanels.size(2) * valuePanels.size(3) * valuePanels.size(4);
    const scalar_t *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vpp = valuePanels.data_ptr<scalar_t>(), *pe = peRows.data_ptr<scalar_t>();
    const int64_t* ap = age.data_ptr<int64_t>();
    const scalar_t *ep = spans.data_ptr<scalar_t>(), *keptp = kept.data_ptr<scalar_t>(), *zp = Z.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    scalar_t *dqp = dq.data_ptr<scalar_t>(), *dkp = dk.data_ptr<scalar_t>(), *dvp = dv.data_ptr<scalar_t>(), *dpp = dPe.data_ptr<scalar_t>();
    scalar_t* dsp = dSpans.data_ptr<scalar_t>();
    const scalar_t sc = static_cast<scalar_t>(scale), r = static_cast<scalar_t>(ramp);
    // One task per batch row b: its queries add to its own rows of dk, dv, dPe and dSpans; as in
    // the forward, blocks of kRowBlock queries head by head (a head's keys, values, dk and dv rows
    // stay in the first-level cache).
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<ExpiringRow<scalar_t>> rows(std::min(Tq, kRowBlock), ExpiringRow<scalar_t>(Tk));
      const int64_t room = chunk / Dh;  // chunks · W
      std::vector<scalar_t> scratch(3 * room);
      scalar_t *a = scratch.data(), *y = a + room, *du = y + room;
      for (int64_t b = begin; b < end; b++) {
        for (int64_t i0 = 0; i0 < Tq; i0 += kRowBlock) {
          const int64_t n = std::min(kRowBlock, Tq - i0);
          for (int64_t i = 0; i < n; i++) rows[i].build(ap + b * Tk, ep + b * Tk, Tk, i0 + i, r, nearest, P);
          for (int64_t h = 0; h < K; h++) {
            const int64_t bh = b * K + h;
            for (int64_t i = i0; i < i0 + n; i++) {
              const int64_t bhi = bh * Tq + i;
              expiringRowBackward<scalar_t, DH>(rows[i - i0], qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2), kp + bh * Tk * Dh, vpp + bh * chunk, pe,
                                                Dh, sc, r, keptp + bhi * Tk, zp[bhi], gp + (b * Tq + i) * K * Dh + h * Dh,
                                                dqp + ((b * Tq + i) * K + h) * Dh, dkp + bh * Tk * Dh, dvp + bh * Tk * Dh, dpp + b * P * Dh, dsp + b * Tk, a, y,
                                                du);
            }
          }
        }
      }
    });
  }

  // Calls fn(std::integral_constant<int64_t, DH>) with DH the head size where it is 16, 32 or 64, else 0.
  template <typename Fn>
  static void withHeadSize(int64_t D, const Fn& fn) {
    if (D == 16) fn(std::integral_constant<int64_t, 16>());
    else if (D == 32) fn(std::integral_constant<int64_t, 32>());
    else if (D == 64) fn(std::integral_constant<int64_t, 64>());
    else fn(std::integral_constant<int64_t, 0>());
  }

  // The forward loops: out [B, Tq, K·D]; where kept and Z are given (a backward to come), the rows'
  // u = m·a [B, K, Tq, Tk] (written on each row's [first, end) only) and Z [B, K, Tq].
  static at::Tensor run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& keyPe, const at::Tensor& age, const at::Tensor& spans,
                        double ramp, int64_t nearest, double scale, double eps, at::Tensor* kept, at::Tensor* Z) {
    const at::Tensor qr = q.stride(3) == 1 ? q : q.contiguous(), vr = v.contiguous(), a = age.contiguous(), e = spans.contiguous();
    at::Tensor out = at::empty({q.size(0), q.size(2), q.size(1) * q.size(3)}, q.options());
    if (kept) *kept = at::empty({q.size(0), q.size(1), q.size(2), k.size(2)}, q.options());
    if (Z) *Z = at::empty({q.size(0), q.size(1), q.size(2)}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "expiringAttend", [&] {
      const at::Tensor keyPanels = panels<scalar_t>(k), pePanels = positionPanels<scalar_t>(keyPe);
      withHeadSize(q.size(3), [&](auto dh) {
        forwardLoops<scalar_t, decltype(dh)::value>(qr, keyPanels, vr, pePanels, keyPe.size(1), a, e, ramp, nearest, scale, eps, out, kept, Z);
      });
    });
    return out;
  }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& queries, const at::Tensor& keys, const at::Tensor& values, const at::Tensor& keyPe,
                            const at::Tensor& age, const at::Tensor& spans, double ramp, int64_t nearest, double scale, double eps) {
    at::Tensor kept, Z;
    at::Tensor out = run(queries, keys, values, keyPe, age, spans, ramp, nearest, scale, eps, &kept, &Z);
    ctx->save_for_backward({queries, keys, values, keyPe, age, spans, kept, Z});
    ctx->saved_data["ramp"] = ramp;
    ctx->saved_data["nearest"] = nearest;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &queries = saved[0], &keys = saved[1], &values = saved[2], &keyPe = saved[3], &kept = saved[6], &Z = saved[7];
    const double ramp = ctx->saved_data["ramp"].toDouble(), scale = ctx->saved_data["scale"].toDouble();
    const int64_t nearest = ctx->saved_data["nearest"].toInt();
    const at::Tensor q = queries.stride(3) == 1 ? queries : queries.contiguous(), k = keys.contiguous();
    const at::Tensor peRows = keyPe.t().contiguous(), age = saved[4].contiguous(), spans = saved[5].contiguous();
    const int64_t B = q.size(0), K = q.size(1), Tq = q.size(2), Dh = q.size(3), Tk = k.size(2), P = keyPe.size(1);
    const at::Tensor g = grads[0].to(q.scalar_type()).contiguous();  // [B, Tq, K·D]
    at::Tensor dq = at::empty({B, Tq, K, Dh}, q.options());          // every row written; returned as [B, K, Tq, D]
    at::Tensor dk = at::zeros({B, K, Tk, Dh}, q.options()), dv = at::zeros({B, K, Tk, Dh}, q.options());
    at::Tensor dPe = at::zeros({B, P, Dh}, q.options());  // each batch row's own, summed after in a fixed order
    at::Tensor dSpans = at::zeros({B, Tk}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "expiringAttendBackward", [&] {
      const at::Tensor valuePanels = panels<scalar_t>(values);
      withHeadSize(Dh, [&](auto dh) {
        backwardLoops<scalar_t, decltype(dh)::value>(q, k, valuePanels, peRows, age, spans, kept, Z, g, ramp, nearest, scale, dq, dk, dv, dPe, dSpans);
      });
    });
    return {dq.permute({0, 2, 1, 3}), dk, dv, dPe.sum(0).t(), at::Tensor(), dSpans, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

static at::Tensor expiringAttendTensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& keyPe, const at::Tensor& age,
                                       const at::Tensor& spans, double ramp, int64_t nearest, double scale, double eps) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes(), "expiringAttend: q must be [B, K, Tq, D], k and v [B, K, Tk, D]");
  const int64_t B = q.size(0), K = q.size(1), Dh = q.size(3), Tk = k.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(1) == K && k.size(3) == Dh, "expiringAttend: k must be [B, K, Tk, D] with q's B, K and D");
  TORCH_CHECK(keyPe.dim() == 2 && keyPe.size(0) == Dh && keyPe.size(1) > 0, "expiringAttend: keyPe must be [D, P] with P > 0");
  TORCH_CHECK(age.dim() == 2 && age.size(0) == B && age.size(1) == Tk && age.scalar_type() == at::kLong, "expiringAttend: age must be int64 [B, Tk]");
  TORCH_CHECK(spans.dim() == 2 && spans.size(0) == B && spans.size(1) == Tk, "expiringAttend: spans must be [B, Tk]");
  TORCH_CHECK(q.is_cpu(), "expiringAttend runs on the CPU; other devices compose it from ATen ops");
  const at::ScalarType type = q.scalar_type();
  const bool native = (type == at::kFloat || type == at::kDouble) && !autocastOn(c10::DeviceType::CPU) && age.is_cpu() &&
                      k.scalar_type() == type && v.scalar_type() == type && keyPe.scalar_type() == type && spans.scalar_type() == type;
  if (!native) {
    at::Tensor weights = ExpiringAttention::apply(autocastFloat(at::matmul(q, k.transpose(-1, -2))), autocastFloat(q), autocastFloat(keyPe), age,
                                                  spans, ramp, nearest, scale, eps, 0);
    return at::matmul(weights, v).transpose(1, 2).flatten(2);
  }
  const bool grad = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad() || keyPe.requires_grad() || spans.requires_grad());
  if (grad) return ExpiringAttend::apply(q, k, v, keyPe, age, spans, ramp, nearest, scale, eps);
  return ExpiringAttend::run(q, k, v, keyPe, age, spans, ramp, nearest, scale, eps, nullptr, nullptr);  // no backward to come (decoding, evaluation): nothing kept
}
OP(expiringAttend) {
  return R(info, expiringAttendTensor(T(info, 0), T(info, 1), T(info, 2), T(info, 3), T(info, 4), T(info, 5), D(info, 6), I(info, 7), D(info, 8), D(info, 9)));
}

// ---- decoderLayerRow in float32 on the CPU: plain loops and OpenBLAS's sgemv ------------------------
// At SPEC §10's size a decoded token's layer is ~30 ATen ops on vectors of 256 to 1024 floats, and
// each op's dispatch, allocation and view bookkeeping cost microseconds: more than the vector maths
// and, in all, about as much as the matrix-vector products. This path runs the same layer with no ATen
// op: layer norms, residuals and ReLU as loops over scratch rows, every projection one sgemv from the
// OpenBLAS that libtorch loaded (cblas_sgemv, found as matmul_ops.cpp finds oneDNN's sgemm; where
// there is none the op composes ATen ops), attention by attendRow's / expiringAttend's head loops
// reading the cache buffers in place.
namespace {

// cblas_sgemv(order, trans, M, N, alpha, A, lda, x, incx, beta, y, incy)
using SgemvFn = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111;

SgemvFn sgemv() {
  static const SgemvFn fn = reinterpret_cast<SgemvFn>(loadedSymbol({"libblas.so", "libopenblas", "libcblas.so"}, "cblas_sgemv"));
  return fn;
}

// y [out] = W [out, in] x (+ b), W contiguous.
void rowProduct(SgemvFn gemv, const at::Tensor& W, const c10::optional<at::Tensor>& b, const float* x, float* y) {
  const int out = static_cast<int>(W.size(0)), in = static_cast<int>(W.size(1));
  if (b) std::copy_n(b->data_ptr<float>(), out, y);
  gemv(kCblasRowMajor, kCblasNoTrans, out, in, 1.0f, W.data_ptr<float>(), in, x, 1, b ? 1.0f : 0.0f, y, 1);
}

// y [n] = (x - mean) / sqrt(var + eps) · w + b (biased variance, as layer_norm).
ENGRAM_ROW_KERNEL void rowLayerNorm(const float* x, const float* w, const float* b, int64_t n, float eps, float* y) {
  float sum = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i];
  const float mean = sum / n;
  float squares = 0;
  for (int64_t i = 0; i < n; i++) squares += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt(squares / n + eps);
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

bool floatCpu(const c10::optional<at::Tensor>& t) { return !t || (nativeCpu(*t) && t->scalar_type() == at::kFloat); }
bool wantsGrad(const c10::optional<at::Tensor>& t) { return t && t->requires_grad(); }

}  // namespace

// decoderLayerRow's maths on this path; false (nothing written) where it does not apply: another dtype
// or device, autocast, a gradient wanted, no cblas_sgemv, or operands not laid out as it reads them.
static bool decoderLayerRowFloat(const at::Tensor& h, const std::vector<c10::optional<at::Tensor>>& w, bool pre, double eps1, double eps2,
                                 at::Tensor& keys, at::Tensor& values, int64_t filled, int64_t used, double scale, const std::string& positions,
                                 const std::vector<c10::optional<at::Tensor>>& p, double ramp, int64_t nearest, double expiringEps, at::Tensor& result) {
  const SgemvFn gemv = sgemv();
  if (!gemv || autocastOn(c10::DeviceType::CPU)) return false;
  std::vector<c10::optional<at::Tensor>> all(w);
  all.insert(all.end(), {h, keys, values});
  const bool expiring = positions == "expiring";
  for (size_t i = 0; i < p.size(); i++) {
    if (expiring && i == 1) continue;  // age: int64
    all.push_back(p[i]);
  }
  const bool grad = at::GradMode::is_enabled() && std::any_of(all.begin(), all.end(), wantsGrad);
  if (grad || !std::all_of(all.begin(), all.end(), floatCpu) || !std::all_of(w.begin(), w.end(), [](const c10::optional<at::Tensor>& t) { return !t || t->is_contiguous(); })) return false;
  if (!h.is_contiguous() || keys.stride(3) != 1 || values.stride(3) != 1) return false;
  const int64_t B = h.size(0), H = h.size(2), K = keys.size(1), Dh = keys.size(3), inner = w[10]->size(0);
  if (w[2]->size(0) != H || w[2]->size(1) != H || w[4]->size(0) != 2 * H || w[4]->size(1) != H || w[6]->size(0) != H || w[6]->size(1) != H ||
      w[10]->size(1) != H || w[12]->size(0) != H || w[12]->size(1) != inner || w[0]->numel() != H || w[8]->numel() != H)
    return false;
  const float* u = nullptr;
  const float* wb = nullptr;
  const float* P = nullptr;
  int64_t Ps0 = 0, Ps1 = 0;
  at::Tensor ageC, spansC, peRows;
  if (expiring) {
    if (p.size() != 3 || !p[0] || !p[1] || !p[2] || p[1]->scalar_type() != at::kLong || !p[1]->is_cpu()) return false;
    if (p[1]->dim() != 2 || p[1]->size(0) != B || p[1]->size(1) != used || p[2]->sizes() != p[1]->sizes() || p[0]->dim() != 2 || p[0]->size(0) != Dh) return false;
    ageC = p[1]->contiguous();
    spansC = p[2]->contiguous();
    peRows = p[0]->t().contiguous();  // [P, D]
  } else {
    const auto bias = [&](const c10::optional<at::Tensor>& t) { return t && t->is_contiguous() && t->dim() == 2 && t->size(0) == K && t->size(1) == Dh; };
    if (p.size() > 0 && p[0]) { if (!bias(p[0])) return false; u = p[0]->data_ptr<float>(); }
    if (p.size() > 2 && p[2]) { if (!bias(p[2])) return false; wb = p[2]->data_ptr<float>(); }
    if (p.size() > 1 && p[1]) {
      const at::Tensor& Pt = *p[1];
      if (Pt.dim() != 3 || Pt.size(0) != K || Pt.size(1) != Dh || Pt.size(2) < used || Pt.stride(2) != 1) return false;
      P = Pt.data_ptr<float>() + (Pt.size(2) - used);  // its last `used` columns
      Ps0 = Pt.stride(0);
      Ps1 = Pt.stride(1);
    }
  }
  result = at::empty({B, 1, H}, h.options());
  const float* hp = h.data_ptr<float>();
  float* out = result.data_ptr<float>();
  float *kp = keys.data_ptr<float>(), *vp = values.data_ptr<float>();
  const int64_t ks0 = keys.stride(0), ks1 = keys.stride(1), ks2 = keys.stride(2), vs0 = values.stride(0), vs1 = values.stride(1), vs2 = values.stride(2);
  const int64_t first = filled + 1 - used;  // the first row attended
  // scratch: normalised input, q, k|v, attention output, x, FF hidden, per-head scores and biased queries
  std::vector<float> normed(H), q(H), kv(2 * H), mixed(H), x(H), hidden(inner), scores(used + 8), qc(Dh), qpos(Dh);
  const float sc = static_cast<float>(scale);
  const auto ln = [&](const float* in, size_t i, double eps, float* o) {
    rowLayerNorm(in, w[i]->data_ptr<float>(), w[i + 1]->data_ptr<float>(), H, static_cast<float>(eps), o);
  };
  ExpiringAttention::SeenKeys<float> seen(expiring ? used : 0);
  for (int64_t b = 0; b < B; b++) {
    const float* hb = hp + b * H;
    const float* input = hb;
    if (pre) {
      ln(hb, 0, eps1, normed.data());
      input = normed.data();
    }
    rowProduct(gemv, *w[2], w[3], input, q.data());
    rowProduct(gemv, *w[4], w[5], input, kv.data());  // [keys | values], each K heads of D
    for (int64_t k = 0; k < K; k++) {
      std::copy_n(kv.data() + k * Dh, Dh, kp + b * ks0 + k * ks1 + filled * ks2);
      std::copy_n(kv.data() + H + k * Dh, Dh, vp + b * vs0 + k * vs1 + filled * vs2);
    }
    if (expiring) seen.build(ageC.data_ptr<int64_t>() + b * used, spansC.data_ptr<float>() + b * used, used, 0, static_cast<float>(ramp), nearest, p[0]->size(1));
    for (int64_t k = 0; k < K; k++) {
      const float* keyRows = kp + b * ks0 + k * ks1 + first * ks2;
      const float* valueRows = vp + b * vs0 + k * vs1 + first * vs2;
      if (expiring) {
        expiringHead(q.data() + k * Dh, keyRows, ks2, peRows.data_ptr<float>(), valueRows, vs2, seen.key.data(), seen.column.data(), seen.m.data(),
                     seen.count, Dh, sc, static_cast<float>(expiringEps), scores.data(), mixed.data() + k * Dh);
      } else {
        attendBiasedHead(q.data() + k * Dh, u ? u + k * Dh : nullptr, wb ? wb + k * Dh : nullptr, keyRows, ks2, P ? P + k * Ps0 : nullptr, Ps1,
                         valueRows, vs2, used, Dh, sc, qc.data(), qpos.data(), scores.data(), mixed.data() + k * Dh);
      }
    }
    float* y = out + b * H;
    rowProduct(gemv, *w[6], w[7], mixed.data(), y);  // the attention's output
    for (int64_t i = 0; i < H; i++) x[i] = hb[i] + y[i];
    if (!pre) ln(x.data(), 0, eps1, x.data());  // post-LN: x = LN1(h + Attn(h))
    const float* ffIn = x.data();
    if (pre) {
      ln(x.data(), 8, eps2, normed.data());
      ffIn = normed.data();
    }
    rowProduct(gemv, *w[10], w[11], ffIn, hidden.data());
    for (float& v : hidden) v = std::max(v, 0.0f);
    rowProduct(gemv, *w[12], w[13], hidden.data(), y);
    for (int64_t i = 0; i < H; i++) y[i] += x[i];
    if (!pre) ln(y, 8, eps2, y);  // post-LN: LN2(x + FF(x))
  }
  return true;
}

// decoderLayerRow(h [B, 1, H], weights (id | null)[14], pre, eps1, eps2, rowMin, keys [B, K, C, D], values [B, K, C, D],
//                 filled, used, scale, positions 'none' | 'relative' | 'expiring', positionTensors (id | null)[3],
//                 ramp, nearest, expiringEps) -> [B, 1, H]:
// one decoder layer (nn/decoder-layer.ts) for one new row over a key/value cache, in one call: the
// decoding step's ~20 calls from JavaScript per layer cost more than their maths at SPEC §10's size.
// weights: ln1 weight, bias; q, kv, out weight, bias; ln2 weight, bias; ff up weight, bias; down
// weight, bias (null where a Linear has no bias). The new row's key and value go into row `filled`
// of the cache buffers keys / values (capacity C > filled, grown by the caller), then the row
// attends to the newest `used` rows: attendRow's maths with positions 'relative' [u, P [K, D, R], w]
// (P's last `used` columns, distances used-1 ... 0) or 'none', expiringAttend's with 'expiring' [keyPe, age [B, used], spans [B, used]].
//   post-LN: x = LN1(h + Attn(h)),     out = LN2(x + FF(x))
//   pre-LN:  x = h + Attn(LN1(h)),     out = x + FF(LN2(x))
// The same ATen ops as the JavaScript layer in the same order (linearRow for every projection,
// layer norm on autocastFloat), so under autocast or another device it computes what the composed
// layer would; no dropout (evaluation) and no attention recorded: the caller decides.
OP(decoderLayerRow) {
  const at::Tensor& h = T(info, 0);
  const std::vector<c10::optional<at::Tensor>> w = OTL(info, 1);
  const bool pre = B(info, 2);
  const double eps1 = D(info, 3), eps2 = D(info, 4);
  const int64_t rowMin = I(info, 5);
  at::Tensor &keys = T(info, 6), &values = T(info, 7);
  const int64_t filled = I(info, 8), used = I(info, 9);
  const double scale = D(info, 10);
  const std::string positions = S(info, 11);
  const std::vector<c10::optional<at::Tensor>> p = OTL(info, 12);
  TORCH_CHECK(w.size() == 14 && w[0] && w[1] && w[2] && w[4] && w[6] && w[8] && w[9] && w[10] && w[12],
              "decoderLayerRow: weights must be [ln1.w, ln1.b, q.w, q.b, kv.w, kv.b, out.w, out.b, ln2.w, ln2.b, up.w, up.b, down.w, down.b]");
  TORCH_CHECK(h.dim() == 3 && h.size(1) == 1, "decoderLayerRow: h must be [B, 1, H]");
  const int64_t Bn = h.size(0), H = h.size(2);
  TORCH_CHECK(keys.dim() == 4 && values.sizes() == keys.sizes() && keys.size(0) == Bn && keys.size(1) * keys.size(3) == H,
              "decoderLayerRow: keys and values must be [B, K, C, D] with K·D = H");
  const int64_t K = keys.size(1), Dh = keys.size(3);
  TORCH_CHECK(filled >= 0 && filled < keys.size(2) && used >= 1 && used <= filled + 1,
              "decoderLayerRow: the cache must have room for the row (filled < C) and 1 <= used <= filled + 1");
  if (positions != "none" && positions != "relative" && positions != "expiring")
    fail("config", "decoderLayerRow: positions must be 'none', 'relative' or 'expiring', got '" + positions + "'");
  const double ramp = D(info, 13), expiringEps = D(info, 15);  // read by 'expiring' only
  const int64_t nearest = I(info, 14);
  at::Tensor result;
  if (decoderLayerRowFloat(h, w, pre, eps1, eps2, keys, values, filled, used, scale, positions, p, ramp, nearest, expiringEps, result))
    return R(info, result);
  const auto norm = [&](const at::Tensor& x, size_t i, double eps) { return at::layer_norm(autocastFloat(x), {H}, w[i], w[i + 1], eps); };
  const auto linear = [&](const at::Tensor& x, size_t i) { return linearRow(x, *w[i], w[i + 1], rowMin); };

  const at::Tensor input = pre ? norm(h, 0, eps1) : h;                                    // [B, 1, H]
  const at::Tensor q = linear(input, 2).view({Bn, 1, K, Dh}).transpose(1, 2);             // [B, K, 1, D]
  const at::Tensor kv = linear(input, 4).view({Bn, 2, K, Dh});                            // [B, 2, K, D]
  keys.select(2, filled).copy_(kv.select(1, 0));
  values.select(2, filled).copy_(kv.select(1, 1));
  const at::Tensor k = keys.narrow(2, filled + 1 - used, used), v = values.narrow(2, filled + 1 - used, used);  // [B, K, used, D]
  at::Tensor mixed;                                                                      // [B, 1, H]
  if (positions == "expiring") {
    TORCH_CHECK(p.size() == 3 && p[0] && p[1] && p[2], "decoderLayerRow: expiring positions must be [keyPe, age, spans]");
    mixed = expiringAttendTensor(q, k, v, *p[0], *p[1], *p[2], ramp, nearest, scale, expiringEps);
  } else {
    c10::optional<at::Tensor> P = p.size() > 1 ? p[1] : c10::nullopt;
    if (P) {
      TORCH_CHECK(P->dim() == 3 && P->size(2) >= used, "decoderLayerRow: positionKeys must be [K, D, R] with R >= used");
      P = P->narrow(2, P->size(2) - used, used);  // distances used-1 ... 0
    }
    mixed = attendRowTensor(q, k, v, p.size() > 0 ? p[0] : c10::nullopt, P, p.size() > 2 ? p[2] : c10::nullopt, scale);
  }
  const at::Tensor attended = linear(mixed, 6);                                           // [B, 1, H]
  const auto ff = [&](const at::Tensor& x) { return linear(at::relu(linear(x, 10)), 12); };
  if (!pre) {
    const at::Tensor x = norm(h + attended, 0, eps1);
    return R(info, norm(x + ff(x), 8, eps2));
  }
  const at::Tensor x = h + attended;
  return R(info, x + ff(norm(x, 8, eps2)));
}

}  // namespace engram
