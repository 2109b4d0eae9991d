// Tensor ops with PyTorch semantics: creation, data transfer, metadata, elementwise arithmetic,
// reductions, shape and indexing ops, random numbers. Each is a thin call into ATen; argument
// defaults live in the TS layer (src/tensor/tensor.ts), which always passes every argument.
#include "engram.h"

#include <cstring>
#include <unordered_map>

namespace engram {

#define UNARY(name, expr) \
  OP(name) {              \
    auto& x = T(info, 0); \
    return R(info, expr); \
  }
// A binary op in two exported forms, since ids and scalars are both JS numbers:
// name(a, b) with two tensors, nameScalar(a, s) with a tensor and a number.
#define BINARY(name, fn)                                                      \
  OP(name) { return R(info, fn(T(info, 0), T(info, 1))); }                    \
  OP(name##Scalar) { return R(info, fn(T(info, 0), SC(info, 1))); }
#define INPLACE_BINARY(name, method)                                          \
  OP(name) {                                                                  \
    T(info, 0).method(T(info, 1));                                            \
    return info.Env().Undefined();                                            \
  }                                                                           \
  OP(name##Scalar) {                                                          \
    T(info, 0).method(SC(info, 1));                                           \
    return info.Env().Undefined();                                            \
  }

// ---- creation ---------------------------------------------------------------------------------------
// (shape, [value,] dtype|null, device|null)

OP(zeros) { return R(info, at::zeros(IL(info, 0), options(info, 1, 2))); }
OP(ones) { return R(info, at::ones(IL(info, 0), options(info, 1, 2))); }
OP(empty) { return R(info, at::empty(IL(info, 0), options(info, 1, 2))); }
OP(full) { return R(info, at::full(IL(info, 0), SC(info, 1), options(info, 2, 3))); }
OP(eye) { return R(info, at::eye(I(info, 0), I(info, 1), options(info, 2, 3))); }
OP(arange) { return R(info, at::arange(SC(info, 0), SC(info, 1), SC(info, 2), options(info, 3, 4))); }
OP(linspace) { return R(info, at::linspace(SC(info, 0), SC(info, 1), I(info, 2), options(info, 3, 4))); }
OP(scalarTensor) { return R(info, at::scalar_tensor(SC(info, 0), options(info, 1, 2))); }
OP(zerosLike) { return R(info, at::zeros_like(T(info, 0))); }
OP(onesLike) { return R(info, at::ones_like(T(info, 0))); }
OP(fullLike) { return R(info, at::full_like(T(info, 0), SC(info, 1))); }

// ---- random (the global generator is seeded by manualSeed) ------------------------------------------

OP(rand) { return R(info, at::rand(IL(info, 0), options(info, 1, 2))); }
OP(randn) { return R(info, at::randn(IL(info, 0), options(info, 1, 2))); }
OP(randint) { return R(info, at::randint(I(info, 0), I(info, 1), IL(info, 2), options(info, 3, 4))); }
OP(randperm) { return R(info, at::randperm(I(info, 0), options(info, 1, 2))); }
OP(randLike) { return R(info, at::rand_like(T(info, 0))); }
OP(randnLike) { return R(info, at::randn_like(T(info, 0))); }
// bernoulli(t, p|null): with p, draws with probability p in t's shape; without, t holds the probabilities.
OP(bernoulli) {
  auto p = OD(info, 1);
  return R(info, p ? at::bernoulli(T(info, 0), *p) : at::bernoulli(T(info, 0)));
}
OP(multinomial) { return R(info, at::multinomial(T(info, 0), I(info, 1), B(info, 2))); }
OP(uniform_) {
  T(info, 0).uniform_(D(info, 1), D(info, 2));
  return info.Env().Undefined();
}
OP(normal_) {
  T(info, 0).normal_(D(info, 1), D(info, 2));
  return info.Env().Undefined();
}

// ---- data transfer ----------------------------------------------------------------------------------
// Memory a tensor owns can be handed to JS without a copy (externalArrayBuffer); such buffers are
// remembered here by address, so that fromArray on them aliases the storage instead of copying.
// Memory JS owns is always copied in: an ArrayBuffer can be detached or transferred, which would
// leave a tensor pointing at freed memory.

namespace {
struct Exported {
  at::Tensor owner;  // keeps the storage alive while any ArrayBuffer over it lives
  int views = 0;     // ArrayBuffers over this address not yet collected
};
std::unordered_map<const void*, Exported> exportedBuffers;
}  // namespace

// fromArray(typedArray, dtype, shape): dtype is the element type of the bytes.
OP(fromArray) {
  auto view = info[0].As<Napi::TypedArray>();
  auto dtype = DT(info, 1);
  auto shape = IL(info, 2);
  auto buffer = view.ArrayBuffer();
  auto* base = static_cast<uint8_t*>(buffer.Data());
  size_t offset = view.ByteOffset();
  size_t bytes = view.ByteLength();
  auto opts = at::TensorOptions().dtype(dtype);
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  if (static_cast<size_t>(numel) * c10::elementSize(dtype) != bytes) {
    fail("shape", "data has " + std::to_string(bytes) + " bytes but shape needs " +
                      std::to_string(numel * c10::elementSize(dtype)));
  }
  auto it = exportedBuffers.find(base);
  if (it != exportedBuffers.end()) {
    at::Tensor owner = it->second.owner;
    return R(info, at::from_blob(base + offset, shape, [owner](void*) {}, opts));
  }
  auto t = at::empty(shape, opts);
  if (bytes) std::memcpy(t.data_ptr(), base + offset, bytes);
  return R(info, t);
}

// A copy of the tensor's bytes (C order) in a new ArrayBuffer.
OP(toArrayBuffer) {
  auto t = T(info, 0).detach().to(at::kCPU).contiguous();
  size_t bytes = t.numel() * t.element_size();
  auto buffer = Napi::ArrayBuffer::New(info.Env(), bytes);
  if (bytes) std::memcpy(buffer.Data(), t.data_ptr(), bytes);
  return buffer;
}

// An ArrayBuffer over the tensor's own memory (CPU, contiguous): writes through it change the tensor.
OP(externalArrayBuffer) {
  auto& t = T(info, 0);
  if (!t.device().is_cpu()) fail("device", "a zero-copy view needs a CPU tensor (call .cpu() first)");
  if (!t.is_contiguous()) fail("shape", "a zero-copy view needs a contiguous tensor (call .contiguous() first)");
  size_t bytes = t.numel() * t.element_size();
  if (bytes == 0) return Napi::ArrayBuffer::New(info.Env(), 0);
  auto* data = t.data_ptr();
  auto& entry = exportedBuffers[data];
  if (entry.views++ == 0) entry.owner = t.detach();
  // The finalizer runs on the JS thread when the ArrayBuffer is collected.
  return Napi::ArrayBuffer::New(info.Env(), data, bytes, [](Napi::Env, void* data) {
    auto it = exportedBuffers.find(data);
    if (it != exportedBuffers.end() && --it->second.views == 0) exportedBuffers.erase(it);
  });
}

OP(item) {
  auto& t = T(info, 0);
  if (t.numel() != 1) fail("shape", "item() needs a tensor with one element, got " + std::to_string(t.numel()));
  auto s = t.item();
  if (s.isBoolean()) return Napi::Boolean::New(info.Env(), s.toBool());
  return Napi::Number::New(info.Env(), s.toDouble());
}

// to(t, dtype|null, device|null, copy)
OP(to) {
  auto& t = T(info, 0);
  auto dtype = ODT(info, 1).value_or(t.scalar_type());
  auto device = (info.Length() > 2 && !isNone(info[2])) ? c10::Device(S(info, 2)) : t.device();
  return R(info, t.to(device, dtype, /*non_blocking=*/false, /*copy=*/B(info, 3)));
}
// setData(t, src): the handle t now holds src's data (PyTorch's `t.data = src`), so every JS
// object holding t (a module's field, an optimiser's parameter list) sees the moved tensor: how
// Module.to moves parameters between devices in place. t keeps its requires_grad and loses its
// grad (a gradient on the old device would not fit). Unlike at::Tensor::set_data this works for
// any pair of devices (the meta device included), since it swaps the handle's tensor outright.
OP(setData) {
  at::Tensor& t = T(info, 0);
  bool requiresGrad = t.requires_grad();
  at::Tensor moved = T(info, 1).detach();
  if (requiresGrad) moved.set_requires_grad(true);
  t = std::move(moved);
  return info.Env().Undefined();
}
OP(clone) { return R(info, T(info, 0).clone()); }
OP(copy_) {
  T(info, 0).copy_(T(info, 1));
  return info.Env().Undefined();
}
// copyRows_(buffer, dim, at, x): buffer's rows [at, at + n) along dim = x (n = x.size(dim); every
// other size equal), in one call where narrow, copy_ and freeing the slot took three (GrowingTensor).
OP(copyRows_) {
  at::Tensor buffer = T(info, 0), x = T(info, 3);
  int64_t dim = I(info, 1), start = I(info, 2);
  bool fits = x.dim() == buffer.dim() && dim >= 0 && dim < buffer.dim() && start >= 0 && start + x.size(dim) <= buffer.size(dim);
  for (int64_t d = 0; fits && d < x.dim(); ++d) fits = d == dim || x.size(d) == buffer.size(d);
  if (!fits) fail("shape", "rows " + c10::str(x.sizes()) + " do not fit " + c10::str(buffer.sizes()) + " at " + std::to_string(start) + " along axis " + std::to_string(dim));
  buffer.narrow(dim, start, x.size(dim)).copy_(x);
  return info.Env().Undefined();
}

// ---- metadata -------------------------------------------------------------------------------------------

static Napi::Value intArray(Napi::Env env, at::IntArrayRef values) {
  auto arr = Napi::Array::New(env, values.size());
  for (size_t k = 0; k < values.size(); ++k) arr.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(values[k])));
  return arr;
}
OP(shape) { return intArray(info.Env(), T(info, 0).sizes()); }
OP(strides) { return intArray(info.Env(), T(info, 0).strides()); }
OP(dtype) { return Napi::Number::New(info.Env(), static_cast<int>(T(info, 0).scalar_type())); }
OP(device) { return Napi::String::New(info.Env(), T(info, 0).device().str()); }
OP(isContiguous) { return Napi::Boolean::New(info.Env(), T(info, 0).is_contiguous()); }

// ---- elementwise --------------------------------------------------------------------------------------

BINARY(add, at::add)
BINARY(sub, at::sub)
BINARY(mul, at::mul)
BINARY(div, at::div)
BINARY(pow, at::pow)
BINARY(remainder, at::remainder)
BINARY(floorDivide, at::floor_divide)
BINARY(eq, at::eq)
BINARY(ne, at::ne)
BINARY(lt, at::lt)
BINARY(le, at::le)
BINARY(gt, at::gt)
BINARY(ge, at::ge)
OP(rsubScalar) { return R(info, at::rsub(T(info, 0), SC(info, 1))); }  // s - t
OP(rdivScalar) { return R(info, at::mul(at::reciprocal(T(info, 0)), SC(info, 1))); }  // s / t
OP(rpowScalar) { return R(info, at::pow(SC(info, 1), T(info, 0))); }  // s ** t
OP(maximum) { return R(info, at::maximum(T(info, 0), T(info, 1))); }
OP(minimum) { return R(info, at::minimum(T(info, 0), T(info, 1))); }
OP(atan2) { return R(info, at::atan2(T(info, 0), T(info, 1))); }
OP(logicalAnd) { return R(info, at::logical_and(T(info, 0), T(info, 1))); }
OP(logicalOr) { return R(info, at::logical_or(T(info, 0), T(info, 1))); }
OP(logicalXor) { return R(info, at::logical_xor(T(info, 0), T(info, 1))); }
// addcmul(t, a, b, value) = t + value * a * b; addcdiv likewise with a / b.
OP(addcmul) { return R(info, at::addcmul(T(info, 0), T(info, 1), T(info, 2), SC(info, 3))); }
OP(addcdiv) { return R(info, at::addcdiv(T(info, 0), T(info, 1), T(info, 2), SC(info, 3))); }
OP(lerp) { return R(info, at::lerp(T(info, 0), T(info, 1), SC(info, 2))); }

UNARY(neg, at::neg(x))
UNARY(abs, at::abs(x))
UNARY(sqrt, at::sqrt(x))
UNARY(rsqrt, at::rsqrt(x))
UNARY(square, at::square(x))
UNARY(reciprocal, at::reciprocal(x))
UNARY(exp, at::exp(x))
UNARY(expm1, at::expm1(x))
UNARY(log, at::log(x))
UNARY(log1p, at::log1p(x))
UNARY(log2, at::log2(x))
UNARY(sin, at::sin(x))
UNARY(cos, at::cos(x))
UNARY(tanh, at::tanh(x))
UNARY(sigmoid, at::sigmoid(x))
UNARY(logSigmoid, at::log_sigmoid(x))
UNARY(relu, at::relu(x))
UNARY(silu, at::silu(x))
UNARY(erf, at::erf(x))
UNARY(floor, at::floor(x))
UNARY(ceil, at::ceil(x))
UNARY(round, at::round(x))
UNARY(trunc, at::trunc(x))
UNARY(sign, at::sign(x))
UNARY(logicalNot, at::logical_not(x))
UNARY(isnan, at::isnan(x))
UNARY(isfinite, at::isfinite(x))
OP(gelu) { return R(info, at::gelu(T(info, 0), B(info, 1) ? "tanh" : "none")); }
OP(softplus) { return R(info, at::softplus(T(info, 0), SC(info, 1), SC(info, 2))); }
OP(leakyRelu) { return R(info, at::leaky_relu(T(info, 0), SC(info, 1))); }
// clamp(t, min|null, max|null)
OP(clamp) { return R(info, at::clamp(T(info, 0), OSC(info, 1), OSC(info, 2))); }
OP(clampTensor) { return R(info, at::clamp(T(info, 0), OT(info, 1), OT(info, 2))); }

INPLACE_BINARY(add_, add_)
INPLACE_BINARY(sub_, sub_)
INPLACE_BINARY(mul_, mul_)
INPLACE_BINARY(div_, div_)
OP(addScaled_) {  // t += alpha * other
  T(info, 0).add_(T(info, 1), SC(info, 2));
  return info.Env().Undefined();
}
OP(clamp_) {
  T(info, 0).clamp_(OSC(info, 1), OSC(info, 2));
  return info.Env().Undefined();
}
OP(zero_) {
  T(info, 0).zero_();
  return info.Env().Undefined();
}
OP(fill_) {
  T(info, 0).fill_(SC(info, 1));
  return info.Env().Undefined();
}
OP(maskedFill_) {
  T(info, 0).masked_fill_(T(info, 1), SC(info, 2));
  return info.Env().Undefined();
}

// ---- matrix products ---------------------------------------------------------------------------------------

// matmul: matmul_ops.cpp (batched products on their own kernel)
OP(mm) { return R(info, at::mm(T(info, 0), T(info, 1))); }
OP(bmm) { return R(info, at::bmm(T(info, 0), T(info, 1))); }
OP(baddbmm) { return R(info, at::baddbmm(T(info, 0), T(info, 1), T(info, 2), SC(info, 3), SC(info, 4))); }
OP(outer) { return R(info, at::outer(T(info, 0), T(info, 1))); }
OP(einsum) { return R(info, at::einsum(S(info, 0), TL(info, 1))); }

// ---- reductions --------------------------------------------------------------------------------------------
// (t, dims|null, keepdim[, dtype|null]); dims null reduces over everything.

OP(sum) {
  auto& t = T(info, 0);
  auto dtype = ODT(info, 3);
  if (isNone(info[1])) return R(info, at::sum(t, dtype));
  return R(info, at::sum(t, IL(info, 1), B(info, 2), dtype));
}
OP(mean) {
  auto& t = T(info, 0);
  auto dtype = ODT(info, 3);
  if (isNone(info[1])) return R(info, at::mean(t, dtype));
  return R(info, at::mean(t, IL(info, 1), B(info, 2), dtype));
}
OP(prod) {
  auto& t = T(info, 0);
  if (isNone(info[1])) return R(info, at::prod(t));
  return R(info, at::prod(t, I(info, 1), B(info, 2)));
}
OP(amax) { return R(info, at::amax(T(info, 0), isNone(info[1]) ? std::vector<int64_t>{} : IL(info, 1), B(info, 2))); }
OP(amin) { return R(info, at::amin(T(info, 0), isNone(info[1]) ? std::vector<int64_t>{} : IL(info, 1), B(info, 2))); }
// max/min over a dim: [values, indices]
OP(maxDim) {
  auto r = at::max(T(info, 0), I(info, 1), B(info, 2));
  return RL(info, {std::get<0>(r), std::get<1>(r)});
}
OP(minDim) {
  auto r = at::min(T(info, 0), I(info, 1), B(info, 2));
  return RL(info, {std::get<0>(r), std::get<1>(r)});
}
OP(argmax) { return R(info, at::argmax(T(info, 0), OI(info, 1), B(info, 2))); }
OP(argmin) { return R(info, at::argmin(T(info, 0), OI(info, 1), B(info, 2))); }
OP(cumsum) { return R(info, at::cumsum(T(info, 0), I(info, 1), ODT(info, 2))); }
OP(cumprod) { return R(info, at::cumprod(T(info, 0), I(info, 1), ODT(info, 2))); }
OP(logsumexp) { return R(info, at::logsumexp(T(info, 0), IL(info, 1), B(info, 2))); }
// var/std(t, dims|null, correction, keepdim)
// The correction argument is an int in libtorch 1.x and a Scalar in 2.x.
#if TORCH_VERSION_MAJOR >= 2
using Correction = c10::optional<at::Scalar>;
#else
using Correction = c10::optional<int64_t>;
#endif
static at::Tensor varianceLike(const Napi::CallbackInfo& info, bool standardDeviation) {
  std::vector<int64_t> d;
  at::OptionalIntArrayRef dims;
  if (!isNone(info[1])) {
    d = IL(info, 1);
    dims = at::IntArrayRef(d);
  }
  Correction correction;
  if (auto c = OI(info, 2)) correction = *c;
  return standardDeviation ? at::std(T(info, 0), dims, correction, B(info, 3))
                           : at::var(T(info, 0), dims, correction, B(info, 3));
}
OP(var) { return R(info, varianceLike(info, false)); }
OP(std) { return R(info, varianceLike(info, true)); }
// norm(t, p, dims|null, keepdim)
OP(norm) {
  if (isNone(info[2])) return R(info, at::norm(T(info, 0), SC(info, 1)));
  return R(info, at::norm(T(info, 0), SC(info, 1), IL(info, 2), B(info, 3)));
}
OP(all) { return R(info, isNone(info[1]) ? at::all(T(info, 0)) : at::all(T(info, 0), I(info, 1), B(info, 2))); }
OP(any) { return R(info, isNone(info[1]) ? at::any(T(info, 0)) : at::any(T(info, 0), I(info, 1), B(info, 2))); }
// sort(t, dim, descending) / topk(t, k, dim, largest, sorted): [values, indices]
OP(sort) {
  auto r = at::sort(T(info, 0), I(info, 1), B(info, 2));
  return RL(info, {std::get<0>(r), std::get<1>(r)});
}
OP(argsort) { return R(info, at::argsort(T(info, 0), I(info, 1), B(info, 2))); }
OP(topk) {
  auto r = at::topk(T(info, 0), I(info, 1), I(info, 2), B(info, 3), B(info, 4));
  return RL(info, {std::get<0>(r), std::get<1>(r)});
}

// ---- shape ----------------------------------------------------------------------------------------------------

OP(reshape) { return R(info, T(info, 0).reshape(IL(info, 1))); }
OP(view) { return R(info, T(info, 0).view(IL(info, 1))); }
OP(permute) { return R(info, T(info, 0).permute(IL(info, 1))); }
OP(transpose) { return R(info, T(info, 0).transpose(I(info, 1), I(info, 2))); }
OP(contiguous) { return R(info, T(info, 0).contiguous()); }
OP(expand) { return R(info, T(info, 0).expand(IL(info, 1))); }
OP(squeeze) { return R(info, isNone(info[1]) ? T(info, 0).squeeze() : T(info, 0).squeeze(I(info, 1))); }
OP(unsqueeze) { return R(info, T(info, 0).unsqueeze(I(info, 1))); }
OP(flatten) { return R(info, T(info, 0).flatten(I(info, 1), I(info, 2))); }
OP(narrow) { return R(info, T(info, 0).narrow(I(info, 1), I(info, 2), I(info, 3))); }
// slice(t, dim, start|null, end|null, step)
OP(slice) { return R(info, at::slice(T(info, 0), I(info, 1), OI(info, 2), OI(info, 3), I(info, 4))); }
OP(select) { return R(info, T(info, 0).select(I(info, 1), I(info, 2))); }
OP(cat) { return R(info, at::cat(TL(info, 0), I(info, 1))); }
OP(stack) { return R(info, at::stack(TL(info, 0), I(info, 1))); }
// split(t, size or sizes, dim)
OP(split) {
  if (info[1].IsNumber()) return RL(info, at::split(T(info, 0), I(info, 1), I(info, 2)));
  return RL(info, at::split_with_sizes(T(info, 0), IL(info, 1), I(info, 2)));
}
OP(chunk) { return RL(info, at::chunk(T(info, 0), I(info, 1), I(info, 2))); }
OP(unbind) { return RL(info, at::unbind(T(info, 0), I(info, 1))); }
OP(repeat) { return R(info, T(info, 0).repeat(IL(info, 1))); }
OP(repeatInterleave) { return R(info, at::repeat_interleave(T(info, 0), I(info, 1), OI(info, 2))); }
OP(flip) { return R(info, at::flip(T(info, 0), IL(info, 1))); }
OP(roll) { return R(info, at::roll(T(info, 0), IL(info, 1), IL(info, 2))); }
OP(asStrided) { return R(info, T(info, 0).as_strided(IL(info, 1), IL(info, 2), I(info, 3))); }
OP(unfold) { return R(info, T(info, 0).unfold(I(info, 1), I(info, 2), I(info, 3))); }
OP(tril) { return R(info, at::tril(T(info, 0), I(info, 1))); }
OP(triu) { return R(info, at::triu(T(info, 0), I(info, 1))); }
// pad(t, pads, mode, value): pads as in torch.nn.functional.pad (last dim first).
OP(pad) { return R(info, at::pad(T(info, 0), IL(info, 1), S(info, 2), OD(info, 3))); }

// ---- indexing ---------------------------------------------------------------------------------------------------

OP(indexSelect) { return R(info, at::index_select(T(info, 0), I(info, 1), T(info, 2))); }
OP(gather) { return R(info, at::gather(T(info, 0), I(info, 1), T(info, 2))); }
OP(scatter) { return R(info, at::scatter(T(info, 0), I(info, 1), T(info, 2), T(info, 3))); }
OP(scatterValue) { return R(info, at::scatter(T(info, 0), I(info, 1), T(info, 2), SC(info, 3))); }
OP(scatterAdd) { return R(info, at::scatter_add(T(info, 0), I(info, 1), T(info, 2), T(info, 3))); }
// scatterReduce(t, dim, index, src, reduce: sum|prod|mean|amax|amin, includeSelf)
OP(scatterReduce) {
  return R(info, at::scatter_reduce(T(info, 0), I(info, 1), T(info, 2), T(info, 3), S(info, 4), B(info, 5)));
}
OP(maskedFill) { return R(info, at::masked_fill(T(info, 0), T(info, 1), SC(info, 2))); }
OP(maskedSelect) { return R(info, at::masked_select(T(info, 0), T(info, 1))); }
OP(where) { return R(info, at::where(T(info, 0), T(info, 1), T(info, 2))); }
OP(whereScalarOther) { return R(info, at::where(T(info, 0), T(info, 1), SC(info, 2))); }
OP(whereScalarSelf) { return R(info, at::where(T(info, 0), SC(info, 1), T(info, 2))); }
OP(nonzero) { return R(info, at::nonzero(T(info, 0))); }

// Advanced indexing: index(t, [idx|null, ...]) like t[idx0, idx1] in PyTorch (null = ':').
static c10::List<c10::optional<at::Tensor>> indexList(const Napi::CallbackInfo& info, size_t i) {
  auto arr = info[i].As<Napi::Array>();
  c10::List<c10::optional<at::Tensor>> out;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    auto v = arr.Get(k);
    if (isNone(v)) out.push_back(c10::nullopt);
    else out.push_back(tensorAt(v.As<Napi::Number>().Int32Value()));
  }
  return out;
}
OP(index) { return R(info, at::index(T(info, 0), indexList(info, 1))); }
OP(indexPut) { return R(info, at::index_put(T(info, 0), indexList(info, 1), T(info, 2), B(info, 3))); }
OP(indexPut_) {
  at::index_put_(T(info, 0), indexList(info, 1), T(info, 2), B(info, 3));
  return info.Env().Undefined();
}

}  // namespace engram
