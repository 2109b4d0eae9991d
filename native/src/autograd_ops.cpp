// Autograd (libtorch's own engine) and the optimiser kernels. Optimiser state lives in JS as
// ordinary tensors (so it saves and loads like any other state); the update itself is one native
// call per step, not a dozen JS-dispatched ops per parameter.
#include "engram.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace engram {

OP(requiresGrad) { return Napi::Boolean::New(info.Env(), T(info, 0).requires_grad()); }
OP(setRequiresGrad) {
  T(info, 0).set_requires_grad(B(info, 1));
  return info.Env().Undefined();
}
OP(isLeaf) { return Napi::Boolean::New(info.Env(), T(info, 0).is_leaf()); }
OP(gradFn) {
  auto fn = T(info, 0).grad_fn();
  if (!fn) return info.Env().Null();
  return Napi::String::New(info.Env(), fn->name());
}
OP(retainGrad) {
  T(info, 0).retain_grad();
  return info.Env().Undefined();
}
// backward(t, gradient|null, retainGraph, createGraph)
OP(backward) {
  auto grad = OT(info, 1);
  T(info, 0).backward(grad ? *grad : at::Tensor(), B(info, 2), B(info, 3));
  return info.Env().Undefined();
}
// grad(t) -> id | null; a new handle on the same gradient tensor.
OP(grad) {
  const auto& g = T(info, 0).grad();
  if (!g.defined()) return info.Env().Null();
  return R(info, g);
}
OP(setGrad) {
  auto g = OT(info, 1);
  auto& t = T(info, 0);
  // as PyTorch's .grad setter: a gradient must match its tensor (optimisers rely on it)
  if (g && g->sizes() != t.sizes()) fail("shape", "assigned grad has shape " + c10::str(g->sizes()) + " but the tensor has " + c10::str(t.sizes()));
  if (g && g->scalar_type() != t.scalar_type()) fail("dtype", std::string("assigned grad is ") + c10::toString(g->scalar_type()) + " but the tensor is " + c10::toString(t.scalar_type()));
  if (g && g->device() != t.device()) fail("device", "assigned grad is on " + g->device().str() + " but the tensor is on " + t.device().str());
  t.mutable_grad() = g ? *g : at::Tensor();
  return info.Env().Undefined();
}
// zeroGrad(ids[]): drops the gradients (as PyTorch's zero_grad(set_to_none=True)).
OP(zeroGrad) {
  for (auto& t : TL(info, 0)) t.mutable_grad().reset();
  return info.Env().Undefined();
}
OP(detach) { return R(info, T(info, 0).detach()); }
OP(detach_) {
  T(info, 0).detach_();
  return info.Env().Undefined();
}
OP(setGradEnabled) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(B(info, 0));
  return Napi::Boolean::New(info.Env(), previous);
}
OP(isGradEnabled) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

// autogradGrad(outputs[], inputs[], gradOutputs[]|null, retainGraph, createGraph, allowUnused)
// -> (id|null)[]: gradients of outputs w.r.t. inputs without touching .grad (torch.autograd.grad).
OP(autogradGrad) {
  auto outputs = TL(info, 0);
  auto inputs = TL(info, 1);
  std::vector<at::Tensor> gradOutputs;
  if (!isNone(info[2])) gradOutputs = TL(info, 2);
  auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, B(info, 3), B(info, 4), B(info, 5));
  auto arr = Napi::Array::New(info.Env(), grads.size());
  for (size_t k = 0; k < grads.size(); ++k) {
    arr.Set(static_cast<uint32_t>(k), grads[k].defined() ? R(info, grads[k]) : info.Env().Null());
  }
  return arr;
}

// ---- optimisers ------------------------------------------------------------------------------------

// One parameter's Adam update in a single pass over p, g, m and v (float32, contiguous), in the
// order of the ATen ops below (AdamW's decay, lerp with weight under 0.5, mul then addcmul, sqrt,
// divide, add eps, addcdiv): equal to them up to the rounding of fused multiply-adds where the CPU
// has them. The ATen version makes 7-8 passes over the 4 arrays and allocates the denominator.
// Built for x86-64-v4 / v3 / the baseline (the CPU chooses at load).
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void adamFloatRange(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
                           int64_t begin, int64_t end, float w1, float beta2, float oneMinusBeta2, float bias2Sqrt, float eps,
                           float stepSize, float l2, float decay) {
#pragma omp simd
  for (int64_t i = begin; i < end; i++) {
    const float pi = decay != 1.0f ? p[i] * decay : p[i];  // AdamW: p · (1 − lr · wd) first
    const float gi = l2 != 0.0f ? g[i] + l2 * pi : g[i];
    const float mi = m[i] + w1 * (gi - m[i]);
    const float vi = v[i] * beta2 + oneMinusBeta2 * gi * gi;
    const float denom = std::sqrt(vi) / bias2Sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + stepSize * (mi / denom);
  }
}

// adamStep(params[], expAvg[], expAvgSq[], step, lr, beta1, beta2, eps, weightDecay, decoupled)
// Adam (decoupled = false: L2 added to the gradient) and AdamW (decoupled = true), as in PyTorch.
OP(adamStep) {
  auto params = TL(info, 0);
  auto expAvg = TL(info, 1);
  auto expAvgSq = TL(info, 2);
  double step = D(info, 3), lr = D(info, 4), beta1 = D(info, 5), beta2 = D(info, 6), eps = D(info, 7);
  double weightDecay = D(info, 8);
  bool decoupled = B(info, 9);
  if (expAvg.size() != params.size() || expAvgSq.size() != params.size()) fail("shape", "one state tensor per parameter expected");
  at::NoGradGuard noGrad;
  double bias1 = 1 - std::pow(beta1, step);
  double bias2Sqrt = std::sqrt(1 - std::pow(beta2, step));
  for (size_t k = 0; k < params.size(); ++k) {
    auto& p = params[k];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    const auto plainFloat = [&](const at::Tensor& t) {
      return nativeCpu(t) && t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == p.numel();
    };
    if (plainFloat(p) && plainFloat(g) && plainFloat(expAvg[k]) && plainFloat(expAvgSq[k]) && 1 - beta1 < 0.5) {
      const float decay = weightDecay != 0 && decoupled ? static_cast<float>(1 - lr * weightDecay) : 1.0f;
      float *pp = p.data_ptr<float>(), *mp = expAvg[k].data_ptr<float>(), *vp = expAvgSq[k].data_ptr<float>();
      const float* gp = g.data_ptr<float>();
      const float l2 = weightDecay != 0 && !decoupled ? static_cast<float>(weightDecay) : 0.0f;
      at::parallel_for(0, p.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
        adamFloatRange(pp, gp, mp, vp, begin, end, static_cast<float>(1 - beta1), static_cast<float>(beta2), static_cast<float>(1 - beta2),
                       static_cast<float>(bias2Sqrt), static_cast<float>(eps), static_cast<float>(-lr / bias1), l2, decay);
      });
      continue;
    }
    if (weightDecay != 0) {
      if (decoupled) p.mul_(1 - lr * weightDecay);
      else g = g.add(p, weightDecay);
    }
    expAvg[k].lerp_(g, 1 - beta1);
    expAvgSq[k].mul_(beta2).addcmul_(g, g, 1 - beta2);
    auto denom = (expAvgSq[k].sqrt() / bias2Sqrt).add_(eps);
    p.addcdiv_(expAvg[k], denom, -lr / bias1);
  }
  return info.Env().Undefined();
}

// sgdStep(params[], momentumBuffers[] (empty when momentum = 0), lr, momentum, dampening, weightDecay, nesterov, firstStep)
OP(sgdStep) {
  auto params = TL(info, 0);
  auto buffers = TL(info, 1);
  double lr = D(info, 2), momentum = D(info, 3), dampening = D(info, 4), weightDecay = D(info, 5);
  bool nesterov = B(info, 6), first = B(info, 7);
  at::NoGradGuard noGrad;
  for (size_t k = 0; k < params.size(); ++k) {
    auto& p = params[k];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    if (weightDecay != 0) g = g.add(p, weightDecay);
    if (momentum != 0) {
      auto& buf = buffers.at(k);
      if (first) buf.copy_(g);
      else buf.mul_(momentum).add_(g, 1 - dampening);
      g = nesterov ? g.add(buf, momentum) : buf;
    }
    p.add_(g, -lr);
  }
  return info.Env().Undefined();
}

// clipGradNorm(params[], maxNorm, normType) -> total norm before clipping
OP(clipGradNorm) {
  auto params = TL(info, 0);
  return Napi::Number::New(info.Env(), torch::nn::utils::clip_grad_norm_(params, D(info, 1), D(info, 2)));
}

}  // namespace engram
