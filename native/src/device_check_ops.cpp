// Checking device placement without a GPU (test/helpers.ts: ENGRAM_TEST_DEVICES=meta).
//
// On a CUDA machine an op that mixes a CUDA tensor with a CPU one fails. On a CPU-only machine
// every tensor is on the CPU, so a tensor made on the wrong device (a mask, a table, an index built
// without the model's device) goes unnoticed until someone has a GPU. In this mode 'meta' tensors
// (a shape and a dtype, no data) stand in for the GPU:
//
//  - Every op first checks that its tensor arguments share one device, as CUDA kernels do (a 0-dim
//    CPU tensor, a wrapped scalar, may join any device; copies and transfers take two devices by
//    design). ATen's meta kernels mostly skip that check (mm, bmm, cat and masked_fill accept a
//    CPU operand beside a meta one), hence a check of our own: a boxed fallback on the dispatcher's
//    testing key, which runs before every kernel, autograd's included, while the key is in the
//    thread's included set. That set is thread-local dispatch state, which the autograd engine
//    carries into the threads that run a backward.
//  - Ops without a meta kernel in this libtorch (1.13 and 2.x have none for index_select) run on
//    CPU zeros of their arguments' shapes (zeros are valid indices), and return meta tensors of
//    their results' shapes; a result that is one of the arguments (in-place, out=) stays that
//    argument.
//  - Data read out of a meta tensor (item(), a copy to the CPU) reads zeros.
//
// So a model runs forward, backward and optimiser steps on 'meta' with every data-dependent
// choice seeing zeros: what this checks is where tensors are, not their values.
//
// Its companion, setNativeKernels(false), tests the other half on the CPU: the ATen compositions
// that every fused op takes off the CPU (and so on CUDA) run on CPU tensors, where their values can
// be compared with the native kernels' (test/device.test.ts).
#include "engram.h"

#include <algorithm>
#include <atomic>

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace engram {

namespace {

constexpr c10::DispatchKey checkKey = c10::DispatchKey::TESTING_ONLY_GenericMode;

// Ops whose tensor arguments may be on different devices by design.
bool transfers(const std::string& op) {
  return op == "aten::copy_" || op == "aten::_copy_from" || op == "aten::_copy_from_and_resize" || op == "aten::to" ||
         op == "aten::_to_copy" || op == "aten::set_" || op == "aten::_local_scalar_dense";
}

// Calls f on every defined tensor in an argument: a Tensor, a Tensor[] or a Tensor?[].
template <typename F>
void eachTensor(const c10::IValue& v, F&& f) {
  if (v.isTensor()) {
    if (v.toTensor().defined()) f(v.toTensor());
  } else if (v.isTensorList()) {
    for (const at::Tensor& t : v.toTensorList().vec()) if (t.defined()) f(t);
  } else if (v.isList()) {
    for (const c10::IValue& e : v.toListRef()) if (e.isTensor() && e.toTensor().defined()) f(e.toTensor());
  }
}

void deviceCheckFallback(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const std::string& name = op.schema().name();
  const size_t n = op.schema().arguments().size();
  auto args = torch::jit::last(*stack, n);
  const c10::DispatchKeySet below = keys & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER, checkKey);
  if (name == "aten::copy_" && n >= 2 && args[0].isTensor() && args[1].isTensor() && args[1].toTensor().is_meta() &&
      !args[0].toTensor().is_meta()) {
    at::Tensor self = args[0].toTensor();  // data out of a meta tensor: zeros
    self.zero_();
    torch::jit::drop(*stack, n);
    torch::jit::push(*stack, self);
    return;
  }
  if (!transfers(name)) {
    c10::optional<c10::Device> seen;
    for (const c10::IValue& v : args) {
      eachTensor(v, [&](const at::Tensor& t) {
        if (t.is_cpu() && t.dim() == 0) return;  // a scalar joins any device, as on CUDA
        if (!seen) seen = t.device();
        else if (*seen != t.device()) {
          throw std::runtime_error(name + ": expected all tensors on one device, found " + seen->str() + " and " + t.device().str() +
                                   " (a tensor made without the model's device)");
        }
      });
    }
  }
  op.redispatchBoxed(below, stack);
}

// Runs `op` (its arguments on the stack) as `runAs` on CPU zeros; runAs takes the same arguments
// (itself, or the CPU op behind an "overrideable" one).
void metaOnCpu(const c10::OperatorHandle& op, const c10::OperatorHandle& runAs, torch::jit::Stack* stack) {
  const size_t n = op.schema().arguments().size();
  const std::vector<c10::IValue> originals(stack->end() - n, stack->end());
  const auto onCpu = [](const at::Tensor& t) { return t.defined() && t.is_meta() ? at::zeros(t.sizes(), t.options().device(at::kCPU)) : t; };
  std::vector<at::Tensor> cpuArgs(n);  // the CPU stand-in of each tensor argument, to find results that are arguments
  for (size_t k = 0; k < n; ++k) {
    c10::IValue& v = (*stack)[stack->size() - n + k];
    if (v.isTensor()) {
      cpuArgs[k] = onCpu(v.toTensor());
      v = cpuArgs[k];
    } else if (v.isTensorList()) {
      std::vector<at::Tensor> list;
      for (const at::Tensor& t : v.toTensorList().vec()) list.push_back(onCpu(t));
      v = c10::List<at::Tensor>(list);
    } else if (v.isList()) {
      c10::impl::GenericList list(v.toList().elementType());
      for (const c10::IValue& e : v.toListRef()) list.push_back(e.isTensor() ? c10::IValue(onCpu(e.toTensor())) : e);
      v = list;
    }
  }
  {
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // already below autograd: the CPU op records nothing
    runAs.callBoxed(stack);
  }
  const auto toMeta = [&](const at::Tensor& r) -> at::Tensor {
    if (!r.defined()) return r;
    for (size_t k = 0; k < n; ++k) {
      if (cpuArgs[k].defined() && cpuArgs[k].unsafeGetTensorImpl() == r.unsafeGetTensorImpl()) {
        at::Tensor arg = originals[k].toTensor();
        if (arg.sizes() != r.sizes()) arg.resize_(r.sizes());
        return arg;
      }
    }
    return at::empty_strided(r.sizes(), r.strides(), r.options().device(at::kMeta));
  };
  const size_t results = op.schema().returns().size();
  for (size_t k = stack->size() - results; k < stack->size(); ++k) {
    c10::IValue& v = (*stack)[k];
    if (v.isTensor()) v = toMeta(v.toTensor());
    else if (v.isTensorList()) {
      std::vector<at::Tensor> list;
      for (const at::Tensor& t : v.toTensorList().vec()) list.push_back(toMeta(t));
      v = c10::List<at::Tensor>(list);
    }
  }
}

void metaFallback(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) { metaOnCpu(op, op, stack); }

// Convolutions on a device ATen does not know go to convolution_overrideable and its backward,
// whose default kernels throw: on meta they run as the CPU's convolution and convolution_backward.
// The backward takes the bias's sizes (before stride) where the overrideable one does not: the
// output channels, weight [out, in / groups, k] (transposed: [in, out / groups, k]).
void metaConvolution(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  static const auto convolution = c10::Dispatcher::singleton().findSchemaOrThrow("aten::convolution", "");
  metaOnCpu(op, convolution, stack);
}
void metaConvolutionBackward(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  static const auto backward = c10::Dispatcher::singleton().findSchemaOrThrow("aten::convolution_backward", "");
  const size_t n = op.schema().arguments().size();  // grad_output, input, weight, stride, padding, dilation, transposed, ...
  const size_t first = stack->size() - n;
  const at::Tensor weight = (*stack)[first + 2].toTensor();
  const bool transposed = (*stack)[first + 6].toBool();
  const int64_t groups = (*stack)[first + 8].toInt();
  const std::vector<int64_t> biasSizes{transposed ? weight.size(1) * groups : weight.size(0)};
  stack->insert(stack->begin() + static_cast<std::ptrdiff_t>(first + 3), c10::IValue(biasSizes));
  metaOnCpu(backward, backward, stack);
}

// The meta kernels this mode adds: metaFallback for every aten op that has a CPU kernel but neither
// a meta kernel nor a composite one (which serves meta too), and the two convolutions. Per op rather
// than as the Meta key's fallback: libtorch 2.x has a fallback of its own there (one that throws),
// and a key takes one fallback.
std::unique_ptr<torch::Library> metaKernels() {
  using K = c10::DispatchKey;
  auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", K::Meta, __FILE__, __LINE__);
  for (const c10::OperatorName& name : c10::Dispatcher::singleton().getAllOpNames()) {
    if (name.name.rfind("aten::", 0) != 0) continue;
    const std::string opName = name.name.substr(6) + (name.overload_name.empty() ? "" : "." + name.overload_name);
    if (opName == "convolution_overrideable" || opName == "convolution_backward_overrideable") continue;
    const auto op = c10::Dispatcher::singleton().findOp(name);
    if (!op || !op->hasKernelForDispatchKey(K::CPU)) continue;
    const std::initializer_list<K> serving{K::Meta, K::CompositeImplicitAutograd, K::CompositeExplicitAutograd, K::CompositeExplicitAutogradNonFunctional};
    if (std::none_of(serving.begin(), serving.end(), [&](K k) { return op->hasKernelForDispatchKey(k); })) {
      library->impl(opName.c_str(), torch::CppFunction::makeFromBoxedFunction<&metaFallback>());
    }
  }
  library->impl("convolution_overrideable", torch::CppFunction::makeFromBoxedFunction<&metaConvolution>());
  library->impl("convolution_backward_overrideable", torch::CppFunction::makeFromBoxedFunction<&metaConvolutionBackward>());
  return library;
}

std::atomic<bool> nativeKernels{true};

}  // namespace

bool nativeKernelsOn() { return nativeKernels.load(std::memory_order_relaxed); }

// setNativeKernels(on) -> whether they were on.
OP(setNativeKernels) { return Napi::Boolean::New(info.Env(), nativeKernels.exchange(B(info, 0))); }

// deviceCheckMode(on) -> whether it was on. The check and the meta kernels are registered on the
// first call and stay (the kernels act only on meta tensors; the check only while the mode is on
// in a thread).
OP(deviceCheckMode) {
  static std::unique_ptr<torch::Library> check, meta;
  const bool on = B(info, 0);
  if (on && !check) {
    meta = metaKernels();
    auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "_", checkKey, __FILE__, __LINE__);
    library->fallback(torch::CppFunction::makeFromBoxedFunction<&deviceCheckFallback>());
    check = std::move(library);
  }
  const bool previous = c10::impl::tls_is_dispatch_key_included(checkKey);
  c10::impl::tls_set_dispatch_key_included(checkKey, on);
  return Napi::Boolean::New(info.Env(), previous);
}

}  // namespace engram
