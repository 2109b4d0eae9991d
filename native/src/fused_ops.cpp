// Fused ops with hand-written backward passes: the pattern for adding one is a
// torch::autograd::Function subclass (forward saves what backward needs) plus an OP wrapper.
// They cost one native call instead of several and keep fewer intermediates alive for backward.
#include "engram.h"

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
    if (mask) y = y.nan_to_num(0.0);  // all-masked rows: 0/0
    ctx->save_for_backward({y});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dim"] = dim;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto y = ctx->get_saved_variables()[0];
    double scale = ctx->saved_data["scale"].toDouble();
    int64_t dim = ctx->saved_data["dim"].toInt();
    auto& dy = grads[0];
    auto dx = y * (dy - (dy * y).sum(dim, /*keepdim=*/true));
    if (scale != 1.0) dx = dx * scale;
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

OP(maskedSoftmax) { return R(info, MaskedSoftmax::apply(T(info, 0), OT(info, 1), D(info, 2), I(info, 3))); }

}  // namespace engram
