// Mixed precision: libtorch's autocast, scoped from JS (src/tensor/precision.ts withPrecision).
//
// Autocast is thread-local dispatcher state: while it is on for a device type, the ops on its
// "lower precision" list (linear, matmul, mm, bmm, baddbmm, einsum's bmm, conv1d...) cast their
// floating inputs to the autocast dtype and run there; everything else runs in its inputs' dtype.
// The casts are ordinary autograd ops, so gradients reach the float32 master weights in float32.
// Casts of leaf weights are cached while autocast is on; JS clears the cache on every exit, so a
// cached copy never outlives an optimiser step.
//
// On the CPU, libtorch 1.13 keeps softmax, log_softmax and layer_norm in their input's dtype (a
// bfloat16 input stays bfloat16, and layer_norm of a bfloat16 input with float32 weights fails),
// so the ops below that must stay float32 (softmax, normalisation, losses) call autocastFloat on
// their inputs: a no-op unless autocast is on for the tensor's device and the tensor is float16 or
// bfloat16. With autocast off (every float32 run) nothing changes, bit for bit.
#include "engram.h"

namespace engram {

namespace {
bool isCuda(const std::string& device) {
  if (device == "cpu") return false;
  if (device == "cuda") return true;
  fail("config", "autocast device type must be 'cpu' or 'cuda', got '" + device + "'");
}
c10::DeviceType typeOf(bool cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
bool enabledFor(bool cuda) { return autocastOn(typeOf(cuda)); }
at::ScalarType dtypeFor(bool cuda) { return autocastDtype(typeOf(cuda)); }
Napi::Value stateOf(const Napi::CallbackInfo& info, bool cuda) {
  auto arr = Napi::Array::New(info.Env(), 2);
  arr.Set(0u, Napi::Boolean::New(info.Env(), enabledFor(cuda)));
  arr.Set(1u, Napi::Number::New(info.Env(), static_cast<int>(dtypeFor(cuda))));
  return arr;
}
}  // namespace

at::Tensor autocastFloat(const at::Tensor& t) {
  auto type = t.scalar_type();
  if (type != at::kBFloat16 && type != at::kHalf) return t;
  bool on = t.is_cuda() ? autocastOn(c10::DeviceType::CUDA) : (t.is_cpu() && autocastOn(c10::DeviceType::CPU));
  return on ? t.to(at::kFloat) : t;
}

// autocastState(deviceType) -> [enabled, dtype code]
OP(autocastState) { return stateOf(info, isCuda(S(info, 0))); }

// setAutocast(deviceType, enabled, dtype code) -> the previous [enabled, dtype code]. Always
// clears the cast cache: a region's cached weight copies must not reach the next one (the weights
// may have changed in between).
OP(setAutocast) {
  bool cuda = isCuda(S(info, 0));
  auto previous = stateOf(info, cuda);
  auto dtype = DT(info, 2);
  if (dtype != at::kBFloat16 && dtype != at::kHalf) fail("dtype", std::string("autocast runs in bfloat16 or float16, not ") + c10::toString(dtype));
  at::autocast::clear_cache();
  setAutocast(typeOf(cuda), B(info, 1), dtype);
  return previous;
}

// mkldnnAvailable() -> whether libtorch has oneDNN and it is enabled (its bfloat16 matrix products
// use AVX512-BF16 / AMX; ATen's own bfloat16 kernels on the CPU are reference loops)
OP(mkldnnAvailable) { return Napi::Boolean::New(info.Env(), at::hasMKLDNN() && at::globalContext().userEnabledMkldnn()); }

}  // namespace engram
