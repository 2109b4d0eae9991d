#!/usr/bin/env python3
# Where a process's time goes, thread by thread, from `perf record` (cpu-clock samples work in a VM
# without hardware counters). The busiest thread is the one that runs the step (Node's main thread:
# JavaScript, ATen's ops, Engram's kernels, its share of every BLAS product); the others are BLAS
# and OpenMP workers. Prints each thread's share of the samples, then the busiest thread's samples
# by library and by symbol. Anonymous executable memory ("[JIT]" in perf, or /tmp/perf-PID.map with
# node --perf-basic-prof) is JIT-generated code: V8's, or oneDNN's matrix-product kernels.
#
#   perf record -F 1999 -o /tmp/step.data node dist/bench/models.js --models transformer --no-torch \
#     --precision float32 --rounds 8
#   python3 scripts/probes/perf-threads.py /tmp/step.data [--time 30%-100%] [--top 25]
# (--time: the part of the recording to count, perf's syntax; 30%-100% skips start-up and warm-up.)
import argparse, collections, re, subprocess

ap = argparse.ArgumentParser()
ap.add_argument('data')
ap.add_argument('--time', default='30%-100%')
ap.add_argument('--top', type=int, default=25)
a = ap.parse_args()
out = subprocess.run(['perf', 'script', '-i', a.data, '-F', 'tid,ip,sym,dso', '--time', a.time], capture_output=True, text=True, check=True).stdout
threads = collections.Counter()
libs = collections.defaultdict(collections.Counter)
syms = collections.defaultdict(collections.Counter)
for line in out.splitlines():
    parts = line.split(None, 2)
    if len(parts) < 3:
        continue
    tid, rest = parts[0], parts[2]
    m = re.search(r'\(([^)]*)\)\s*$', rest)
    lib = m.group(1).split('/')[-1] if m else '?'
    sym = rest[:m.start()].strip() if m else rest
    if lib.startswith('perf-') or lib.startswith('[JIT]'):
        lib = 'JIT code (oneDNN kernels, V8)'
    threads[tid] += 1
    libs[tid][lib] += 1
    syms[tid][(lib, sym[:100])] += 1
total = sum(threads.values())
print(f'{total} samples ({a.time} of the recording); by thread:')
for tid, n in threads.most_common(6):
    print(f'  thread {tid}: {100 * n / total:5.1f}%')
main, n = threads.most_common(1)[0]
print(f'busiest thread ({main}) by library:')
for lib, k in libs[main].most_common(10):
    print(f'  {100 * k / n:5.1f}%  {lib}')
print(f'busiest thread by symbol:')
for (lib, sym), k in syms[main].most_common(a.top):
    print(f'  {100 * k / n:5.1f}%  {lib}  {sym}')
