// Data-parallel benchmark on one machine: the same training run as one process with T threads and
// as T processes with one thread each (c10d's Gloo over loopback), and the bandwidth of Gloo's
// all-reduce on loopback.
//
//   npm run bench:distributed [-- --steps S] [--threads T] [--sizes 1,4,16,64] [--reps R] [--model xl]
//
// Training: Transformer-XL language modelling on tinyshakespeare with the SPEC §10 sizes (4 layers,
// H 256, 4 heads, FFN 1024, segment 128, memLen 128, global batch 16, Adam), `steps` steps after
// the first (which pays for allocation); tokens/s = tokens of the global batch / training seconds
// (rank 0's clock); all-reduce share = seconds in collectives (gradient averaging, the step's
// counts) / training seconds on rank 0.
// Bandwidth: float32 tensors of 1-64 MB all-reduced `reps` times between 2 processes; algorithm
// bandwidth = bytes / seconds, bus bandwidth = algorithm bandwidth * 2 (W - 1) / W (what each rank
// sends and receives, as nccl-tests report it).
//
// The bench starts its own workers (this file with BENCH_ROLE set). The last line printed is one
// JSON object with every figure.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { distEnvFrom, freePort, ProcessGroup, setNumThreads, Trainer, workerEnv, zeros, type TrainConfigInput } from '../src/index.js';
import { checkBenchArgs } from './args.js';

checkBenchArgs(import.meta.url);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const steps = Math.max(1, Number(argValue('--steps') ?? 20));
const threads = Math.max(2, Number(argValue('--threads') ?? 2));
const sizesMb = (argValue('--sizes') ?? '1,4,16,64').split(',').map(Number);
const reps = Math.max(1, Number(argValue('--reps') ?? 10));
const kind = argValue('--model') ?? 'xl';
const self = fileURLToPath(import.meta.url);

function config(threadsPerProcess: number): TrainConfigInput {
  return {
    model: { kind, layers: 4, dModel: 256, heads: 4, dInner: 1024, dropout: 0, memLen: 128 },
    data: { kind: 'lm', corpus: 'tinyshakespeare', segmentLength: 128 },
    train: { steps: steps + 1, batchSize: 16, bpttDepth: 0, evalEvery: 0, logEvery: 1000, threads: threadsPerProcess, seed: 1 },
    optim: { lr: 1e-3 },
  } as TrainConfigInput;
}

// ---- workers -----------------------------------------------------------------------------------------

interface TrainFigures { tokensPerSec: number; commShare: number | null }

/** One rank (or the single process) of the training comparison; prints its figures as JSON. */
async function trainWorker(threadsPerProcess: number): Promise<void> {
  const env = distEnvFrom();
  const pg = env ? ProcessGroup.init(env) : null;
  const trainer = await Trainer.create(config(threadsPerProcess), { processGroup: pg });
  try {
    trainer.trainStep(); // warm-up: allocation, first touches
    const comm0 = pg?.commSeconds ?? 0;
    const started = performance.now();
    for (let s = 0; s < steps; s++) trainer.trainStep();
    const seconds = (performance.now() - started) / 1000;
    const figures: TrainFigures = { tokensPerSec: (steps * trainer.tokensPerStep) / seconds, commShare: pg ? (pg.commSeconds - comm0) / seconds : null };
    if (!pg || pg.isMain) console.log(JSON.stringify(figures));
  } finally {
    trainer.dispose();
    pg?.destroy();
  }
}

/** One rank of the bandwidth measurement; rank 0 prints {sizeMb: [algoGBs, busGBs]}. */
function bandwidthWorker(): void {
  const env = distEnvFrom()!;
  setNumThreads(1);
  const pg = ProcessGroup.init(env);
  const out: Record<string, [number, number]> = {};
  try {
    for (const mb of sizesMb) {
      const t = zeros([Math.round((mb * 1024 * 1024) / 4)]);
      pg.allReduce([t]); // connect and warm up
      pg.barrier();
      const started = performance.now();
      for (let r = 0; r < reps; r++) pg.allReduce([t]);
      const seconds = (performance.now() - started) / 1000 / reps;
      const algo = (mb * 1024 * 1024) / seconds / 1e9;
      out[String(mb)] = [algo, (algo * 2 * (env.worldSize - 1)) / env.worldSize];
      t.dispose();
    }
    if (pg.isMain) console.log(JSON.stringify(out));
  } finally {
    pg.destroy();
  }
}

// ---- the driver ----------------------------------------------------------------------------------------

/** Runs this file as `n` processes of role `role`; resolves with rank 0's last JSON line. */
async function run(role: string, n: number, extraEnv: Record<string, string> = {}): Promise<unknown> {
  const port = await freePort();
  const outputs = Array.from({ length: n }, (_, rank) => new Promise<string>((resolve, reject) => {
    const dist = n > 1 ? workerEnv({ masterAddr: '127.0.0.1', masterPort: port, worldSize: n, rank, localRank: rank }) : {};
    const child = spawn(process.execPath, [self, ...process.argv.slice(2)], { env: { ...process.env, ...dist, ...extraEnv, BENCH_ROLE: role }, stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`${role} rank ${rank} exited with code ${code}`))));
  }));
  const texts = await Promise.all(outputs);
  return JSON.parse(texts[0]!.trim().split('\n').pop()!);
}

const role = process.env.BENCH_ROLE;
if (role === 'train') await trainWorker(Number(process.env.BENCH_THREADS));
else if (role === 'bandwidth') bandwidthWorker();
else {
  // OpenBLAS's own threads follow ATen's count in each process (one each in the multi-process run).
  const single = await run('train', 1, { BENCH_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) }) as TrainFigures;
  const multi = await run('train', threads, { BENCH_THREADS: '1', OPENBLAS_NUM_THREADS: '1' }) as TrainFigures;
  const bandwidth = await run('bandwidth', 2, { OPENBLAS_NUM_THREADS: '1' }) as Record<string, [number, number]>;
  console.log(`training (${kind}, global batch 16, ${steps} steps):`);
  console.log(`  1 process x ${threads} threads   ${Math.round(single.tokensPerSec)} tokens/s`);
  console.log(`  ${threads} processes x 1 thread    ${Math.round(multi.tokensPerSec)} tokens/s   (all-reduce ${(100 * (multi.commShare ?? 0)).toFixed(1)}% of step time)`);
  console.log('all-reduce on loopback, 2 processes (algorithm / bus bandwidth):');
  for (const [mb, [algo, bus]] of Object.entries(bandwidth)) console.log(`  ${mb.padStart(3)} MB   ${algo.toFixed(2)} GB/s   ${bus.toFixed(2)} GB/s`);
  console.log(JSON.stringify({ steps, threads, model: kind, single, multi, bandwidth }));
}
