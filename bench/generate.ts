// Generation benchmark: batch-1 tokens/s of the Decoder's cached path (incremental decoding,
// SegmentModel.openSegment) and of its recompute path (forward over the open segment for every
// token), for xl, rmt and expire-span, greedy, from one prompt token. Not a test.
//
//   npm run bench:generate [-- --sizes small,128] [--tokens N] [--warmup W] [--kinds xl,rmt,expire-span] [--threads T]
//
// Sizes:
//   small  2 layers, H 64, 2 heads, FFN 128, segment 32 (xl memLen 32, rmt 4 memory tokens, expire-span L 32)
//   128    SPEC §10's 4 layers, H 256, 4 heads, FFN 1024, segment 128 (xl memLen 128, rmt 16 memory
//          tokens, expire-span L 128)
// Tokens: N generated tokens (default 3 segments' worth) after a one-token prompt, so that boundaries
// (commits) are part of the time, after W untimed tokens per path (default 8). Both paths generate the same greedy tokens (checked: sameTokens).
//
// The last line printed is one JSON object:
//   {"threads", "tokens", "results": {"<size>": {"<kind>": {"cached", "recompute", "ratio", "sameTokens"}}}}
// cached and recompute in tokens/s; ratio = cached / recompute.
import { availableParallelism } from 'node:os';
import {
  createModel, Decoder, getNumThreads, manualSeed, setNumThreads, tidy, type ModelConfigInput, type SegmentModel,
} from '../src/index.js';

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const sizes = (argValue('--sizes') ?? 'small,128').split(',');
const kinds = (argValue('--kinds') ?? 'xl,rmt,expire-span').split(',');
const threads = Number(argValue('--threads') ?? Math.min(2, availableParallelism()));
const tokensArg = argValue('--tokens');
const warmup = Math.max(1, Number(argValue('--warmup') ?? 8));

interface Size { layers: number; dModel: number; heads: number; dInner: number; segment: number; memTokens: number }
const SIZES: Record<string, Size> = {
  small: { layers: 2, dModel: 64, heads: 2, dInner: 128, segment: 32, memTokens: 4 },
  128: { layers: 4, dModel: 256, heads: 4, dInner: 1024, segment: 128, memTokens: 16 },
};
const VOCAB = 256;

function config(kind: string, s: Size): ModelConfigInput {
  const base = { vocabSize: VOCAB, layers: s.layers, dModel: s.dModel, heads: s.heads, dInner: s.dInner, dropout: 0 };
  switch (kind) {
    case 'xl': return { ...base, kind: 'xl', memLen: s.segment };
    case 'rmt': return { ...base, kind: 'rmt', numMemTokens: s.memTokens };
    case 'expire-span': return { ...base, kind: 'expire-span', memLen: s.segment };
    default: throw new Error(`unknown kind '${kind}'; use xl, rmt or expire-span`);
  }
}

/** Greedy generation of n tokens after token 1: tokens/s and the tokens. */
function generate(model: SegmentModel, segment: number, cached: boolean, n: number): { perSecond: number; tokens: number[] } {
  const decoder = new Decoder(model, segment, { cached });
  const tokens: number[] = [];
  try {
    const start = process.hrtime.bigint();
    let next = 1;
    for (let i = 0; i < n; i++) {
      next = tidy(() => {
        const logits = decoder.feed([[next]]).view(-1);
        return logits.argmax(0).item();
      });
      tokens.push(next);
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { perSecond: n / seconds, tokens };
  } finally {
    decoder.dispose();
  }
}

setNumThreads(threads);
const results: Record<string, Record<string, { cached: number; recompute: number; ratio: number; sameTokens: boolean }>> = {};
let tokenCount = 0;
for (const sizeName of sizes) {
  const size = SIZES[sizeName];
  if (!size) throw new Error(`unknown size '${sizeName}'; use small or 128`);
  const n = Number(tokensArg ?? 3 * size.segment);
  tokenCount = n;
  results[sizeName] = {};
  for (const kind of kinds) {
    manualSeed(0);
    const model = createModel(config(kind, size)).eval();
    try {
      // Warm-up (untimed): the first runs of a shape allocate and initialise what later ones reuse.
      generate(model, size.segment, true, warmup);
      generate(model, size.segment, false, warmup);
      const cached = generate(model, size.segment, true, n);
      const recompute = generate(model, size.segment, false, n);
      const row = {
        cached: Math.round(cached.perSecond * 10) / 10,
        recompute: Math.round(recompute.perSecond * 10) / 10,
        ratio: Math.round((cached.perSecond / recompute.perSecond) * 100) / 100,
        sameTokens: cached.tokens.every((t, i) => t === recompute.tokens[i]),
      };
      results[sizeName]![kind] = row;
      console.log(`${sizeName.padEnd(6)} ${kind.padEnd(12)} cached ${String(row.cached).padStart(9)} tok/s   recompute ${String(row.recompute).padStart(9)} tok/s   x${row.ratio}${row.sameTokens ? '' : '   (tokens differ!)'}`);
    } finally {
      model.dispose();
    }
  }
}
console.log(JSON.stringify({ threads: getNumThreads(), tokens: tokenCount, results }));
