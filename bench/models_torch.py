"""PyTorch's side of `npm run bench:models`: Engram's segment transformer (src/models/segment-
transformer.ts) written again in plain PyTorch, layer for layer, so that the two training speeds
compare the engine and the binding, not two different models.

    python3 bench/models_torch.py --kind xl [--threads N] [--steps S] [--rounds R]   one run, own init
    python3 bench/models_torch.py --serve [--threads N]                             for models.ts

What is mirrored (SPEC §1, §6; the names match Engram's state dict, so its weights load as they are):
  - embedding -> dropout -> N post-LN decoder layers -> dropout -> linear head (with bias);
  - layer: LN1(h + drop(Attn(h, cat(cache, h)))), then LN2(x + FF(x)), FF = drop(down(drop(relu(up))));
  - attention: bias-free q, kv (one [2H, H] projection), out and W_r; Transformer-XL relative scores
    ((q + u) . k + (q + v) . W_r R) / sqrt(D) with u, v [K, D] shared by all layers, rel_shift for
    causal masks, and Engram's strided "rel_skew" (R over Tk + Tq - 1 distances) when memory tokens
    see later keys (RMT); softmax over scores masked with -inf;
  - Transformer-XL cache: per layer the last mem_len inputs of the layer, detached;
  - RMT: [mem; x; mem] with the SPEC §6 mask, mem_{t+1} = last-layer write outputs, learned initial
    memory, BPTT through the segments of one step (the state entering a step is detached).
Training step (as Engram's trainer): zero_grad(set_to_none=True), unroll, sum of per-segment
cross-entropy sums / tokens, backward, Adam (torch.optim.Adam, PyTorch's defaults), loss.item().

--serve answers one JSON command per stdin line (models.ts alternates with its own measurements):
  {"op": "build", "config": {...}, "weights": path|null}  -> {"params": n}
  {"op": "check", "segments": n}                          -> {"loss", "gradNorm"} (eval mode, no step)
  {"op": "train", "steps": n}                             -> {"seconds", "loss"}
  {"op": "free"}, {"op": "quit"}
The weights file (torch.save format, written by Engram's saveTorch) holds Engram's state dict plus
"data.tokens" and "data.targets" [P, B, M]: the batches both sides train on, in turn.
"""
import argparse
import json
import math
import statistics
import time

from torch_worker import info, serve as serve_commands  # sets OMP_WAIT_POLICY before torch loads

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---- positions (src/nn/positions.ts) ----------------------------------------------------------------


def sinusoidal_distances(frm, length, d_model):
    """[length, H] embeddings of the distances frm, frm - 1, ..., frm - length + 1."""
    distances = torch.arange(frm, frm - length, -1, dtype=torch.float32)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model))
    angles = torch.outer(distances, inv_freq)
    return torch.cat([angles.sin(), angles.cos()], -1)


def rel_shift(x):
    """Transformer-XL's rel_shift: x [..., Tq, Tk] against distances Tk-1 ... 0."""
    *lead, tq, tk = x.shape
    padded = F.pad(x, (1, 0))
    return padded.view(*lead, tk + 1, tq)[..., 1:, :].view(*lead, tq, tk)


def rel_skew(x):
    """x [..., Tq, Tk + Tq - 1] against distances Tk-1 ... -(Tq-1): out[i, j] = x[i, j + Tq - 1 - i]."""
    *lead, tq, width = x.shape
    tk = width - tq + 1
    c = x.contiguous()
    strides = c.stride()
    return c.as_strided((*lead, tq, tk), (*strides[:-2], width - 1, 1), c.storage_offset() + tq - 1)


# ---- masks (src/memory/segment-layout.ts) -----------------------------------------------------------


def segment_mask(cached, read, sequence, write):
    """bool [r + M + w, C + r + M + w]: True where attention is NOT allowed (SPEC §1, §6)."""
    rows = read + sequence + write
    cols = cached + rows
    blocked = torch.ones(rows, cols, dtype=torch.bool)
    for i in range(read):
        blocked[i, cached:cached + read] = False
    for i in range(sequence):
        blocked[read + i, :cached + read + i + 1] = False
    for i in range(write):
        blocked[read + sequence + i, :] = False
    return blocked


# ---- modules (src/nn/*.ts) ---------------------------------------------------------------------------


class FeedForward(nn.Module):
    def __init__(self, d, d_inner, dropout):
        super().__init__()
        self.up = nn.Linear(d, d_inner)
        self.down = nn.Linear(d_inner, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.down(self.drop(self.up(x).relu())))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, heads, dropout):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.r = nn.Linear(d_model, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, query, context, mask, pos):
        B, Tq = query.shape[:2]
        Tk = context.shape[1]
        K, D = self.heads, self.head_dim
        q = self.q(query).view(B, Tq, K, D).transpose(1, 2)  # [B, K, Tq, D]
        k, v = self.kv(context).view(B, Tk, 2, K, D).permute(2, 0, 3, 1, 4).unbind(0)  # [B, K, Tk, D]
        content = (q + pos["u"].unsqueeze(1)).matmul(k.transpose(-2, -1))  # [B, K, Tq, Tk]
        rk = self.r(pos["r"]).view(-1, K, D).permute(1, 2, 0)  # [K, D, R]
        by_distance = (q + pos["v"].unsqueeze(1)).matmul(rk)  # [B, K, Tq, R]
        scores = content + (rel_skew(by_distance) if pos["bidirectional"] else rel_shift(by_distance))
        scores = (scores * (1.0 / math.sqrt(D))).masked_fill(mask, float("-inf"))
        probs = torch.softmax(scores, -1)
        mixed = self.drop(probs).matmul(v)  # [B, K, Tq, D]
        return self.out(mixed.transpose(1, 2).reshape(B, Tq, K * D))


class DecoderLayer(nn.Module):
    """Post-LN, as the Transformer-XL reference: LN(h + Attn), LN(x + FF)."""

    def __init__(self, d_model, heads, d_inner, dropout):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, d_inner, dropout)
        self.ln1 = nn.LayerNorm(d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, h, cache, mask, pos):
        context = torch.cat([cache, h], 1) if cache is not None else h
        a = self.attn(h, context, mask, pos)
        x = self.ln1(h + self.drop(a))
        return self.ln2(x + self.ff(x))


class MemoryTokens(nn.Module):
    def __init__(self, count, d_model):
        super().__init__()
        self.count = count
        self.init = nn.Parameter(torch.randn(count, d_model))

    def initial(self, batch):
        return self.init.unsqueeze(0).expand(batch, self.count, self.init.shape[1])


class SegmentTransformer(nn.Module):
    """Kinds 'transformer' (mem_len 0), 'xl' (mem_len > 0), 'rmt' (recurrent memory tokens)."""

    def __init__(self, kind, vocab_size, layers, d_model, heads, d_inner, dropout, mem_len, num_mem_tokens):
        super().__init__()
        self.kind = kind
        self.d_model = d_model
        self.mem_len = mem_len
        D = d_model // heads
        self.u = nn.Parameter(torch.randn(heads, D) * 0.02)
        self.v = nn.Parameter(torch.randn(heads, D) * 0.02)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.memory = MemoryTokens(num_mem_tokens, d_model) if kind == "rmt" and num_mem_tokens > 0 else None
        self.layers = nn.ModuleList(DecoderLayer(d_model, heads, d_inner, dropout) for _ in range(layers))
        self.head = nn.Linear(d_model, vocab_size)
        self._masks = {}

    def init_state(self, batch):
        return {"cache": None, "memory": self.memory.initial(batch) if self.memory is not None else None}

    @staticmethod
    def detach_state(state):
        cache = [c.detach() for c in state["cache"]] if state["cache"] is not None else None
        memory = state["memory"].detach() if state["memory"] is not None else None
        return {"cache": cache, "memory": memory}

    def _mask(self, layout):
        mask = self._masks.get(layout)
        if mask is None:
            mask = self._masks[layout] = segment_mask(*layout)
        return mask

    def forward(self, tokens, state):
        B, M = tokens.shape
        cache = state["cache"]
        mem = state["memory"] if self.memory is not None else None
        cached = cache[0].shape[1] if cache is not None else 0
        read = mem.shape[1] if mem is not None else 0
        write = read
        x = self.embed(tokens)
        h = self.drop(torch.cat([mem, x, mem], 1) if mem is not None else x)
        T = h.shape[1]
        mask = self._mask((cached, read, M, write))
        bidirectional = read > 1 or write > 1
        keys = cached + T
        pos = {
            "u": self.u,
            "v": self.v,
            "r": self.drop(sinusoidal_distances(keys - 1, keys + T - 1 if bidirectional else keys, self.d_model)),
            "bidirectional": bidirectional,
        }
        layer_inputs = []
        for l, layer in enumerate(self.layers):
            layer_inputs.append(h.narrow(1, read, M))
            h = layer(h, cache[l] if cache is not None else None, mask, pos)
        logits = self.head(self.drop(h.narrow(1, read, M)))
        memory = h.narrow(1, read + M, write) if self.memory is not None else None
        return logits, {"cache": self._next_cache(cache, layer_inputs), "memory": memory}

    def _next_cache(self, cache, inputs):
        if self.mem_len <= 0:
            return None
        out = []
        for l, h in enumerate(inputs):
            full = torch.cat([cache[l], h], 1) if cache is not None else h
            length = full.shape[1]
            out.append((full.narrow(1, length - self.mem_len, self.mem_len) if length > self.mem_len else full).detach())
        return out


# ---- training (src/train/trainer.ts, src/train/unroll.ts) -----------------------------------------


class Bench:
    def __init__(self, cfg, weights=None):
        self.cfg = cfg
        torch.manual_seed(int(cfg.get("seed", 0)))
        self.model = SegmentTransformer(
            cfg["kind"], cfg["vocabSize"], cfg["layers"], cfg["dModel"], cfg["heads"], cfg["dInner"],
            cfg["dropout"], cfg["memLen"], cfg["numMemTokens"],
        )
        B, M, n = cfg["batch"], cfg["segment"], cfg["segments"]
        if weights:
            saved = torch.load(weights)
            self.tokens = saved.pop("data.tokens")
            self.targets = saved.pop("data.targets")
            self.model.load_state_dict(saved, strict=True)
        else:
            P = max(2, n)
            self.tokens = torch.randint(0, cfg["vocabSize"], (P, B, M))
            self.targets = torch.randint(0, cfg["vocabSize"], (P, B, M))
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.get("lr", 1e-3))
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

    def _unroll(self, batches, state, bptt):
        """Segments in order from state (None: fresh); the state entering segment t is detached when
        t < n - bptt (never a fresh one). Returns the summed cross-entropy and the last state."""
        n = len(batches)
        fresh = state is None
        total = None
        for t, (tokens, targets) in enumerate(batches):
            if fresh:
                state = self.model.init_state(tokens.shape[0])
                fresh = False
            elif bptt != "all" and t < n - bptt:
                state = self.model.detach_state(state)
            logits, state = self.model(tokens, state)
            V = logits.shape[-1]
            ce = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="sum")
            total = ce if total is None else total + ce
        return total, state

    def step(self):
        cfg = self.cfg
        batches = self._batches(cfg["segments"])
        self.optimizer.zero_grad(set_to_none=True)
        ce, state = self._unroll(batches, self.carry if cfg["carry"] else None, cfg["bptt"])
        loss = ce / sum(t.numel() for _, t in batches)
        loss.backward()
        self.optimizer.step()
        self.carry = self.model.detach_state(state) if cfg["carry"] else None
        return loss.item()

    def train(self, steps):
        t0 = time.perf_counter()
        loss = None
        for _ in range(steps):
            loss = self.step()
        return time.perf_counter() - t0, loss

    def check(self, segments):
        """Loss over the first `segments` batches from a fresh state, and the gradient norm (no step)."""
        self.model.eval()
        self.optimizer.zero_grad(set_to_none=True)
        batches = [(self.tokens[i], self.targets[i]) for i in range(segments)]
        ce, _ = self._unroll(batches, None, "all")
        loss = ce / sum(t.numel() for _, t in batches)
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
        self.bench = Bench(cmd["config"], cmd.get("weights"))
        return {"params": self.bench.params()}

    def check(self, cmd):
        loss, norm = self.bench.check(int(cmd["segments"]))
        return {"loss": loss, "gradNorm": norm}

    def train(self, cmd):
        seconds, loss = self.bench.train(int(cmd["steps"]))
        return {"seconds": seconds, "loss": loss}

    def free(self, cmd):
        self.bench = None
        return {"ok": True}


def serve():
    server = Server()
    serve_commands({"build": server.build, "check": server.check, "train": server.train, "free": server.free})


def standalone(args):
    """One model with its own initialisation and random batches (no Engram involved)."""
    cfg = {
        "kind": args.kind, "vocabSize": args.vocab, "layers": 4, "dModel": 256, "heads": 4, "dInner": 1024,
        "dropout": args.dropout, "memLen": 128 if args.kind == "xl" else 0,
        "numMemTokens": 16 if args.kind == "rmt" else 0, "batch": 16, "segment": 128,
        "segments": 2 if args.kind == "rmt" else 1, "bptt": 1 if args.kind == "rmt" else 0,
        "carry": args.kind != "transformer", "seed": 0,
    }
    bench = Bench(cfg)
    bench.train(args.warmup)
    tokens = cfg["batch"] * cfg["segment"] * cfg["segments"] * args.steps
    rates = [tokens / bench.train(args.steps)[0] for _ in range(args.rounds)]
    print(json.dumps({**info(), "kind": args.kind, "params": bench.params(), "tokensPerSec": statistics.median(rates)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--serve", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="ATen intra-op threads (0: PyTorch's default)")
    p.add_argument("--kind", default="transformer", choices=["transformer", "xl", "rmt"])
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.serve:
        serve()
    else:
        standalone(args)


if __name__ == "__main__":
    main()
