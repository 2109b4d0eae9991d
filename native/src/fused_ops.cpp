// Fused ops with hand-written backward passes: the pattern for adding one is a
// torch::autograd::Function subclass (forward saves what backward needs) plus an OP wrapper.
// They cost one native call instead of several and keep fewer intermediates alive for backward.
#include "engram.h"

#include <ATen/ExpandUtils.h>

namespace engram {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// maskedSoftmax(x, mask|null, scale, dim) = softmax(scale * x with masked positions at -inf).
// Backward needs only the output y: dx = scale * y * (dy - sum(dy * y)). The unfused version keeps
// the scaled and the masked logits alive as well. Rows fully masked give zeros, not NaN.
struct MaskedSoftmax : public torch::autograd::Function<MaskedSoftmax> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const c10::optional<at::Tensor>& mask,
                            double scale, int64_t dim) {
    at::Tensor logits = scale == 1.0 ? x : x * scale;
    if (mask) logits = logits.masked_fill(*mask, -std::numeric_limits<double>::infinity());
    at::Tensor y = at::softmax(logits, dim);
    // All-masked rows are 0/0 = NaN; zeroing the masked positions (in place, no new tensor)
    // clears them and leaves every other row as it is (its masked positions are 0 already).
    if (mask) y.masked_fill_(*mask, 0.0);
    ctx->save_for_backward({y});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dim"] = dim;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto y = ctx->get_saved_variables()[0];
    double scale = ctx->saved_data["scale"].toDouble();
    int64_t dim = ctx->saved_data["dim"].toInt();
    // ATen's softmax backward kernel: y * (dy - sum(dy * y)) in one pass.
    auto dx = at::_softmax_backward_data(grads[0].contiguous(), y, dim, y.scalar_type());
    if (scale != 1.0) dx.mul_(scale);
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// softMaskRenorm(p, m, eps, dim) = p·m / (Σ_dim p·m + eps): a soft mask m (broadcast to p) applied
// to attention weights p after the softmax, the row renormalised (Adaptive-Span's ramp, Expire-Span's
// mask). The forward runs the same ATen ops as the composed version (bit-identical); backward keeps
// p, m and the row sums s only (no product or quotient of p's size) and, with q = p·m, y = q / s:
//   dq = (dy − Σ dy·q / s) / s,   dp = dq·m,   dm = Σ over m's broadcast dims of dq·p.
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
    const auto& dy = grads[0];
    at::Tensor q = p * m;
    at::Tensor dq = dy - (dy * q).sum(dim, true).div_(s);
    dq.div_(s);
    at::Tensor dp, dm;
    if (ctx->needs_input_grad(0)) dp = at::sum_to(dq * m, p.sizes()).to(p.scalar_type());
    if (ctx->needs_input_grad(1)) dm = at::sum_to(dq.mul_(p), m.sizes()).to(m.scalar_type());
    return {dp, dm, at::Tensor(), at::Tensor()};
  }
};

OP(softMaskRenorm) { return R(info, SoftMaskRenorm::apply(T(info, 0), T(info, 1), D(info, 2), I(info, 3))); }

// Under autocast the scores arrive in bfloat16 (a matmul's output): the softmax runs in float32
// (the cast, outside the Function, is differentiable).
OP(maskedSoftmax) { return R(info, MaskedSoftmax::apply(autocastFloat(T(info, 0)), OT(info, 1), D(info, 2), I(info, 3))); }

}  // namespace engram
