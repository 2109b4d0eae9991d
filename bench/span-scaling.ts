// Span scaling benchmark (issue 12, item 3): training tokens/s of Expire-Span with short spans against
// Transformer-XL as the maximum memory L grows. Expire-Span's cost follows the memories it keeps,
// not L, so with spans that stay short its speed should not move with L; Transformer-XL attends
// over all L cached positions.
//
//   npm run bench:spans [-- --lengths 512,2048,8192] [--batch B] [--steps S] [--warmup W] [--threads N] [--models expire-span,xl]
//
// Configuration: SPEC §10's model (4 layers, H 256, 4 heads, FFN 1024, segment 128), batch 8 by
// default (XL at L 8192 holds [B, K, 128, 8320] attention tensors per layer), Adam (lr 1e-3), one
// segment per step, the state carried (detached), as bench:models.
//   expire-span  L, ramp 32, every span p·L = 64 tokens (initFraction 64 / L; w = 0 at init and a
//                few steps do not move it far): the spans converged short, whatever L
//   xl           memLen L
// XL starts from a full cache of L positions, Expire-Span from none (its cache reaches its steady
// size within two blocks); warm-up steps, then tokens/s = B·M·steps / seconds; memories: keys attended besides the block, mean over
// layers (memoryFootprint) at the end.
//
// The last line printed is one JSON object: {"lengths": [...], "models": {name: {L: tokens/s}}, "memories": {...}}.
import { manualSeed, randn, setNumThreads, type ModelConfig } from '../src/index.js';
import { checkBenchArgs } from './args.js';
import { EngramBench } from './engram-bench.js';

checkBenchArgs(import.meta.url);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const lengths = (argValue('--lengths') ?? '512,2048,8192').split(',').map(Number);
const BATCH = Number(argValue('--batch') ?? 8);
const SEGMENT = 128;
const steps = Number(argValue('--steps') ?? 3);
const warmup = Number(argValue('--warmup') ?? 2);
const models = (argValue('--models') ?? 'expire-span,xl').split(',');
setNumThreads(Number(argValue('--threads') ?? 2));

const BASE = { vocabSize: 256, layers: 4, dModel: 256, heads: 4, dInner: 1024, dropout: 0, norm: 'post' as const, previousToken: false, numMemTokens: 0, adaptiveSpan: null, expireSpan: null, compressive: null };
const configFor = (name: string, L: number): ModelConfig => (name === 'xl'
  ? { ...BASE, kind: 'xl', memLen: L }
  : { ...BASE, kind: 'expire-span', memLen: L, expireSpan: { ramp: 32, initFraction: 64 / L, preDiv: 1, lossCoef: 1e-6, noisy: false, drop: true } }) as ModelConfig;

/** Tokens/s of `name` at maximum memory L (the trainer's step, bench/engram-bench.ts), and the memories attended at the end. */
function measure(name: string, L: number): { tokensPerSec: number; memories: number } {
  manualSeed(0);
  // XL starts from a full cache (random layer inputs: the values do not change the cost), not from
  // L / M blocks of filling it
  const initial = name === 'xl' ? { cache: Array.from({ length: BASE.layers }, () => randn([BATCH, L, BASE.dModel]).keep()), memory: null } : null;
  const bench = new EngramBench({ config: configFor(name, L), segments: 1, bptt: 0, carry: true, batch: BATCH, segmentLength: SEGMENT, pool: 1, initial });
  try {
    bench.train(warmup);
    const { seconds } = bench.train(steps);
    return { tokensPerSec: (bench.tokensPerStep * steps) / seconds, memories: bench.model.memoryFootprint?.() ?? 0 };
  } finally {
    bench.dispose();
  }
}

const result: { lengths: number[]; models: Record<string, Record<number, number>>; memories: Record<string, Record<number, number>> } = { lengths, models: {}, memories: {} };
console.log(`span scaling: 4 layers, H 256, 4 heads, segment ${SEGMENT}, batch ${BATCH}; ${steps} timed steps after warm-up`);
for (const name of models) {
  result.models[name] = {};
  result.memories[name] = {};
  for (const L of lengths) {
    const r = measure(name, L);
    result.models[name]![L] = Math.round(r.tokensPerSec);
    result.memories[name]![L] = Math.round(r.memories);
    console.log(`  ${name.padEnd(12)} L ${String(L).padStart(5)}: ${Math.round(r.tokensPerSec).toLocaleString('en-US').padStart(6)} tokens/s, ${Math.round(r.memories)} memories attended`);
  }
}
console.log(JSON.stringify(result));
