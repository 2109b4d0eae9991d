"""What the PyTorch sides of the benchmarks (engine_torch.py, models_twin.py) share: the
environment they report, and the --serve loop bench/torch-worker.ts talks to."""
import json
import os
import sys

# As Engram's native.ts: passive OpenMP workers unless the caller chose (set before libgomp loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402


def info():
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "ompWaitPolicy": os.environ.get("OMP_WAIT_POLICY"),
        "openblasThreads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "ompNumThreads": os.environ.get("OMP_NUM_THREADS"),
    }


def serve(handlers):
    """Answers one JSON command per stdin line with handlers[cmd["op"]](cmd), a dict, until
    {"op": "quit"}. A failure is answered as {"error": ...} (the caller drops the torch columns)."""
    print(json.dumps({"ready": True, **info()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.get("op")
        if op == "quit":
            break
        handler = handlers.get(op)
        try:
            out = handler(cmd) if handler else {"error": f"unknown op {op!r}"}
        except Exception as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
