// libtorch's own profiler (the legacy, CPU-only one: it needs no Kineto), for finding where a
// step's time goes op by op. profilerStart(shapes) records every ATen op and autograd node on this
// thread (and tasks it launches), with their input shapes when asked; profilerStop(callers)
// returns them aggregated by name, as torch.profiler's key_averages(): calls, self time (not in a
// nested op) and total time. With callers > 0 a row's name is prefixed by that many enclosing ops
// ("outer > inner > op"), and with shapes it is followed by the inputs' shapes ("[16,4,160,319]"),
// so that one op called from two places, or at two sizes, makes two rows.
#include "engram.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <map>

namespace engram {

namespace prof = torch::autograd::profiler;

OP(profilerStart) {
  const bool shapes = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, shapes));
  return info.Env().Undefined();
}

// profilerStop(callers) -> [name, calls, selfUs, totalUs][], by self time, largest first.
OP(profilerStop) {
  const int64_t callers = info.Length() > 0 && info[0].IsNumber() ? I(info, 0) : 0;
  auto lists = prof::disableProfilerLegacy();
  struct Sum { int64_t calls = 0; double self = 0, total = 0; };
  struct Open { const prof::LegacyEvent* push; double children; };
  std::map<std::string, Sum> sums;
  for (const auto& events : lists) {
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        Open open = stack.back();
        stack.pop_back();
        double us = open.push->cpuElapsedUs(e);
        std::string name = open.push->name();
        for (int64_t k = 0; k < callers && k < static_cast<int64_t>(stack.size()); k++) {
          name = std::string(stack[stack.size() - 1 - static_cast<size_t>(k)].push->name()) + " > " + name;
        }
        for (const auto& shape : open.push->shapes()) {  // empty unless recorded
          name += " [";
          for (size_t d = 0; d < shape.size(); d++) name += (d ? "," : "") + std::to_string(shape[d]);
          name += "]";
        }
        auto& s = sums[name];
        s.calls += 1;
        s.total += us;
        s.self += us - open.children;
        if (!stack.empty()) stack.back().children += us;
      }
    }
  }
  std::vector<std::pair<std::string, Sum>> rows(sums.begin(), sums.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self > b.second.self; });
  auto env = info.Env();
  auto out = Napi::Array::New(env, rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    auto row = Napi::Array::New(env, 4);
    row.Set(0u, Napi::String::New(env, rows[k].first));
    row.Set(1u, Napi::Number::New(env, static_cast<double>(rows[k].second.calls)));
    row.Set(2u, Napi::Number::New(env, rows[k].second.self));
    row.Set(3u, Napi::Number::New(env, rows[k].second.total));
    out.Set(static_cast<uint32_t>(k), row);
  }
  return out;
}

}  // namespace engram
