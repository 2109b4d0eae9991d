#!/usr/bin/env python3
# A linear layer's backward has two independent products, dX = dY W and dW = dYᵀ X. This runs the
# three pairs of SPEC §10's layer (the feed-forward's two layers and the key/value projection,
# 2,048 rows) one after another on OpenBLAS's 2 threads, as ATen does (MODE=seq), or both products of
# a pair at once, each on one thread (MODE=pair), and prints GFLOP/s of three timed rounds.
#
#   OPENBLAS_NUM_THREADS=2 MODE=seq /usr/bin/python3 scripts/probes/gemm_pairs.py
#   OPENBLAS_NUM_THREADS=1 MODE=pair /usr/bin/python3 scripts/probes/gemm_pairs.py
import os, threading, time
import torch

torch.set_num_threads(1)
mode = os.environ.get('MODE', 'seq')
pairs = [((2048, 1024, 256), (1024, 2048, 256)), ((2048, 256, 1024), (256, 2048, 1024)), ((2048, 512, 256), (512, 2048, 256))]
operands = [[(torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)) for (m, k, n) in pair] for pair in pairs]
flops = sum(2 * m * k * n for pair in pairs for (m, k, n) in pair)

def one_after_another():
    for pair in operands:
        for a, b, c in pair:
            torch.mm(a, b, out=c)

def both_at_once():
    for (a0, b0, c0), (a1, b1, c1) in operands:
        other = threading.Thread(target=lambda: torch.mm(a1, b1, out=c1))
        other.start()
        torch.mm(a0, b0, out=c0)
        other.join()

run = one_after_another if mode == 'seq' else both_at_once
for _ in range(3):
    run()
for _ in range(3):
    t = time.perf_counter()
    for _ in range(20):
        run()
    print(f'{mode}: {flops * 20 / (time.perf_counter() - t) / 1e9:.1f} GFLOP/s')
