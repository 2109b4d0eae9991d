"""Where the span family's training step spends its time, by ATen op: the PyTorch twin
(python/engram_torch.py, the same op graph as Engram's models on the same Debian libtorch) trained
as bench:models trains it (SPEC §10 sizes: 4 layers, H 256, 4 heads, segment 128, batch 16,
L 512), under torch.profiler. Engram's own process shows the same split by library under perf
(sgemm in OpenBLAS, the rest in libtorch_cpu, whose internal symbols are stripped).

    python3 scripts/probes/span_profile.py [--models adaptive-span,adaptive-span-max,expire-span] [--steps 4] [--top 15]
"""
import argparse
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "bench"))
from models_twin import Bench  # noqa: E402  (sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

BASE = {"vocabSize": 256, "layers": 4, "dModel": 256, "heads": 4, "dInner": 1024, "dropout": 0.0, "norm": "post", "memLen": 512}
MODELS = {  # as bench/models.ts
    "adaptive-span": {"kind": "adaptive-span", "adaptiveSpan": {"ramp": 32, "init": 0, "lossCoef": 2e-6, "dynamic": False, "trimStep": 64}},
    "adaptive-span-max": {"kind": "adaptive-span", "adaptiveSpan": {"ramp": 32, "init": 1, "lossCoef": 2e-6, "dynamic": False, "trimStep": 64}},
    "expire-span": {"kind": "expire-span", "expireSpan": {"ramp": 32, "initFraction": 0.1, "preDiv": 1, "lossCoef": 1e-6, "noisy": False, "drop": True}},
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        bench = {"batch": 16, "segment": 128, "segments": 1, "bptt": 0, "carry": True, "seed": 0}
        b = Bench({**BASE, **MODELS[name]}, bench)
        b.train(args.warmup)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            seconds, _ = b.train(args.steps)
        print(f"\n== {name}: {16 * 128 * args.steps / seconds:,.0f} tokens/s under the profiler, {args.steps} steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=40))


if __name__ == "__main__":
    main()
