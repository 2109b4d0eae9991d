"""PyTorch's side of `npm run bench:models`: Engram's models as the PyTorch twin
(python/engram_torch.py, the one PyTorch definition of them in the repository) trained exactly as
Engram's trainer does, so that the two training speeds compare the engine and the binding, not two
different models.

    python3 bench/models_twin.py --serve [--threads N]                    for models.ts
    python3 bench/models_twin.py --kind xl [--threads N] [--steps S]      one run, own init, SPEC §10 sizes
    python3 bench/models_twin.py --kind xl --profile                       the same, then torch.profiler's top ops
                                                                            over `steps` more steps

Training step (src/train/trainer.ts, LM mode): zero_grad(set_to_none=True), unroll the step's
segments (the state entering segment t detached when t < n - bptt), objective = sum of per-segment
cross-entropy sums / tokens + the models' auxiliary losses, backward, Adam (torch.optim.Adam,
PyTorch's defaults), after_optimizer_step (Adaptive-Span's clamp), loss.item().

--serve answers one JSON command per stdin line (models.ts alternates with its own measurements):
  {"op": "build", "model": {...}, "bench": {...}, "weights": path|null}  -> {"params": n}
  {"op": "check", "segments": n}        -> {"loss", "gradNorm"} (eval mode, no step)
  {"op": "train", "steps": n}           -> {"seconds", "loss"}
  {"op": "free"}, {"op": "quit"}
"train" takes an optional "precision": "bf16" (autocast to bfloat16 around each step).
"model" is Engram's model config; "bench" holds batch, segment, segments, bptt, carry, lr. The
weights file (safetensors, written by Engram's saveSafetensors) holds Engram's state dict plus
"data.tokens" and "data.targets" [P, B, M]: the batches both sides train on, in turn.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

from torch_worker import info, serve as serve_commands  # sets OMP_WAIT_POLICY before torch loads

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import engram_torch  # noqa: E402


class Bench:
    def __init__(self, model_config, bench, weights=None):
        self.bench = bench
        self.device = torch.device(bench.get("device", "cpu"))
        torch.manual_seed(int(bench.get("seed", 0)))
        self.model = engram_torch.build_model(model_config)
        B, M, n = bench["batch"], bench["segment"], bench["segments"]
        if weights:
            saved, _ = engram_torch.read_safetensors(weights)
            self.tokens = saved.pop("data.tokens")
            self.targets = saved.pop("data.targets")
            self.model.load_state_dict(saved, strict=True)
        else:
            P = max(2, n)
            V = model_config["vocabSize"]
            self.tokens = torch.randint(0, V, (P, B, M))
            self.targets = torch.randint(0, V, (P, B, M))
        self.model.to(self.device)
        self.tokens, self.targets = self.tokens.to(self.device), self.targets.to(self.device)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=bench.get("lr", 1e-3))
        self.carry = None
        self.next_batch = 0

    def params(self):
        return sum(p.numel() for p in self.model.parameters())

    def _batches(self, n):
        out = []
        for _ in range(n):
            i = self.next_batch % self.tokens.shape[0]
            self.next_batch += 1
            out.append((self.tokens[i], self.targets[i]))
        return out

    def _objective(self, batches, state, bptt):
        """Segments in order from state (None: fresh); the state entering segment t is detached when
        t < n - bptt (never a fresh one). Returns (cross-entropy sum / tokens + aux losses, last state)."""
        n = len(batches)
        fresh = state is None
        ce, aux = None, None
        for t, (tokens, targets) in enumerate(batches):
            if fresh:
                state = self.model.init_state(tokens.shape[0])
                fresh = False
            elif bptt != "all" and t < n - bptt:
                state = self.model.detach_state(state)
            logits, state, aux_loss = self.model(tokens, state)
            V = logits.shape[-1]
            loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="sum")
            ce = loss if ce is None else ce + loss
            if aux_loss is not None:
                aux = aux_loss if aux is None else aux + aux_loss
        objective = ce / sum(t.numel() for _, t in batches)
        return (objective + aux if aux is not None else objective), state

    def step(self):
        b = self.bench
        batches = self._batches(b["segments"])
        self.optimizer.zero_grad(set_to_none=True)
        loss, state = self._objective(batches, self.carry if b["carry"] else None, b["bptt"])
        loss.backward()
        self.optimizer.step()
        self.model.after_optimizer_step()
        self.carry = self.model.detach_state(state) if b["carry"] else None
        return loss.item()

    def train(self, steps, precision="float32"):
        """precision "bf16": each step under autocast to bfloat16 (float32 weights and optimiser)."""
        if precision not in ("float32", "bf16"):
            raise ValueError(f"precision {precision!r}: float32 or bf16")
        t0 = time.perf_counter()
        loss = None
        for _ in range(steps):
            if precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    loss = self.step()
            else:
                loss = self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0, loss

    def check(self, segments):
        """Objective over the first `segments` batches from a fresh state, and the gradient norm (eval mode, no step)."""
        self.model.eval()
        self.optimizer.zero_grad(set_to_none=True)
        batches = [(self.tokens[i], self.targets[i]) for i in range(segments)]
        loss, _ = self._objective(batches, None, "all")
        loss.backward()
        norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in self.model.parameters() if p.grad is not None))
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()
        return float(loss), norm


class Server:
    """The --serve commands; one model at a time."""

    def __init__(self):
        self.bench = None

    def build(self, cmd):
        self.bench = None
        self.bench = Bench(cmd["model"], cmd["bench"], cmd.get("weights"))
        return {"params": self.bench.params()}

    def check(self, cmd):
        loss, norm = self.bench.check(int(cmd["segments"]))
        return {"loss": loss, "gradNorm": norm}

    def train(self, cmd):
        seconds, loss = self.bench.train(int(cmd["steps"]), cmd.get("precision", "float32"))
        return {"seconds": seconds, "loss": loss}

    def free(self, cmd):
        self.bench = None
        return {"ok": True}


def standalone(args):
    """One model with its own initialisation and random batches (no Engram involved), SPEC §10 sizes."""
    memory = {"xl": {"memLen": 128}, "rmt": {"numMemTokens": 16}, "mem-transformer": {"numMemTokens": 16},
              "mem-bottleneck": {"numMemTokens": 16, "memLen": 128}, "sequential": {"memLen": 512},
              "adaptive-span": {"memLen": 512}, "expire-span": {"memLen": 512}, "compressive": {"memLen": 128},
              "feedback": {"memLen": 128}}.get(args.kind, {})
    model = {"kind": args.kind, "vocabSize": args.vocab, "layers": 4, "dModel": 256, "heads": 4, "dInner": 1024,
             "dropout": args.dropout, **memory}
    rmt = args.kind == "rmt"
    bench = {"batch": 16, "segment": 128, "segments": 2 if rmt else 1, "bptt": 1 if rmt else 0,
             "carry": args.kind != "transformer", "seed": 0}
    b = Bench(model, bench)
    b.train(args.warmup)
    tokens = bench["batch"] * bench["segment"] * bench["segments"] * args.steps
    rates = [tokens / b.train(args.steps)[0] for _ in range(args.rounds)]
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            b.train(args.steps)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    print(json.dumps({**info(), "kind": args.kind, "params": b.params(), "tokensPerSec": statistics.median(rates)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--serve", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="ATen intra-op threads (0: PyTorch's default)")
    p.add_argument("--kind", default="transformer", choices=list(engram_torch.KINDS))
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="standalone: torch.profiler's top ops over `steps` steps after the rounds")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.serve:
        server = Server()
        serve_commands({"build": server.build, "check": server.check, "train": server.train, "free": server.free})
    else:
        standalone(args)


if __name__ == "__main__":
    main()
