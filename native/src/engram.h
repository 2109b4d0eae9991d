// The native side of Engram: a handle table of at::Tensor plus Node-API glue.
//
// JS holds tensors as small integer ids into one table (no per-tensor JS wrapper object on this
// side, no finalizer per op: the prototype with one ObjectWrap per tensor paid ~2 µs per op for
// them). JS frees ids explicitly (scopes, dispose) or from a FinalizationRegistry.
//
// Every exported function is registered with OP(name) and runs inside guarded<>, the one error
// path: any C++ exception becomes a JS EngramError carrying the op name, a kind and libtorch's
// message. Nothing thrown in C++ reaches Node as a crash.
#pragma once

#include <ATen/autocast_mode.h>
#include <napi.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdint>
#include <initializer_list>
#include <c10/util/Optional.h>
#include <string>
#include <vector>

namespace engram {

// ---- handle table -----------------------------------------------------------------------------

at::Tensor& tensorAt(int32_t id);            // throws EngramError(kind "disposed") for a bad id
int32_t store(Napi::Env env, at::Tensor t);  // new id for t
void release(Napi::Env env, int32_t id);     // frees id (no-op for an already free id)
size_t liveCount();

// ---- arguments ----------------------------------------------------------------------------------
// JS passes every argument explicitly (the TS layer fills defaults), so parsing is positional.

inline int32_t idArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int32Value();
}
inline at::Tensor& T(const Napi::CallbackInfo& info, size_t i) { return tensorAt(idArg(info, i)); }
inline bool isNone(const Napi::Value& v) { return v.IsNull() || v.IsUndefined(); }
inline c10::optional<at::Tensor> OT(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || isNone(info[i])) return c10::nullopt;
  return T(info, i);
}
inline int64_t I(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int64Value();
}
inline c10::optional<int64_t> OI(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || isNone(info[i])) return c10::nullopt;
  return I(info, i);
}
inline double D(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().DoubleValue();
}
inline c10::optional<double> OD(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || isNone(info[i])) return c10::nullopt;
  return D(info, i);
}
inline bool B(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }
inline std::string S(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::String>().Utf8Value();
}
std::vector<int64_t> IL(const Napi::CallbackInfo& info, size_t i);            // number[]
std::vector<at::Tensor> TL(const Napi::CallbackInfo& info, size_t i);         // id[]
std::vector<c10::optional<at::Tensor>> OTL(const Napi::CallbackInfo& info, size_t i);  // (id | null)[]
// A JS number as a Scalar with Python's rule: integral values are integer scalars (so an int64
// tensor plus 2 stays int64), others are doubles; booleans are bool scalars.
at::Scalar SC(const Napi::CallbackInfo& info, size_t i);
inline c10::optional<at::Scalar> OSC(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || isNone(info[i])) return c10::nullopt;
  return SC(info, i);
}
// dtype codes are at::ScalarType values; the TS layer owns the name <-> code table.
inline at::ScalarType DT(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<at::ScalarType>(info[i].As<Napi::Number>().Int32Value());
}
inline c10::optional<at::ScalarType> ODT(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || isNone(info[i])) return c10::nullopt;
  return DT(info, i);
}
at::TensorOptions options(const Napi::CallbackInfo& info, size_t dtypeIndex, size_t deviceIndex);

// ---- results ------------------------------------------------------------------------------------

inline Napi::Value R(const Napi::CallbackInfo& info, at::Tensor t) {
  return Napi::Number::New(info.Env(), store(info.Env(), std::move(t)));
}
Napi::Value RL(const Napi::CallbackInfo& info, const std::vector<at::Tensor>& ts);

// ---- mixed precision (precision_ops.cpp) ---------------------------------------------------------

// Autocast's thread-local state for one device type (kCPU or kCUDA). libtorch 2.4 replaced the
// per-backend calls (is_cpu_enabled, get_autocast_gpu_dtype, ...) by these with a device type, and
// its old ones print a deprecation warning on every call; 1.13 has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline bool autocastOn(c10::DeviceType type) { return at::autocast::is_autocast_enabled(type); }
inline at::ScalarType autocastDtype(c10::DeviceType type) { return at::autocast::get_autocast_dtype(type); }
inline void setAutocast(c10::DeviceType type, bool on, at::ScalarType dtype) {
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, on);
}
#else
inline bool autocastOn(c10::DeviceType type) {
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
inline at::ScalarType autocastDtype(c10::DeviceType type) {
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
inline void setAutocast(c10::DeviceType type, bool on, at::ScalarType dtype) {
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(on);
  }
}
#endif
// Whether autocast is on for the CPU or for CUDA: the fused ops take their ATen composition then.
inline bool anyAutocastOn() { return autocastOn(c10::DeviceType::CPU) || autocastOn(c10::DeviceType::CUDA); }

// Whether Engram's own CPU kernels may run on t: t is on the CPU and they are on (the default).
// setNativeKernels(false) sends every op down the ATen composition that other devices take, so the
// CPU can test those paths against the kernels (device_check_ops.cpp). Each op's other conditions
// (dtype, layout, autocast) come on top.
bool nativeKernelsOn();
inline bool nativeCpu(const at::Tensor& t) { return t.is_cpu() && nativeKernelsOn(); }

// t in float32 when autocast is on for its device and t is float16 / bfloat16; else t itself.
// Softmax, normalisation and losses call it on their inputs so that they stay float32 under autocast.
at::Tensor autocastFloat(const at::Tensor& t);

// ---- shared kernels ---------------------------------------------------------------------------------

// A function `symbol` from the first of `libraries` that the process has loaded already (libtorch's
// own oneDNN or BLAS; RTLD_NOLOAD, never a second copy), or nullptr (addon.cpp). Each entry is the
// start of a file name ("libdnnl.so" finds libdnnl.so.2 under libtorch 1.13 and libdnnl.so.3.6 under
// Debian's 2.6): sonames change with every major version of the library.
void* loadedSymbol(std::initializer_list<const char*> libraries, const char* symbol);

// Element offsets (from t's data_ptr) of every entry of the leading `batch` dims of t (already
// expanded to them: broadcast dims have stride 0), in row-major order of `batch` (matmul_ops.cpp).
std::vector<int64_t> batchOffsets(const at::Tensor& t, at::IntArrayRef batch);

// Dense (2-D) float32 products on the CPU (matmul_ops.cpp): ATen's mm runs them on libtorch's BLAS,
// unless that BLAS is an OpenBLAS held to narrower vectors than the processor has (its AVX2 kernels
// on an AVX-512 processor, as OPENBLAS_CORETYPE=Haswell makes it), where oneDNN's sgemm runs them.
// ENGRAM_DENSE_MATMUL=aten|onednn decides instead. denseMm(a, b) = a b for 2-D operands of any
// strides (either may be a transposed view); linear(x, w, b) = x wᵀ + b as at::linear, with the
// same choice of library and a backward of the same products.
bool denseOnOneDnn();
// The OpenBLAS libtorch loaded, if its BLAS is one: the kernels it runs (openblas_get_corename) and
// its build line; nullptr for another BLAS (matmul_ops.cpp).
const char* openblasCore();
const char* openblasConfig();
at::Tensor denseMm(const at::Tensor& a, const at::Tensor& b);
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b);

// linear(x, w, b), as a matrix-vector product when x holds one row (nn_ops.cpp, OP linearRow).
at::Tensor linearRow(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, int64_t minEntries);

// ---- errors and registration --------------------------------------------------------------------

[[noreturn]] void throwEngram(Napi::Env env, const char* op, const std::string& kind,
                              const std::string& message);
[[noreturn]] void fail(const std::string& kind, const std::string& message);  // from inside an op

using OpFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct OpEntry {
  const char* name;
  Napi::Function::Callback fn;
};
std::vector<OpEntry>& registry();
struct Registrar {
  Registrar(const char* name, Napi::Function::Callback fn) { registry().push_back({name, fn}); }
};

// Converts every exception into an EngramError named after the op (info.Data() holds the name).
void rethrowAsEngram(const Napi::CallbackInfo& info);
template <OpFn F>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (...) {
    rethrowAsEngram(info);
  }
  return info.Env().Undefined();
}

// Defines and registers one exported function: OP(add) { return R(info, T(info,0) + T(info,1)); }
// Each one is declared once on the TS side, in src/tensor/native.ts (test/native-api.test.ts
// checks that the two lists agree).
#define OP(name)                                                                  \
  static Napi::Value op_##name(const Napi::CallbackInfo& info);                   \
  static const ::engram::Registrar registrar_##name(#name, ::engram::guarded<op_##name>); \
  static Napi::Value op_##name(const Napi::CallbackInfo& info)

}  // namespace engram
