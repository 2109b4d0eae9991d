"""PyTorch's side of `npm run bench:engine`: the same measurements as bench/engine.ts, in Python.

    python3 bench/engine_torch.py [--threads N] [--rounds R]   one run; prints one JSON object
    python3 bench/engine_torch.py --serve [--threads N]        answers one JSON command per stdin line

--serve is how engine.ts uses it: it sends {"op": "overhead", "n": ...} or {"op": "matmul",
"size": ..., "reps": ...} and reads one JSON line back, so that Engram and PyTorch are measured
alternately, round by round, never at the same time. Give this process the environment Engram
runs with (OMP_WAIT_POLICY, OPENBLAS_NUM_THREADS): engine.ts passes its own.
"""
import argparse
import json
import statistics
import time

from torch_worker import info, serve as serve_commands

import torch  # noqa: E402


def overhead_us(n):
    """Microseconds per tiny op: adding two 1-element float32 tensors, n times (each result freed)."""
    a = torch.ones(1)
    b = torch.ones(1)
    t0 = time.perf_counter()
    for _ in range(n):
        c = a + b
    t1 = time.perf_counter()
    del c
    return (t1 - t0) / n * 1e6


def matmul_gflops(size, reps, warmup=2):
    """GFLOP/s of a float32 size x size matmul (2 * size^3 flops), over reps products."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(warmup):
        c = torch.matmul(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        c = torch.matmul(a, b)
    t1 = time.perf_counter()
    del c
    return 2.0 * size ** 3 * reps / (t1 - t0) / 1e9


def serve():
    serve_commands({
        "overhead": lambda cmd: {"us": overhead_us(int(cmd["n"]))},
        "matmul": lambda cmd: {"gflops": matmul_gflops(int(cmd["size"]), int(cmd["reps"]), int(cmd.get("warmup", 2)))},
    })


def standalone(rounds):
    overhead_us(20_000)  # warm-up
    over = statistics.median(overhead_us(200_000) for _ in range(rounds))
    gflops = {}
    for size in (256, 512, 1024):
        reps = max(5, round(4e10 / (2 * size ** 3)))
        gflops[str(size)] = statistics.median(matmul_gflops(size, reps) for _ in range(rounds))
    print(json.dumps({**info(), "opOverheadUs": over, "matmulGflops": gflops}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--serve", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="ATen intra-op threads (0: PyTorch's default)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.serve:
        serve()
    else:
        standalone(args.rounds)


if __name__ == "__main__":
    main()
