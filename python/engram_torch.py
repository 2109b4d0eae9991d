"""engram_torch: Engram's models in plain PyTorch (>= 1.13, no other dependency).

A twin of every model kind of Engram (src/models/*.ts): the same parameter names as Engram's
`model.stateDict()`, the same forward semantics, so a model folder written by Engram
(`saveModel` / `engram export`) loads as it is and gives Engram's logits (within 1e-4 in float32,
1e-9 in float64; test/twin.test.ts checks every kind over several segments with the state carried).

    import torch, engram_torch
    model = engram_torch.load_model("my-model")           # config.json + model.safetensors
    state = model.init_state(batch=1)
    logits, state, aux_loss = model(torch.tensor([[5, 7, 9]]), state)   # [B, M, V]
    state = model.detach_state(state)                     # truncated BPTT between training steps

API
    load_model(folder, dtype=None, device='cpu') -> nn.Module (eval mode)
        Reads config.json and model.safetensors (the weights' SHA-256 and the model config saved with
        them are checked against config.json, as Engram's loadModel does).
        dtype: torch.float32 / torch.float64 (default: the weights' own). The module also carries
        .folder_config (config.json as a dict), .vocab (the LM vocabulary string or None) and
        .segment_length.
    build_model(config) -> nn.Module with freshly initialised weights (Engram's initialisations)
        config: the `model` section of config.json (missing fields take Engram's defaults). A field
        or value the twin does not implement raises ConfigError naming it: the twin never computes
        something other than Engram silently. The options that reproduce the reference code
        (window, initialMemory, finalNorm, rmtCache, expireSpan.keyPositions, compressive.scheme)
        pass only missing, null or at Engram's default, the semantics the twin has.
    read_safetensors(path) -> (tensors: dict name -> tensor, metadata: dict)
    encode(vocab, text) -> int64 tensor of token ids (Engram's CharVocab: id 0 = unknown character)
    bits_per_character(model, text) -> float: a language model's bits per character of text, segment by
        segment (model.segment_length) with the state carried

    Every model: init_state(batch) -> state; forward(tokens [B, M] int64, state) -> (logits [B, M, V],
    state, aux_loss 0-d tensor or None); detach_state(state) -> state; after_optimizer_step()
    (Adaptive-Span's clamp; a no-op elsewhere). Training mode has Engram's dropout and auxiliary losses
    (Adaptive-Span's span loss, Expire-Span's span loss and noisy spans, Compressive's reconstruction
    loss); the trainer's objective is cross-entropy / tokens + aux_loss.

    Decoder(model, segment_length, batch=1, cached=True): Engram's Decoder (src/infer/decoder.ts), a
        token stream fed a few tokens at a time: feed(tokens [B, n] int64) -> logits [B, n, V], segment
        boundaries every segment_length tokens from the start. cached: key/value-cached incremental
        decoding (model.open_segment(state, batch): per-layer keys and values of the open segment,
        committed into the memory at the boundary as forward() does: the XL cache, RMT's write block,
        Expire-Span's dropping) for every kind but mem-bottleneck and feedback, which recompute
        forward() over the open segment. Same tokens and logits as Engram's Decoder (test/twin.test.ts).
    greedy(model, segment_length, prompt, count, cached=True) -> (ids, logits [count, V]): greedy decoding.

    python3 engram_torch.py MODEL_DIR [--text "..."] [--dtype float64]
        prints the parameter count and, for a language model, the bits per character of the text.

Shapes: B batch, M segment length, T rows of a segment (with memory tokens), C cached positions,
H hidden, K heads, D = H/K, L maximum span / memLen, V vocabulary.
"""
import hashlib
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["load_model", "build_model", "read_safetensors", "encode", "bits_per_character", "Decoder", "greedy", "ConfigError", "KINDS"]

KINDS = ("transformer", "xl", "mem-transformer", "mem-bottleneck", "rmt",
         "sequential", "adaptive-span", "expire-span", "compressive", "feedback")


class ConfigError(ValueError):
    """A configuration the twin cannot run exactly as Engram does."""


# ---- configuration (src/models/registry.ts, src/memory/*.ts schemas) -------------------------------

_COMMON_DEFAULTS = {"layers": 4, "dModel": 128, "heads": 4, "dInner": 256, "dropout": 0.0, "norm": "post",
                    "memLen": 0, "numMemTokens": 0, "previousToken": False}


def _only(value):
    """A field whose other values reproduce reference code the twin does not implement: only Engram's default passes."""
    return (lambda v: v == value, f"{json.dumps(value)}, Engram's default; the twin implements no other value")


_is_bool = (lambda v: isinstance(v, bool), "true or false")
_pos_int = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer")
_nonneg = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0")
# Each mechanism's options: name -> (default, (check, what it allows)). A field missing here is one
# the twin does not implement.
_OPTIONS = {
    "adaptiveSpan": ("adaptive-span", {
        "ramp": (32, _pos_int), "init": (0.0, (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a number in [0, 1]")),
        "lossCoef": (2e-6, _nonneg), "dynamic": (False, _is_bool), "trimStep": (64, _pos_int)}),
    "expireSpan": ("expire-span", {
        "ramp": (32, _pos_int), "initFraction": (0.1, (lambda v: isinstance(v, (int, float)) and 0 < v < 1, "a number in (0, 1)")),
        "preDiv": (1.0, (lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0")), "lossCoef": (1e-6, _nonneg),
        "noisy": (False, _is_bool), "drop": (True, _is_bool), "keyPositions": ("all", _only("all"))}),
    "compressive": ("compressive", {
        "compressedLen": (None, _pos_int), "rate": (3, _pos_int),
        "fn": ("conv", (lambda v: v in ("mean", "max", "conv"), "'mean', 'max' or 'conv'")),
        "reconstruction": (True, _is_bool), "scheme": ("fifo", _only("fifo"))}),
}
# Options that reproduce the reference code's semantics (SPEC's deviations), on the kinds whose code
# path they change: accepted missing, null, or at Engram's default (the semantics the twin has).
_REFERENCE_OPTIONS = {
    "window": "with-query", "initialMemory": "empty", "finalNorm": True,
    "rmtCache": {"readSeesCache": False, "writeSeesCache": True, "rows": "sequence"},
}
# Which kinds have a cache (memLen) and memory tokens: 'none' (must be 0), 'optional', 'required'.
_SIZES = {
    "transformer": ("none", "none"), "xl": ("required", "none"), "mem-transformer": ("optional", "required"),
    "mem-bottleneck": ("optional", "required"), "rmt": ("optional", "required"), "sequential": ("required", "none"),
    "adaptive-span": ("required", "none"), "expire-span": ("required", "none"), "compressive": ("required", "none"),
    "feedback": ("required", "none"),
}


def resolve_config(config):
    """Engram's resolveModelConfig for the fields the twin implements: defaults filled, every field
    and value checked. Raises ConfigError naming any field or value the twin does not know."""
    if not isinstance(config, dict):
        raise ConfigError(f"a model config is a dict (config.json's 'model' section), got {type(config).__name__}")
    known = {"kind", "vocabSize", *_COMMON_DEFAULTS, *_OPTIONS, *_REFERENCE_OPTIONS}
    unknown = [k for k in config if k not in known]
    if unknown:
        raise ConfigError("engram_torch does not implement model config field(s) "
                          + ", ".join(f"{k}={json.dumps(config[k])}" for k in unknown)
                          + f"; it knows {', '.join(sorted(known))} (a newer Engram wrote this model: update engram_torch.py)")
    kind = config.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"kind={json.dumps(kind)} is not one of {', '.join(KINDS)}")
    for key, default in _REFERENCE_OPTIONS.items():
        given = config.get(key)
        if given is None:
            continue
        if isinstance(default, dict) and isinstance(given, dict):
            odd = {k: v for k, v in given.items() if default.get(k, object()) != v}
        else:
            odd = {} if given == default else {"": given}
        if odd:
            shown = ", ".join(f"{key}{'.' + k if k else ''}={json.dumps(v)}" for k, v in odd.items())
            raise ConfigError(f"engram_torch does not implement {shown} (a reference-reproducing option); "
                              f"it runs only {key}={json.dumps(default)}, Engram's default")
    c = {**_COMMON_DEFAULTS, **{k: None for k in _OPTIONS}, **config}
    for k in ("vocabSize", "layers", "dModel", "heads", "dInner"):
        if not _pos_int[0](c[k]):
            raise ConfigError(f"{k}={json.dumps(c[k])} must be a positive integer")
    if c["dModel"] % c["heads"] or c["dModel"] % 2:
        raise ConfigError(f"dModel={c['dModel']} must be even and divisible by heads={c['heads']}")
    if not (isinstance(c["dropout"], (int, float)) and 0 <= c["dropout"] < 1):
        raise ConfigError(f"dropout={json.dumps(c['dropout'])} must be in [0, 1)")
    if c["norm"] not in ("post", "pre"):
        raise ConfigError(f"norm={json.dumps(c['norm'])} is not implemented (only 'post' and 'pre')")
    if not isinstance(c["previousToken"], bool):
        raise ConfigError(f"previousToken={json.dumps(c['previousToken'])} must be true or false")
    for k, rule in zip(("memLen", "numMemTokens"), _SIZES[kind]):
        v = c[k]
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise ConfigError(f"{k}={json.dumps(v)} must be a non-negative integer")
        if rule == "none" and v > 0:
            raise ConfigError(f"kind '{kind}' has no use for {k}={v} (it must be 0)")
        if rule == "required" and v == 0:
            raise ConfigError(f"kind '{kind}' needs {k} > 0")
    for key, (owner, fields) in _OPTIONS.items():
        given = c[key]
        if owner != kind:
            if given:
                raise ConfigError(f"{key}={json.dumps(given)} belongs to kind '{owner}', not '{kind}'")
            c[key] = None
            continue
        given = given or {}
        extra = [k for k in given if k not in fields]
        if extra:
            raise ConfigError(f"engram_torch does not implement {key} option(s) "
                              + ", ".join(f"{k}={json.dumps(given[k])}" for k in extra)
                              + f"; it knows {', '.join(fields)} (update engram_torch.py)")
        opts = {}
        for name, (default, (check, what)) in fields.items():
            v = given.get(name, default)
            if v is None and name == "compressedLen":
                v = c["memLen"]
            if not check(v):
                raise ConfigError(f"{key}.{name}={json.dumps(v)} is not valid or not implemented (must be {what})")
            opts[name] = v
        c[key] = opts
    return c


# ---- layers (src/nn/layers.ts, src/nn/positions.ts) -------------------------------------------------


class _MaskedSoftmax(torch.autograd.Function):
    """softmax(scale * x, masked entries at -inf) with fully masked rows 0, not NaN (Engram's fused op)."""

    @staticmethod
    def forward(ctx, x, mask, scale, dim):
        logits = x if scale == 1.0 else x * scale
        if mask is not None:
            logits = logits.masked_fill(mask, float("-inf"))
        y = torch.softmax(logits, dim)
        if mask is not None:
            y = y.masked_fill(mask, 0.0)
        ctx.save_for_backward(y)
        ctx.scale, ctx.dim = scale, dim
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dx = y * (dy - (dy * y).sum(ctx.dim, keepdim=True))
        if ctx.scale != 1.0:
            dx = dx * ctx.scale
        return dx, None, None, None


def masked_softmax(x, mask, scale, dim=-1):
    return _MaskedSoftmax.apply(x, mask, scale, dim)


def linear(in_features, out_features, bias=True):
    """Engram's Linear: PyTorch's nn.Linear (its default init is Engram's U(-1/sqrt(in), 1/sqrt(in)))."""
    return nn.Linear(in_features, out_features, bias=bias)


class TokenEmbedding(nn.Module):
    """embed.weight [V, H]; with previousToken also embed.previous [V + 1, H] of the token before
    each position (row V at the segment's first position)."""

    def __init__(self, num, dim, previous_token=False):
        super().__init__()
        self.num = num
        self.weight = nn.Parameter(torch.randn(num, dim))
        self.previous = nn.Parameter(torch.randn(num + 1, dim)) if previous_token else None

    def forward(self, tokens):
        embedded = F.embedding(tokens, self.weight)  # [B, M, H]
        if self.previous is None:
            return embedded
        B, M = tokens.shape
        start = torch.full((B, 1), self.num, dtype=tokens.dtype, device=tokens.device)
        before = torch.cat([start, tokens.narrow(1, 0, M - 1)], 1) if M > 1 else start  # [B, M]
        return embedded + F.embedding(before, self.previous)


class FeedForward(nn.Module):
    """drop(down(drop(relu(up(x)))))."""

    def __init__(self, d, d_inner, dropout):
        super().__init__()
        self.up = linear(d, d_inner)
        self.down = linear(d_inner, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.down(self.drop(self.up(x).relu())))


def sinusoidal_distances(frm, length, d_model, dtype, device):
    """[length, H] embeddings of the distances frm, frm - 1, ..., frm - length + 1."""
    distances = torch.arange(frm, frm - length, -1, dtype=dtype, device=device)
    inv_freq = torch.pow(10000.0, torch.arange(0, d_model, 2, dtype=dtype, device=device) / d_model).reciprocal()
    angles = torch.outer(distances, inv_freq)  # [length, H/2]
    return torch.cat([angles.sin(), angles.cos()], -1)


def rel_shift(x):
    """Transformer-XL's rel_shift: x [..., Tq, Tk] against distances Tk-1 ... 0 -> [i, j] at distance mlen + i - j."""
    *lead, tq, tk = x.shape
    padded = F.pad(x, (1, 0))
    return padded.view(*lead, tk + 1, tq)[..., 1:, :].reshape(*lead, tq, tk)


def rel_skew(x):
    """x [..., Tq, Tk + Tq - 1] against distances Tk-1 ... -(Tq-1): out[i, j] = x[i, j + Tq - 1 - i]."""
    *lead, tq, width = x.shape
    tk = width - tq + 1
    c = x.contiguous()
    strides = c.stride()
    return c.as_strided((*lead, tq, tk), (*strides[:-2], width - 1, 1), c.storage_offset() + tq - 1)


# ---- attention and the decoder layer (src/nn/attention.ts, src/nn/decoder-layer.ts) -----------------


class RelativePositions:
    """Transformer-XL: u, v [K, D]; r [Tk or Tk + Tq - 1, H] sinusoids; bidirectional: rel_skew."""

    def __init__(self, u, v, r, bidirectional):
        self.u, self.v, self.r, self.bidirectional = u, v, r, bidirectional


class LearnedPositions:
    """key_pe [D, P] (column d: distance d); distance int64 [Tq, Tk] or [B, 1, Tq, Tk]."""

    def __init__(self, key_pe, distance):
        self.key_pe, self.distance = key_pe, distance


class KeyValueCache:
    """Decoding, one layer: keys and values [B, K, T, D] of the rows seen so far (never recomputed),
    and W_r R [K, D, R] of the relative table relative_source."""

    def __init__(self):
        self.key = self.value = self.relative = self.relative_source = None

    @property
    def length(self):
        return 0 if self.key is None else self.key.shape[2]

    def append(self, key, value):
        """Keys and values [B, K, n, D] of n new rows."""
        self.key = key.contiguous() if self.key is None else torch.cat([self.key, key], 2)
        self.value = value.contiguous() if self.value is None else torch.cat([self.value, value], 2)


def _project(layer, x, frozen):
    if frozen:
        return F.linear(x, layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
    return layer(x)


class MultiHeadAttention(nn.Module):
    """Bias-free q, kv ([2H, H]: keys then values), out, and W_r (relative positions only)."""

    def __init__(self, d_model, heads, dropout, relative=True):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.q = linear(d_model, d_model, bias=False)
        self.kv = linear(d_model, 2 * d_model, bias=False)
        self.out = linear(d_model, d_model, bias=False)
        self.r = linear(d_model, d_model, bias=False) if relative else None
        self.drop = nn.Dropout(dropout)

    def queries(self, x, frozen=False):
        B, Tq = x.shape[:2]
        return _project(self.q, x, frozen).view(B, Tq, self.heads, self.head_dim).transpose(1, 2)  # [B, K, Tq, D]

    def keys_values(self, context, frozen=False):
        """Keys and values of inputs [B, Tk, H] -> [B, K, Tk, D] each."""
        B, Tk = context.shape[:2]
        return _project(self.kv, context, frozen).view(B, Tk, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def relative_keys(self, r):
        """W_r R: relative position embeddings [R, H] -> [K, D, R]."""
        return self.r(r).view(-1, self.heads, self.head_dim).permute(1, 2, 0)

    def forward(self, query, context, mask, positions, soft_mask=None, frozen=False):
        q = self.queries(query, frozen)  # [B, K, Tq, D]
        k, v = self.keys_values(context, frozen)  # [B, K, Tk, D]
        return self.attend_keys(q, k, v, mask, positions, soft_mask, frozen)

    def forward_cached(self, query, cache, mask, positions, soft_mask=None, keys=None):
        """Incremental decoding: the queries' own keys and values join `cache` (a KeyValueCache),
        then they attend to its newest `keys` rows (default all), as forward() over cat(earlier rows,
        query). A causal relative table may be longer than the keys (distances R-1 ... 0: its last
        `keys` columns are used); its projection W_r R stays in the cache while the same table comes."""
        q = self.queries(query)  # [B, K, Tq, D]
        cache.append(*self.keys_values(query))
        total = cache.length
        used = total if keys is None else keys
        k, v = (cache.key, cache.value) if used == total else (cache.key.narrow(2, total - used, used), cache.value.narrow(2, total - used, used))
        relative_keys = None
        if isinstance(positions, RelativePositions) and self.r is not None and not positions.bidirectional:
            if cache.relative_source is not positions.r:
                cache.relative, cache.relative_source = self.relative_keys(positions.r), positions.r
            R = cache.relative.shape[2]
            relative_keys = cache.relative if R == used else cache.relative.narrow(2, R - used, used)  # [K, D, used]
        return self.attend_keys(q, k, v, mask, positions, soft_mask, False, relative_keys)

    def attend_keys(self, q, k, v, mask, positions, soft_mask, frozen, relative_keys=None):
        """Queries q [B, K, Tq, D] against keys k [B, K, Tk, D] under the position scheme, then mix()
        with the values v. relative_keys [K, D, Tk]: W_r R projected beforehand (decoding)."""
        B, K, Tq = q.shape[:3]
        Tk = k.shape[2]
        if isinstance(positions, LearnedPositions):
            by_distance = q.matmul(positions.key_pe)  # [B, K, Tq, P]
            d = positions.distance
            index = (d.view(1, 1, Tq, Tk) if d.dim() == 2 else d).expand(B, K, Tq, Tk)
            scores = q.matmul(k.transpose(-2, -1)) + by_distance.gather(-1, index)
        elif positions is not None and self.r is not None:
            content = (q + positions.u.unsqueeze(1)).matmul(k.transpose(-2, -1))  # [B, K, Tq, Tk]
            rk = relative_keys if relative_keys is not None else self.relative_keys(positions.r)  # [K, D, R]
            by_distance = (q + positions.v.unsqueeze(1)).matmul(rk)  # [B, K, Tq, R]
            scores = content + (rel_skew(by_distance) if positions.bidirectional else rel_shift(by_distance))
        else:
            scores = q.matmul(k.transpose(-2, -1))
        return self.mix(scores, [v], mask, soft_mask, frozen)

    def attend_projected(self, query, keys, key_positions):
        """Keys and values projected beforehand (pieces [B, K, Tk_i, D], oldest first), key positions [D, Tk]; no mask."""
        q = self.queries(query)
        if len(keys) == 1:
            content = q.matmul(keys[0][0].transpose(-2, -1))
        else:
            content = torch.cat([q.matmul(k.transpose(-2, -1)) for k, _ in keys], -1)
        return self.mix(content + q.matmul(key_positions), [v for _, v in keys], None, None, False)

    def mix(self, scores, values, mask, soft_mask, frozen):
        B, K, Tq = scores.shape[:3]
        probs = masked_softmax(scores, mask, 1 / math.sqrt(self.head_dim))
        if soft_mask is not None:
            masked = probs * soft_mask
            probs = masked / (masked.sum(-1, keepdim=True) + 1e-8)
        dropped = probs if frozen else self.drop(probs)
        mixed = None
        offset = 0
        for v in values:
            count = v.shape[2]
            part = (dropped if len(values) == 1 else dropped.narrow(-1, offset, count)).matmul(v)
            mixed = part if mixed is None else mixed + part
            offset += count
        return _project(self.out, mixed.transpose(1, 2).reshape(B, Tq, K * self.head_dim), frozen)


class DecoderLayer(nn.Module):
    """Post-LN LN(h + Attn), LN(x + FF) or pre-LN h + Attn(LN h), x + FF(LN x)."""

    def __init__(self, d_model, heads, d_inner, dropout, norm, relative=True):
        super().__init__()
        self.norm = norm
        self.attn = MultiHeadAttention(d_model, heads, dropout, relative)
        self.ff = FeedForward(d_model, d_inner, dropout)
        self.ln1 = nn.LayerNorm(d_model, eps=1e-5)
        self.ln2 = nn.LayerNorm(d_model, eps=1e-5)
        self.drop = nn.Dropout(dropout)

    def forward(self, h, cache, mask, positions, soft_mask=None):
        context = torch.cat([cache, h], 1) if cache is not None else h  # [B, C + T, H]
        if self.norm == "post":
            return self.around(h, lambda query: self.attn(query, context, mask, positions, soft_mask))
        normed = self.ln1(context)
        query = normed.narrow(1, cache.shape[1], h.shape[1]) if cache is not None else normed
        return self.around(h, lambda q: self.attn(q, normed, mask, positions, soft_mask), query)

    def forward_cached(self, h, cache, mask, positions, soft_mask=None, keys=None):
        """Incremental decoding: new rows h [B, n, H] attend to the rows in `cache` (see cache_rows)
        and to themselves (appended to it), as forward(h, earlier rows, ...) with mask, distances and
        soft mask over the newest `keys` rows of the cache."""
        def attend(query):
            return self.attn.forward_cached(query, cache, mask, positions, soft_mask, keys)
        if self.norm == "post":
            return self.around(h, attend)
        return self.around(h, attend, self.ln1(h))  # pre-LN normalises per row: the cached rows' LN is unchanged

    def cache_rows(self, x, cache):
        """Appends the keys and values of layer inputs x [B, T, H] (attended later, never queries) to a decoding cache."""
        cache.append(*self.attn.keys_values(self.ln1(x) if self.norm == "pre" else x))

    def around(self, h, attend, normed_query=None):
        """attend(query) -> [B, T, H] or None (nothing to attend to: the attention adds nothing)."""
        if self.norm == "post":
            a = attend(h)
            x = self.ln1(h + self.drop(a) if a is not None else h)
            return self.ln2(x + self.ff(x))
        a = attend(normed_query if normed_query is not None else self.ln1(h))
        x = h + self.drop(a) if a is not None else h
        return x + self.ff(self.ln2(x))

    def frozen_attention(self, queries, memories):
        """Content attention with every weight detached (pre-LN: LN1 with detached weights); no mask, positions, dropout."""
        def normed(x):
            if self.norm != "pre":
                return x
            return F.layer_norm(x, (x.shape[-1],), self.ln1.weight.detach(), self.ln1.bias.detach(), self.ln1.eps)
        return self.attn(normed(queries), normed(memories), None, None, None, frozen=True)


def _next_cache(cache, inputs, mem_len):
    """Per layer the last memLen rows of cat(cache, inputs), detached (Transformer-XL's cache)."""
    if mem_len <= 0:
        return None
    out = []
    for l, h in enumerate(inputs):
        full = torch.cat([cache[l], h], 1) if cache is not None else h
        n = full.shape[1]
        out.append((full.narrow(1, n - mem_len, mem_len) if n > mem_len else full).detach())
    return out


def _detach(value):
    if value is None:
        return None
    if isinstance(value, list):
        return [t.detach() for t in value]
    return value.detach()


class _Model(nn.Module):
    """What every kind shares: the config, detach_state, after_optimizer_step, a table cache."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self._tables = {}

    def _table(self, key, make):
        t = self._tables.get(key)
        if t is None:
            t = self._tables[key] = make()
        return t

    @property
    def _dtype(self):
        return self.head.weight.dtype

    @property
    def _device(self):
        return self.head.weight.device

    def detach_state(self, state):
        return {k: _detach(v) for k, v in state.items()}

    def after_optimizer_step(self):
        pass


# ---- transformer, xl, mem-transformer, rmt (src/models/segment-transformer.ts) ----------------------


class MemoryTokens(nn.Module):
    """memory.init [m, H]: 'prepend' (Memory Transformer) or 'recurrent' (RMT: read and write blocks)."""

    def __init__(self, mode, count, d_model):
        super().__init__()
        self.mode, self.count = mode, count
        self.init = nn.Parameter(torch.randn(count, d_model))

    def initial(self, batch):
        return self.init.unsqueeze(0).expand(batch, self.count, self.init.shape[1])


def segment_mask(cached, read, sequence, write, device):
    """bool [r + M + w, C + r + M + w], True where attention is NOT allowed (SPEC §1, §6)."""
    rows = read + sequence + write
    blocked = torch.ones(rows, cached + rows, dtype=torch.bool, device=device)
    for i in range(read):
        blocked[i, cached:cached + read] = False
    for i in range(sequence):
        blocked[read + i, :cached + read + i + 1] = False
    blocked[read + sequence:, :] = False
    return blocked


class SegmentTransformer(_Model):
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.embed = TokenEmbedding(c["vocabSize"], c["dModel"], c["previousToken"])
        self.drop = nn.Dropout(c["dropout"])
        mode = {"rmt": "recurrent", "mem-transformer": "prepend"}.get(c["kind"])
        self.memory = MemoryTokens(mode, c["numMemTokens"], c["dModel"]) if mode and c["numMemTokens"] > 0 else None
        self.layers = nn.ModuleList(DecoderLayer(c["dModel"], c["heads"], c["dInner"], c["dropout"], c["norm"])
                                    for _ in range(c["layers"]))
        D = c["dModel"] // c["heads"]
        self.u = nn.Parameter(torch.randn(c["heads"], D) * 0.02)
        self.v = nn.Parameter(torch.randn(c["heads"], D) * 0.02)
        self.finalNorm = nn.LayerNorm(c["dModel"], eps=1e-5) if c["norm"] == "pre" else None
        self.head = linear(c["dModel"], c["vocabSize"])

    def init_state(self, batch):
        recurrent = self.memory is not None and self.memory.mode == "recurrent"
        return {"cache": None, "memory": self.memory.initial(batch) if recurrent else None}

    def open_segment(self, state, batch):
        """Incremental decoding of one segment from state (see TransformerOpenSegment)."""
        return TransformerOpenSegment(self, state, batch)

    def causal_table(self, keys):
        """Sinusoids [S, H] of distances S-1 ... 0 for S >= keys, S a power of two >= 64 (so W_r R is
        reprojected only when the table grows)."""
        size = 64
        while size < keys:
            size *= 2
        dtype, device = self._dtype, self._device
        return self._table(("r-causal", size, dtype, device), lambda: sinusoidal_distances(size - 1, size, self.config["dModel"], dtype, device))

    def forward(self, tokens, state):
        B, M = tokens.shape
        H = self.config["dModel"]
        cache = state["cache"]
        read_block = write_block = None
        if self.memory is not None:
            recurrent = self.memory.mode == "recurrent"
            read_block = state["memory"] if recurrent and state["memory"] is not None else self.memory.initial(B)
            write_block = read_block if recurrent else None
        cached = cache[0].shape[1] if cache else 0
        read = read_block.shape[1] if read_block is not None else 0
        write = write_block.shape[1] if write_block is not None else 0
        x = self.embed(tokens)  # [B, M, H]
        parts = [p for p in (read_block, x, write_block) if p is not None]
        h = self.drop(torch.cat(parts, 1) if len(parts) > 1 else x)  # [B, T, H]
        T = h.shape[1]
        device, dtype = h.device, h.dtype
        mask = self._table(("mask", cached, read, M, write, device), lambda: segment_mask(cached, read, M, write, device))
        bidirectional = read > 1 or write > 1
        keys = cached + T
        distances = keys + T - 1 if bidirectional else keys
        r = self._table(("r", keys, distances, dtype, device), lambda: sinusoidal_distances(keys - 1, distances, H, dtype, device))
        positions = RelativePositions(self.u, self.v, self.drop(r), bidirectional)
        layer_inputs = []
        for l, layer in enumerate(self.layers):
            layer_inputs.append(h.narrow(1, read, M))
            h = layer(h, cache[l] if cache else None, mask, positions)
        out = self.finalNorm(h) if self.finalNorm is not None else h
        logits = self.head(self.drop(out.narrow(1, read, M)))  # [B, M, V]
        memory = out.narrow(1, read + M, write) if write_block is not None else None
        return logits, {"cache": _next_cache(cache, layer_inputs, self.config["memLen"]), "memory": memory}, None


# ---- mem-bottleneck (src/models/mem-bottleneck.ts) ---------------------------------------------------


class BottleneckLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["dModel"]
        self.memAttn = MultiHeadAttention(H, c["heads"], c["dropout"], relative=False)
        self.memFF = FeedForward(H, c["dInner"], c["dropout"])
        self.seqAttn = MultiHeadAttention(H, c["heads"], c["dropout"], relative=False)
        self.seqFF = FeedForward(H, c["dInner"], c["dropout"])
        self.norms = nn.ModuleList(nn.LayerNorm(H, eps=1e-5) for _ in range(4))
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, memory, h, cache):
        n0, n1, n2, n3 = self.norms
        context = torch.cat([memory, cache], 1) if cache is not None else memory
        m = n0(memory + self.drop(self.memAttn(memory, context, None, None)))
        m = n1(m + self.memFF(m))
        x = n2(h + self.drop(self.seqAttn(h, m, None, None)))
        x = n3(x + self.seqFF(x))
        return m, x


class MemBottleneck(_Model):
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.embed = TokenEmbedding(c["vocabSize"], c["dModel"], c["previousToken"])
        self.memory = MemoryTokens("prepend", c["numMemTokens"], c["dModel"])
        self.layers = nn.ModuleList(BottleneckLayer(c) for _ in range(c["layers"]))
        self.head = linear(c["dModel"], c["vocabSize"])
        self.drop = nn.Dropout(c["dropout"])

    def init_state(self, batch):
        return {"cache": None, "memory": None}

    def detach_state(self, state):
        return {"cache": _detach(state["cache"]), "memory": None}

    def forward(self, tokens, state):
        B, M = tokens.shape
        H = self.config["dModel"]
        dtype, device = self._dtype, self._device
        positions = self._table(("abs", M, dtype, device), lambda: sinusoidal_distances(M - 1, M, H, dtype, device).flip(0))
        h = self.drop(self.embed(tokens) + positions)  # [B, M, H]
        memory = self.memory.initial(B)
        cache = state["cache"]
        inputs = []
        for l, layer in enumerate(self.layers):
            inputs.append(h)
            memory, h = layer(memory, h, cache[l] if cache else None)
        logits = self.head(self.drop(h))
        return logits, {"cache": _next_cache(cache, inputs, self.config["memLen"]), "memory": None}, None


# ---- sequential, adaptive-span, expire-span, compressive (src/models/sequential.ts ...) -------------


class SequentialTransformer(_Model):
    """The Expire-Span code base's transformer: learned key positions keyPe [D, P], a sliding window
    of L = memLen positions up to and including each query, a per-layer cache of the last L inputs.
    Mechanisms override layer_context and next_state."""

    def __init__(self, config, key_positions=None):
        super().__init__(config)
        c = config
        self.span = c["memLen"]
        self.key_positions = key_positions if key_positions is not None else c["memLen"]
        self.embed = TokenEmbedding(c["vocabSize"], c["dModel"], c["previousToken"])
        self.drop = nn.Dropout(c["dropout"])
        self.layers = nn.ModuleList(DecoderLayer(c["dModel"], c["heads"], c["dInner"], c["dropout"], c["norm"], relative=False)
                                    for _ in range(c["layers"]))
        self.keyPe = nn.Parameter(torch.randn(c["dModel"] // c["heads"], self.key_positions))
        self.finalNorm = nn.LayerNorm(c["dModel"], eps=1e-5) if c["norm"] == "pre" else None
        self.head = linear(c["dModel"], c["vocabSize"])

    def init_state(self, batch):
        return {"cache": None}

    def forward(self, tokens, state):
        h = self.drop(self.embed(tokens))  # [B, M, H]
        inputs, contexts, losses = [], [], []
        for l, layer in enumerate(self.layers):
            inputs.append(h)
            ctx = self.layer_context(l, h, state)
            contexts.append(ctx)
            if ctx.get("aux_loss") is not None:
                losses.append(ctx["aux_loss"])
            key_pe = ctx.get("key_pe")
            positions = LearnedPositions(key_pe if key_pe is not None else self.keyPe, ctx["distance"])
            h = layer(h, ctx["memory"], ctx["mask"], positions, ctx.get("soft_mask"))
        out = self.finalNorm(h) if self.finalNorm is not None else h
        logits = self.head(self.drop(out))  # [B, M, V]
        next_state, aux = self.next_state(state, inputs, contexts)
        if aux is not None:
            losses.append(aux)
        aux_loss = None
        for loss in losses:
            aux_loss = loss if aux_loss is None else aux_loss + loss
        return logits, next_state, aux_loss

    def open_segment(self, state, batch):
        """Incremental decoding of one block from state (see SequentialOpenSegment)."""
        return SequentialOpenSegment(self, state, batch)

    def state_after_prefix(self, state, inputs, rows):
        """Decoding: the state whose memory also holds the block's first `rows` rows (layer inputs
        [B, rows, H] per layer), so that layer_context gives the block's next rows what it gives them
        in the whole block. The baseline appends them to each layer's cache."""
        return {**state, "cache": [torch.cat([state["cache"][l], h], 1) if state["cache"] else h for l, h in enumerate(inputs)]}

    def layer_memory(self, l, state):
        """Decoding: what layer l may attend to besides the block (every context's memory is its newest rows)."""
        return state["cache"][l] if state["cache"] else None

    def layer_context(self, l, h, state):
        memory = state["cache"][l] if state["cache"] else None
        mask, distance = self.window(memory.shape[1] if memory is not None else 0, h.shape[1])
        return {"memory": memory, "mask": mask, "distance": distance}

    def next_state(self, state, inputs, contexts):
        return {**state, "cache": _next_cache(state["cache"], inputs, self.span)}, None

    def window(self, cached, block, span=None):
        """Query i (position C + i) sees key j when 0 <= C + i - j < L: (mask, distance clamped to [0, L))."""
        L = self.span if span is None else span
        device = self._device

        def d():
            return (torch.arange(cached, cached + block, dtype=torch.int64, device=device).unsqueeze(1)
                    - torch.arange(0, cached + block, dtype=torch.int64, device=device))  # [M, C + M]
        mask = self._table(("window-mask", cached, block, L, device), lambda: (d() < 0) | (d() >= L))
        distance = self._table(("window-distance", cached, block, L, device), lambda: d().clamp(0, L - 1))
        return mask, distance


class AdaptiveSpan(nn.Module):
    """adaptiveSpans.l: spanRatio [K] (static z/L) or spanWeight [K, H], spanBias [K] (dynamic)."""

    def __init__(self, options, max_span, heads, d_model):
        super().__init__()
        self.options, self.max_span, self.heads = options, max_span, heads
        if options["dynamic"]:
            ratio = min(1 - 1e-3, max(1e-3, options["init"]))
            self.spanRatio = None
            self.spanWeight = nn.Parameter(torch.zeros(heads, d_model))
            self.spanBias = nn.Parameter(torch.full((heads,), math.log(ratio / (1 - ratio))))
        else:
            self.spanRatio = nn.Parameter(torch.full((heads,), float(options["init"])))
            self.spanWeight = self.spanBias = None

    def span(self, x):
        """Spans in tokens: static [1, K, 1]; dynamic [B, K, M] from the layer input x [B, M, H]."""
        if self.spanRatio is not None:
            return (self.spanRatio * self.max_span).view(1, self.heads, 1)
        return (F.linear(x, self.spanWeight, self.spanBias).sigmoid() * self.max_span).transpose(1, 2)

    def window_for(self, z):
        """ceil(max z) + R distances (at least 1), rounded up to trimStep, at most L."""
        biggest = float(z.detach().max())
        visible = max(1, math.ceil(biggest) + self.options["ramp"])
        step = self.options["trimStep"]
        return min(self.max_span, math.ceil(visible / step) * step)

    def mask(self, z, distance):
        """m_z(x) = clamp((R + z - x) / R, 0, 1): [B|1, K, M, Tk]."""
        ramp = self.options["ramp"]
        return ((z.unsqueeze(-1) - distance) + ramp).div(ramp).clamp(0, 1)

    def loss(self, z):
        return z.mean() * self.options["lossCoef"]

    def clamp(self):
        if self.spanRatio is not None:
            with torch.no_grad():
                self.spanRatio.clamp_(0, 1)


class AdaptiveSpanTransformer(SequentialTransformer):
    def __init__(self, config):
        super().__init__(config)
        self.adaptiveSpans = nn.ModuleList(AdaptiveSpan(config["adaptiveSpan"], self.span, config["heads"], config["dModel"])
                                           for _ in range(config["layers"]))
        self.trimming = True  # cut the keys no head can see (same outputs, less work), as Engram

    def layer_context(self, l, h, state):
        spans = self.adaptiveSpans[l]
        z = spans.span(h)
        visible = spans.window_for(z)
        cache = state["cache"][l] if state["cache"] else None
        cached = cache.shape[1] if cache is not None else 0
        M = h.shape[1]
        w = visible if self.trimming else self.span
        kept = min(cached, w - 1) if self.trimming else cached
        memory = cache.narrow(1, cached - kept, kept) if cache is not None and kept > 0 else None
        mask, distance = self.window(kept, M, w)
        x = self._table(("adaptive-distance", kept, M, w, z.dtype, z.device), lambda: distance.to(z.dtype))
        return {"memory": memory, "mask": mask, "distance": distance, "soft_mask": spans.mask(z, x),
                "aux_loss": spans.loss(z), "key_pe": self.keyPe.narrow(1, 0, w) if w < self.keyPe.shape[1] else self.keyPe}

    def after_optimizer_step(self):
        for s in self.adaptiveSpans:
            s.clamp()


class SpanPredictor(nn.Module):
    """spanPredictors.l: weight [1, H], bias [1]; e = L * sigmoid(x / preDiv . w + b)."""

    def __init__(self, d_model, max_span, init_fraction, pre_div):
        super().__init__()
        self.max_span, self.pre_div = max_span, pre_div
        self.weight = nn.Parameter(torch.zeros(1, d_model))
        self.bias = nn.Parameter(torch.zeros(1) + math.log(init_fraction / (1 - init_fraction)))

    def forward(self, x):
        return F.linear(x / self.pre_div, self.weight, self.bias).squeeze(-1).sigmoid() * self.max_span  # [B, N]


class ExpireSpanTransformer(SequentialTransformer):
    def __init__(self, config):
        o = config["expireSpan"]
        super().__init__(config, config["memLen"] + o["ramp"])
        self.options = o
        self.spanPredictors = nn.ModuleList(SpanPredictor(config["dModel"], self.span, o["initFraction"], o["preDiv"])
                                            for _ in range(config["layers"]))
        self._span_limit = None

    def init_state(self, batch):
        return {"cache": None, "age": None}

    def forward(self, tokens, state):
        self._span_limit = float(torch.rand(())) * self.span if self.training and self.options["noisy"] else None
        return super().forward(tokens, state)

    def open_segment(self, state, batch):
        self._span_limit = None  # decoding runs in evaluation: no noisy limit left from training
        return super().open_segment(state, batch)

    def state_after_prefix(self, state, inputs, rows):
        """The block's first `rows` rows join the memories at ages rows, ..., 1 (from the next row); the cache ages by rows."""
        B = inputs[0].shape[0]
        prefix_age = torch.arange(rows, 0, -1, dtype=torch.int64, device=inputs[0].device).unsqueeze(0).expand(B, rows)  # [B, rows]
        ages = [torch.cat([state["age"][l] + rows, prefix_age], 1) if state["age"] else prefix_age for l in range(len(inputs))]
        return {**super().state_after_prefix(state, inputs, rows), "age": ages}

    def predict_spans(self, l, x):
        inp = self.layers[l].ln1(x) if self.config["norm"] == "pre" else x
        return self.spanPredictors[l](inp)

    def layer_context(self, l, h, state):
        B, M = h.shape[:2]
        ramp, loss_coef = self.options["ramp"], self.options["lossCoef"]
        memory = state["cache"][l] if state["cache"] else None
        block_age = self._table(("block-age", M, h.device), lambda: -torch.arange(0, M, dtype=torch.int64, device=h.device)).expand(B, M)
        age = torch.cat([state["age"][l], block_age], 1) if memory is not None else block_age  # [B, N]
        spans = torch.cat([self.predict_spans(l, memory), self.predict_spans(l, h)], 1) if memory is not None else self.predict_spans(l, h)
        limited = spans if self._span_limit is None else spans.clamp(max=self._span_limit)
        # the masks (memory/expire-span.ts expireMask): distance t - i, remaining span, soft and hard masks
        offset = torch.arange(0, M, dtype=torch.int64, device=h.device).view(1, M, 1)
        distance = age.unsqueeze(1) + offset  # [B, M, N]
        remaining = limited.unsqueeze(1) - distance.to(limited.dtype)
        soft = (remaining / ramp + 1).clamp(0, 1)  # [B, M, N]
        blocked = (distance < 0) | (soft <= 0)
        aux = None
        if loss_coef > 0:
            on_ramp = (soft > 0) & (soft < 1)
            ramp_queries = on_ramp.sum(1, dtype=limited.dtype)  # [B, N]
            aux = (limited * ramp_queries).sum(-1).mean() * (loss_coef / (ramp * M))
        return {"memory": memory, "mask": blocked.unsqueeze(1), "distance": distance.clamp(0, self.key_positions - 1).unsqueeze(1),
                "soft_mask": soft.unsqueeze(1), "aux_loss": aux, "spans": spans, "age": age}

    def next_state(self, state, inputs, contexts):
        ramp, drop = self.options["ramp"], self.options["drop"]
        cache, ages = [], []
        for l, h in enumerate(inputs):
            B, M, H = h.shape
            ctx = contexts[l]
            memories = (torch.cat([ctx["memory"], h], 1) if ctx["memory"] is not None else h).detach()  # [B, N, H]
            age = ctx["age"] + M
            N = memories.shape[1]
            spans = ctx["spans"].detach()
            if drop:
                expired = (spans - (ctx["age"] + M).to(spans.dtype) + ramp) <= 0  # mask 0 at the next block's first query
                droppable = expired & (torch.arange(0, N, dtype=torch.int64, device=h.device) < N - M)
                count = int(droppable.sum(-1).min()) // M * M
                if count > 0:
                    rank = droppable.long().cumsum(-1)
                    dropped = droppable & (rank <= count)
                    key = dropped.long() * N + torch.arange(0, N, dtype=torch.int64, device=h.device)
                    kept = key.argsort(-1).narrow(1, 0, N - count)  # [B, N - count], in order
                    memories = memories.gather(1, kept.unsqueeze(-1).expand(B, N - count, H))
                    age = age.gather(1, kept)
            elif N > self.span + ramp - 1:
                seen = self.span + ramp - 1
                memories = memories.narrow(1, N - seen, seen)
                age = age.narrow(1, N - seen, seen)
            cache.append(memories)
            ages.append(age)
        return {"cache": cache, "age": ages}, None


class Compressor(nn.Module):
    """compressors.l: f_c of rate c; 'conv' holds weight [H, H, c] and bias [H]."""

    def __init__(self, fn, rate, d_model):
        super().__init__()
        self.fn, self.rate = fn, rate
        if fn == "conv":
            self.weight = nn.Parameter(torch.eye(d_model).unsqueeze(2).expand(d_model, d_model, rate).div(rate).contiguous())
            self.bias = nn.Parameter(torch.zeros(d_model))
        else:
            self.weight = self.bias = None

    def forward(self, old):
        """[B, n, H] -> [B, n/c, H]; slot s summarises memories s*c ... s*c + c - 1."""
        B, n, H = old.shape
        slots = n // self.rate
        if self.fn == "mean":
            return old.reshape(B, slots, self.rate, H).mean(2)
        if self.fn == "max":
            return old.reshape(B, slots, self.rate, H).amax(2)
        return F.conv1d(old.transpose(1, 2), self.weight, self.bias, stride=self.rate).transpose(1, 2)


class CompressiveTransformer(SequentialTransformer):
    def __init__(self, config):
        o = config["compressive"]
        super().__init__(config, config["memLen"] + o["compressedLen"])
        self.options = o
        self.window_length = self.key_positions
        self.compressors = nn.ModuleList(Compressor(o["fn"], o["rate"], config["dModel"]) for _ in range(config["layers"]))

    def init_state(self, batch):
        return {"cache": None, "compressed": None}

    def layer_context(self, l, h, state):
        parts = [s[l] for s in (state["compressed"], state["cache"]) if s]
        memory = None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # [B, S + R, H]
        mask, distance = self.window(memory.shape[1] if memory is not None else 0, h.shape[1], self.window_length)
        return {"memory": memory, "mask": mask, "distance": distance}

    def layer_memory(self, l, state):
        """Decoding: the compressed slots, then the raw memory (as layer_context reads them)."""
        parts = [s[l] for s in (state["compressed"], state["cache"]) if s]
        return None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # [B, S + R, H]

    def next_state(self, state, inputs, contexts):
        rate, compressed_len = self.options["rate"], self.options["compressedLen"]
        reconstruct = self.options["reconstruction"] and self.training and torch.is_grad_enabled()
        cache, compressed, aux = [], [], None
        for l, h in enumerate(inputs):
            # the raw FIFO (memory/compressive.ts advanceRawMemory): whole groups of c that fall out of L
            full = (torch.cat([state["cache"][l], h], 1) if state["cache"] else h).detach()
            n = full.shape[1]
            overflow = n - self.span
            count = overflow // rate * rate if overflow > 0 else 0
            cache.append(full.narrow(1, count, n - count) if count else full)
            previous = state["compressed"][l] if state["compressed"] else None
            if count == 0:
                if previous is not None:
                    compressed.append(previous.detach())
                continue
            old = full.narrow(1, 0, count)
            compressor = self.compressors[l]
            slots = compressor(old)  # [B, count/c, H]
            both = torch.cat([previous, slots.detach()], 1) if previous is not None else slots.detach()
            k = both.shape[1]
            compressed.append(both.narrow(1, k - compressed_len, compressed_len) if k > compressed_len else both)
            if reconstruct and compressor.fn == "conv":
                layer = self.layers[l]
                queries = h.detach()
                target = layer.frozen_attention(queries, old.detach())
                loss = F.mse_loss(layer.frozen_attention(queries, slots), target)
                aux = loss if aux is None else aux + loss
        return {"cache": cache, "compressed": compressed if compressed else None}, aux


# ---- feedback (src/models/feedback.ts) ---------------------------------------------------------------


class FeedbackTransformer(_Model):
    """Every step t merges the embedding and every layer's output into one memory m_t; each layer at
    step t attends to m_{t-L} .. m_{t-1} (keyPe column j - 1 at distance j). Runs token by token."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        self.span = c["memLen"]
        self.embed = TokenEmbedding(c["vocabSize"], c["dModel"], c["previousToken"])
        self.drop = nn.Dropout(c["dropout"])
        self.layers = nn.ModuleList(DecoderLayer(c["dModel"], c["heads"], c["dInner"], c["dropout"], c["norm"], relative=False)
                                    for _ in range(c["layers"]))
        self.keyPe = nn.Parameter(torch.randn(c["dModel"] // c["heads"], c["memLen"]))
        self.mergeLogits = nn.Parameter(torch.zeros(c["layers"] + 1))
        self.finalNorm = nn.LayerNorm(c["dModel"], eps=1e-5) if c["norm"] == "pre" else None
        self.head = linear(c["dModel"], c["vocabSize"])

    def init_state(self, batch):
        return {"memory": None}

    def _projection(self):
        """All layers' key/value projections as one map [N*2H, H] (pre-LN: W_l diag(gamma_l), bias W_l beta_l)."""
        kvs = [layer.attn.kv.weight for layer in self.layers]
        if self.config["norm"] == "post":
            return torch.cat(kvs, 0), None
        weight = torch.cat([kv * layer.ln1.weight for kv, layer in zip(kvs, self.layers)], 0)
        bias = torch.cat([kv.matmul(layer.ln1.bias) for kv, layer in zip(kvs, self.layers)], 0)
        return weight, bias

    def _project(self, memories, weight, bias):
        """Keys and values of memories [B, T, H] for every layer: [2, N, B, K, T, D]."""
        B, T, H = memories.shape
        N, K = len(self.layers), self.config["heads"]
        inp = F.layer_norm(memories, (H,), None, None, self.layers[0].ln1.eps) if bias is not None else memories
        return F.linear(inp, weight, bias).view(B, T, N, 2, K, H // K).permute(3, 2, 0, 4, 1, 5)

    def forward(self, tokens, state):
        B, M = tokens.shape
        H, L, N = self.config["dModel"], self.span, len(self.layers)
        carried = state["memory"]
        if carried is not None and carried.shape[1] > L:
            carried = carried.narrow(1, carried.shape[1] - L, L)
        embedded = self.drop(self.embed(tokens))  # [B, M, H]
        weights = self.mergeLogits.softmax(0)  # [N + 1]
        key_pe_oldest_first = self.keyPe.flip(1)  # [D, L]
        weight, bias = self._projection()
        C = carried.shape[1] if carried is not None else 0
        kv_carried = self._project(carried, weight, bias).contiguous() if carried is not None else None
        kv_block = None  # [2, N, B, K, F, D]
        outputs, memories = [], []
        for t in range(M):
            fresh = min(t, L)
            old = min(C, L - fresh)
            previous = kv_block
            positions = key_pe_oldest_first.narrow(1, L - old - fresh, old + fresh)  # [D, n]
            h = embedded.narrow(1, t, 1)
            representations = [h]
            for l, layer in enumerate(self.layers):
                window = []
                if old > 0:
                    window.append(tuple(kv_carried.select(1, l).narrow(3, C - old, old).unbind(0)))
                if previous is not None:
                    window.append(tuple(previous.select(1, l).unbind(0)))
                attend = (lambda query, window=window, layer=layer: layer.attn.attend_projected(query, window, positions)) if window else (lambda query: None)
                h = layer.around(h, attend)
                representations.append(h)
            memory = weights.matmul(torch.stack(representations).view(N + 1, B * H)).view(B, 1, H)
            kv = self._project(memory, weight, bias)  # [2, N, B, K, 1, D]
            kept = previous.narrow(4, 1, L - 1) if previous is not None and fresh == L else previous
            kv_block = torch.cat([kept, kv], 4) if kept is not None else kv.contiguous()
            outputs.append(h)
            memories.append(memory)
        out = torch.cat(outputs, 1)  # [B, M, H]
        logits = self.head(self.drop(self.finalNorm(out) if self.finalNorm is not None else out))
        full = torch.cat([carried, *memories] if carried is not None else memories, 1)
        n = full.shape[1]
        return logits, {"memory": full.narrow(1, n - L, L) if n > L else full}, None


# ---- incremental decoding (src/infer/decoder.ts, src/models/open-segment.ts, *-decoding.ts) ----------


class OpenSegment:
    """A segment decoded a few tokens at a time: feed(tokens [B, n]) -> logits [B, n, V] of those
    positions, as forward() over the whole segment gives them; commit() -> the state after the
    segment, as forward() gives it. Subclasses implement step(tokens, offset) and finish()."""

    def __init__(self, model, state, batch):
        self.model, self.state, self.batch = model, state, batch
        self.length = 0
        self._previous = None  # int64 [B, 1]: the last token fed (a previous-token embedding's input)

    def feed(self, tokens):
        if tokens.dim() != 2 or tokens.shape[0] != self.batch or tokens.shape[1] < 1:
            raise ValueError(f"tokens must be [{self.batch}, n >= 1], got {list(tokens.shape)}")
        logits = self.step(tokens, self.length)
        self._previous = tokens.narrow(1, tokens.shape[1] - 1, 1)
        self.length += tokens.shape[1]
        return logits

    def commit(self):
        return self.model.detach_state(self.finish())

    def embed(self, tokens):
        """The input embedding of tokens [B, n] continuing the segment (a previous-token embedding sees the token fed before them)."""
        embedding = self.model.embed
        if embedding.previous is None or self._previous is None:
            return embedding(tokens)
        return embedding(torch.cat([self._previous, tokens], 1)).narrow(1, 1, tokens.shape[1])  # [B, n, H]

    def head(self, h):
        """Logits [B, n, V] of the last layer's rows h [B, n, H]."""
        model = self.model
        return model.head(model.drop(model.finalNorm(h) if model.finalNorm is not None else h))


class TransformerOpenSegment(OpenSegment):
    """transformer, xl, mem-transformer, rmt: the layout [read | sequence | write] over keys
    [cache | read | sequence | write] computed in the order its masks allow. Opening projects each
    layer's cache rows to keys and values once and runs the read block (it sees only itself) through
    every layer; each feed runs the new sequence rows (causal: cache, read block, earlier rows); the
    commit runs the write block (it sees every key): its last outputs are RMT's next memory, and the
    sequence rows' layer inputs advance the XL cache."""

    def __init__(self, model, state, batch):
        super().__init__(model, state, batch)
        read = write = None
        if model.memory is not None:
            recurrent = model.memory.mode == "recurrent"
            read = state["memory"] if recurrent and state["memory"] is not None else model.memory.initial(batch)  # [B, r, H]
            write = read if recurrent else None
        self.write = write
        self.cached = state["cache"][0].shape[1] if state["cache"] else 0
        self.read = read.shape[1] if read is not None else 0
        self.caches = [KeyValueCache() for _ in model.layers]
        self.inputs = [[] for _ in model.layers] if model.config["memLen"] > 0 else None  # per layer, the sequence rows' inputs
        for l, layer in enumerate(model.layers):
            if state["cache"]:
                layer.cache_rows(state["cache"][l], self.caches[l])
        if self.read > 0:
            C, r = self.cached, self.read
            mask = segment_mask(C, r, 0, 0, read.device)  # [r, C + r]: the cache is not seen
            h = model.drop(read)
            for l, layer in enumerate(model.layers):
                h = layer.forward_cached(h, self.caches[l], mask, self.positions(C + r, r))

    def positions(self, keys, block=1):
        """For queries whose newest key is the keys-th: the causal table, or for a block of block > 1
        rows that sees the keys after its rows (read, write), the bidirectional table of that shape."""
        model = self.model
        if block > 1:
            H, dtype, device = model.config["dModel"], model._dtype, model._device
            r = model._table(("r", keys, keys + block - 1, dtype, device), lambda: sinusoidal_distances(keys - 1, keys + block - 1, H, dtype, device))
            return RelativePositions(model.u, model.v, r, True)
        return RelativePositions(model.u, model.v, model.causal_table(keys), False)

    def step(self, tokens, offset):
        model = self.model
        n = tokens.shape[1]
        before = self.cached + self.read + offset  # keys before the new rows
        mask = None if n == 1 else torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)
        mask = None if mask is None else torch.cat([torch.zeros(n, before, dtype=torch.bool, device=tokens.device), mask], 1)  # [n, before + n]
        positions = self.positions(before + n)
        h = model.drop(self.embed(tokens))  # [B, n, H]
        for l, layer in enumerate(model.layers):
            if self.inputs is not None:
                self.inputs[l].append(h)
            h = layer.forward_cached(h, self.caches[l], mask, positions)
        return self.head(h)  # [B, n, V]

    def finish(self):
        model = self.model
        memory = None
        if self.write is not None:
            w = self.write.shape[1]
            positions = self.positions(self.cached + self.read + self.length + w, w)
            h = model.drop(self.write)  # [B, w, H]
            for l, layer in enumerate(model.layers):
                h = layer.forward_cached(h, self.caches[l], None, positions)
            memory = model.finalNorm(h) if model.finalNorm is not None else h  # [B, w, H]
        cache = self.state["cache"]
        if self.inputs is not None:
            cache = _next_cache(cache, [torch.cat(rows, 1) for rows in self.inputs], model.config["memLen"])
        return {"cache": cache, "memory": memory}


class SequentialOpenSegment(OpenSegment):
    """sequential, adaptive-span, expire-span, compressive: rows [p, p + n) of a block attend as the
    first n rows of a block would whose memory also held the block's first p rows (the model's
    state_after_prefix builds that state; Expire-Span also gives them their ages), with the mask,
    distances and soft mask layer_context gives on it. Each layer keeps the keys and values of
    [layer_memory | the block so far] and attends to the newest ones the context uses. The commit
    runs layer_context over the whole block and next_state, as forward() does."""

    def __init__(self, model, state, batch):
        super().__init__(model, state, batch)
        self.caches = [KeyValueCache() for _ in model.layers]
        self.inputs = [[] for _ in model.layers]  # per layer, the block's layer inputs so far
        for l, layer in enumerate(model.layers):
            memory = model.layer_memory(l, state)
            if memory is not None:
                layer.cache_rows(memory, self.caches[l])

    def step(self, tokens, offset):
        model = self.model
        n = tokens.shape[1]
        state = model.state_after_prefix(self.state, [torch.cat(rows, 1) for rows in self.inputs], offset) if offset else self.state
        h = model.drop(self.embed(tokens))  # [B, n, H]
        for l, layer in enumerate(model.layers):
            ctx = model.layer_context(l, h, state)
            keys = (ctx["memory"].shape[1] if ctx["memory"] is not None else 0) + n
            key_pe = ctx.get("key_pe")
            positions = LearnedPositions(key_pe if key_pe is not None else model.keyPe, ctx["distance"])
            self.inputs[l].append(h)
            h = layer.forward_cached(h, self.caches[l], ctx["mask"], positions, ctx.get("soft_mask"), keys)
        return self.head(h)  # [B, n, V]

    def finish(self):
        model = self.model
        inputs = [torch.cat(rows, 1) for rows in self.inputs]  # [B, M, H] per layer
        contexts = [model.layer_context(l, h, self.state) for l, h in enumerate(inputs)]
        return model.next_state(self.state, inputs, contexts)[0]


class Decoder:
    """Engram's Decoder (src/infer/decoder.ts): a segment model over an unbounded token stream, fed
    a few tokens at a time. It keeps the state committed at the last segment boundary and the open
    segment; when the open segment reaches segment_length tokens it is committed, so boundaries fall
    every segment_length tokens from the start, exactly as in training and evaluation.
      cached     (default, for the kinds with open_segment: every kind but mem-bottleneck and
                 feedback) per-layer keys and values of the open segment: one position's work a token;
      recompute  forward() over the whole open segment for every feed.
    Runs without gradients and in evaluation mode. feed(tokens int64 [B, n]) -> logits [B, n, V]."""

    def __init__(self, model, segment_length, batch=1, cached=True):
        if not (isinstance(segment_length, int) and segment_length > 0):
            raise ValueError(f"segment_length must be a positive integer (got {segment_length!r})")
        self.model, self.segment_length, self.batch = model, segment_length, batch
        self.cached = cached and hasattr(model, "open_segment")
        self.state = None
        self.segment = None  # the cached path's open segment
        self.open = None  # recompute path: int64 [B, m], the open segment's tokens
        self.open_length = 0
        self.position = 0

    def feed(self, tokens):
        if tokens.dim() != 2 or tokens.shape[0] != self.batch or tokens.shape[1] < 1:
            raise ValueError(f"tokens must be [{self.batch}, n >= 1], got {list(tokens.shape)}")
        training = self.model.training
        self.model.eval()
        pieces = []
        try:
            with torch.no_grad():
                start, n = 0, tokens.shape[1]
                while start < n:
                    take = min(n - start, self.segment_length - self.open_length)
                    chunk = tokens.narrow(1, start, take)
                    pieces.append(self._feed_cached(chunk) if self.cached else self._recompute(chunk))
                    start += take
                    self.position += take
        finally:
            self.model.train(training)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)

    def _boundary(self, state):
        self.state, self.segment, self.open, self.open_length = state, None, None, 0

    def _feed_cached(self, chunk):
        if self.state is None:
            self.state = self.model.init_state(self.batch)
        if self.segment is None:
            self.segment = self.model.open_segment(self.state, self.batch)
        logits = self.segment.feed(chunk)
        self.open_length += chunk.shape[1]
        if self.open_length == self.segment_length:
            self._boundary(self.segment.commit())
        return logits

    def _recompute(self, chunk):
        take = chunk.shape[1]
        self.open = chunk if self.open is None else torch.cat([self.open, chunk], 1)  # [B, m]
        self.open_length = m = self.open.shape[1]
        logits, state, _ = self.model(self.open, self.state if self.state is not None else self.model.init_state(self.batch))
        if m == self.segment_length:
            self._boundary(self.model.detach_state(state))
        return logits.narrow(1, m - take, take)


def greedy(model, segment_length, prompt, count, cached=True):
    """Greedy decoding, batch 1: feeds prompt (a list of ids), then `count` tokens, each the argmax
    of the logits before it. Returns (the generated ids, their logits [count, V])."""
    decoder = Decoder(model, segment_length, cached=cached)
    device = model.head.weight.device
    logits = decoder.feed(torch.tensor([prompt], dtype=torch.int64, device=device))[0, -1]  # [V]
    ids, rows = [], []
    for i in range(count):
        if i > 0:
            logits = decoder.feed(torch.tensor([[ids[-1]]], dtype=torch.int64, device=device))[0, 0]
        rows.append(logits)
        ids.append(int(logits.argmax()))
    return ids, torch.stack(rows)


_BUILDERS = {
    "transformer": SegmentTransformer, "xl": SegmentTransformer, "mem-transformer": SegmentTransformer, "rmt": SegmentTransformer,
    "mem-bottleneck": MemBottleneck, "sequential": SequentialTransformer, "adaptive-span": AdaptiveSpanTransformer,
    "expire-span": ExpireSpanTransformer, "compressive": CompressiveTransformer, "feedback": FeedbackTransformer,
}


def build_model(config):
    """The model a config (config.json's `model` section) describes, with freshly initialised weights."""
    c = resolve_config(config)
    return _BUILDERS[c["kind"]](c)


# ---- model folders (src/train/model-folder.ts, src/tensor/serialize.ts) -----------------------------

_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file, read with json, struct and torch.frombuffer."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, which this reader does not know")
        begin, end = info["data_offsets"]
        shape = info["shape"]
        if end == begin:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            tensors[name] = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype).reshape(shape)
    return tensors, metadata


def load_model(folder, dtype=None, device="cpu"):
    """A model folder's model (eval mode): config.json + model.safetensors, the weights' SHA-256 checked."""
    config_path = os.path.join(folder, "config.json")
    weights_path = os.path.join(folder, "model.safetensors")
    with open(config_path, "r", encoding="utf-8") as f:
        folder_config = json.load(f)
    if folder_config.get("format") != "engram-model":
        raise ValueError(f"{config_path} is not an Engram model config (format {folder_config.get('format')!r})")
    with open(weights_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if folder_config.get("weightsSha256") not in (None, digest):
        raise ValueError(f"{weights_path} is corrupt: its SHA-256 differs from the one in config.json")
    tensors, metadata = read_safetensors(weights_path)
    if metadata.get("format") != "engram-model":
        raise ValueError(f"{weights_path} is not an Engram model's weights (format {metadata.get('format')!r})")
    saved = json.loads(metadata.get("modelConfig", "null")) or {}
    differ = sorted(k for k in set(saved) | set(folder_config["model"]) if saved.get(k) != folder_config["model"].get(k))
    if differ:
        raise ValueError(f"{config_path} does not describe {weights_path}: they differ on model {', '.join(differ[:3])}")
    if dtype is None:
        floats = [t.dtype for t in tensors.values() if t.is_floating_point()]
        dtype = floats[0] if floats else torch.float32
    model = build_model(folder_config["model"]).to(dtype)
    model.load_state_dict(tensors, strict=True)
    model.to(device)
    model.eval()
    model.folder_config = folder_config
    model.vocab = folder_config.get("vocab")
    model.segment_length = folder_config.get("segmentLength")
    return model


def encode(vocab, text):
    """Engram's CharVocab: the vocabulary string holds ids 1.. in order; unseen characters are id 0."""
    ids = {ch: i + 1 for i, ch in enumerate(vocab)}
    return torch.tensor([ids.get(ch, 0) for ch in text], dtype=torch.int64)


def bits_per_character(model, text, segment_length=None):
    """Bits per character of text (each character predicted from the ones before it), segment by segment with the state carried."""
    ids = encode(model.vocab, text).to(model.head.weight.device)
    if ids.numel() < 2:
        raise ValueError("the text needs at least 2 characters")
    M = segment_length or model.segment_length or 64
    inputs, targets = ids[:-1], ids[1:]
    state = model.init_state(1)
    total = 0.0
    with torch.no_grad():
        for start in range(0, inputs.numel(), M):
            x = inputs[start:start + M].unsqueeze(0)
            logits, state, _ = model(x, state)
            total += float(F.cross_entropy(logits[0].double(), targets[start:start + M], reduction="sum"))
    return total / targets.numel() / math.log(2)


def _main(argv):
    import argparse
    p = argparse.ArgumentParser(description="Load an Engram model folder in PyTorch and run it.")
    p.add_argument("model_dir")
    p.add_argument("--text", default=None, help="text to score (a language model): prints its bits per character")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None)
    args = p.parse_args(argv)
    model = load_model(args.model_dir, dtype=getattr(torch, args.dtype) if args.dtype else None)
    kind = model.config["kind"]
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model_dir}: kind {kind}, {params:,} parameters, torch {torch.__version__}")
    if model.vocab is not None:
        text = args.text if args.text is not None else "The quick brown fox jumps over the lazy dog. " * 4
        print(f"bits per character: {bits_per_character(model, text):.4f} over {len(text)} characters")
    elif args.text is not None:
        print("--text: this is a task model (no character vocabulary); nothing to score")


if __name__ == "__main__":
    _main(sys.argv[1:])
