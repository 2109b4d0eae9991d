// A step buffer: rows written one step at a time into a preallocated tensor, read back as views,
// with gradients that equal those of growing the tensor by concatenation (cat([old, row], dim)
// per step) without the per-step copy of everything held so far, nor autograd keeping each copy.
//
// Autograd cannot see the writes: an in-place copy into a buffer whose earlier views were saved
// for backward (attention saves its keys and values) fails the version check. So the buffer's
// data is a plain tensor outside autograd, and two Functions carry the gradient:
//   write(row, token) -> token'   copies row into data at `index` (along dim); its backward
//                                 returns the gradient accumulated in the buffer's `grad` at
//                                 that position (and clears it);
//   read(token) -> view           a view of data[start : start + length) with a version counter
//                                 of its own (later writes never touch those positions); its
//                                 backward adds the incoming gradient into grad at the same place.
// The token (a 0-dim tensor, value unused) orders the graph: write t takes write t-1's token and
// every read takes the newest one, so write t's backward runs only after the backward of every
// read that may have seen row t (they all come after it on the chain) has added its part.
// Reduced-precision buffers accumulate their gradient in float32 (as autograd's sum would widen
// at no point, this is at least as exact as the concatenation path).
#include "engram.h"

namespace engram {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// on the rows' device, so that the graph's nodes stay on one device
at::Tensor token(const at::Tensor& like) { return at::zeros({}, like.options().dtype(at::kFloat)); }

struct StepBufferWrite : public torch::autograd::Function<StepBufferWrite> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& row, const c10::optional<at::Tensor>& previous, at::Tensor data,
                            at::Tensor grad, int64_t dim, int64_t index) {
    data.narrow(dim, index, row.size(dim)).copy_(row);
    ctx->saved_data["grad"] = grad;
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["index"] = index;
    ctx->saved_data["length"] = row.size(dim);
    ctx->saved_data["dtype"] = static_cast<int64_t>(row.scalar_type());
    return token(row);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto grad = ctx->saved_data["grad"].toTensor();
    auto region = grad.narrow(ctx->saved_data["dim"].toInt(), ctx->saved_data["index"].toInt(), ctx->saved_data["length"].toInt());
    auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    at::Tensor dRow = region.to(dtype, /*non_blocking=*/false, /*copy=*/true);
    region.zero_();  // a second backward (retain_graph) sees only what its own reads add
    return {dRow, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct StepBufferRead : public torch::autograd::Function<StepBufferRead> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& tok, at::Tensor data, at::Tensor grad, int64_t dim,
                            int64_t start, int64_t length) {
    ctx->saved_data["grad"] = grad;
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["start"] = start;
    ctx->saved_data["length"] = length;
    // variable_data(): the same storage and strides, a new version counter (see the header)
    return data.narrow(dim, start, length).variable_data();
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto grad = ctx->saved_data["grad"].toTensor();
    grad.narrow(ctx->saved_data["dim"].toInt(), ctx->saved_data["start"].toInt(), ctx->saved_data["length"].toInt()).add_(grads[0]);
    return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void checkBuffer(const at::Tensor& data, const at::Tensor& grad, int64_t dim) {
  if (data.requires_grad()) fail("config", "the step buffer's data must not require grad");
  if (grad.sizes() != data.sizes()) fail("shape", "the step buffer's grad is " + c10::str(grad.sizes()) + ", its data " + c10::str(data.sizes()));
  if (dim < 0 || dim >= data.dim()) fail("shape", "dim " + std::to_string(dim) + " is out of range for a buffer of " + std::to_string(data.dim()) + " dims");
}

}  // namespace

// stepBufferWrite(data, grad, row, token|null, dim, index) -> token: data[..., index : index + n, ...] = row
// along dim (n = row's size there); every other dim of row must equal data's.
OP(stepBufferWrite) {
  auto& data = T(info, 0);
  auto& grad = T(info, 1);
  auto& row = T(info, 2);
  auto previous = OT(info, 3);
  int64_t dim = I(info, 4), index = I(info, 5);
  checkBuffer(data, grad, dim);
  if (row.dim() != data.dim()) fail("shape", "row " + c10::str(row.sizes()) + " and buffer " + c10::str(data.sizes()) + " differ in rank");
  for (int64_t d = 0; d < data.dim(); ++d) {
    if (d != dim && row.size(d) != data.size(d)) fail("shape", "row " + c10::str(row.sizes()) + " does not fit buffer " + c10::str(data.sizes()) + " outside dim " + std::to_string(dim));
  }
  if (index < 0 || index + row.size(dim) > data.size(dim)) fail("shape", "rows " + std::to_string(index) + ".." + std::to_string(index + row.size(dim)) + " are outside the buffer's " + std::to_string(data.size(dim)));
  return R(info, StepBufferWrite::apply(row, previous, data, grad, dim, index));
}

// stepBufferRead(data, grad, token|null, dim, start, length) -> a view of data[start : start + length) along dim.
OP(stepBufferRead) {
  auto& data = T(info, 0);
  auto& grad = T(info, 1);
  auto tok = OT(info, 2);
  int64_t dim = I(info, 3), start = I(info, 4), length = I(info, 5);
  checkBuffer(data, grad, dim);
  if (start < 0 || length < 0 || start + length > data.size(dim)) fail("shape", "rows " + std::to_string(start) + ".." + std::to_string(start + length) + " are outside the buffer's " + std::to_string(data.size(dim)));
  if (!tok || !tok->requires_grad()) return R(info, data.narrow(dim, start, length).variable_data());
  return R(info, StepBufferRead::apply(*tok, data, grad, dim, start, length));
}

}  // namespace engram
