// Collective communication for data-parallel training: c10d's process groups, never a protocol of
// our own. A TCPStore (served by rank 0 at MASTER_ADDR:MASTER_PORT) is the rendezvous; the group
// is c10d's ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA tensors, only where the
// libtorch has CUDA and NCCL's header: a compile-time check). JS holds groups as small ids.
//
// Every collective here is synchronous from JS (it waits for its c10d Work) and bounded by the
// group's timeout: a peer that died closes its connections (an error at once) and a peer that hangs
// makes the wait time out. Either way the op fails with kind "distributed" or "timeout" and a
// message naming this rank, the op and the peers, never a silent hang.
//
// libtorch 1.13 vs 2.x: the groups derive from c10d::ProcessGroup in 1.x and from c10d::Backend in
// 2.x; both expose the same allreduce / broadcast / allgather / barrier, so only the base type
// differs (CommGroup below).
#include "engram.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <regex>
#include <utility>

// Each backend is compiled where its headers are: Gloo's (Debian's libgloo-dev; a libtorch folder or
// pip torch package may lack them) and, for a libtorch with CUDA, NCCL's and the CUDA runtime's (a
// pip torch's nvidia/* packages, or a CUDA toolkit: scripts/find-libtorch.mjs adds their folders).
// Either one brings the TCPStore rendezvous and the process-group ops; with neither, the ops exist
// and explain.
#if __has_include(<gloo/algorithm.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#define ENGRAM_HAS_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // the header compiles its content only under this macro (libtorch's own build defines it)
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define ENGRAM_HAS_GLOO 0
#endif

// ENGRAM_NCCL (scripts/find-libtorch.mjs): 0 where its header search found no NCCL, or ENGRAM_NCCL=0.
#if defined(ENGRAM_NCCL) && ENGRAM_NCCL && defined(ENGRAM_LIBTORCH_CUDA) && ENGRAM_LIBTORCH_CUDA && __has_include(<nccl.h>) && \
    __has_include(<cuda_runtime_api.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#define ENGRAM_HAS_NCCL 1
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL  // 2.x's header compiles its content only under this macro
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#else
#define ENGRAM_HAS_NCCL 0
#endif

#if ENGRAM_HAS_GLOO || ENGRAM_HAS_NCCL
#define ENGRAM_HAS_GROUPS 1
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#else
#define ENGRAM_HAS_GROUPS 0
#endif

namespace engram {

#if ENGRAM_HAS_GROUPS

namespace {

#if TORCH_VERSION_MAJOR >= 2
using CommGroup = c10d::Backend;
#else
using CommGroup = c10d::ProcessGroup;
#endif

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CommGroup> pg;
  std::string backend;
  int rank;
  int size;
  std::chrono::milliseconds timeout;
};
std::vector<c10::optional<Group>> groups;

Group& groupAt(int64_t id) {
  if (id < 0 || static_cast<size_t>(id) >= groups.size() || !groups[id]) {
    fail("config", "process group " + std::to_string(id) + " was destroyed or never created");
  }
  return *groups[id];
}

std::string oneLine(std::string s) {
  for (auto& c : s) if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The ranks this one depends on, for messages: "rank 1" with two ranks, else "one of ranks 0, 2, 3".
std::string peers(const Group& g) {
  std::string list;
  int n = 0;
  for (int r = 0; r < g.size; ++r) {
    if (r == g.rank) continue;
    list += (n++ ? ", " : "") + std::to_string(r);
  }
  return n == 1 ? "rank " + list : "one of ranks " + list;
}

// Runs a collective; a c10d / Gloo failure becomes kind "timeout" or "distributed" naming the peers.
template <typename F>
void collective(const Group& g, const char* what, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    std::string msg = oneLine(e.what());
    static const std::regex timedOut("timed out|timeout", std::regex::icase);
    bool isTimeout = std::regex_search(msg, timedOut);
    double seconds = static_cast<double>(g.timeout.count()) / 1000.0;
    fail(isTimeout ? "timeout" : "distributed",
         std::string(what) + " on rank " + std::to_string(g.rank) + " of " + std::to_string(g.size) + " failed: " +
             (isTimeout ? peers(g) + " did not respond within " + std::to_string(static_cast<int64_t>(seconds)) + " s (it hangs or died)"
                        : peers(g) + " died or closed its connection") +
             " [" + msg + "]; stop the job, look at that rank's output, and resume from the last checkpoint");
  }
}

void waitFor(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

// libtorch 2.4 on serves the TCPStore with libuv by default, and a libtorch built without libuv
// (Debian's 2.6) refuses that default; 1.13's options have no such field. The classic server is
// the fallback where libuv is missing (the overload with `int` is chosen where the field exists).
template <typename Options>
auto withoutLibuv(Options& o, int) -> decltype(o.useLibUV = false, true) {
  if (!o.useLibUV) return false;
  o.useLibUV = false;
  return true;
}
template <typename Options>
bool withoutLibuv(Options&, long) {
  return false;
}

}  // namespace

// distInit(backend 'gloo'|'nccl', masterAddr, masterPort, rank, worldSize, timeoutMs) -> group id.
// Rank 0 serves the TCPStore; every rank connects to it, then the group connects all pairs.
OP(distInit) {
  std::string backend = S(info, 0);
  std::string addr = S(info, 1);
  int64_t port = I(info, 2), rank = I(info, 3), size = I(info, 4), timeoutMs = I(info, 5);
  if (size < 1 || rank < 0 || rank >= size) fail("config", "rank " + std::to_string(rank) + " is outside a world of " + std::to_string(size));
  if (port < 1 || port > 65535) fail("config", "master port " + std::to_string(port) + " is not a TCP port (1-65535)");
  if (timeoutMs < 1) fail("config", "the timeout must be positive");
  if (backend != "gloo" && backend != "nccl") fail("config", "unknown backend '" + backend + "' (gloo or nccl)");
#if !ENGRAM_HAS_GLOO
  if (backend == "gloo") fail("config", "this addon was built without Gloo's headers, so it has no gloo backend; use nccl with CUDA tensors, or install Gloo's headers (Debian: apt-get install libgloo-dev) and rebuild: node scripts/build-addon.mjs --force");
#endif
#if !ENGRAM_HAS_NCCL
  if (backend == "nccl") fail("device", "this addon was built without NCCL (a libtorch without CUDA, no nccl.h / cuda_runtime_api.h at build time, or ENGRAM_NCCL=0); use the gloo backend");
#endif
  auto timeout = std::chrono::milliseconds(timeoutMs);
  Group g{{}, {}, backend, static_cast<int>(rank), static_cast<int>(size), timeout};
  std::string where = addr + ":" + std::to_string(port);
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = rank == 0;
    o.numWorkers = static_cast<std::size_t>(size);
    o.waitWorkers = false;  // the group's own rendezvous below waits for every rank
    o.timeout = timeout;
    try {
      g.store = c10::make_intrusive<c10d::TCPStore>(addr, o);
    } catch (const std::exception& e) {
      if (std::string(e.what()).find("libuv") == std::string::npos || !withoutLibuv(o, 0)) throw;
      g.store = c10::make_intrusive<c10d::TCPStore>(addr, o);
    }
  } catch (const std::exception& e) {
    fail(rank == 0 ? "distributed" : "timeout",
         rank == 0 ? "rank 0 cannot serve the rendezvous store at " + where + " (" + oneLine(e.what()) + "); choose a free MASTER_PORT"
                   : "rank " + std::to_string(rank) + " cannot reach the rendezvous store of rank 0 at " + where + " (" + oneLine(e.what()) +
                         "); check MASTER_ADDR / MASTER_PORT and that rank 0 runs");
  }
  try {
#if ENGRAM_HAS_GLOO
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // Loopback rendezvous: bind Gloo there too; else the interface GLOO_SOCKET_IFNAME names, or
      // the one this host's name resolves to (c10d's own default).
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (addr == "127.0.0.1" || addr == "localhost") {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, g.rank, g.size, opts);
    }
#endif
#if ENGRAM_HAS_NCCL
    if (backend == "nccl") {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      g.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g.store, g.rank, g.size, opts);
    }
#endif
  } catch (const std::exception& e) {
    fail("timeout", "rank " + std::to_string(rank) + " of " + std::to_string(size) + ": the " + backend +
                        " group did not form within " + std::to_string(timeoutMs / 1000) + " s at " + where + " (" + oneLine(e.what()) +
                        "); start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE");
  }
  groups.push_back(std::move(g));
  return Napi::Number::New(info.Env(), static_cast<double>(groups.size() - 1));
}

OP(distDestroy) {
  int64_t id = I(info, 0);
  if (id >= 0 && static_cast<size_t>(id) < groups.size()) groups[id].reset();
  return info.Env().Undefined();
}

// distAllReduce(group, ids[], average): in-place sum (or mean) over ranks, one Work per tensor.
OP(distAllReduce) {
  Group& g = groupAt(I(info, 0));
  auto tensors = TL(info, 1);
  bool average = B(info, 2);
  collective(g, "all-reduce", [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      works.push_back(g.pg->allreduce(one));
    }
    for (auto& w : works) waitFor(w);
  });
  if (average && g.size > 1) for (auto& t : tensors) t.div_(g.size);
  return info.Env().Undefined();
}

// distBroadcast(group, ids[], root): in place, every rank ends with root's values.
OP(distBroadcast) {
  Group& g = groupAt(I(info, 0));
  auto tensors = TL(info, 1);
  int64_t root = I(info, 2);
  if (root < 0 || root >= g.size) fail("config", "broadcast root " + std::to_string(root) + " is outside a world of " + std::to_string(g.size));
  collective(g, "broadcast", [&] {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      works.push_back(g.pg->broadcast(one, o));
    }
    for (auto& w : works) waitFor(w);
  });
  return info.Env().Undefined();
}

// distAllGather(group, id) -> ids[worldSize]: every rank's tensor (same shape and dtype on all).
OP(distAllGather) {
  Group& g = groupAt(I(info, 0));
  at::Tensor t = T(info, 1).contiguous();
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < g.size; ++r) out[0].push_back(at::empty_like(t));
  collective(g, "all-gather", [&] {
    std::vector<at::Tensor> in{t};
    waitFor(g.pg->allgather(out, in));
  });
  return RL(info, out[0]);
}

OP(distBarrier) {
  Group& g = groupAt(I(info, 0));
  collective(g, "barrier", [&] { waitFor(g.pg->barrier()); });
  return info.Env().Undefined();
}

// distAllReduceGrads(group, params[], bucketBytes): averages the gradients over ranks, as DDP.
// Gradients are packed into flat buckets of about bucketBytes (by dtype, in parameter order); all
// buckets' all-reduces are in flight together, then each is unpacked into its gradients divided by
// the world size. Parameters without a gradient are skipped: every rank runs the same model on
// same-shaped data, so every rank has the same set.
OP(distAllReduceGrads) {
  Group& g = groupAt(I(info, 0));
  auto params = TL(info, 1);
  int64_t bucketBytes = std::max<int64_t>(1, I(info, 2));
  if (g.size == 1) return info.Env().Undefined();
  std::vector<std::vector<at::Tensor>> buckets;  // gradients of each bucket
  std::vector<at::Tensor> flats;
  int64_t bytes = 0;
  for (auto& p : params) {
    at::Tensor grad = p.grad();
    if (!grad.defined()) continue;
    if (buckets.empty() || bytes >= bucketBytes || buckets.back().front().scalar_type() != grad.scalar_type() ||
        buckets.back().front().device() != grad.device()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(grad);
    bytes += grad.numel() * grad.element_size();
  }
  collective(g, "gradient all-reduce", [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& b : buckets) {
      std::vector<at::Tensor> views;
      for (auto& grad : b) views.push_back(grad.reshape({-1}));
      flats.push_back(at::cat(views));
      std::vector<at::Tensor> one{flats.back()};
      works.push_back(g.pg->allreduce(one));
    }
    for (auto& w : works) waitFor(w);
  });
  for (size_t k = 0; k < buckets.size(); ++k) {
    flats[k].div_(g.size);
    int64_t offset = 0;
    for (auto& grad : buckets[k]) {
      grad.copy_(flats[k].narrow(0, offset, grad.numel()).view_as(grad));
      offset += grad.numel();
    }
  }
  return info.Env().Undefined();
}

// ---- gradient averaging that overlaps backward ----------------------------------------------------
// DDP's scheme on libtorch's autograd: a post-hook on each parameter's gradient accumulator marks
// its gradient ready during backward; a bucket whose gradients are all ready starts its all-reduce
// at once (buckets start in index order on every rank, as Gloo needs the same order everywhere),
// so communication runs while backward computes the rest. finish() starts what is left (buckets
// with a parameter that got no gradient this step), waits, and writes back the averages.
// Buckets hold parameters in reverse order, about the order backward produces their gradients.

namespace {

// What grad_accumulator returns: a std::shared_ptr<Node> in libtorch 1.13 and 2.6, a
// c10::intrusive_ptr<Node> in 2.14.1 (Debian sid).
using NodeHandle = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

struct Reducer {
  int64_t group;
  std::vector<at::Tensor> params;
  std::vector<NodeHandle> accumulators;  // held: the hooks live on them
  std::vector<std::vector<size_t>> buckets;                           // parameter indices
  std::vector<size_t> bucketOf;
  std::vector<size_t> waiting;  // gradients not yet ready, per bucket, this step
  std::vector<bool> ready;
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  size_t launched = 0;
  bool active = false;
};
std::vector<std::shared_ptr<Reducer>> reducers;

Reducer& reducerAt(int64_t id) {
  if (id < 0 || static_cast<size_t>(id) >= reducers.size() || !reducers[id]) fail("config", "gradient reducer " + std::to_string(id) + " was destroyed or never created");
  return *reducers[id];
}

void launchBucket(Reducer& r, size_t k) {
  Group& g = groupAt(r.group);
  std::vector<at::Tensor> parts;
  for (size_t i : r.buckets[k]) {
    const at::Tensor& p = r.params[i];
    at::Tensor grad = p.grad();
    parts.push_back(grad.defined() ? grad.reshape({-1}) : at::zeros({p.numel()}, p.options()));
  }
  r.flats[k] = at::cat(parts);
  std::vector<at::Tensor> one{r.flats[k]};
  r.works[k] = g.pg->allreduce(one);
}

// Starts every bucket that is ready and whose predecessors have started.
void launchReady(Reducer& r) {
  while (r.launched < r.buckets.size() && r.waiting[r.launched] == 0) launchBucket(r, r.launched++);
}

struct GradReady : torch::autograd::FunctionPostHook {
  std::shared_ptr<Reducer> reducer;
  size_t index;
  GradReady(std::shared_ptr<Reducer> r, size_t i) : reducer(std::move(r)), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    Reducer& r = *reducer;
    if (r.active && !r.ready[index]) {
      r.ready[index] = true;
      if (--r.waiting[r.bucketOf[index]] == 0) launchReady(r);
    }
    return outputs;
  }
};

}  // namespace

// distReducerCreate(group, params[], bucketBytes) -> id. Parameters that do not require a gradient are left out.
OP(distReducerCreate) {
  int64_t group = I(info, 0);
  groupAt(group);
  auto all = TL(info, 1);
  int64_t bucketBytes = std::max<int64_t>(1, I(info, 2));
  auto r = std::make_shared<Reducer>();
  r->group = group;
  for (auto& p : all) if (p.requires_grad() && p.is_leaf()) r->params.push_back(p);
  r->bucketOf.resize(r->params.size());
  int64_t bytes = 0;
  for (size_t n = r->params.size(); n-- > 0;) {
    const at::Tensor& p = r->params[n];
    if (r->buckets.empty() || bytes >= bucketBytes || r->params[r->buckets.back().front()].scalar_type() != p.scalar_type()) {
      r->buckets.emplace_back();
      bytes = 0;
    }
    r->buckets.back().push_back(n);
    r->bucketOf[n] = r->buckets.size() - 1;
    bytes += p.numel() * p.element_size();
  }
  for (size_t i = 0; i < r->params.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(r->params[i]);
    acc->add_post_hook(std::make_unique<GradReady>(r, i));
    r->accumulators.push_back(std::move(acc));
  }
  reducers.push_back(std::move(r));
  return Napi::Number::New(info.Env(), static_cast<double>(reducers.size() - 1));
}

// Before backward: nothing is ready yet.
OP(distReducerBegin) {
  Reducer& r = reducerAt(I(info, 0));
  r.waiting.assign(r.buckets.size(), 0);
  for (size_t k = 0; k < r.buckets.size(); ++k) r.waiting[k] = r.buckets[k].size();
  r.ready.assign(r.params.size(), false);
  r.flats.assign(r.buckets.size(), at::Tensor());
  r.works.assign(r.buckets.size(), c10::intrusive_ptr<c10d::Work>());
  r.launched = 0;
  r.active = true;
  return info.Env().Undefined();
}

// After backward: starts what is left, waits, writes each gradient's average over the ranks
// (gradients that backward did not produce stay undefined).
OP(distReducerFinish) {
  Reducer& r = reducerAt(I(info, 0));
  Group& g = groupAt(r.group);
  r.active = false;
  collective(g, "gradient all-reduce", [&] {
    while (r.launched < r.buckets.size()) launchBucket(r, r.launched++);
    for (auto& w : r.works) waitFor(w);
  });
  for (size_t k = 0; k < r.buckets.size(); ++k) {
    r.flats[k].div_(g.size);
    int64_t offset = 0;
    for (size_t i : r.buckets[k]) {
      at::Tensor grad = r.params[i].grad();
      int64_t n = r.params[i].numel();
      if (grad.defined()) grad.copy_(r.flats[k].narrow(0, offset, n).view_as(grad));
      offset += n;
    }
  }
  r.flats.clear();
  r.works.clear();
  return info.Env().Undefined();
}

OP(distReducerDestroy) {
  int64_t id = I(info, 0);
  if (id >= 0 && static_cast<size_t>(id) < reducers.size() && reducers[id]) {
    reducers[id]->active = false;
    reducers[id]->accumulators.clear();  // frees the hooks, and with them their hold on the reducer
    reducers[id].reset();
  }
  return info.Env().Undefined();
}

// Which backends this addon was built with.
OP(distBackends) {
  auto arr = Napi::Array::New(info.Env());
#if ENGRAM_HAS_GLOO
  arr.Set(arr.Length(), "gloo");
#endif
#if ENGRAM_HAS_NCCL
  arr.Set(arr.Length(), "nccl");
#endif
  return arr;
}

#else  // neither Gloo's nor NCCL's headers at build time: the ops exist and explain

static void noGloo() {
  fail("config", "this addon was built without Gloo's headers, so it has no process groups; install them (Debian: apt-get install libgloo-dev) and rebuild: node scripts/build-addon.mjs --force");
}
OP(distInit) { noGloo(); return info.Env().Undefined(); }
OP(distDestroy) { return info.Env().Undefined(); }
OP(distAllReduce) { noGloo(); return info.Env().Undefined(); }
OP(distBroadcast) { noGloo(); return info.Env().Undefined(); }
OP(distAllGather) { noGloo(); return info.Env().Undefined(); }
OP(distBarrier) { noGloo(); return info.Env().Undefined(); }
OP(distAllReduceGrads) { noGloo(); return info.Env().Undefined(); }
OP(distBackends) { return Napi::Array::New(info.Env()); }
OP(distReducerCreate) { noGloo(); return info.Env().Undefined(); }
OP(distReducerBegin) { noGloo(); return info.Env().Undefined(); }
OP(distReducerFinish) { noGloo(); return info.Env().Undefined(); }
OP(distReducerDestroy) { return info.Env().Undefined(); }

#endif

}  // namespace engram
