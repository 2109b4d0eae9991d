"""PyTorch's side of `npm run bench:generate`: greedy key/value-cached decoding of a model folder
Engram wrote (same weights), with the PyTorch twin's Decoder (python/engram_torch.py, the one
PyTorch definition of the models in the repository), batch 1, from one prompt token, as
generate.ts times Engram's Decoder.

    python3 bench/generate_twin.py --serve [--threads N]

--serve answers one JSON command per stdin line (generate.ts alternates with its own measurements):
  {"op": "load", "dir": path, "segment": M}        -> {"cached": bool, "params": n}
  {"op": "generate", "tokens": n, "first": id}     -> {"seconds", "tokens": [ids]} (greedy, a fresh stream)
  {"op": "free"}, {"op": "quit"}
"""
import argparse
import os
import sys
import time

from torch_worker import serve as serve_commands  # sets OMP_WAIT_POLICY before torch loads

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import engram_torch  # noqa: E402


class Server:
    """The --serve commands; one model at a time."""

    def __init__(self):
        self.model = None
        self.segment = None

    def load(self, cmd):
        self.model = engram_torch.load_model(cmd["dir"])
        self.segment = int(cmd["segment"])
        return {"cached": engram_torch.Decoder(self.model, self.segment).cached,
                "params": sum(p.numel() for p in self.model.parameters())}

    def generate(self, cmd):
        # the same loop as generate.ts: feed a token, take the argmax of its logits, n times
        decoder = engram_torch.Decoder(self.model, self.segment)
        token = int(cmd.get("first", 1))
        ids = []
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(int(cmd["tokens"])):
                logits = decoder.feed(torch.tensor([[token]], dtype=torch.int64))
                token = int(logits.view(-1).argmax())
                ids.append(token)
        return {"seconds": time.perf_counter() - start, "tokens": ids}

    def free(self, cmd):
        self.model = None
        return {"ok": True}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--serve", action="store_true", required=True)
    p.add_argument("--threads", type=int, default=0, help="ATen intra-op threads (0: PyTorch's default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    server = Server()
    serve_commands({"load": server.load, "generate": server.generate, "free": server.free})


if __name__ == "__main__":
    main()
