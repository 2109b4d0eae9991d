// Engine benchmark: the cost of one tiny op through the binding, and matmul throughput, for
// Engram and (when /usr/bin/python3 can import torch) for PyTorch on the same libtorch, measured
// in the same run, alternately round by round, with the same thread settings.
//
//   npm run bench:engine [-- --threads N] [--rounds R] [--no-torch] [--no-install]
//
// The last line printed is one JSON object:
//   {"opOverheadUs", "torchOpOverheadUs", "matmulGflops": {"256","512","1024"}, "torchMatmulGflops", ...}
// with the torch fields null when PyTorch is not available.
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startTorchWorker, threadSettings, type TorchWorker } from './torch-worker.js';
import {
  buildInfo, getNumThreads, liveTensors, randn, setNumThreads, tensor, tidy, type Tensor,
} from '../src/index.js';
import { checkBenchArgs, exitWithError } from './args.js';

checkBenchArgs(import.meta.url);

const SIZES = [256, 512, 1024] as const;
const OVERHEAD_OPS = 200_000; // per round (~0.2 s at 1 µs per op)
const MATMUL_FLOPS_PER_ROUND = 4e10; // ~0.2 s per round at 200 GFLOP/s
const TIDY_CHUNK = 1_000; // ops per tidy() scope, like the ops of one small training step

// ---- arguments --------------------------------------------------------------------------------------

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const rounds = Math.max(1, Number(argValue('--rounds') ?? 5));
const threadsArg = Number(argValue('--threads') ?? 0);
const wantTorch = !process.argv.includes('--no-torch');
const mayInstall = !process.argv.includes('--no-install');

// ---- helpers ---------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number | null, digits = 2): string => (x === null ? 'n/a' : x.toFixed(digits));
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---- our measurements ----------------------------------------------------------------------------

/** µs per a.add(b) on 1-element float32 tensors, n ops in tidy() scopes of TIDY_CHUNK (frees included). */
function ourOverhead(a: Tensor, b: Tensor, n: number): number {
  const t0 = performance.now();
  for (let done = 0; done < n; done += TIDY_CHUNK) {
    tidy(() => {
      for (let i = 0; i < TIDY_CHUNK; i++) a.add(b);
    });
  }
  return ((performance.now() - t0) * 1000) / n;
}

// A full garbage collection on demand (for the unscoped measurement only).
setFlagsFromString('--expose-gc');
const forceGc = runInNewContext('gc') as () => void;

/**
 * The same op outside any scope: results are left to the FinalizationRegistry. Returns the loop's
 * µs per op, and µs per op until every result is freed: the loop, then a full GC and the
 * finalizers it schedules (yielding to the event loop until the live count is back to its start).
 */
async function ourOverheadUnscoped(a: Tensor, b: Tensor, n: number): Promise<{ loop: number; drained: number; leftover: number }> {
  forceGc();
  for (let spins = 0; spins < 100; spins++) await yieldToLoop(); // earlier rounds' leftovers
  const base = liveTensors();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) a.add(b);
  const t1 = performance.now();
  forceGc();
  for (let spins = 0; spins < 1000 && liveTensors() > base; spins++) await yieldToLoop();
  const t2 = performance.now();
  return { loop: ((t1 - t0) * 1000) / n, drained: ((t2 - t0) * 1000) / n, leftover: liveTensors() - base };
}

function matmulReps(size: number): number {
  return Math.max(5, Math.round(MATMUL_FLOPS_PER_ROUND / (2 * size ** 3)));
}

/** GFLOP/s of a float32 size x size matmul over reps products (each result freed at once). */
function ourMatmul(a: Tensor, b: Tensor, size: number, reps: number, warmup = 2): number {
  for (let i = 0; i < warmup; i++) a.matmul(b).dispose();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) a.matmul(b).dispose();
  const seconds = (performance.now() - t0) / 1000;
  return (2 * size ** 3 * reps) / seconds / 1e9;
}

// ---- PyTorch in a child process -------------------------------------------------------------------

let worker: TorchWorker | null = null;
/** One measurement from PyTorch, or null (and PyTorch dropped for the rest of the run) if it fails. */
async function askTorch(cmd: Record<string, unknown>, field: string): Promise<number | null> {
  if (!worker) return null;
  try {
    return Number((await worker.ask(cmd))[field]);
  } catch (e) {
    console.log(`PyTorch worker failed (${(e as Error).message}): torch columns dropped`);
    worker.close();
    worker = null;
    return null;
  }
}

// ---- main ------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (threadsArg > 0) setNumThreads(threadsArg);
  const threads = getNumThreads();
  const info = buildInfo();
  const started = await startTorchWorker('engine_torch.py', { wantTorch, mayInstall, threads });
  worker = started.worker;
  const torchNote = started.note;

  console.log(`engine bench: libtorch ${info.torchVersion}, Node ${process.version}, ${availableParallelism()} cores`);
  console.log(threadSettings(threads));
  console.log(torchNote);
  console.log(`method: median of ${rounds} rounds, Engram and PyTorch alternating round by round (never concurrent)`);

  // ---- per-op overhead ----
  const a = tensor([1]);
  const b = tensor([2]);
  ourOverhead(a, b, 20_000); // warm-up (JIT, allocator)
  await askTorch({ op: 'overhead', n: 20_000 }, 'us');
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    ours.push(ourOverhead(a, b, OVERHEAD_OPS));
    const us = await askTorch({ op: 'overhead', n: OVERHEAD_OPS }, 'us');
    if (us !== null) theirs.push(us);
  }
  const opOverheadUs = median(ours);
  const torchOpOverheadUs = worker ? median(theirs) : null;
  console.log(`\ntiny op (a + b, 1-element float32), µs per op:`);
  console.log(`  Engram (in tidy, ${TIDY_CHUNK} ops per scope): ${fmt(opOverheadUs, 3)}   rounds: ${ours.map((x) => x.toFixed(3)).join(' ')}`);
  if (worker) console.log(`  PyTorch (Python loop):                  ${fmt(torchOpOverheadUs, 3)}   rounds: ${theirs.map((x) => x.toFixed(3)).join(' ')}`);

  // Outside any scope (finalizer-freed): extra line.
  await ourOverheadUnscoped(a, b, 20_000);
  const unscoped: { loop: number; drained: number; leftover: number }[] = [];
  for (let r = 0; r < rounds; r++) unscoped.push(await ourOverheadUnscoped(a, b, OVERHEAD_OPS));
  const unscopedLoop = median(unscoped.map((u) => u.loop));
  const unscopedDrained = median(unscoped.map((u) => u.drained));
  console.log(
    `  Engram outside any tidy (FinalizationRegistry frees): ${fmt(unscopedLoop, 3)} µs/op in the loop, ` +
      `${fmt(unscopedDrained, 3)} µs/op until all are freed (a full GC, then the finalizers; ${Math.max(...unscoped.map((u) => u.leftover))} not freed)`,
  );

  // ---- matmul ----
  const matmulGflops: Record<string, number> = {};
  const torchMatmulGflops: Record<string, number> = {};
  console.log(`\nmatmul float32 n x n, GFLOP/s (2n^3 flops per product):`);
  for (const size of SIZES) {
    const reps = matmulReps(size);
    const x = randn([size, size]);
    const y = randn([size, size]);
    ourMatmul(x, y, size, Math.min(reps, 10)); // warm-up
    await askTorch({ op: 'matmul', size, reps: Math.min(reps, 10) }, 'gflops');
    const o: number[] = [];
    const t: number[] = [];
    for (let r = 0; r < rounds; r++) {
      o.push(ourMatmul(x, y, size, reps));
      const g = await askTorch({ op: 'matmul', size, reps }, 'gflops');
      if (g !== null) t.push(g);
    }
    x.dispose();
    y.dispose();
    matmulGflops[size] = median(o);
    if (worker) torchMatmulGflops[size] = median(t);
    console.log(
      `  ${String(size).padStart(4)}: Engram ${fmt(matmulGflops[size]!, 1).padStart(7)}` +
        (worker ? `   PyTorch ${fmt(torchMatmulGflops[size]!, 1).padStart(7)}` : '') +
        `   (${reps} products per round)`,
    );
  }
  const torchOk = worker !== null && torchOpOverheadUs !== null;
  worker?.close();

  // ---- ratios ----
  if (torchOk && torchOpOverheadUs !== null) {
    const overheadRatio = opOverheadUs / torchOpOverheadUs;
    const gflopsRatio = matmulGflops[1024]! / torchMatmulGflops[1024]!;
    console.log(`\nratios:`);
    console.log(`  overhead Engram/PyTorch: ${overheadRatio.toFixed(2)} (target <= 1.5: ${overheadRatio <= 1.5 ? 'met' : 'NOT met'})`);
    console.log(`  matmul GFLOP/s at 1024 Engram/PyTorch: ${gflopsRatio.toFixed(2)} (target >= 0.9: ${gflopsRatio >= 0.9 ? 'met' : 'NOT met'})`);
  }

  const round3 = (x: number): number => Math.round(x * 1000) / 1000;
  const round1 = (x: number): number => Math.round(x * 10) / 10;
  const mapVals = (m: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round1(v)]));
  console.log(
    JSON.stringify({
      opOverheadUs: round3(opOverheadUs),
      torchOpOverheadUs: torchOk ? round3(torchOpOverheadUs!) : null,
      matmulGflops: mapVals(matmulGflops),
      torchMatmulGflops: torchOk ? mapVals(torchMatmulGflops) : null,
    }),
  );
}

main().catch(exitWithError);
