// Neural-network functions (torch.nn.functional): activations with a dim, normalisation, dropout,
// embedding, linear, losses, convolution and pooling. Softmax, normalisation and losses take their
// input in float32 under autocast (autocastFloat, precision_ops.cpp).
#include "engram.h"


namespace engram {

OP(softmax) { return R(info, at::softmax(autocastFloat(T(info, 0)), I(info, 1), ODT(info, 2))); }
OP(logSoftmax) { return R(info, at::log_softmax(autocastFloat(T(info, 0)), I(info, 1), ODT(info, 2))); }

// layerNorm(x, normalizedShape, weight|null, bias|null, eps)
OP(layerNorm) { return R(info, at::layer_norm(autocastFloat(T(info, 0)), IL(info, 1), OT(info, 2), OT(info, 3), D(info, 4))); }
// dropout(x, p, train)
OP(dropout) { return R(info, at::dropout(T(info, 0), D(info, 1), B(info, 2))); }
// embedding(weight, indices, paddingIdx (-1 for none))
OP(embedding) { return R(info, at::embedding(T(info, 0), T(info, 1), I(info, 2))); }
// linear(x, weight [out, in], bias|null)
OP(linear) { return R(info, engram::linear(T(info, 0), T(info, 1), OT(info, 2))); }
// linearRow(x [.., in], weight [out, in], bias|null, minEntries): as linear, but when x holds one
// row, on the CPU in float32 (autocast off), and the weight has at least minEntries entries, a
// matrix-vector product, b + W x. OpenBLAS's sgemm for a 1-row left operand packs the whole weight
// on every call; sgemv reads it once in place, faster for big weights (nn/layers.ts ROW_PRODUCT_MIN). Anything
// else (more rows, small weights, bfloat16, autocast, CUDA) is linear (matmul_ops.cpp): the whole decision is
// here, so decoding calls it for every projection without reading shapes in JavaScript.
at::Tensor linearRow(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, int64_t minEntries) {
  bool row = nativeCpu(x) && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && w.dim() == 2 &&
             w.numel() >= minEntries && x.dim() >= 1 && x.numel() == w.size(1) && !autocastOn(c10::DeviceType::CPU) &&
             (!b || b->scalar_type() == at::kFloat);
  if (!row) return engram::linear(x, w, b);
  at::Tensor flat = x.reshape({-1});
  at::Tensor y = b && b->defined() ? at::addmv(*b, w, flat) : at::mv(w, flat);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = w.size(0);
  return y.view(shape);
}
OP(linearRow) { return R(info, linearRow(T(info, 0), T(info, 1), OT(info, 2), I(info, 3))); }

static int64_t reduction(const std::string& name) {
  if (name == "mean") return at::Reduction::Mean;
  if (name == "sum") return at::Reduction::Sum;
  if (name == "none") return at::Reduction::None;
  fail("config", "reduction must be 'mean', 'sum' or 'none', got '" + name + "'");
}
// crossEntropy(logits [N, C] or [N, C, ...], target (class indices) , weight|null, reduction, ignoreIndex, labelSmoothing)
OP(crossEntropy) {
  return R(info, at::cross_entropy_loss(autocastFloat(T(info, 0)), T(info, 1), OT(info, 2), reduction(S(info, 3)), I(info, 4), D(info, 5)));
}
OP(nllLoss) { return R(info, at::nll_loss_nd(autocastFloat(T(info, 0)), T(info, 1), OT(info, 2), reduction(S(info, 3)), I(info, 4))); }
OP(mseLoss) { return R(info, at::mse_loss(autocastFloat(T(info, 0)), autocastFloat(T(info, 1)), reduction(S(info, 2)))); }
OP(bceWithLogits) {
  return R(info, at::binary_cross_entropy_with_logits(autocastFloat(T(info, 0)), autocastFloat(T(info, 1)), OT(info, 2), OT(info, 3), reduction(S(info, 4))));
}

// conv1d(x [B, Cin, L], weight [Cout, Cin/groups, K], bias|null, stride, padding, dilation, groups)
OP(conv1d) {
  return R(info, at::conv1d(T(info, 0), T(info, 1), OT(info, 2), IL(info, 3), IL(info, 4), IL(info, 5), I(info, 6)));
}
OP(conv2d) {
  return R(info, at::conv2d(T(info, 0), T(info, 1), OT(info, 2), IL(info, 3), IL(info, 4), IL(info, 5), I(info, 6)));
}
// avgPool1d / maxPool1d(x, kernel, stride, padding, ceilMode)
OP(avgPool1d) { return R(info, at::avg_pool1d(T(info, 0), IL(info, 1), IL(info, 2), IL(info, 3), B(info, 4))); }
OP(maxPool1d) { return R(info, at::max_pool1d(T(info, 0), IL(info, 1), IL(info, 2), IL(info, 3), {1}, B(info, 4))); }
OP(avgPool2d) { return R(info, at::avg_pool2d(T(info, 0), IL(info, 1), IL(info, 2), IL(info, 3), B(info, 4))); }
OP(maxPool2d) { return R(info, at::max_pool2d(T(info, 0), IL(info, 1), IL(info, 2), IL(info, 3), {1, 1}, B(info, 4))); }
OP(adaptiveAvgPool1d) { return R(info, at::adaptive_avg_pool1d(T(info, 0), IL(info, 1))); }

}  // namespace engram
