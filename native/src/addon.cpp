// Handle table, argument helpers, the error path, module init, and process-wide settings.
#include "engram.h"

#include <torch/cuda.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <regex>
#include <thread>
#if defined(__GLIBC__)
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#endif

namespace engram {

// ---- handle table -----------------------------------------------------------------------------
// Only the JS thread that loaded the addon touches the table (checked at init), so no locks.

namespace {
std::vector<at::Tensor> slots;
std::vector<int64_t> slotBytes;  // bytes reported to V8 for each slot
std::vector<int32_t> freeIds;
size_t live = 0;
// Bytes not yet reported to V8: AdjustExternalMemory is batched so that tiny ops stay cheap.
int64_t pendingBytes = 0;
// Whether new tensors' bytes are reported to V8. JS turns it off inside tidy() scopes, whose
// tensors are freed deterministically: reporting them made V8 run a full collection every
// ~60 ms of training for nothing (measured: 23 vs 1 per 4 steps, ~5% of CPU).
bool reportNew = true;
constexpr int64_t kReportEvery = 1 << 20;
Napi::FunctionReference errorClass;
std::thread::id ownerThread;

void report(Napi::Env env, int64_t delta) {
  pendingBytes += delta;
  if (pendingBytes >= kReportEvery || pendingBytes <= -kReportEvery) {
    Napi::MemoryManagement::AdjustExternalMemory(env, pendingBytes);
    pendingBytes = 0;
  }
}
}  // namespace

at::Tensor& tensorAt(int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= slots.size() || !slots[id].defined()) {
    fail("disposed", "tensor " + std::to_string(id) + " was disposed (use it before dispose(), or keep() it out of its scope)");
  }
  return slots[id];
}

int32_t store(Napi::Env env, at::Tensor t) {
  if (!t.defined()) fail("torch", "op returned an undefined tensor");
  int64_t bytes = reportNew ? static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size()) : 0;
  int32_t id;
  if (!freeIds.empty()) {
    id = freeIds.back();
    freeIds.pop_back();
    slots[id] = std::move(t);
    slotBytes[id] = bytes;
  } else {
    id = static_cast<int32_t>(slots.size());
    slots.push_back(std::move(t));
    slotBytes.push_back(bytes);
  }
  ++live;
  report(env, bytes);
  return id;
}

void release(Napi::Env env, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= slots.size() || !slots[id].defined()) return;
  slots[id].reset();
  report(env, -slotBytes[id]);
  slotBytes[id] = 0;
  freeIds.push_back(id);
  --live;
}

size_t liveCount() { return live; }

// ---- arguments and results ----------------------------------------------------------------------

std::vector<int64_t> IL(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsNumber()) return {info[i].As<Napi::Number>().Int64Value()};
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) out[k] = arr.Get(k).As<Napi::Number>().Int64Value();
  return out;
}

std::vector<at::Tensor> TL(const Napi::CallbackInfo& info, size_t i) {
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    out.push_back(tensorAt(arr.Get(k).As<Napi::Number>().Int32Value()));
  }
  return out;
}

namespace {
struct LoadedSearch {
  const char* prefix;
  std::string path;
};
// dl_iterate_phdr's callback: the first loaded object whose file name starts with `prefix`.
int findLoaded(struct dl_phdr_info* object, size_t, void* data) {
  auto* search = static_cast<LoadedSearch*>(data);
  const char* name = object->dlpi_name;
  if (!name || !*name) return 0;
  const char* slash = std::strrchr(name, '/');
  const char* file = slash ? slash + 1 : name;
  if (std::strncmp(file, search->prefix, std::strlen(search->prefix)) != 0) return 0;
  search->path = name;
  return 1;
}
}  // namespace

void* loadedSymbol(std::initializer_list<const char*> libraries, const char* symbol) {
#if defined(__GLIBC__)
  for (const char* prefix : libraries) {
    LoadedSearch search{prefix, {}};
    if (!dl_iterate_phdr(findLoaded, &search)) continue;
    if (void* handle = dlopen(search.path.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
      if (void* fn = dlsym(handle, symbol)) return fn;
    }
  }
#endif
  return nullptr;
}

std::vector<c10::optional<at::Tensor>> OTL(const Napi::CallbackInfo& info, size_t i) {
  auto arr = info[i].As<Napi::Array>();
  std::vector<c10::optional<at::Tensor>> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    out.push_back(isNone(v) ? c10::optional<at::Tensor>() : c10::optional<at::Tensor>(tensorAt(v.As<Napi::Number>().Int32Value())));
  }
  return out;
}

at::Scalar SC(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (std::isfinite(v) && std::trunc(v) == v && std::fabs(v) < 9.007199254740992e15) {
    return at::Scalar(static_cast<int64_t>(v));
  }
  return at::Scalar(v);
}

at::TensorOptions options(const Napi::CallbackInfo& info, size_t dtypeIndex, size_t deviceIndex) {
  at::TensorOptions opts;
  if (auto dt = ODT(info, dtypeIndex)) opts = opts.dtype(*dt);
  if (deviceIndex < info.Length() && !isNone(info[deviceIndex])) {
    opts = opts.device(c10::Device(S(info, deviceIndex)));
  }
  return opts;
}

Napi::Value RL(const Napi::CallbackInfo& info, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(info.Env(), ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    arr.Set(static_cast<uint32_t>(k), Napi::Number::New(info.Env(), store(info.Env(), ts[k])));
  }
  return arr;
}

// ---- errors -------------------------------------------------------------------------------------

namespace {
// Raised by fail(): carries a kind chosen by our own checks.
struct KindedError : std::runtime_error {
  std::string kind;
  KindedError(std::string k, const std::string& m) : std::runtime_error(m), kind(std::move(k)) {}
};

// The kind of an error libtorch raised without a more specific type (plain c10::Error,
// NotImplementedError, std::runtime_error), read from its message. This is the fallback only:
// rethrowAsEngram first sorts by the C++ type wherever libtorch gives one. Plain c10::Error covers
// most TORCH_CHECKs (broadcast and matmul size mismatches, dtype checks, bad device strings, the
// CPU allocator's out-of-memory); NotImplementedError means both "no kernel for this backend"
// (a device problem) and, in libtorch 2.x, "not implemented for this dtype".
std::string classify(const std::string& msg) {
  static const std::regex shape(
      "size of tensor|shape|sizes|must match|dimension|mat1 and mat2|cannot be multiplied|"
      "out of range|expanded size|invalid for input of size|number of dims|channels|Index|index",
      std::regex::icase);
  static const std::regex dtype("scalar type|dtype|expected .* but found|not implemented for|Half|BFloat16",
                                std::regex::icase);
  static const std::regex device("device|CUDA|cuda", std::regex::icase);
  static const std::regex oom("not enough memory|out of memory|failed to allocate|can.t allocate memory", std::regex::icase);
  if (std::regex_search(msg, oom)) return "oom";
  if (std::regex_search(msg, dtype)) return "dtype";
  if (std::regex_search(msg, device)) return "device";
  if (std::regex_search(msg, shape)) return "shape";
  return "torch";
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

void fail(const std::string& kind, const std::string& message) { throw KindedError(kind, message); }

void throwEngram(Napi::Env env, const char* op, const std::string& kind, const std::string& message) {
  Napi::Object err;
  if (!errorClass.IsEmpty()) {
    err = errorClass.New({Napi::String::New(env, std::string(op) + ": " + message),
                          Napi::String::New(env, kind), Napi::String::New(env, op),
                          Napi::String::New(env, message)});
  } else {
    err = Napi::Error::New(env, std::string(op) + ": " + message).Value();
  }
  throw Napi::Error(env, err);
}

// The kind comes from the exception's C++ type where libtorch gives one (these classes exist in
// libtorch 1.13 and 2.x alike): TORCH_CHECK_INDEX -> IndexError (a dim or index out of range),
// TORCH_CHECK_TYPE -> TypeError, TORCH_CHECK_VALUE -> ValueError (an argument out of its range),
// TORCH_CHECK_LINALG -> LinAlgError. Only untyped errors go through classify().
void rethrowAsEngram(const Napi::CallbackInfo& info) {
  const char* op = static_cast<const char*>(info.Data());
  Napi::Env env = info.Env();
  try {
    throw;
  } catch (const Napi::Error& e) {
    // An EngramError already built by throwEngram passes through; anything else is node-addon-api
    // rejecting an argument of the wrong JS type (e.g. a string where a number was expected).
    if (!errorClass.IsEmpty() && e.Value().IsObject() && e.Value().InstanceOf(errorClass.Value())) throw;
    throwEngram(env, op, "config", "invalid argument: " + e.Message());
  } catch (const KindedError& e) {
    throwEngram(env, op, e.kind, e.what());
  } catch (const c10::OutOfMemoryError& e) {
    throwEngram(env, op, "oom", trim(e.what_without_backtrace()));
  } catch (const c10::IndexError& e) {
    throwEngram(env, op, "shape", trim(e.what_without_backtrace()));
  } catch (const c10::TypeError& e) {
    throwEngram(env, op, "dtype", trim(e.what_without_backtrace()));
  } catch (const c10::ValueError& e) {
    throwEngram(env, op, "config", trim(e.what_without_backtrace()));
  } catch (const c10::LinAlgError& e) {
    throwEngram(env, op, "numeric", trim(e.what_without_backtrace()));
  } catch (const c10::EnforceFiniteError& e) {
    throwEngram(env, op, "numeric", trim(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    // plain c10::Error and NotImplementedError: no type to go by
    std::string msg = trim(e.what_without_backtrace());
    throwEngram(env, op, classify(msg), msg);
  } catch (const std::bad_alloc&) {
    throwEngram(env, op, "oom", "out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    // some libtorch checks (e.g. reshape's size inference) throw std::runtime_error, not c10::Error
    throwEngram(env, op, classify(e.what()), e.what());
  } catch (...) {
    throwEngram(env, op, "torch", "unknown C++ exception");
  }
}

std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> entries;
  return entries;
}

// ---- handles and process-wide settings ------------------------------------------------------------

OP(setErrorClass) {
  errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

OP(free) {
  release(info.Env(), idArg(info, 0));
  return info.Env().Undefined();
}

// Frees many ids in one call (scope exit).
OP(freeMany) {
  auto arr = info[0].As<Napi::Array>();
  for (uint32_t k = 0; k < arr.Length(); ++k) release(info.Env(), arr.Get(k).As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

OP(setReporting) {
  bool previous = reportNew;
  reportNew = B(info, 0);
  return Napi::Boolean::New(info.Env(), previous);
}

// Starts reporting the bytes of tensors that were made unreported and now outlive their scope.
OP(reportTensors) {
  auto arr = info[0].As<Napi::Array>();
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    int32_t id = arr.Get(k).As<Napi::Number>().Int32Value();
    if (id < 0 || static_cast<size_t>(id) >= slots.size() || !slots[id].defined() || slotBytes[id] != 0) continue;
    slotBytes[id] = static_cast<int64_t>(slots[id].numel()) * static_cast<int64_t>(slots[id].element_size());
    report(info.Env(), slotBytes[id]);
  }
  return info.Env().Undefined();
}

OP(liveTensors) { return Napi::Number::New(info.Env(), static_cast<double>(liveCount())); }

// Bytes the C heap holds now: libtorch's CPU tensors (its allocator is malloc), tensors saved for
// backward and everything else malloc'd. -1 where the C library cannot say.
OP(heapBytes) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  return Napi::Number::New(info.Env(), static_cast<double>(mi.uordblks + mi.hblkhd));
#else
  return Napi::Number::New(info.Env(), -1);
#endif
}

// glibc malloc, which is libtorch's CPU allocator, by default hands a freed block back to the OS
// when the heap's free top grows past a threshold that follows the largest block freed, and maps
// larger blocks on their own: a training step, which frees its whole graph at the end, then faults
// every page of it in again at the next step (the corridor's Expire-Span: ~10,000 page faults a
// step). setHeapRetention(bytes, blockMax): blocks up to blockMax come from the heap, and up to
// `bytes` of free memory at its top stay for reuse (runtime.ts setHeapRetention gives both). Both
// are mallopt's fixed settings (no more dynamic thresholds). Returns false where the C library is
// not glibc (nothing changed).
OP(setHeapRetention) {
  const double bytes = D(info, 0), blockMax = D(info, 1);
  TORCH_CHECK_VALUE(bytes >= 0 && bytes <= 2147483647.0 && blockMax >= 0 && blockMax <= 2147483647.0,
                    "setHeapRetention: bytes and blockMax must be in [0, 2^31 - 1], got ", bytes, " and ", blockMax);
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(blockMax)) == 1 && mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes)) == 1;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

OP(setNumThreads) {
  at::set_num_threads(static_cast<int>(I(info, 0)));
  return info.Env().Undefined();
}
OP(getNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

OP(manualSeed) {
  at::manual_seed(static_cast<uint64_t>(I(info, 0)));
  return info.Env().Undefined();
}

// The dtype of floating tensors made without an explicit dtype (torch.set_default_dtype).
OP(setDefaultDtype) {
  c10::set_default_dtype(caffe2::TypeMeta::fromScalarType(DT(info, 0)));
  return info.Env().Undefined();
}
OP(getDefaultDtype) {
  return Napi::Number::New(info.Env(), static_cast<int>(c10::typeMetaToScalarType(c10::get_default_dtype())));
}

OP(cudaAvailable) { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); }
OP(cudaDeviceCount) { return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count())); }
OP(cudaSynchronize) {
  torch::cuda::synchronize();
  return info.Env().Undefined();
}

// setAllowTF32(cublas|null, cudnn|null) -> [cublas, cudnn] as they were: whether float32 matrix
// products (cuBLAS) and convolutions (cuDNN) may use TF32 tensor cores on GPUs that have them, as
// torch.backends.cuda.matmul.allow_tf32 / torch.backends.cudnn.allow_tf32 (libtorch's defaults:
// off and on). null leaves a flag as it is. No effect on the CPU.
OP(setAllowTF32) {
  auto& ctx = at::globalContext();
  auto was = Napi::Array::New(info.Env(), 2);
  was.Set(0u, Napi::Boolean::New(info.Env(), ctx.allowTF32CuBLAS()));
  was.Set(1u, Napi::Boolean::New(info.Env(), ctx.allowTF32CuDNN()));
  if (!isNone(info[0])) ctx.setAllowTF32CuBLAS(B(info, 0));
  if (!isNone(info[1])) ctx.setAllowTF32CuDNN(B(info, 1));
  return was;
}

OP(buildInfo) {
  auto o = Napi::Object::New(info.Env());
  o.Set("torchVersion", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                            "." + std::to_string(TORCH_VERSION_PATCH));
  o.Set("parallelInfo", at::get_parallel_info());
  o.Set("cxx11Abi", Napi::Number::New(info.Env(), _GLIBCXX_USE_CXX11_ABI));
  // Whether the addon was built against a libtorch with CUDA (scripts/find-libtorch.mjs): tells
  // "no CUDA in this build" apart from "a CUDA build on a machine without a visible GPU".
#if defined(ENGRAM_LIBTORCH_CUDA) && ENGRAM_LIBTORCH_CUDA
  o.Set("cuda", Napi::Boolean::New(info.Env(), true));
#else
  o.Set("cuda", Napi::Boolean::New(info.Env(), false));
#endif
  // The OpenBLAS that libtorch's matrix products run on, where that is its BLAS (Debian's libblas.so.3
  // is OpenBLAS through the alternatives system): its build line and the kernels it chose for this
  // CPU (OPENBLAS_CORETYPE in the environment chooses them, where set). null for another BLAS (MKL in
  // pip's torch).
  const char* config = openblasConfig();
  const char* core = openblasCore();
  if (config && core) {
    auto blas = Napi::Object::New(info.Env());
    blas.Set("config", std::string(config));
    blas.Set("core", std::string(core));
    o.Set("openblas", blas);
  } else {
    o.Set("openblas", info.Env().Null());
  }
  // Which library runs the float32 dense products of linear layers on the CPU (matmul_ops.cpp).
  o.Set("denseProducts", denseOnOneDnn() ? "onednn" : "aten");
  return o;
}

// ---- module init ----------------------------------------------------------------------------------

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (ownerThread != std::thread::id() && ownerThread != std::this_thread::get_id()) {
    throw Napi::Error::New(env, "engram: the native addon can be used from one JS thread per process");
  }
  ownerThread = std::this_thread::get_id();
  for (const auto& entry : registry()) {
    exports.Set(entry.name, Napi::Function::New(env, entry.fn, entry.name, const_cast<char*>(entry.name)));
  }
  return exports;
}

}  // namespace engram

static Napi::Object InitEngram(Napi::Env env, Napi::Object exports) { return engram::Init(env, exports); }
NODE_API_MODULE(engram, InitEngram)
