// Nothing a user does loses work or crashes Engram: resume and overwrite rules, the run-directory
// lock, stop signals, checkpoint checksums and validation, non-finite losses, upper bounds, and
// one-line CLI errors. Models are tiny; the CLI runs as a child process where signals matter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EngramError, Trainer, loadCheckpoint, noGrad, resolveTrainConfig, train, deepMerge, LOCK_FILE, type TrainConfigInput,
} from '../src/index.js';

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'engram-rel-'));

function engram(args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tiny = ['--task', 'copy', '--source-length', '4', '--d-model', '16', '--layers', '1', '--heads', '2', '--d-inner', '16', '--batch-size', '4', '--progress', 'none'];
const tinyConfig: TrainConfigInput = {
  model: { dModel: 16, layers: 1, heads: 2, dInner: 16 },
  data: { kind: 'task', name: 'copy', options: { sourceLength: 4 } },
  train: { steps: 4, batchSize: 4, evalEvery: 0, evalBatches: 1, checkpointEvery: 2 },
};

/** A clean CLI error: exit 2, one `engram: ` line (config problems may follow as '  - ' lines), no stack. */
function assertCleanError(r: { status: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const lines = r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('engram: '));
  assert.equal(lines.length, 1, r.stderr);
}

test('--resume without a checkpoint.json is a clean error and touches nothing', () => {
  const dir = tmp();
  const t = engram(['train', ...tiny, '--steps', '6', '--checkpoint-every', '3', '--out', 'run'], dir);
  assert.equal(t.status, 0, t.stderr);
  rmSync(join(dir, 'run', 'checkpoint.json'));
  const before = readdirSync(join(dir, 'run')).sort();
  const log = readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8');
  const r = engram(['train', '--out', 'run', '--resume'], dir);
  assertCleanError(r, /cannot resume: run has no checkpoint\.json; nothing was changed/);
  assert.deepEqual(readdirSync(join(dir, 'run')).sort(), before);
  assert.equal(readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8'), log);
  // the API: resume on a directory holding a run but no checkpoint refuses too, naming what is there
  return assert.rejects(train(tinyConfig, { runDir: join(dir, 'run'), resume: true }), (e: unknown) =>
    e instanceof EngramError && /not empty \(.*checkpoint-6\.safetensors.*\) and has no checkpoint\.json/.test(e.message))
    .then(() => {
      assert.equal(readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8'), log);
      assert.ok(!existsSync(join(dir, 'run', LOCK_FILE)), 'the lock is released after the error');
      rmSync(dir, { recursive: true });
    });
});

test('a fresh run into a non-empty directory needs overwrite, which removes only Engram files', async () => {
  const dir = tmp();
  await train(tinyConfig, { runDir: dir });
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  await assert.rejects(train(tinyConfig, { runDir: dir }), (e: unknown) => e instanceof EngramError && e.kind === 'config' && /already holds a run .*--overwrite/.test(e.message));
  const cliRun = engram(['train', ...tiny, '--steps', '2', '--out', dir], dir);
  assertCleanError(cliRun, /already holds a run/);
  assertCleanError(engram(['train', ...tiny, '--out', dir, '--resume', '--overwrite'], dir), /exclude each other/);
  const r = await train({ ...tinyConfig, train: { ...tinyConfig.train, steps: 2 } }, { runDir: dir, overwrite: true });
  assert.ok(r.finished);
  assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine');
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.safetensors')), ['checkpoint-2.safetensors']);
  const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step: number });
  assert.equal(log[0]!.type, 'start');
  assert.ok(log.every((l) => l.step <= 2), 'the old run\'s log is gone');
  rmSync(dir, { recursive: true });
});

test('a run directory is locked: a second trainer gets a clean error naming the holder; stale locks are taken over', async () => {
  const dir = tmp();
  const first = await Trainer.create(tinyConfig, { runDir: dir });
  try {
    const lock = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number; host: string; started: string };
    assert.equal(lock.pid, process.pid);
    assert.equal(lock.host, hostname());
    await assert.rejects(Trainer.create(tinyConfig, { runDir: dir, overwrite: true }), (e: unknown) =>
      e instanceof EngramError && new RegExp(`in use by process ${process.pid} on ${hostname()}`).test(e.message));
  } finally {
    first.dispose();
  }
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'dispose releases the lock');
  // a lock of a dead process on this host is stale
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: Number(dead.stdout), host: hostname(), started: 'then' }));
  const r = await train(tinyConfig, { runDir: dir });
  assert.ok(r.finished);
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
  // another host's lock is never taken over
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: `${hostname()}-elsewhere`, started: 'then' }));
  const cliRun = engram(['train', '--out', dir, '--resume', '--steps', '6'], dir);
  assertCleanError(cliRun, /is in use by process 1 on .*-elsewhere.*delete .*\.engram\.lock/);
  rmSync(dir, { recursive: true });
});

test('an experiment grid still reruns and resumes its cells under the lock rules', async () => {
  const { runExperiment } = await import('../src/index.js');
  const out = tmp();
  const recipe = {
    name: 'rel', base: tinyConfig as Record<string, unknown>,
    models: [{ name: 'a', config: {} }], settings: [{ name: 's', config: {} }],
  };
  const first = await runExperiment(recipe as never, { out });
  assert.ok(first.complete);
  // a cell interrupted before its first checkpoint (log but no checkpoint.json) is started over
  rmSync(join(out, 'a--s', 'checkpoint.json'));
  rmSync(join(out, 'a--s', 'result.json'));
  const second = await runExperiment(recipe as never, { out });
  assert.ok(second.complete);
  assert.equal(second.cells[0]!.status, 'ran');
  rmSync(out, { recursive: true });
});

async function stopWith(signal: NodeJS.Signals, code: number, alsoTrySecondWriter = false): Promise<void> {
  const dir = tmp();
  const child = spawn(process.execPath, [cli, 'train', ...tiny, '--steps', '1000000', '--checkpoint-every', '0', '--out', 'run'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += String(d);
  });
  // wait until steps are being logged, then signal
  for (let i = 0; i < 600 && !/"type":"train"/.test(existsSync(join(dir, 'run', 'log.jsonl')) ? readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8') : ''); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (alsoTrySecondWriter) {
    // a second training into the same directory while the first runs: refused, naming the holder
    const second = engram(['train', ...tiny, '--out', 'run', '--steps', '5'], dir);
    const third = engram(['train', ...tiny, '--out', 'run', '--overwrite', '--steps', '5'], dir);
    for (const r of [second, third]) assertCleanError(r, new RegExp(`run is in use by process ${child.pid} on ${hostname()}`));
  }
  child.kill(signal);
  const status = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(status, code, stderr);
  assert.match(stderr, new RegExp(`${signal}: stopping after this step`));
  const { meta, tensors } = await loadCheckpoint(join(dir, 'run'));
  assert.ok(meta.step >= 10, `checkpoint at step ${meta.step}`);
  for (const t of Object.values(tensors)) t.dispose();
  assert.ok(!existsSync(join(dir, 'run', LOCK_FILE)), 'the lock is released');
  const log = readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8');
  assert.match(log, /"type":"abort"/);
  rmSync(dir, { recursive: true });
}

test('SIGTERM and SIGHUP checkpoint after the current step and exit 143 / 129', async () => {
  await stopWith('SIGTERM', 143, true);
  await stopWith('SIGHUP', 129);
});

test('checkpoints carry a SHA-256 verified on every load; old checkpoints without one still load', async () => {
  const dir = tmp();
  await train(tinyConfig, { runDir: join(dir, 'run') });
  const metaPath = join(dir, 'run', 'checkpoint.json');
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { tensorsFile: string; tensorsSha256?: string };
  assert.match(meta.tensorsSha256!, /^[0-9a-f]{64}$/);
  const file = join(dir, 'run', meta.tensorsFile);
  const good = readFileSync(file);
  const bad = Buffer.from(good);
  bad[bad.length - 3]! ^= 0x40; // an exponent bit of the last weight
  writeFileSync(file, bad);
  await assert.rejects(loadCheckpoint(join(dir, 'run')), (e: unknown) => e instanceof EngramError && e.kind === 'io' && e.message.includes(`${file} is corrupt`));
  for (const args of [['eval', 'run'], ['generate', 'run'], ['inspect', 'run'], ['train', '--out', 'run', '--resume', '--steps', '8']]) {
    assertCleanError(engram(args, dir), /checkpoint-4\.safetensors is corrupt: its SHA-256 differs/);
  }
  // without a recorded checksum (an older checkpoint) the file loads as before
  writeFileSync(file, good);
  delete meta.tensorsSha256;
  writeFileSync(metaPath, JSON.stringify(meta));
  const { tensors } = await loadCheckpoint(join(dir, 'run'));
  assert.ok(Object.keys(tensors).length > 0);
  for (const t of Object.values(tensors)) t.dispose();
  rmSync(dir, { recursive: true });
});

test('a damaged checkpoint.json is a clean io error naming the file', async () => {
  const dir = tmp();
  const run = join(dir, 'run');
  await train(tinyConfig, { runDir: run });
  const metaPath = join(run, 'checkpoint.json');
  const original = readFileSync(metaPath, 'utf8');
  // [what, edit, message, also through the CLI (a child process: a few only, they are slow)]
  const edits: [string, (m: Record<string, any>) => void, RegExp, boolean?][] = [
    ['step -5', (m) => { m.step = -5; }, /checkpoint\.json is damaged \(step:/, true],
    ['step 2.5', (m) => { m.step = 2.5; }, /checkpoint\.json is damaged \(step:/],
    ['a path outside', (m) => { m.tensorsFile = '../../../etc/passwd'; }, /damaged \(tensorsFile: a file name in the run directory/, true],
    ['wrong types', (m) => { m.config.optim = 5; }, /holds a configuration Engram cannot use .*optim/, true],
    ['scheduler', (m) => { m.scheduler = 'x'; }, /damaged \(scheduler:/],
    ['dModel', (m) => { m.config.model.dModel = 32; m.modelConfig.dModel = 32; }, /disagrees with checkpoint-4\.safetensors on config/, true],
    ['missing tensors', (m) => { m.tensorsFile = 'checkpoint-9.safetensors'; }, /names checkpoint-9\.safetensors, which is missing/],
    ['not an object', (m) => { for (const k of Object.keys(m)) delete m[k]; }, /is not an Engram checkpoint/],
  ];
  for (const [what, edit, pattern, viaCli] of edits) {
    const m = JSON.parse(original) as Record<string, any>;
    edit(m);
    writeFileSync(metaPath, JSON.stringify(m));
    await assert.rejects(loadCheckpoint(run), (e: unknown) => e instanceof EngramError && e.kind === 'io' && pattern.test(e.message), what);
    if (viaCli) assertCleanError(engram(['train', '--out', 'run', '--resume', '--steps', '8'], dir), pattern);
  }
  rmSync(dir, { recursive: true });
});

test('a non-finite loss stops training naming the step and keeps the last good checkpoint; skip mode skips', async () => {
  const dir = tmp();
  const config: TrainConfigInput = { ...tinyConfig, train: { ...tinyConfig.train, steps: 20, checkpointEvery: 1 }, optim: { lr: 1e30, clipGradNorm: 0 } };
  await assert.rejects(train(config, { runDir: dir }), (e: unknown) =>
    e instanceof EngramError && e.kind === 'numeric' && /training stopped: the training loss at step (\d+) is (NaN|Infinity|-Infinity); the checkpoint of step \d+ .* is kept/.test(e.message));
  const { meta, tensors } = await loadCheckpoint(dir);
  assert.ok(meta.step >= 1);
  for (const t of Object.values(tensors)) t.dispose();
  const log = readFileSync(join(dir, 'log.jsonl'), 'utf8');
  assert.match(log, /"type":"nonfinite","step":\d+/);
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
  // without a run directory the API rejects the same way
  await assert.rejects(train(config), (e: unknown) => e instanceof EngramError && e.kind === 'numeric');
  // skip: such batches take no optimiser step and are logged; endless ones still stop the run
  const skipDir = tmp();
  const skip = deepMerge(config, { train: { nonFinite: 'skip', checkpointEvery: 0 } });
  await assert.rejects(train(skip, { runDir: skipDir }), (e: unknown) => e instanceof EngramError && e.kind === 'numeric' && /11 batches in a row/.test(e.message));
  assert.equal((readFileSync(join(skipDir, 'log.jsonl'), 'utf8').match(/"type":"skip"/g) ?? []).length, 10);
  rmSync(dir, { recursive: true });
  rmSync(skipDir, { recursive: true });
});

test('non-finite weights are never checkpointed', async () => {
  const dir = tmp();
  const trainer: Trainer = await Trainer.create({ ...tinyConfig, train: { ...tinyConfig.train, steps: 6, checkpointEvery: 2 } }, {
    runDir: dir,
    // after step 4's update, before its checkpoint: a weight turns infinite
    onEvent: (e) => { if (e.type === 'step' && e.step === 4) noGrad(() => trainer.model.parameters()[0]!.mul_(Infinity)); },
  });
  try {
    await assert.rejects(trainer.run(), (e: unknown) => e instanceof EngramError && e.kind === 'numeric' && /the weights after step 4 are not finite; the checkpoint of step 2 .* is kept/.test(e.message));
  } finally {
    trainer.dispose();
  }
  const { meta, tensors } = await loadCheckpoint(dir);
  assert.equal(meta.step, 2);
  for (const t of Object.values(tensors)) t.dispose();
  rmSync(dir, { recursive: true });
});

test('every size has an upper bound checked before anything is built', () => {
  const cases: [TrainConfigInput, RegExp][] = [
    [{ model: { layers: 1e12 } }, /model\.layers: must be <= 1024/],
    [{ model: { dModel: 1e9 } }, /model\.dModel: must be <= 65536/],
    [{ model: { memLen: 1e9 } }, /model\.memLen/],
    [{ train: { threads: 1_000_000 } }, /train\.threads: must be <= 1024/],
    [{ train: { batchSize: 1e7 } }, /train\.batchSize: must be <= 65536/],
    [{ train: { steps: 1e12 } }, /train\.steps: must be <=/],
    [{ data: { kind: 'task', name: 'copy', options: { sourceLength: 1_000_000 } } }, /segments of \d+ tokens; at most 65536/],
    [{ data: { kind: 'lm', segmentLength: 1e6 } }, /data\.segmentLength: must be <= 65536/],
    [{ model: { dModel: 65536 }, train: { batchSize: 65536 } }, /exceeds 4294967296 elements/],
  ];
  for (const [input, pattern] of cases) {
    assert.throws(() => resolveTrainConfig(input), (e: unknown) => e instanceof EngramError && e.kind === 'config' && pattern.test(e.message), JSON.stringify(input));
  }
  let deep: Record<string, unknown> = {};
  for (let i = 0; i < 10_000; i++) deep = { model: deep };
  assert.throws(() => resolveTrainConfig(deep), /nests deeper than 32 levels/);
  assert.throws(() => deepMerge({}, deep), /nests deeper than 32 levels/);
  for (const top of [42, 'x', [1, 2], null]) assert.throws(() => resolveTrainConfig(top), /expected an object/);
});

test('CLI: bad config files and absurd flags are one-line errors; --debug adds the trace', () => {
  const dir = tmp();
  for (const [i, text] of ['42', 'null', `${'{"model":'.repeat(5000)}{}${'}'.repeat(5000)}`].entries()) {
    writeFileSync(join(dir, `c${i}.json`), text);
    assertCleanError(engram(['train', '--config', `c${i}.json`, '--print-config'], dir), /--config: c\d\.json(:? must hold a JSON object|: the configuration nests deeper)/);
  }
  assertCleanError(engram(['train', '--set', 'model.layers=1e12', '--print-config'], dir), /model\.layers \(--layers\): must be <= 1024/);
  assertCleanError(engram(['train', '--task', 'copy', '--source-length', '1e6', '--print-config'], dir), /segments of/);
  assertCleanError(engram(['generate', 'run', '--length', '1e12'], dir), /--length: must be <=/);
  const debug = engram(['train', '--threads', '1000000', '--print-config', '--debug'], dir);
  assert.equal(debug.status, 2);
  assert.match(debug.stderr, /^engram: resolveTrainConfig: invalid config:\n {2}- train\.threads \(--threads\): must be <= 1024/);
  assert.match(debug.stderr, /\n\s+at /);
  rmSync(dir, { recursive: true });
});

test('temporary files left by a write killed midway are removed when a run resumes', async () => {
  const dir = tmp();
  await train(tinyConfig, { runDir: dir });
  const stale = ['.checkpoint-6.safetensors.99999.0123456789ab.tmp', '.checkpoint.json.99999.ba9876543210.tmp'];
  for (const f of stale) writeFileSync(join(dir, f), 'partial');
  writeFileSync(join(dir, '.keep.tmp'), 'not ours');
  const r = await train({ ...tinyConfig, train: { ...tinyConfig.train, steps: 6 } }, { runDir: dir, resume: true });
  assert.ok(r.finished);
  for (const f of stale) assert.ok(!existsSync(join(dir, f)), f);
  assert.ok(existsSync(join(dir, '.keep.tmp')));
  rmSync(dir, { recursive: true });
});
