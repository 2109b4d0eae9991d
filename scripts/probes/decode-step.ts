// The cached decoding step at SPEC §10's size (4 layers, H 256, 4 heads, FFN 1024, vocabulary 256,
// segment 128; xl and expire-span memory 128, rmt 16 memory tokens), batch 1, greedy, one token fed
// at a time: ms per token over --tokens tokens after --warmup tokens (default 3 segments; with 0 the
// first rounds show V8 compiling the decoding code on background threads), the fastest of --rounds
// rounds; then the attention of one row alone, F.attendRow against the same maths composed
// from ATen ops ([1, 4, 1, 64] over 256 keys, µs per call, fastest of 3 × 5,000 calls).
// --profile: libtorch's profiler around one round, ATen ops per token (recording adds a few µs per
// op, so the profiled round is slower than the timed ones).
// --calls: calls from JavaScript into the addon per token over one round, by function (each costs
// microseconds of Node-API, handle and scope bookkeeping beyond its ATen work).
//
//   node dist/scripts/probes/decode-step.js [--kinds xl,rmt,expire-span] [--tokens 2000] [--rounds 3] [--warmup 384] [--profile] [--calls]
import { createModel, Decoder, F, formatProfile, noGrad, profile, randn, tidy, type ModelConfigInput } from '../../src/index.js';
import { native } from '../../src/tensor/native.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const kinds = arg('--kinds', 'xl,rmt,expire-span').split(',');
const tokens = Number(arg('--tokens', '2000'));
const rounds = Number(arg('--rounds', '3'));
const warmup = Number(arg('--warmup', '384'));
const profiled = process.argv.includes('--profile');
const counted = process.argv.includes('--calls');
const segment = 128;
const base = { vocabSize: 256, layers: 4, dModel: 256, heads: 4, dInner: 1024, dropout: 0 };
const configs: Record<string, ModelConfigInput> = {
  xl: { ...base, kind: 'xl', memLen: 128 },
  rmt: { ...base, kind: 'rmt', numMemTokens: 16 },
  'expire-span': { ...base, kind: 'expire-span', memLen: 128 },
};

/** Feeds n greedy tokens one at a time through a cached Decoder; ms per token. */
function decode(model: ReturnType<typeof createModel>, n: number): number {
  const decoder = new Decoder(model, segment, { cached: true });
  try {
    let next = 1;
    const start = performance.now();
    for (let i = 0; i < n; i++) next = tidy(() => decoder.feed([[next]]).view(-1).argmax(0).item() as number);
    return (performance.now() - start) / n;
  } finally {
    decoder.dispose();
  }
}

/** Calls into the addon while fn runs, by function name (each function of `native` wrapped meanwhile). */
function countNativeCalls(fn: () => void): Map<string, number> {
  const calls = new Map<string, number>();
  const table = native as unknown as Record<string, unknown>;
  const originals = Object.entries(table).filter((e): e is [string, (...a: unknown[]) => unknown] => typeof e[1] === 'function');
  for (const [name, f] of originals) table[name] = (...a: unknown[]) => { calls.set(name, (calls.get(name) ?? 0) + 1); return f(...a); };
  try {
    fn();
  } finally {
    for (const [name, f] of originals) table[name] = f;
  }
  return calls;
}

for (const kind of kinds) {
  const config = configs[kind];
  if (!config) throw new Error(`unknown kind '${kind}' in --kinds; use ${Object.keys(configs).join(', ')}`);
  const model = createModel(config).eval();
  if (warmup > 0) decode(model, warmup);
  const times = Array.from({ length: rounds }, () => decode(model, tokens));
  console.log(`${kind.padEnd(12)} cached step ${Math.min(...times).toFixed(3)} ms per token (rounds: ${times.map((t) => t.toFixed(3)).join(', ')})`);
  if (profiled) {
    const { rows } = profile(() => decode(model, tokens));
    console.log(`profiled round, per token (calls and ms divided by ${tokens}):`);
    console.log(formatProfile(rows.map((r) => ({ ...r, calls: Math.round((r.calls / tokens) * 10) / 10, selfUs: r.selfUs / tokens, totalUs: r.totalUs / tokens })), 15));
  }
  if (counted) {
    const calls = countNativeCalls(() => decode(model, tokens));
    const total = [...calls.values()].reduce((a, b) => a + b, 0);
    const top = [...calls].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${(n / tokens).toFixed(2)}`);
    console.log(`native calls per token: ${(total / tokens).toFixed(1)} (${top.join(', ')})`);
  }
  model.dispose();
}

noGrad(() => {
  const [K, D, Tk] = [4, 64, 256];
  const [q, k, v, P] = [randn([1, K, 1, D]), randn([1, K, Tk, D]), randn([1, K, Tk, D]), randn([K, D, Tk])];
  const [u, w] = [randn([K, D]), randn([K, D])];
  const scale = 1 / Math.sqrt(D);
  const ways: [string, () => unknown][] = [
    ['F.attendRow', () => F.attendRow(q, k, v, { contentBias: u, positionKeys: P, positionBias: w }, scale)],
    ['composed (3 batched products)', () => q.add(u.unsqueeze(1)).matmul(k.mT).add(q.add(w.unsqueeze(1)).matmul(P)).mul(scale).softmax(-1).matmul(v).transpose(1, 2).flatten(2)],
  ];
  for (const [name, fn] of ways) {
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const start = performance.now();
      for (let i = 0; i < 5000; i++) tidy(fn);
      best = Math.min(best, ((performance.now() - start) / 5000) * 1000);
    }
    console.log(`one row's attention, [1, ${K}, 1, ${D}] over ${Tk} keys with relative positions: ${name} ${best.toFixed(1)} µs`);
  }
});
