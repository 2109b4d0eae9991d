// Model benchmark: training tokens/s of every model kind (SPEC §10), Engram in float32 and in bf16
// against the same models in plain PyTorch, the PyTorch twin (python/engram_torch.py, driven by
// bench/models_twin.py) on Debian's libtorch, in the same run, column by column within each round,
// with the same thread settings and the same weights and batches.
//
//   npm run bench:models [-- --threads N] [--rounds R] [--steps S] [--warmup W]
//                           [--models transformer,xl,...] [--precision float32] [--torch-bf16]
//                           [--vocab V] [--dropout P] [--no-torch] [--no-install] [--smoke]
//                           [--profile [--profile-callers N] [--profile-shapes] [--profile-top N]]
//
// Configuration (SPEC §10): 4 layers, H 256, 4 heads, FFN 1024, segment 128, batch 16, Adam (lr 1e-3).
//   transformer        one segment per step, nothing carried
//   xl                 memLen 128: the cache carried (detached) across steps
//   mem-transformer    16 memory tokens prepended, nothing carried
//   mem-bottleneck     16 memory tokens, cache 128, carried
//   rmt                16 memory tokens: two segments per step, one backward through both (BPTT
//                      depth 1), the memory carried (detached) into the next step
//   sequential, adaptive-span, adaptive-span-max (spans at the maximum), expire-span, compressive,
//   feedback           the Expire-Span code base's models, one segment per step, the state carried
// A step is what the trainer does (src/train/trainer.ts, LM mode): inside tidy(), unroll, sum of
// per-segment cross-entropy sums / tokens plus the models' auxiliary losses, zeroGrad, backward,
// Adam step, afterOptimizerStep, loss.item(); the twin's step is the same in PyTorch.
// Tokens/s = B * M * segments per step / seconds; median over rounds of `steps` steps each,
// after `warmup` steps per column. Before timing, PyTorch loads Engram's initial weights and
// batches (through saveSafetensors / engram_torch.read_safetensors), both compute the objective
// and gradient norm of the same two segments in float32, and the parameter counts are compared:
// the two sides run the same model on the same data.
//
// Columns, in this order in every round: Engram float32, Engram bf16 (matrix products in bfloat16
// through autocast, float32 master weights; SegmentModel.precision), PyTorch float32 and, with
// --torch-bf16, PyTorch bf16 (the twin under torch.autocast). --precision float32 drops the bf16
// columns. Ratios are against PyTorch float32 (targets, issue 12: Engram float32 >= 1.25x,
// Engram bf16 >= 1.6x). Analytic model FLOPs per step (stepFlops: the matrix products of forward
// and backward, 3x forward, approximate where a mechanism's work depends on its state) give
// GFLOP/s and the share of this run's n = 1024 matrix-product peak in float32 and in bfloat16.
//
// --device cuda (or cuda:N, auto): both sides train on that device (TF32 as libtorch's defaults on
// both: matmul off, cuDNN on), timed after a device synchronisation; each model's GPU memory is
// read from nvidia-smi for both processes after its rounds (the caching allocators keep what they
// reserved, so it is the process's peak: CUDA context included). --gpu-size: the GPU-sized
// configuration of issue 14: 12 layers, H 512, 8 heads, FFN 2048, segment 512, batch 32,
// Transformer-XL memory 512 (scripts/device/check.sh runs xl, rmt and expire-span in float32, one
// process each, so each model's memory is its own).
//
// --smoke: every model at a tiny size (2 layers, H 32, segment 16, batch 2, memories 1/8), one
// round of one step, no warm-up: proves both sides run end to end; its numbers mean nothing.
// --profile: Engram float32 only, `steps` steps of each model under libtorch's profiler, the top
// N ops by self time (--profile-top N, default 15; no PyTorch, no bf16); --profile-callers N names
// each op with the N ops that called it, --profile-shapes with its inputs' shapes (where an op
// comes from: ProfileOptions).
//
// The last line printed is one JSON object:
//   {"models": {"<kind>": {"engramFloat32", "engramBf16", "torchFloat32", "torchBf16", "ratioFloat32",
//    "ratioBf16", "flopsPerStep", "gflopsFloat32", "gflopsBf16", "peakShareFloat32", "peakShareBf16",
//    "rounds"}, ...}, "peakGflops": {"float32", "bf16", "n"}, "targets", "published", ...}
// tokens/s; null where a column was not measured (no PyTorch, --precision float32, ...).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { askOrDrop, startTorchWorker, threadSettings, type TorchWorker } from './torch-worker.js';
import {
  F, buildInfo, checkPrecision, precisionProblem, cudaSynchronize, getNumThreads, profile, formatProfile, randn, resolveDevice,
  setNumThreads, tidy, type Device, type ModelConfig, type Precision,
} from '../src/index.js';
import { checkBenchArgs, checked, exitWithError } from './args.js';
import { EngramBench } from './engram-bench.js';

checkBenchArgs(import.meta.url);

// ---- arguments --------------------------------------------------------------------------------------

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const smoke = process.argv.includes('--smoke');
const rounds = Math.max(1, Number(argValue('--rounds') ?? (smoke ? 1 : 5)));
const stepsPerRound = Math.max(1, Number(argValue('--steps') ?? (smoke ? 1 : 4)));
const warmupSteps = Math.max(0, Number(argValue('--warmup') ?? (smoke ? 0 : 3)));
const threadsArg = Number(argValue('--threads') ?? 2); // SPEC §10 and the binding notes: 2 threads
const vocabSize = Number(argValue('--vocab') ?? 256);
const dropout = Number(argValue('--dropout') ?? 0);
const wantTorch = !process.argv.includes('--no-torch');
const mayInstall = !process.argv.includes('--no-install');
const device: Device = checked(() => resolveDevice(argValue('--device') ?? 'cpu', 'bench:models'));
const onGpu = device !== 'cpu';
const gpuSize = process.argv.includes('--gpu-size');
// float32 always; bf16 as well unless --precision float32 (--precision bf16: both). Without
// --precision, bf16 is measured where it can run (precisionProblem) and left out with a line
// saying why elsewhere; an explicit --precision bf16 that cannot run is an error.
const autocastDevice = device === 'cpu' ? 'cpu' : 'cuda';
const bf16Problem = argValue('--precision') === undefined ? precisionProblem('bf16', autocastDevice) : null;
if (bf16Problem) console.log(`bench:models: bf16 columns left out: ${bf16Problem} (--precision float32 says so without this line)`);
const precisionArg = checked(() => checkPrecision(argValue('--precision') ?? (bf16Problem ? 'float32' : 'bf16'), 'bench:models', '--precision', autocastDevice));
const PRECISIONS: Precision[] = precisionArg === 'float32' ? ['float32'] : ['float32', precisionArg];
const withBf16 = PRECISIONS.length > 1;
const torchBf16Wanted = withBf16 && process.argv.includes('--torch-bf16');

// ---- the models ------------------------------------------------------------------------------------

const BATCH = smoke ? 2 : gpuSize ? 32 : 16;
const SEGMENT = smoke ? 16 : gpuSize ? 512 : 128;
const SIZES = smoke ? { layers: 2, dModel: 32, heads: 4, dInner: 64 }
  : gpuSize ? { layers: 12, dModel: 512, heads: 8, dInner: 2048 } : { layers: 4, dModel: 256, heads: 4, dInner: 1024 };
const BASE = { vocabSize, ...SIZES, dropout, norm: 'post' as const, previousToken: false, adaptiveSpan: null, expireSpan: null, compressive: null };
/** A memory size of the SPEC §10 configuration (an eighth of it with --smoke). */
const mem = (n: number): number => (smoke ? Math.max(2, n / 8) : n);

interface BenchModel {
  name: 'transformer' | 'xl' | 'mem-transformer' | 'mem-bottleneck' | 'rmt' | 'sequential' | 'adaptive-span' | 'adaptive-span-max' | 'expire-span' | 'compressive' | 'feedback';
  label: string;
  config: ModelConfig;
  /** Segments per step, and how far back the one backward reaches (unroll's bpttDepth). */
  segments: number;
  bptt: number;
  /** Whether the state is carried (detached) from step to step. */
  carry: boolean;
  /** SPEC §10's tokens/s of the public PyTorch code on this kind of machine (null: none published). */
  published: [number, number] | null;
}

const ALL_MODELS: BenchModel[] = [
  {
    name: 'transformer', label: 'plain transformer', segments: 1, bptt: 0, carry: false, published: [6070, 6070],
    config: { ...BASE, kind: 'transformer', memLen: 0, numMemTokens: 0 },
  },
  {
    name: 'xl', label: 'Transformer-XL mem 128', segments: 1, bptt: 0, carry: true, published: [4200, 4200],
    config: { ...BASE, kind: 'xl', memLen: gpuSize ? SEGMENT : mem(128), numMemTokens: 0 },
  },
  {
    name: 'mem-transformer', label: 'MemTransformer 16 mem tokens', segments: 1, bptt: 0, carry: false, published: null,
    config: { ...BASE, kind: 'mem-transformer', memLen: 0, numMemTokens: mem(16) },
  },
  {
    name: 'mem-bottleneck', label: 'MemBottleneck 16 mem tokens, cache 128', segments: 1, bptt: 0, carry: true, published: null,
    config: { ...BASE, kind: 'mem-bottleneck', memLen: mem(128), numMemTokens: mem(16) },
  },
  {
    name: 'rmt', label: 'RMT 16 mem tokens, BPTT 2 segments', segments: 2, bptt: 1, carry: true, published: [4400, 4780],
    config: { ...BASE, kind: 'rmt', memLen: 0, numMemTokens: mem(16) },
  },
  // The Expire-Span code base's models. Spans at their initial values (Adaptive-Span: z = 0,
  // trimmed to one trim step; Expire-Span: p·L = 51).
  {
    name: 'sequential', label: 'sequential transformer (their baseline) L 512', segments: 1, bptt: 0, carry: true, published: null,
    config: { ...BASE, kind: 'sequential', memLen: mem(512), numMemTokens: 0 },
  },
  {
    name: 'adaptive-span', label: 'Adaptive-Span L 512, short spans (trimmed)', segments: 1, bptt: 0, carry: true, published: [6040, 6040],
    config: { ...BASE, kind: 'adaptive-span', memLen: mem(512), numMemTokens: 0, adaptiveSpan: { ramp: mem(32), init: 0, lossCoef: 2e-6, dynamic: false, trimStep: mem(64) } },
  },
  {
    name: 'adaptive-span-max', label: 'Adaptive-Span L 512, spans at the maximum', segments: 1, bptt: 0, carry: true, published: [2450, 2450],
    config: { ...BASE, kind: 'adaptive-span', memLen: mem(512), numMemTokens: 0, adaptiveSpan: { ramp: mem(32), init: 1, lossCoef: 2e-6, dynamic: false, trimStep: mem(64) } },
  },
  {
    name: 'expire-span', label: 'Expire-Span L 512', segments: 1, bptt: 0, carry: true, published: [4880, 4880],
    config: { ...BASE, kind: 'expire-span', memLen: mem(512), numMemTokens: 0, expireSpan: { ramp: mem(32), initFraction: 0.1, preDiv: 1, lossCoef: 1e-6, noisy: false, drop: true } },
  },
  {
    name: 'compressive', label: 'Compressive, 128 raw + 128 compressed (rate 4, conv)', segments: 1, bptt: 0, carry: true, published: [4660, 4660],
    config: { ...BASE, kind: 'compressive', memLen: mem(128), numMemTokens: 0, compressive: { compressedLen: mem(128), rate: 4, fn: 'conv', reconstruction: true } },
  },
  {
    name: 'feedback', label: 'Feedback, L 128', segments: 1, bptt: 0, carry: true, published: [1010, 1010],
    config: { ...BASE, kind: 'feedback', memLen: mem(128), numMemTokens: 0 },
  },
];
const wanted = (argValue('--models') ?? ALL_MODELS.map((m) => m.name).join(',')).split(',').map((s) => s.trim()).filter((s) => s);
const unknownModels = wanted.filter((w) => !ALL_MODELS.some((m) => m.name === w));
if (unknownModels.length || wanted.length === 0) {
  console.error(`--models: ${unknownModels.length ? `unknown ${unknownModels.join(',')}` : 'none given'}; choose from ${ALL_MODELS.map((m) => m.name).join(',')}`);
  process.exit(2);
}
const MODELS = ALL_MODELS.filter((m) => wanted.includes(m.name));
const POOL = 4; // batches [B, M] cycled through (the same on both sides)
const CHECK_SEGMENTS = 2;

// ---- helpers ---------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmtInt = (x: number | null): string => (x === null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const fmtPublished = (p: [number, number] | null): string => (p === null ? '–' : p[0] === p[1] ? fmtInt(p[0]) : `${fmtInt(p[0])}–${fmtInt(p[1])}`);

// ---- Engram's side ---------------------------------------------------------------------------------

/** Engram's side of one model (bench/engram-bench.ts) at this run's sizes and device. */
const engramBench = (spec: BenchModel): EngramBench =>
  new EngramBench({ config: spec.config, segments: spec.segments, bptt: spec.bptt, carry: spec.carry, batch: BATCH, segmentLength: SEGMENT, device, pool: POOL });

let worker: TorchWorker | null = null;
const askTorch = (cmd: Record<string, unknown>) => askOrDrop(worker, cmd, () => { worker = null; });

// ---- analytic FLOPs --------------------------------------------------------------------------------

/**
 * One attention block of a layer, per batch element and segment: `rows` query rows (through the
 * q and output projections and the FFN), `keys` keys per query as a dense implementation
 * computes them (masked entries included), `kvRows` rows projected to keys and values,
 * `posCols` position columns per query (q · positions) and `posRows` rows projected for
 * positions (Transformer-XL's W_r R).
 */
interface Block { rows: number; keys: number; kvRows: number; posCols: number; posRows: number }

/**
 * Matrix-product FLOPs of one training step (forward + backward = 3 x forward, the usual
 * 6 x parameters x tokens rule for the projections, plus attention's products); approximate for
 * the mechanisms whose work depends on the state (noted per kind). Elementwise work is not counted.
 */
function stepFlops(spec: BenchModel): number {
  const c = spec.config;
  const { dModel: H, dInner: Fi, layers: N, vocabSize: V } = c;
  const M = SEGMENT, L = c.memLen, m = c.numMemTokens;
  const rel = (rows: number, keys: number): Block => ({ rows, keys, kvRows: keys, posCols: keys, posRows: keys });
  const seq = (keys: number, posCols: number): Block => ({ rows: M, keys, kvRows: keys, posCols, posRows: 0 });
  let blocks: Block[];
  let extra = 0; // per layer, forward
  switch (spec.name) {
    case 'transformer': blocks = [rel(M, M)]; break;
    case 'xl': blocks = [rel(M, L + M)]; break;
    case 'mem-transformer': blocks = [rel(M + m, L + M + m)]; break; // m tokens prepended
    case 'rmt': blocks = [rel(M + 2 * m, L + M + 2 * m)]; break; // [read; x; write]
    case 'mem-bottleneck': // memory reads [memory; cache]; the sequence reads the memory only (absolute positions)
      blocks = [{ rows: m, keys: m + L, kvRows: m + L, posCols: 0, posRows: 0 }, { rows: M, keys: m, kvRows: m, posCols: 0, posRows: 0 }];
      break;
    case 'sequential': blocks = [seq(L + M, L)]; break;
    case 'adaptive-span':
    case 'adaptive-span-max': { // the cache trimmed to the largest span + ramp, rounded up to the trim step
      const a = c.adaptiveSpan!;
      const kept = Math.min(L, Math.ceil((a.init * L + a.ramp) / a.trimStep) * a.trimStep);
      blocks = [seq(kept + M, kept)];
      break;
    }
    case 'expire-span': { // memories live while e_i - age + R > 0: at the initial spans p·L + R, about one block's worth
      const e = c.expireSpan!;
      const kept = Math.min(L, Math.ceil((e.initFraction * L + e.ramp) / M) * M);
      blocks = [seq(kept + M, L)];
      break;
    }
    case 'compressive': { // attends to [compressed; raw; block]; compresses M rows (conv, stride c) and runs the reconstruction attention
      const cl = c.compressive!.compressedLen, rate = c.compressive!.rate;
      blocks = [seq(cl + L + M, cl + L)];
      const old = M, packed = M / rate;
      extra = 2 * M * H * H /* conv */ + 2 * (old + packed) * 2 * H * H /* their keys/values */ + 2 * 2 * M * (old + packed) * H /* two attentions */;
      break;
    }
    case 'feedback': // each memory projected once for all layers; every step reads a window of L memories
      blocks = [{ rows: M, keys: L, kvRows: L + M, posCols: L, posRows: 0 }];
      break;
  }
  const block = (b: Block) => 2 * b.rows * H * H * 2 /* q, out */ + 2 * b.kvRows * 2 * H * H + 2 * 2 * b.rows * b.keys * H +
    2 * b.rows * b.posCols * H + 2 * b.posRows * H * H + 2 * b.rows * H * Fi * 2 /* FFN */;
  const layer = blocks.reduce((a, b) => a + block(b), 0) + extra;
  const forward = N * layer + 2 * M * H * V; // + the output head
  return 3 * forward * BATCH * spec.segments;
}

/**
 * GFLOP/s of an n x n matrix product in `dtype` on this device (best of 5 timings of `reps` products),
 * the faster of ATen's matmul and F.linear (a bᵀ): linear layers' float32 products may run on another
 * library than ATen's mm (buildInfo().denseProducts), and the peak is the best this process can do.
 */
function matmulPeak(n: number, dtype: 'float32' | 'bfloat16', reps = 8): number {
  return tidy(() => {
    const a = randn([n, n], { device }).to(dtype), b = randn([n, n], { device }).to(dtype);
    let best = Infinity;
    for (const product of [() => a.matmul(b), () => F.linear(a, b)]) {
      for (let i = 0; i < 2; i++) product().dispose();
      if (onGpu) cudaSynchronize();
      for (let k = 0; k < 5; k++) {
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) product().dispose();
        if (onGpu) cudaSynchronize();
        best = Math.min(best, (performance.now() - t0) / 1000 / reps);
      }
    }
    return (2 * n ** 3) / best / 1e9;
  });
}

// ---- main ------------------------------------------------------------------------------------------

/** Tokens/s per column (null: not measured), their rounds, and the model's FLOPs per step. */
interface Row {
  engramFloat32: number; engramBf16: number | null; torchFloat32: number | null; torchBf16: number | null;
  rounds: Record<string, number[]>;
  flopsPerStep: number;
  tokensPerStep: number;
  gpuMiB: { engram: number | null; torch: number | null } | null;
}

/** GPU memory (MiB) nvidia-smi reports for each process id, or nulls where it cannot say. */
function gpuMemoryMiB(pids: (number | undefined)[]): (number | null)[] {
  const r = spawnSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 30_000 });
  const used = new Map<number, number>();
  if (r.status === 0) {
    for (const line of r.stdout.split('\n')) {
      const [pid, mib] = line.split(',').map((x) => Number(x.trim()));
      if (Number.isFinite(pid) && Number.isFinite(mib)) used.set(pid!, (used.get(pid!) ?? 0) + mib!);
    }
  }
  return pids.map((p) => (p !== undefined && used.has(p) ? used.get(p)! : null));
}

const TARGET_FLOAT32 = 1.25, TARGET_BF16 = 1.6; // Engram / PyTorch float32 (issue 12)

/** Achieved GFLOP/s of the analytic model FLOPs at `rate` tokens/s (null: not measured). */
const gflopsAt = (row: Row, rate: number | null): number | null => (rate === null ? null : (row.flopsPerStep * rate) / row.tokensPerStep / 1e9);
/** a / b, null where either is missing. */
const ratioOf = (a: number | null, b: number | null): number | null => (a !== null && b ? a / b : null);
const fmtR = (x: number | null) => (x === null ? 'n/a' : x.toFixed(2));

/**
 * --profile: Engram float32 only, no PyTorch: after the warm-up, `steps` steps of each model under
 * libtorch's profiler (profile()); prints the top ops by self time and, last, one JSON object.
 */
const profileOptions = { callers: Number(argValue('--profile-callers') ?? 0), shapes: process.argv.includes('--profile-shapes') };
if (!Number.isInteger(profileOptions.callers) || profileOptions.callers < 0) {
  console.error(`--profile-callers ${argValue('--profile-callers')}: give a whole number of callers >= 0`);
  process.exit(2);
}
const profileTop = Number(argValue('--profile-top') ?? 15);
if (!Number.isInteger(profileTop) || profileTop < 1) {
  console.error(`--profile-top ${argValue('--profile-top')}: give a whole number of rows >= 1`);
  process.exit(2);
}
function profileModels(): void {
  const out: Record<string, unknown> = {};
  for (const spec of MODELS) {
    const ours = engramBench(spec);
    try {
      ours.train(warmupSteps);
      const plain = ours.train(stepsPerRound).seconds;
      const { result, rows } = profile(() => ours.train(stepsPerRound), profileOptions);
      const all = rows.reduce((a, r) => a + r.selfUs, 0);
      console.log(`\n${spec.name}: ${spec.label}; ${stepsPerRound} steps: ${fmtInt((ours.tokensPerStep * stepsPerRound) / plain)} tokens/s unprofiled, ` +
        `${fmtInt((ours.tokensPerStep * stepsPerRound) / result.seconds)} profiled; ops by self time:`);
      console.log(formatProfile(rows, profileTop));
      out[spec.name] = { tokensPerSec: Math.round((ours.tokensPerStep * stepsPerRound) / plain), top: rows.slice(0, profileTop).map((r) => ({ ...r, share: Math.round((1000 * r.selfUs) / all) / 1000 })) };
    } finally {
      ours.dispose();
    }
  }
  console.log(JSON.stringify({ profile: out, steps: stepsPerRound, warmup: warmupSteps, threads: getNumThreads() }));
}

async function main(): Promise<void> {
  if (threadsArg > 0) setNumThreads(threadsArg);
  if (process.argv.includes('--profile')) return profileModels();
  const threads = getNumThreads();
  const info = buildInfo();
  const started = await startTorchWorker('models_twin.py', { wantTorch, mayInstall, threads });
  worker = started.worker;
  const torchNote = started.note;

  console.log(`models bench: libtorch ${info.torchVersion}, Node ${process.version}, ${availableParallelism()} cores, device ${device}`);
  console.log(threadSettings(threads));
  console.log(torchNote);
  console.log(
    `config (${smoke ? '--smoke, not SPEC §10' : gpuSize ? '--gpu-size, issue 14' : 'SPEC §10'}): ${SIZES.layers} layers, H ${SIZES.dModel}, ${SIZES.heads} heads, FFN ${SIZES.dInner}, segment ${SEGMENT}, batch ${BATCH}, vocab ${vocabSize}, ` +
      `dropout ${dropout}, post-LN, Adam lr 1e-3 (zero_grad set_to_none on both sides)`,
  );
  const columns = ['Engram float32', ...(withBf16 ? ['Engram bf16'] : []), 'PyTorch float32', ...(torchBf16Wanted ? ['PyTorch bf16 (autocast)'] : [])];
  console.log(
    `method: ${warmupSteps} warm-up steps per column, then the median of ${rounds} rounds of ${stepsPerRound} steps; ` +
      `each round runs ${columns.join(', ')} in turn (never concurrent), same initial weights and batches`,
  );
  if (withBf16) console.log(`bf16: matrix products in bfloat16 (autocast), float32 master weights; the same-model check runs in float32`);
  const peak = { float32: matmulPeak(1024, 'float32'), bf16: withBf16 ? matmulPeak(1024, 'bfloat16') : null };
  console.log(`matrix-product peak (n = 1024, this run): float32 ${peak.float32.toFixed(1)} GFLOP/s${peak.bf16 === null ? '' : `, bfloat16 ${peak.bf16.toFixed(1)} GFLOP/s`}`);

  const results: Record<string, Row> = {};
  const dir = mkdtempSync(join(tmpdir(), 'engram-bench-models-'));
  try {
    for (const spec of MODELS) {
      console.log(`\n${spec.name}: ${spec.label}`);
      const ours = engramBench(spec);
      try {
        const params = ours.model.numParameters();
        let torchOk = false;
        if (worker) {
          const path = join(dir, `${spec.name}.safetensors`);
          await ours.save(path);
          const built = await askTorch({
            op: 'build',
            weights: path,
            model: spec.config,
            bench: { batch: BATCH, segment: SEGMENT, segments: spec.segments, bptt: spec.bptt, carry: spec.carry, lr: 1e-3, device },
          });
          rmSync(path, { force: true });
          if (built) {
            const theirs = Number(built.params);
            console.log(`  parameters: Engram ${params.toLocaleString('en-US')}, PyTorch ${theirs.toLocaleString('en-US')}`);
            if (Math.abs(theirs - params) > 0.01 * params) {
              throw new Error(`parameter counts differ by more than 1% (${params} vs ${theirs}): the two models are not the same`);
            }
            const mine = ours.check(CHECK_SEGMENTS);
            const other = await askTorch({ op: 'check', segments: CHECK_SEGMENTS });
            if (other) {
              const tl = Number(other.loss), tg = Number(other.gradNorm);
              const dl = Math.abs(mine.loss - tl) / Math.abs(tl), dg = Math.abs(mine.gradNorm - tg) / Math.abs(tg);
              const same = dl < 1e-4 && dg < 1e-3;
              console.log(
                `  same weights, ${CHECK_SEGMENTS} segments: loss Engram ${mine.loss.toFixed(6)} PyTorch ${tl.toFixed(6)}; ` +
                  `grad norm Engram ${mine.gradNorm.toFixed(6)} PyTorch ${tg.toFixed(6)} (${same ? 'agree' : 'DIFFER: the two models are not the same'})`,
              );
              torchOk = true;
            }
          }
        } else {
          console.log(`  parameters: Engram ${params.toLocaleString('en-US')}`);
        }

        // PyTorch bf16 (--torch-bf16): the twin under autocast; a model it cannot run so loses that column only.
        let torchBf16 = torchOk && torchBf16Wanted;
        const torchTrain = async (steps: number, p: Precision): Promise<number | null> => {
          if (p === 'float32') {
            const t = await askTorch({ op: 'train', steps });
            if (!t) torchOk = torchBf16 = false;
            return t ? Number(t.seconds) : null;
          }
          try {
            return Number((await worker!.ask({ op: 'train', steps, precision: p })).seconds);
          } catch (e) {
            console.log(`  PyTorch bf16 failed (${(e as Error).message}): that column dropped for ${spec.name}`);
            torchBf16 = false;
            return null;
          }
        };
        const engramTrain = (steps: number, p: Precision): number => {
          ours.model.precision = p;
          return ours.train(steps).seconds;
        };

        for (const p of PRECISIONS) if (warmupSteps > 0) engramTrain(warmupSteps, p);
        if (torchOk && warmupSteps > 0) await torchTrain(warmupSteps, 'float32');
        if (torchBf16 && warmupSteps > 0) await torchTrain(warmupSteps, 'bf16');
        const rates: Record<string, number[]> = { engramFloat32: [], engramBf16: [], torchFloat32: [], torchBf16: [] };
        const tokens = ours.tokensPerStep * stepsPerRound;
        for (let r = 0; r < rounds; r++) {
          for (const p of PRECISIONS) rates[p === 'float32' ? 'engramFloat32' : 'engramBf16']!.push(tokens / engramTrain(stepsPerRound, p));
          if (torchOk) {
            const t = await torchTrain(stepsPerRound, 'float32');
            if (t !== null) rates.torchFloat32!.push(tokens / t);
          }
          if (torchBf16) {
            const t = await torchTrain(stepsPerRound, 'bf16');
            if (t !== null) rates.torchBf16!.push(tokens / t);
          }
        }
        ours.model.precision = 'float32';
        let gpuMiB: Row['gpuMiB'] = null;
        if (onGpu) {
          const [mine, theirs] = gpuMemoryMiB([process.pid, worker?.pid]);
          gpuMiB = { engram: mine!, torch: torchOk ? theirs! : null };
          console.log(`  GPU memory (nvidia-smi, process peak incl. CUDA context): Engram ${mine ?? 'n/a'} MiB, PyTorch ${torchOk ? theirs ?? 'n/a' : 'n/a'} MiB`);
        }
        await askTorch({ op: 'free' }); // null without a worker
        const med = (xs: number[], ok = true): number | null => (ok && xs.length ? median(xs) : null);
        const row: Row = {
          engramFloat32: median(rates.engramFloat32!),
          engramBf16: med(rates.engramBf16!),
          torchFloat32: med(rates.torchFloat32!, torchOk),
          torchBf16: med(rates.torchBf16!, torchBf16),
          rounds: Object.fromEntries(Object.entries(rates).filter(([, xs]) => xs.length).map(([k, xs]) => [k, xs.map((x) => Math.round(x))])),
          flopsPerStep: stepFlops(spec),
          tokensPerStep: ours.tokensPerStep,
          gpuMiB,
        };
        results[spec.name] = row;
        const list = (xs: number[]) => xs.map((x) => Math.round(x)).join(' ');
        const gflops = (rate: number) => gflopsAt(row, rate)!;
        const share = (rate: number, p: number | null) => (p ? ` = ${((100 * gflops(rate)) / p).toFixed(0)} % of the ${p === peak.float32 ? 'float32' : 'bfloat16'} peak` : '');
        console.log(`  Engram  ${fmtInt(row.engramFloat32).padStart(7)} tokens/s   rounds: ${list(rates.engramFloat32!)} (float32; ${gflops(row.engramFloat32).toFixed(1)} GFLOP/s${share(row.engramFloat32, peak.float32)})`);
        if (row.engramBf16 !== null) console.log(`  Engram  ${fmtInt(row.engramBf16).padStart(7)} tokens/s   rounds: ${list(rates.engramBf16!)} (bf16; ${gflops(row.engramBf16).toFixed(1)} GFLOP/s${share(row.engramBf16, peak.bf16)}; bf16/float32 ${(row.engramBf16 / row.engramFloat32).toFixed(2)})`);
        if (row.torchFloat32 !== null) console.log(`  PyTorch ${fmtInt(row.torchFloat32).padStart(7)} tokens/s   rounds: ${list(rates.torchFloat32!)} (float32)`);
        if (row.torchBf16 !== null) console.log(`  PyTorch ${fmtInt(row.torchBf16).padStart(7)} tokens/s   rounds: ${list(rates.torchBf16!)} (bf16, autocast)`);
        console.log(
          `  ratio Engram/PyTorch float32 ${fmtR(ratioOf(row.engramFloat32, row.torchFloat32))} (target >= ${TARGET_FLOAT32})` +
            (withBf16 ? `; Engram bf16/PyTorch float32 ${fmtR(ratioOf(row.engramBf16, row.torchFloat32))} (target >= ${TARGET_BF16})` : '') +
            `; model ${(row.flopsPerStep / 1e9).toFixed(1)} GFLOP per step; SPEC §10 published ${fmtPublished(spec.published)} tokens/s`,
        );
      } finally {
        ours.dispose();
      }
    }
  } finally {
    worker?.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const fmtPct = (x: number | null) => (x === null ? 'n/a' : `${x.toFixed(0)}%`);
  console.log(`\nsummary (training tokens/s; GFLOP/s from the analytic model FLOPs; % of this run's n = 1024 matrix-product peak: float32 ${peak.float32.toFixed(0)}${peak.bf16 === null ? '' : `, bfloat16 ${peak.bf16.toFixed(0)}`} GFLOP/s):`);
  const head = [
    'model'.padEnd(18), 'Eng f32'.padStart(8), ...(withBf16 ? ['Eng bf16'.padStart(8)] : []), 'PT f32'.padStart(8), ...(torchBf16Wanted ? ['PT bf16'.padStart(8)] : []),
    'f32/PT'.padStart(7), ...(withBf16 ? ['bf16/PT'.padStart(7)] : []), 'GF/s f32'.padStart(9), '%pk'.padStart(4), ...(withBf16 ? ['GF/s bf16'.padStart(9), '%pk'.padStart(4)] : []), 'SPEC §10'.padStart(12),
  ];
  console.log(`  ${head.join(' ')}`);
  for (const spec of MODELS) {
    const r = results[spec.name]!;
    const g32 = gflopsAt(r, r.engramFloat32), g16 = gflopsAt(r, r.engramBf16);
    const cells = [
      spec.name.padEnd(18), fmtInt(r.engramFloat32).padStart(8), ...(withBf16 ? [fmtInt(r.engramBf16).padStart(8)] : []), fmtInt(r.torchFloat32).padStart(8),
      ...(torchBf16Wanted ? [fmtInt(r.torchBf16).padStart(8)] : []),
      fmtR(ratioOf(r.engramFloat32, r.torchFloat32)).padStart(7), ...(withBf16 ? [fmtR(ratioOf(r.engramBf16, r.torchFloat32)).padStart(7)] : []),
      (g32 === null ? 'n/a' : g32.toFixed(1)).padStart(9), fmtPct(g32 === null ? null : (100 * g32) / peak.float32).padStart(4),
      ...(withBf16 ? [(g16 === null ? 'n/a' : g16.toFixed(1)).padStart(9), fmtPct(g16 === null || !peak.bf16 ? null : (100 * g16) / peak.bf16).padStart(4)] : []),
      fmtPublished(spec.published).padStart(12),
    ];
    console.log(`  ${cells.join(' ')}`);
  }
  const measured = MODELS.filter((m) => results[m.name]!.torchFloat32 !== null);
  if (measured.length) {
    const below = (key: 'engramFloat32' | 'engramBf16', target: number) =>
      measured.filter((m) => (ratioOf(results[m.name]![key], results[m.name]!.torchFloat32) ?? 0) < target).map((m) => m.name);
    const b32 = below('engramFloat32', TARGET_FLOAT32);
    console.log(`targets: Engram float32 >= ${TARGET_FLOAT32}x PyTorch float32: ${b32.length ? `not met by ${b32.join(', ')}` : 'met by every kind'}`);
    if (withBf16) {
      const b16 = below('engramBf16', TARGET_BF16);
      console.log(`         Engram bf16 >= ${TARGET_BF16}x PyTorch float32: ${b16.length ? `not met by ${b16.join(', ')}` : 'met by every kind'}`);
    }
  }

  const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
  const round3 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000);
  console.log(
    JSON.stringify({
      models: Object.fromEntries(MODELS.map((m) => {
        const r = results[m.name]!;
        const g32 = gflopsAt(r, r.engramFloat32), g16 = gflopsAt(r, r.engramBf16);
        return [m.name, {
          engramFloat32: round1(r.engramFloat32), engramBf16: round1(r.engramBf16), torchFloat32: round1(r.torchFloat32), torchBf16: round1(r.torchBf16),
          ratioFloat32: round3(ratioOf(r.engramFloat32, r.torchFloat32)), ratioBf16: round3(ratioOf(r.engramBf16, r.torchFloat32)),
          torchBf16OverFloat32: round3(ratioOf(r.torchBf16, r.torchFloat32)),
          flopsPerStep: r.flopsPerStep, tokensPerStep: r.tokensPerStep,
          gflopsFloat32: round1(g32), gflopsBf16: round1(g16),
          peakShareFloat32: round3(g32 === null ? null : g32 / peak.float32), peakShareBf16: round3(g16 === null || !peak.bf16 ? null : g16 / peak.bf16),
          rounds: r.rounds,
          ...(r.gpuMiB ? { gpuMiB: r.gpuMiB } : {}),
        }];
      })),
      peakGflops: { float32: round1(peak.float32), bf16: round1(peak.bf16), n: 1024 },
      targets: { ratioFloat32: TARGET_FLOAT32, ratioBf16: TARGET_BF16 },
      published: Object.fromEntries(MODELS.map((m) => [m.name, m.published === null ? null : m.published[0] === m.published[1] ? m.published[0] : m.published])),
      threads,
      device,
      precisions: PRECISIONS,
      torchBf16: torchBf16Wanted,
      rounds, steps: stepsPerRound, warmup: warmupSteps,
      config: { ...SIZES, segment: SEGMENT, batch: BATCH },
    }),
  );
}

main().catch(exitWithError);
