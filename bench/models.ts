// Model benchmark: training tokens/s of every model kind Engram benchmarks (SPEC §10), against the
// same models in plain PyTorch, the PyTorch twin (python/engram_torch.py, driven by
// bench/models_twin.py) on Debian's libtorch, in the same run, alternately round by round, with the
// same thread settings and the same weights and batches.
//
//   npm run bench:models [-- --threads N] [--rounds R] [--steps S] [--warmup W]
//                           [--models transformer,xl,rmt,...] [--vocab V] [--dropout P] [--no-torch] [--no-install]
//                           [--precision bf16] [--smoke]
//
// Configuration (SPEC §10): 4 layers, H 256, 4 heads, FFN 1024, segment 128, batch 16, Adam (lr 1e-3).
//   transformer  kind 'transformer': one segment per step, nothing carried
//   xl           kind 'xl', memLen 128: one segment per step, the cache carried (detached) across steps
//   rmt          kind 'rmt', 16 memory tokens: two segments per step, one backward through both
//                (BPTT depth 1), the memory carried (detached) into the next step
//   adaptive-span, adaptive-span-max, expire-span, compressive, feedback: the Expire-Span code
//                base's models, one segment per step, the state carried (detached)
// A step is what the trainer does (src/train/trainer.ts, LM mode): inside tidy(), unroll, sum of
// per-segment cross-entropy sums / tokens plus the models' auxiliary losses, zeroGrad, backward,
// Adam step, afterOptimizerStep, loss.item(); the twin's step is the same in PyTorch.
// Tokens/s = B * M * segments per step / seconds; median over rounds of `steps` steps each,
// after `warmup` steps. Before timing, PyTorch loads Engram's initial weights and batches (through
// saveSafetensors / engram_torch.read_safetensors), both compute the objective and gradient norm
// of the same two segments, and the parameter counts are compared: the two sides run the same
// model on the same data.
//
// --device cuda (or cuda:N, auto): both sides train on that device (TF32 as libtorch's defaults on
// both: matmul off, cuDNN on), timed after a device synchronisation; each model's GPU memory is
// read from nvidia-smi for both processes after its rounds (the caching allocators keep what they
// reserved, so it is the process's peak: CUDA context included). --gpu-size: the GPU-sized
// configuration of issue 14: 12 layers, H 512, 8 heads, FFN 2048, segment 512, batch 32,
// Transformer-XL memory 512 (scripts/device/check.sh runs xl, rmt and expire-span, one process each,
// so each model's memory is its own).
// --precision bf16: Engram trains with matrix products in bfloat16 (SegmentModel.precision; float32
// master weights), PyTorch stays float32; Engram float32 is timed in the same rounds as well (its
// own column), so the bf16 gain is read against both. The same-model check runs in float32 first.
//
// --smoke: every model at a tiny size (2 layers, H 32, segment 16, batch 2, memories 1/8), one
// round of one step, no warm-up: proves both sides run end to end; its numbers mean nothing.
//
// The last line printed is one JSON object:
//   {"models": {"transformer": {"engram", "torch", "ratio"}, "xl": {...}, ...}, ...}
// tokens/s; torch and ratio (Engram / PyTorch) null when PyTorch is not available.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { askOrDrop, startTorchWorker, threadSettings, type TorchWorker } from './torch-worker.js';
import {
  Adam, buildInfo, checkPrecision, createModel, crossEntropySum, cudaSynchronize, disposeState, getNumThreads, manualSeed, randint, resolveDevice, saveSafetensors,
  setNumThreads, tidy, unroll, type Device, type BpttDepth, type MemoryState, type ModelConfig, type SegmentModel, type Tensor,
} from '../src/index.js';

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
const device: Device = resolveDevice(argValue('--device') ?? 'cpu', 'bench:models');
const onGpu = device !== 'cpu';
const gpuSize = process.argv.includes('--gpu-size');
const precision = checkPrecision(argValue('--precision') ?? 'float32', 'bench:models', '--precision');
const mixed = precision !== 'float32';

// ---- the models ------------------------------------------------------------------------------------

const BATCH = smoke ? 2 : gpuSize ? 32 : 16;
const SEGMENT = smoke ? 16 : gpuSize ? 512 : 128;
const SIZES = smoke ? { layers: 2, dModel: 32, heads: 4, dInner: 64 }
  : gpuSize ? { layers: 12, dModel: 512, heads: 8, dInner: 2048 } : { layers: 4, dModel: 256, heads: 4, dInner: 1024 };
const BASE = { vocabSize, ...SIZES, dropout, norm: 'post' as const, previousToken: false, adaptiveSpan: null, expireSpan: null, compressive: null };
/** A memory size of the SPEC §10 configuration (an eighth of it with --smoke). */
const mem = (n: number): number => (smoke ? Math.max(2, n / 8) : n);

interface BenchModel {
  name: 'transformer' | 'xl' | 'rmt' | 'adaptive-span' | 'adaptive-span-max' | 'expire-span' | 'compressive' | 'feedback';
  label: string;
  config: ModelConfig;
  /** Segments per step, and how far back the one backward reaches (unroll's bpttDepth). */
  segments: number;
  bptt: number;
  /** Whether the state is carried (detached) from step to step. */
  carry: boolean;
  /** SPEC §10's tokens/s of the public PyTorch code on this kind of machine. */
  published: [number, number];
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
    name: 'rmt', label: 'RMT 16 mem tokens, BPTT 2 segments', segments: 2, bptt: 1, carry: true, published: [4400, 4780],
    config: { ...BASE, kind: 'rmt', memLen: 0, numMemTokens: mem(16) },
  },
  // The Expire-Span code base's models. Spans at their initial values (Adaptive-Span: z = 0,
  // trimmed to one trim step; Expire-Span: p·L = 51).
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
const wanted = (argValue('--models') ?? ALL_MODELS.map((m) => m.name).join(',')).split(',').map((s) => s.trim());
const MODELS = ALL_MODELS.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) {
  console.error(`--models: none of ${wanted.join(',')}; choose from ${ALL_MODELS.map((m) => m.name).join(',')}`);
  process.exit(2);
}
const POOL = 4; // batches [B, M] cycled through (the same on both sides)
const CHECK_SEGMENTS = 2;

// ---- helpers ---------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmtInt = (x: number | null): string => (x === null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const fmtPublished = ([lo, hi]: [number, number]): string => (lo === hi ? fmtInt(lo) : `${fmtInt(lo)}–${fmtInt(hi)}`);

// ---- Engram's side ---------------------------------------------------------------------------------

class EngramBench {
  readonly model: SegmentModel;
  readonly optimizer: Adam;
  /** [POOL, B, M] int64, kept. */
  readonly tokens: Tensor;
  readonly targets: Tensor;
  #carry: MemoryState | null = null;
  #next = 0;

  constructor(readonly spec: BenchModel, seed = 0) {
    manualSeed(seed);
    this.model = createModel(spec.config, { device }); // initialised on the CPU (the twin loads the same weights)
    this.model.train();
    this.optimizer = new Adam(this.model.parameters(), { lr: 1e-3 });
    this.tokens = randint(0, spec.config.vocabSize, [POOL, BATCH, SEGMENT], { device }).keep();
    this.targets = randint(0, spec.config.vocabSize, [POOL, BATCH, SEGMENT], { device }).keep();
  }

  get tokensPerStep(): number {
    return BATCH * SEGMENT * this.spec.segments;
  }

  /**
   * The trainer's objective over segments [B, M] from `initial` (null: fresh): the sum of the
   * per-segment cross-entropy sums / tokens, plus the models' auxiliary losses; and the last state.
   */
  objective(tokens: Tensor[], targets: Tensor[], initial: MemoryState | null, depth: BpttDepth): { loss: Tensor; state: MemoryState } {
    const losses: Tensor[] = [];
    const aux: Tensor[] = [];
    const { state } = unroll(this.model, tokens, initial, {
      bpttDepth: depth,
      onSegment: (τ, out) => {
        losses.push(crossEntropySum(out.logits, targets[τ]!));
        if (out.auxLoss) aux.push(out.auxLoss);
      },
    });
    const ce = losses.reduce((a, b) => a.add(b)).div(BATCH * SEGMENT * tokens.length);
    return { loss: aux.reduce((a, b) => a.add(b), ce), state };
  }

  /** One training step, as the trainer's LM step; returns the loss. */
  step(): number {
    const { segments, bptt, carry } = this.spec;
    const picks = Array.from({ length: segments }, () => this.#next++ % POOL);
    const r = tidy(() => {
      const tokens = picks.map((i) => this.tokens.select(0, i));
      const targets = picks.map((i) => this.targets.select(0, i));
      const { loss, state } = this.objective(tokens, targets, carry ? this.#carry : null, bptt);
      this.optimizer.zeroGrad();
      loss.backward();
      this.optimizer.step();
      this.model.afterOptimizerStep?.();
      return { loss: loss.item(), carry: carry ? this.model.detachState(state) : null };
    });
    disposeState(this.#carry);
    this.#carry = r.carry;
    return r.loss;
  }

  /** Seconds for n steps, and the last loss. */
  train(n: number): { seconds: number; loss: number } {
    const t0 = performance.now();
    let loss = NaN;
    for (let i = 0; i < n; i++) loss = this.step();
    if (onGpu) cudaSynchronize(); // loss.item() waited for the step already; queued work too
    return { seconds: (performance.now() - t0) / 1000, loss };
  }

  /** Objective of the first n pool batches as consecutive segments from a fresh state, and the gradient norm (eval mode, no step). */
  check(n: number, depth: BpttDepth = 'all'): { loss: number; gradNorm: number } {
    this.model.eval();
    const out = tidy(() => {
      const pick = (t: Tensor) => Array.from({ length: n }, (_, i) => t.select(0, i));
      const { loss } = this.objective(pick(this.tokens), pick(this.targets), null, depth);
      this.optimizer.zeroGrad();
      loss.backward();
      let sq = 0;
      for (const p of this.model.parameters()) if (p.grad) sq += p.grad.pow(2).sum().item();
      this.optimizer.zeroGrad();
      return { loss: loss.item(), gradNorm: Math.sqrt(sq) };
    });
    this.model.train();
    return out;
  }

  /** Weights and batches for PyTorch (Engram's state dict names, plus data.tokens / data.targets). */
  async save(path: string): Promise<void> {
    await saveSafetensors(path, { ...this.model.stateDict(), 'data.tokens': this.tokens, 'data.targets': this.targets });
  }

  dispose(): void {
    disposeState(this.#carry);
    this.#carry = null;
    this.tokens.dispose();
    this.targets.dispose();
    this.model.dispose();
  }
}

let worker: TorchWorker | null = null;
const askTorch = (cmd: Record<string, unknown>) => askOrDrop(worker, cmd, () => { worker = null; });

// ---- main ------------------------------------------------------------------------------------------

/** engram: at --precision; engramFloat32: Engram in float32 in the same rounds (only with --precision bf16). */
interface Row { engram: number; engramFloat32: number | null; torch: number | null; ratio: number | null; gpuMiB: { engram: number | null; torch: number | null } | null }

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

async function main(): Promise<void> {
  if (threadsArg > 0) setNumThreads(threadsArg);
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
  console.log(
    `method: ${warmupSteps} warm-up steps, then the median of ${rounds} rounds of ${stepsPerRound} steps; ` +
      'Engram and PyTorch alternating round by round (never concurrent), same initial weights and batches',
  );
  if (mixed) console.log(`precision: Engram ${precision} (matrix products in bfloat16, float32 master weights) and Engram float32 in the same rounds; PyTorch float32`);

  const results: Record<string, Row> = {};
  const dir = mkdtempSync(join(tmpdir(), 'engram-bench-models-'));
  try {
    for (const spec of MODELS) {
      console.log(`\n${spec.name}: ${spec.label}`);
      const ours = new EngramBench(spec);
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

        // warm-up, then alternate
        ours.model.precision = precision;
        ours.train(warmupSteps);
        if (torchOk && warmupSteps > 0 && !(await askTorch({ op: 'train', steps: warmupSteps }))) torchOk = false;
        const mineRates: number[] = [];
        const float32Rates: number[] = [];
        const theirRates: number[] = [];
        const tokens = ours.tokensPerStep * stepsPerRound;
        for (let r = 0; r < rounds; r++) {
          mineRates.push(tokens / ours.train(stepsPerRound).seconds);
          if (mixed) {
            ours.model.precision = 'float32';
            float32Rates.push(tokens / ours.train(stepsPerRound).seconds);
            ours.model.precision = precision;
          }
          if (torchOk) {
            const t = await askTorch({ op: 'train', steps: stepsPerRound });
            if (t) theirRates.push(tokens / Number(t.seconds));
            else torchOk = false;
          }
        }
        let gpuMiB: Row['gpuMiB'] = null;
        if (onGpu) {
          const [mine, theirs] = gpuMemoryMiB([process.pid, worker?.pid]);
          gpuMiB = { engram: mine!, torch: torchOk ? theirs! : null };
          console.log(`  GPU memory (nvidia-smi, process peak incl. CUDA context): Engram ${mine ?? 'n/a'} MiB, PyTorch ${torchOk ? theirs ?? 'n/a' : 'n/a'} MiB`);
        }
        await askTorch({ op: 'free' }); // null without a worker
        const engram = median(mineRates);
        const torch = torchOk && theirRates.length ? median(theirRates) : null;
        const ratio = torch ? engram / torch : null;
        const engramFloat32 = mixed ? median(float32Rates) : null;
        results[spec.name] = { engram, engramFloat32, torch, ratio, gpuMiB };
        const list = (xs: number[]) => xs.map((x) => Math.round(x)).join(' ');
        console.log(`  Engram  ${fmtInt(engram).padStart(7)} tokens/s   rounds: ${list(mineRates)}${mixed ? ` (${precision})` : ''}`);
        if (engramFloat32 !== null) console.log(`  Engram  ${fmtInt(engramFloat32).padStart(7)} tokens/s   rounds: ${list(float32Rates)} (float32; ${precision}/float32 ${(engram / engramFloat32).toFixed(2)})`);
        if (torch !== null) console.log(`  PyTorch ${fmtInt(torch).padStart(7)} tokens/s   rounds: ${list(theirRates)}`);
        const versusPublished = engram / spec.published[0];
        console.log(
          `  ratio Engram/PyTorch ${ratio === null ? 'n/a' : ratio.toFixed(2)}; SPEC §10 published ${fmtPublished(spec.published)} tokens/s ` +
            `(Engram/published ${versusPublished.toFixed(2)}${spec.published[0] !== spec.published[1] ? ' of the low end' : ''}; target >= 1.25)`,
        );
      } finally {
        ours.dispose();
      }
    }
  } finally {
    worker?.close();
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`\nsummary (tokens/s):`);
  const f32Head = mixed ? ` ${'Engram f32'.padStart(10)}` : '';
  console.log(`  ${'model'.padEnd(18)} ${(mixed ? `Engram ${precision}` : 'Engram').padStart(mixed ? 11 : 8)}${f32Head} ${'PyTorch'.padStart(8)} ${'ratio'.padStart(6)} ${'SPEC §10'.padStart(12)}`);
  for (const spec of MODELS) {
    const r = results[spec.name]!;
    const f32 = mixed ? ` ${fmtInt(r.engramFloat32).padStart(10)}` : '';
    console.log(
      `  ${spec.name.padEnd(18)} ${fmtInt(r.engram).padStart(mixed ? 11 : 8)}${f32} ${fmtInt(r.torch).padStart(8)} ` +
        `${(r.ratio === null ? 'n/a' : r.ratio.toFixed(2)).padStart(6)} ${fmtPublished(spec.published).padStart(12)}`,
    );
  }

  const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
  const round3 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000);
  console.log(
    JSON.stringify({
      models: Object.fromEntries(MODELS.map((m) => {
        const r = results[m.name]!;
        return [m.name, { engram: round1(r.engram), ...(mixed ? { engramFloat32: round1(r.engramFloat32) } : {}), torch: round1(r.torch), ratio: round3(r.ratio), ...(r.gpuMiB ? { gpuMiB: r.gpuMiB } : {}) }];
      })),
      published: Object.fromEntries(MODELS.map((m) => [m.name, m.published[0] === m.published[1] ? m.published[0] : m.published])),
      threads,
      device,
      precision,
      config: { ...SIZES, segment: SEGMENT, batch: BATCH },
    }),
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
