"""Probe: ATen's batched matmul at attention's sizes against one large product, in PyTorch with
the same libraries as Engram. Run it on a quiet machine, with and without OPENBLAS_NUM_THREADS=1:

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/probes/bmm_threads.py
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/probes/bmm_threads.py

docs/results/benchmarks.md reports what it gave with another job using both cores (bmm 25.6 ms on
two OpenBLAS threads, 2.3 ms on one) and on a quiet machine (1.3-2.0 ms on two).
"""
import os
import time

import torch

torch.set_num_threads(int(os.environ.get("AT", "2")))
a = torch.randn(64, 128, 64)
b = torch.randn(64, 64, 128)
bt = torch.randn(64, 128, 64).transpose(1, 2)
big1 = torch.randn(1024, 512)
big2 = torch.randn(512, 1024)


def ms(f, n=50):
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1e3


print("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS"), "ATen threads", torch.get_num_threads())
print("bmm [64,128,64] x [64,64,128] ms", ms(lambda: torch.bmm(a, b)))
print("bmm, second operand transposed ms", ms(lambda: torch.bmm(a, bt)))
print("the same flops as one mm (8192x64 @ 64x128) ms", ms(lambda: a.reshape(-1, 64) @ b[0]))
print("mm 1024x512 @ 512x1024 ms", ms(lambda: big1 @ big2, 10))
