// Data-parallel training over c10d on loopback: two processes, tiny models, few steps.
//   - the collectives themselves (test/distributed-worker.ts run as two ranks), and their errors:
//     a rank that dies or hangs makes the other's collective fail, naming it
//   - `engram train --nproc 2` gives the losses of one process with the same global batch, for an
//     LM run with carried memory (xl) and a task run (rmt), and resumes exactly
//   - a killed worker ends the job with a message naming its rank; the checkpoint stays loadable
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectiveBackends, cudaAvailable, cudaDeviceCount, distEnvFrom, freePort, ProcessGroup, readCheckpointMeta, shardRows, StreamBatcher, workerEnv } from '../src/index.js';

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));
const worker = fileURLToPath(new URL('./distributed-worker.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'engram-dist-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// A small corpus of words (deterministic).
let seed = 7;
const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'far', 'from', 'home'];
writeFileSync(join(dir, 'text.txt'), Array.from({ length: 2500 }, () => words[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % words.length]).join(' '));

const tiny = ['--layers', '1', '--d-model', '16', '--heads', '2', '--d-inner', '32', '--dropout', '0', '--threads', '1', '--progress', 'none', '--log-every', '1', '--eval-every', '0'];
const lmArgs = ['--corpus', 'text.txt', '--model', 'xl', '--segment-length', '8', '--mem-len', '8', '--batch-size', '4', ...tiny];
const taskArgs = ['--task', 'copy', '--source-length', '4', '--segments', '2', '--model', 'rmt', '--mem-tokens', '2', '--batch-size', '4', '--eval-batches', '1', ...tiny];

function engram(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  for (const k of ['MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK']) delete env[k];
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The training loss of every step in a run directory's log. */
function losses(run: string): number[] {
  return readFileSync(join(dir, run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number })
    .filter((r) => r.type === 'train').map((r) => r.loss);
}

/** The final evaluation of a finished run (its result.json). */
function finalEval(run: string): Record<string, number> {
  return (JSON.parse(readFileSync(join(dir, run, 'result.json'), 'utf8')) as { finalEval: Record<string, number> }).finalEval;
}

/** Sharded evaluation, counts summed over the ranks: the single process's metrics. */
function assertSameEval(a: Record<string, number>, b: Record<string, number>): void {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  for (const k of Object.keys(a)) assert.ok(Math.abs(a[k]! - b[k]!) <= 1e-5 * Math.max(1, Math.abs(b[k]!)), `${k}: ${a[k]} vs ${b[k]}`);
}

function assertClose(a: number[], b: number[], tol: number): void {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= tol, `step ${i + 1}: ${x} vs ${b[i]}`));
}

/** Runs the worker fixture as ranks 0 and 1; resolves with each rank's JSON line (rank 0's alone where rank 1 dies or hangs). */
async function twoRanks(mode: string): Promise<Record<string, unknown>[]> {
  const port = await freePort();
  const procs = [0, 1].map((rank) => spawn(process.execPath, [worker, mode], {
    env: { ...process.env, ...workerEnv({ masterAddr: '127.0.0.1', masterPort: port, worldSize: 2, rank, localRank: rank }) },
  }));
  const outputs = procs.map((p) => {
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr.on('data', (d: Buffer) => (text += d.toString()));
    return new Promise<Record<string, unknown>>((resolve, reject) => p.on('exit', () => {
      try {
        resolve(JSON.parse(text.trim().split('\n').pop() ?? '') as Record<string, unknown>);
      } catch {
        reject(new Error(`no JSON from a rank: ${text}`));
      }
    }));
  });
  if (mode !== 'collectives') {
    outputs[1]!.catch(() => {}); // rank 1 dies or is killed below, without a word
    const first = await outputs[0]!;
    procs[1]!.kill('SIGKILL'); // a hanging rank 1 has served its purpose
    return [first];
  }
  return Promise.all(outputs);
}

// Two-process tests run on Gloo (CPU tensors). scripts/setup.sh installs Gloo's headers beside
// Debian's libtorch; a libtorch folder or pip torch package may lack them, and its build then has
// only nccl (with CUDA).
const withoutGloo = collectiveBackends().includes('gloo') ? false : "this addon was built without Gloo's headers (a libtorch folder or pip torch package may lack them), so it has no gloo backend";

test('the job comes from torchrun-style variables; none or WORLD_SIZE=1 is a single process', () => {
  assert.equal(distEnvFrom({}), null);
  assert.equal(distEnvFrom({ WORLD_SIZE: '1' }), null);
  assert.deepEqual(distEnvFrom({ WORLD_SIZE: '4', RANK: '3', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234', LOCAL_RANK: '1' }),
    { masterAddr: '10.0.0.1', masterPort: 1234, worldSize: 4, rank: 3, localRank: 1 });
  assert.throws(() => distEnvFrom({ WORLD_SIZE: '2' }), (e: Error & { kind?: string }) => e.kind === 'config' && /RANK is not set/.test(e.message));
  assert.throws(() => distEnvFrom({ WORLD_SIZE: '2', RANK: '2' }), /RANK=2 is not an integer in \[0, 1\]/);
});

test('nccl where this build or machine cannot run it is a one-line error before the rendezvous; a gloo group of one rank forms where Gloo was built', async () => {
  const env = { masterAddr: '127.0.0.1', masterPort: await freePort(), worldSize: 1, rank: 0, localRank: 0 };
  const deviceError = (pattern: RegExp) => (e: Error & { kind?: string }) => e.kind === 'device' && pattern.test(e.message) && !e.message.includes('\n');
  if (!collectiveBackends().includes('nccl')) {
    assert.throws(() => ProcessGroup.init(env, { backend: 'nccl' }), deviceError(/built without NCCL \(a libtorch without CUDA, no nccl\.h .*or ENGRAM_NCCL=0\); use the gloo backend/));
  } else if (!cudaAvailable()) { // a CUDA build without a GPU (scripts/check-debian.sh --cuda)
    assert.throws(() => ProcessGroup.init(env, { backend: 'nccl' }), deviceError(/^ProcessGroup \(nccl, LOCAL_RANK\): device 'cuda:0': the addon has CUDA but no GPU is visible/));
  } else { // LOCAL_RANK past the machine's GPUs
    const n = cudaDeviceCount();
    assert.throws(() => ProcessGroup.init({ ...env, localRank: n }, { backend: 'nccl' }), deviceError(new RegExp(`device 'cuda:${n}'.*out of range: this machine has ${n} CUDA device`)));
  }
  if (withoutGloo) {
    assert.throws(() => ProcessGroup.init(env), (e: Error & { kind?: string }) => e.kind === 'config' && /built without Gloo's headers, so it has no gloo backend; use nccl .*apt-get install libgloo-dev/.test(e.message));
    return;
  }
  const group = ProcessGroup.init(env);
  try {
    assert.deepEqual([group.rank, group.worldSize, group.backend, group.device], [0, 1, 'gloo', 'cpu']);
  } finally {
    group.destroy();
  }
});

test('gloo all-reduce, broadcast, all-gather, barrier and bucketed gradient averaging over two processes', { skip: withoutGloo }, async () => {
  const [r0, r1] = await twoRanks('collectives');
  for (const r of [r0!, r1!]) {
    assert.deepEqual(r.sum, [3, 30]);
    assert.deepEqual(r.mean, [1.5, 15]);
    assert.deepEqual(r.broadcast, [1, 1, 1]); // rank 1's values
    assert.deepEqual(r.gathered, [[0, 0], [1, -1]]);
    assert.deepEqual(r.grads, [[1.5, 1.5], [3]]); // the mean of (1, 2) and (2, 4)
    assert.deepEqual(r.counts, [2, 2]);
  }
});

test('a rank that dies makes the other one fail with a distributed error naming it', { skip: withoutGloo }, async () => {
  const [r0] = await twoRanks('die');
  const error = r0!.error as { kind: string; message: string; isEngram: boolean };
  assert.ok(error.isEngram);
  assert.equal(error.kind, 'distributed');
  assert.match(error.message, /all-reduce on rank 0 of 2 failed: rank 1 died/);
});

test('a rank that hangs makes the other one time out naming it', { skip: withoutGloo }, async () => {
  const [r0] = await twoRanks('hang');
  const error = r0!.error as { kind: string; message: string };
  assert.equal(error.kind, 'timeout');
  assert.match(error.message, /rank 1 did not respond within 4 s/);
});

test('two processes give the losses of one with the same global batch, across a resume: LM with carried memory (xl)', { skip: withoutGloo }, () => {
  const one = engram(['train', ...lmArgs, '--steps', '20', '--out', 'lm-1']);
  assert.equal(one.status, 0, one.stderr);
  // 10 steps under two processes, then resumed under two processes to 20: the uninterrupted
  // single-process losses throughout (a resume that lost a rank's memory or stream would drift)
  const first = engram(['train', ...lmArgs, '--steps', '10', '--out', 'lm-2', '--nproc', '2']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /over 2 processes/);
  // rank 0 wrote the run; the checkpoint holds each rank's carried memory
  const meta = JSON.parse(readFileSync(join(dir, 'lm-2', 'checkpoint.json'), 'utf8')) as { worldSize: number; carry: unknown };
  assert.equal(meta.worldSize, 2);
  assert.ok(meta.carry);
  const rest = engram(['train', '--out', 'lm-2', '--resume', '--steps', '20', '--nproc', '2', '--progress', 'none']);
  assert.equal(rest.status, 0, rest.stderr);
  assertClose(losses('lm-2'), losses('lm-1'), 1e-5);
  assertSameEval(finalEval('lm-2'), finalEval('lm-1'));

  // its carried memory belongs to two ranks: one process cannot take it over
  const single = engram(['train', '--out', 'lm-2', '--resume', '--steps', '30', '--progress', 'none']);
  assert.match(single.stderr, /written by a job of 2 process\(es\).*resume it with 2/);
  assert.equal(single.status, 2);
});

test('two processes give the losses of one with the same global batch: task run (rmt)', { skip: withoutGloo }, () => {
  const one = engram(['train', ...taskArgs, '--steps', '20', '--out', 'task-1']);
  assert.equal(one.status, 0, one.stderr);
  const two = engram(['train', ...taskArgs, '--steps', '20', '--out', 'task-2', '--nproc', '2']);
  assert.equal(two.status, 0, two.stderr);
  assertClose(losses('task-2'), losses('task-1'), 1e-5);
  assertSameEval(finalEval('task-2'), finalEval('task-1'));
});

test('a shard is an equal part of the batch; LM streams split over ranks read what one process reads', () => {
  assert.deepEqual(shardRows(8, { rank: 1, worldSize: 4 }), { from: 2, count: 2 });
  assert.deepEqual(shardRows(8, null), { from: 0, count: 8 });
  assert.throws(() => shardRows(3, { rank: 0, worldSize: 2 }), /batch size 3 does not split evenly over 2 ranks/);
  const data = Int32Array.from({ length: 101 }, (_, i) => i);
  const whole = new StreamBatcher(data, { batchSize: 4, segmentLength: 5 }).arraysAt(3).tokens;
  const parts = [0, 1].map((rank) => new StreamBatcher(data, { batchSize: 4, segmentLength: 5, shard: { rank, worldSize: 2 } }).arraysAt(3).tokens);
  assert.deepEqual([...parts[0]!, ...parts[1]!], [...whole]);
});

test('a killed worker ends the job with a message naming its rank; the last checkpoint stays', { skip: withoutGloo }, async () => {
  const env = { ...process.env };
  for (const k of ['MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK']) delete env[k];
  const job = spawn(process.execPath, [cli, 'train', ...lmArgs, '--steps', '100000', '--checkpoint-every', '5', '--out', 'killed', '--nproc', '2', '--dist-timeout', '20'], { cwd: dir, env });
  let stderr = '';
  job.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ended = new Promise<number | null>((resolve) => job.on('exit', (code) => resolve(code)));
  const log = join(dir, 'killed', 'log.jsonl');
  const deadline = Date.now() + 60_000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').includes('"checkpoint"'))) {
    assert.ok(Date.now() < deadline, `no checkpoint within a minute: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // rank 1 among the launcher's children (by its RANK variable)
  const children = readFileSync(`/proc/${job.pid}/task/${job.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const rank1 = children.find((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1'));
  assert.ok(rank1, 'rank 1 not found');
  process.kill(rank1, 'SIGKILL');
  const code = await ended;
  assert.notEqual(code, 0);
  assert.match(stderr, new RegExp(`rank 1 \\(pid ${rank1}\\) was killed by SIGKILL`));
  assert.match(stderr, /on rank 0 of 2 failed: rank 1 died/); // rank 0's own message, before the launcher stops it
  const meta = await readCheckpointMeta(join(dir, 'killed'));
  assert.ok(meta.step >= 5 && meta.step % 5 === 0);
  assert.ok(readdirSync(join(dir, 'killed')).includes(meta.tensorsFile));
});
