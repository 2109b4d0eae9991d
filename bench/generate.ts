// Generation benchmark (not a test), three parts:
//
//   decode  batch-1 tokens/s of greedy decoding for xl, rmt and expire-span: Engram's Decoder on its
//           cached path (incremental decoding, SegmentModel.openSegment), on its recompute path
//           (forward over the open segment for every token), and the PyTorch twin's key/value-cached
//           Decoder (python/engram_torch.py, bench/generate_twin.py) on the same weights (a model
//           folder written by saveModel), in a /usr/bin/python3 child with the same ATen thread count,
//           measured in turn, never concurrently. All three must produce the same greedy tokens.
//   server  requests/s and p50/p99 latency of `engram serve` (a child process on 127.0.0.1, the
//           CLI as users run it) for a fixed small request, POST /v1/generate {prompt, maxTokens 16,
//           temperature 0}, at 1, 4 and 16 concurrent clients, each sending its next request when
//           the last one is answered (closed loop). The load generator is Node's own fetch: every
//           request costs milliseconds of model work against tens of microseconds of client work,
//           the latency of each request is measured directly and sorted, and it needs no new
//           dependency (the server answers one request at a time per model, so requests/s stays
//           flat and latency grows with the clients).
//   rss     resident memory of this process while score() reads >= 10M tokens of generated text
//           from a stream (64 KiB pieces, never whole) through an xl model of the small dims with
//           segment and memory 128 (fewer segments than 32 make it quicker): sampled every
//           --rss-every tokens; growth is measured from the end of the warm-up (--rss-warmup tokens).
//
//   npm run bench:generate [-- --parts decode,server,rss] [--sizes small,128] [--kinds xl,rmt,expire-span]
//        [--tokens N] [--warmup W] [--rounds R] [--threads T] [--no-torch] [--no-install]
//        [--clients 1,4,16] [--requests R] [--score-tokens S] [--rss-every E] [--rss-warmup W]
//   quick run: --sizes small --tokens 64 --requests 8 --score-tokens 200000 --rss-warmup 50000
//
// Sizes (decode):
//   small  2 layers, H 64, 2 heads, FFN 128, segment 32 (xl memLen 32, rmt 4 memory tokens, expire-span L 32)
//   128    SPEC §10's 4 layers, H 256, 4 heads, FFN 1024, segment 128 (xl memLen 128, rmt 16 memory
//          tokens, expire-span L 128)
// Decode tokens: N generated tokens (default 3 segments' worth) after a one-token prompt, so that
// boundaries (commits) are part of the time, after W untimed tokens per path (default N: V8 compiles
// the decoding JavaScript on background threads over the first several hundred tokens, which on
// 2 cores took up to half the cached path's time in its first rounds; with node --no-opt they
// ran at the later rounds' speed); R rounds (default 5) of the three paths in turn, each tokens/s
// figure the median of its rounds, each ratio the median of the rounds' own ratios.
// The server part serves the small xl model with a 255-character vocabulary (V = 256, as in decode).
//
// Targets: cached >= 10x recompute at segment 128, cached >= 1.25x PyTorch's cached decode, RSS
// growth <= 20 MB over >= 10M scored tokens. The last line printed is one JSON object:
//   {"threads", "torch", "decode": {"<size>": {"<kind>": {"cached", "recompute", "torch", "ratio",
//    "ratioTorch", "sameTokens"}}}, "server": {"<clients>": {"requestsPerSec", "p50Ms", "p99Ms",
//    "errors"}}, "rss": {"tokens", "tokensPerSec", "startMB", "endMB", "peakMB", "growthMB", "peakGrowthMB"},
//    "targets": {"cachedVsRecompute128", "cachedVsTorch", "rssGrowth"}}
// decode figures in tokens/s; ratio = cached / recompute, ratioTorch = cached / torch (null without
// PyTorch). A target is null when its part did not run (or PyTorch is missing).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  CharVocab, createModel, Decoder, getNumThreads, manualSeed, resolveTrainConfig, saveModel, score, setNumThreads, tidy,
  type ModelConfigInput, type SegmentModel,
} from '../src/index.js';
import { askOrDrop, startTorchWorker, threadSettings, type TorchWorker } from './torch-worker.js';
import { checkBenchArgs } from './args.js';

checkBenchArgs(import.meta.url);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function positive(name: string, fallback: number): number {
  const raw = argValue(name);
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer (got ${raw}); e.g. ${name} ${fallback}`);
  return n;
}
const PARTS = ['decode', 'server', 'rss'];
const parts = (argValue('--parts') ?? PARTS.join(',')).split(',');
for (const p of parts) if (!PARTS.includes(p)) throw new Error(`unknown part '${p}' in --parts; use ${PARTS.join(', ')}`);
const sizes = (argValue('--sizes') ?? 'small,128').split(',');
const kinds = (argValue('--kinds') ?? 'xl,rmt,expire-span').split(',');
const threads = positive('--threads', Math.min(2, availableParallelism()));
const tokensArg = argValue('--tokens') === undefined ? undefined : positive('--tokens', 96);
const warmupArg = argValue('--warmup') === undefined ? undefined : positive('--warmup', 8); // default: the round's N tokens
const rounds = positive('--rounds', 5);
const wantTorch = !process.argv.includes('--no-torch');
const mayInstall = !process.argv.includes('--no-install');
const clientCounts = (argValue('--clients') ?? '1,4,16').split(',').map((c) => {
  const n = Number(c);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--clients takes positive integers separated by commas (got '${c}'); e.g. --clients 1,4,16`);
  return n;
});
const requestsPerLevel = positive('--requests', 64);
const scoreTokens = positive('--score-tokens', 10_000_000);
const rssEvery = positive('--rss-every', 250_000);
const rssWarmup = positive('--rss-warmup', 1_000_000);
if (rssWarmup >= scoreTokens) throw new Error(`--rss-warmup (${rssWarmup}) must be below --score-tokens (${scoreTokens})`);

interface Size { layers: number; dModel: number; heads: number; dInner: number; segment: number; memTokens: number }
const SIZES: Record<string, Size> = {
  small: { layers: 2, dModel: 64, heads: 2, dInner: 128, segment: 32, memTokens: 4 },
  128: { layers: 4, dModel: 256, heads: 4, dInner: 1024, segment: 128, memTokens: 16 },
};
for (const s of sizes) if (!SIZES[s]) throw new Error(`unknown size '${s}' in --sizes; use small or 128`);
/** A 255-character vocabulary ('\n', then U+0020 ...): with the unknown id, V = 256 token ids. */
const VOCAB = '\n' + Array.from({ length: 254 }, (_, i) => String.fromCharCode(32 + i)).join('');
const V = VOCAB.length + 1;

function config(kind: string, s: Size): ModelConfigInput {
  const base = { vocabSize: V, layers: s.layers, dModel: s.dModel, heads: s.heads, dInner: s.dInner, dropout: 0 };
  switch (kind) {
    case 'xl': return { ...base, kind: 'xl', memLen: s.segment };
    case 'rmt': return { ...base, kind: 'rmt', numMemTokens: s.memTokens };
    case 'expire-span': return { ...base, kind: 'expire-span', memLen: s.segment };
    default: throw new Error(`unknown kind '${kind}' in --kinds; use xl, rmt or expire-span`);
  }
}

/** Writes model as a model folder (a character language model of segment length M) that the twin and `engram serve` load. */
async function saveFolder(model: SegmentModel, input: ModelConfigInput, dir: string, segment: number): Promise<void> {
  const { vocabSize: _, ...modelInput } = input; // the training config takes it from the data
  const training = resolveTrainConfig({ model: modelInput, data: { kind: 'lm', corpus: 'generated.txt', segmentLength: segment } });
  await saveModel(model, dir, { training, vocab: VOCAB });
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const work = mkdtempSync(join(tmpdir(), 'engram-bench-generate-'));
setNumThreads(threads);
console.log(`generate bench: ${availableParallelism()} cores, Node ${process.version}; ${threadSettings(threads)}`);

// ---- decode ------------------------------------------------------------------------------------------

interface DecodeRow { cached: number; recompute: number; torch: number | null; ratio: number; ratioTorch: number | null; sameTokens: boolean }
const decode: Record<string, Record<string, DecodeRow>> = {};
let torchNote: string | null = null;

async function runDecode(): Promise<void> {
  const started = await startTorchWorker('generate_twin.py', { wantTorch, mayInstall, threads });
  let worker: TorchWorker | null = started.worker;
  torchNote = started.note;
  console.log(torchNote);
  const askTorch = (cmd: Record<string, unknown>) => askOrDrop(worker, cmd, () => { worker = null; });
  try {
    for (const sizeName of sizes) {
      const size = SIZES[sizeName]!;
      const n = tokensArg ?? 3 * size.segment;
      decode[sizeName] = {};
      for (const kind of kinds) {
        manualSeed(0);
        const input = config(kind, size);
        const model = createModel(input).eval();
        try {
          const dir = join(work, `${sizeName}-${kind}`);
          await saveFolder(model, input, dir, size.segment);
          const loaded = await askTorch({ op: 'load', dir, segment: size.segment });
          if (loaded && loaded.cached !== true) throw new Error(`the twin decodes ${kind} on its recompute path: it should have open_segment`);
          // Warm-up (untimed): the first runs of a shape allocate and initialise what later ones reuse.
          const warmup = warmupArg ?? n;
          generate(model, size.segment, true, warmup);
          generate(model, size.segment, false, warmup);
          await askTorch({ op: 'generate', tokens: warmup });
          // rounds of (cached, recompute, PyTorch) in turn, medians: a load that comes and goes hits all three alike
          const rates = { cached: [] as number[], recompute: [] as number[], torch: [] as number[] };
          let sameTokens = true;
          for (let r = 0; r < rounds; r++) {
            const cached = generate(model, size.segment, true, n);
            const recompute = generate(model, size.segment, false, n);
            const theirs = await askTorch({ op: 'generate', tokens: n });
            rates.cached.push(cached.perSecond);
            rates.recompute.push(recompute.perSecond);
            if (theirs) rates.torch.push(n / (theirs.seconds as number));
            const torchTokens = theirs ? (theirs.tokens as number[]) : null;
            sameTokens &&= cached.tokens.every((t, i) => t === recompute.tokens[i] && (torchTokens === null || t === torchTokens[i]));
          }
          await askTorch({ op: 'free' });
          const cached = median(rates.cached), recompute = median(rates.recompute);
          const torch = rates.torch.length === rounds ? median(rates.torch) : null;
          // ratios: the median of each round's own ratio (its paths measured back to back), which a
          // load that drifts between rounds moves less than a ratio of medians
          const row: DecodeRow = {
            cached: round(cached),
            recompute: round(recompute),
            torch: torch === null ? null : round(torch),
            ratio: round(median(rates.cached.map((c, r) => c / rates.recompute[r]!)), 2),
            ratioTorch: torch === null ? null : round(median(rates.cached.map((c, r) => c / rates.torch[r]!)), 2),
            sameTokens,
          };
          decode[sizeName]![kind] = row;
          console.log(`${sizeName.padEnd(6)} ${kind.padEnd(12)} cached ${String(row.cached).padStart(8)} tok/s   recompute ${String(row.recompute).padStart(8)} tok/s (x${row.ratio})   ` +
            `PyTorch cached ${row.torch === null ? 'n/a' : String(row.torch).padStart(8)} tok/s (x${row.ratioTorch ?? 'n/a'})${row.sameTokens ? '' : '   (tokens differ!)'}`);
        } finally {
          model.dispose();
        }
      }
    }
  } finally {
    worker?.close();
  }
}

// ---- server ------------------------------------------------------------------------------------------

interface ServerRow { requestsPerSec: number; p50Ms: number; p99Ms: number; errors: number }
const server: Record<string, ServerRow> = {};
const REQUEST = { prompt: 'The ', maxTokens: 16, temperature: 0 };

/** `engram serve dir` as a child on 127.0.0.1 with a free port: its URL and a stop function. */
async function startServe(dir: string, queue: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));
  // OMP_NUM_THREADS: ATen's default intra-op thread count in the server, the bench's own
  const child = spawn(process.execPath, [cli, 'serve', dir, '--port', '0', '--queue', String(queue)], {
    env: { ...process.env, OMP_NUM_THREADS: String(threads) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = ''; // shown only if the server fails (it reports its shutdown there too)
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`engram serve exited (code ${code}) before listening:\n${stderr}`)));
    lines.on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) resolve(m[1]!);
    });
  });
  return { url, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

/** `clients` closed-loop clients send `total` requests in all: requests/s, p50/p99 latency, failures. */
async function load(url: string, clients: number, total: number): Promise<ServerRow> {
  const body = JSON.stringify(REQUEST);
  const latencies: number[] = [];
  let sent = 0, errors = 0;
  const client = async () => {
    while (sent < total) {
      sent++;
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const answer = (await res.json()) as { tokens?: number };
      if (res.status !== 200 || answer.tokens !== REQUEST.maxTokens) errors++;
      else latencies.push(performance.now() - t0);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: clients }, client));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { requestsPerSec: round(latencies.length / seconds), p50Ms: round(percentile(latencies, 50), 2), p99Ms: round(percentile(latencies, 99), 2), errors };
}

async function runServer(dir: string): Promise<void> {
  const serve = await startServe(dir, 2 * Math.max(...clientCounts));
  try {
    console.log(`server: engram serve on ${serve.url}, POST /v1/generate ${JSON.stringify(REQUEST)}, ${requestsPerLevel} requests per level (+ ${Math.max(...clientCounts)} untimed)`);
    await load(serve.url, Math.max(...clientCounts), Math.max(...clientCounts)); // warm-up
    for (const clients of clientCounts) {
      const row = await load(serve.url, clients, requestsPerLevel);
      server[String(clients)] = row;
      console.log(`  ${String(clients).padStart(2)} clients: ${String(row.requestsPerSec).padStart(7)} requests/s   p50 ${row.p50Ms} ms   p99 ${row.p99Ms} ms${row.errors ? `   ${row.errors} FAILED` : ''}`);
    }
  } finally {
    await serve.stop();
  }
}

// ---- rss ---------------------------------------------------------------------------------------------

interface RssRow { tokens: number; tokensPerSec: number; startMB: number; endMB: number; peakMB: number; growthMB: number; peakGrowthMB: number }
let rss: RssRow | null = null;

/** `count` characters of pseudo-random text over the vocabulary, in 64 KiB pieces (xorshift32, seed fixed). */
async function* generatedText(count: number): AsyncGenerator<string> {
  const PIECE = 1 << 16;
  let x = 2463534242;
  for (let done = 0; done < count; done += PIECE) {
    const codes = new Uint16Array(Math.min(PIECE, count - done)); // UTF-16 code units (every character is in the BMP)
    for (let i = 0; i < codes.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      codes[i] = VOCAB.charCodeAt(x % VOCAB.length);
    }
    yield Buffer.from(codes.buffer).toString('utf16le');
  }
}

async function runRss(model: SegmentModel, segment: number): Promise<void> {
  const text = { model, vocab: CharVocab.fromString(VOCAB), segmentLength: segment };
  const mb = () => process.memoryUsage.rss() / 2 ** 20;
  // the stream's first character is not predicted: one more character scores `scoreTokens` tokens
  let tokens = 0, nextSample = rssWarmup, start = 0, peak = 0, last = 0, warmEnd = 0;
  console.log(`rss: score() over ${scoreTokens.toLocaleString('en-US')} tokens (xl, 2 layers, H 64, segment and memory ${segment}), RSS sampled every ${rssEvery.toLocaleString('en-US')} tokens after ${rssWarmup.toLocaleString('en-US')} warm-up tokens`);
  for await (const chunk of score(text, generatedText(scoreTokens + 1), { chunkSize: 4096 })) {
    tokens = chunk.totalTokens;
    if (tokens >= nextSample) {
      last = mb();
      if (start === 0) {
        start = last;
        warmEnd = performance.now();
      }
      peak = Math.max(peak, last);
      nextSample += rssEvery;
      if (Math.floor((tokens - rssWarmup) / rssEvery) % 8 === 0) console.log(`  ${tokens.toLocaleString('en-US').padStart(12)} tokens   RSS ${last.toFixed(1)} MB`);
    }
  }
  last = mb();
  peak = Math.max(peak, last);
  const seconds = (performance.now() - warmEnd) / 1000;
  rss = { tokens, tokensPerSec: round((tokens - rssWarmup) / seconds), startMB: round(start), endMB: round(last), peakMB: round(peak), growthMB: round(last - start), peakGrowthMB: round(peak - start) };
  console.log(`  ${tokens.toLocaleString('en-US')} tokens at ${rss.tokensPerSec.toLocaleString('en-US')} tokens/s: RSS ${rss.startMB} MB after warm-up, ${rss.endMB} MB at the end (growth ${rss.growthMB} MB, peak +${rss.peakGrowthMB} MB)`);
}

// ---- run ---------------------------------------------------------------------------------------------

try {
  if (parts.includes('decode')) await runDecode();
  if (parts.includes('server')) {
    const size = SIZES.small!;
    manualSeed(0);
    const input = config('xl', size);
    const model = createModel(input).eval();
    try {
      const dir = join(work, 'served-small-xl');
      await saveFolder(model, input, dir, size.segment);
      await runServer(dir);
    } finally {
      model.dispose();
    }
  }
  if (parts.includes('rss')) {
    // the small dims with segment (and XL memory) 128: fewer, larger segments make 10M tokens take less time
    manualSeed(0);
    const model = createModel(config('xl', { ...SIZES.small!, segment: 128 })).eval();
    try {
      await runRss(model, 128);
    } finally {
      model.dispose();
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const at128 = decode['128'];
const rows = Object.values(decode).flatMap((r) => Object.values(r));
const targets = {
  cachedVsRecompute128: at128 && Object.keys(at128).length ? Object.values(at128).every((r) => r.ratio >= 10) : null,
  cachedVsTorch: rows.length && rows.every((r) => r.ratioTorch !== null) ? rows.every((r) => r.ratioTorch! >= 1.25) : null,
  rssGrowth: rss ? (rss as RssRow).tokens >= 10_000_000 ? (rss as RssRow).growthMB <= 20 : null : null,
};
console.log(`targets: cached >= 10x recompute at segment 128: ${targets.cachedVsRecompute128}; cached >= 1.25x PyTorch cached: ${targets.cachedVsTorch}; RSS growth <= 20 MB over >= 10M tokens: ${targets.rssGrowth}`);
console.log(JSON.stringify({ threads: getNumThreads(), torch: torchNote, decode, server, rss, targets }));
