// A seeded fuzzer of what a hostile-but-fair user hands Engram: configurations (as files or flags),
// damaged checkpoints, run directories in odd states, and strange corpus files.
//
// Every case must end in success or a clean error: an EngramError (in process) or exit status 0 /
// 2 with one `engram: ` line and no stack trace (CLI). A case that touched a run directory must
// leave it loadable (a failed operation changes none of its files), a flipped byte in a checkpoint
// must never load silently, and nothing may pollute Object.prototype.
//
// Case i of seed S is generated from (S, i) alone, so one case replays by itself:
//   npm run fuzz -- --cases 2000 [--seed S]        many cases
//   npm run fuzz -- --seed S --case i              one case, printed
// The test suite runs a few hundred (test/fuzz.test.ts).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EngramError, Trainer, LOCK_FILE, deepMerge, loadCheckpoint, createObjective, resolveTrainConfig, setPath, train,
  type TrainConfig, type TrainConfigInput,
} from '../src/index.js';

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));

// ---- randomness ------------------------------------------------------------------------------------

/** mulberry32 over a 32-bit state: small, fast, and the same everywhere. */
export class FuzzRng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const caseSeed = (seed: number, i: number): number => Number(BigInt.asUintN(32, BigInt(seed) * 2654435761n + BigInt(i) * 40503n + 1n));

function deep(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { model: v };
  return v;
}

/** Values a config field should never crash on. */
function hostileValue(r: FuzzRng): unknown {
  switch (r.int(6)) {
    case 0: return r.pick([0, -1, 1, 2, 3, 7, 1.5, -0.5, 1e-300, 1e6, 1e9, 1e12, 1e308, -1e308, 2 ** 31, 2 ** 53, 2 ** 64, Number.MAX_SAFE_INTEGER]);
    case 1: return r.pick(['', 'x', '1e6', '-1', 'NaN', 'Infinity', 'segment', 'segment/0', 'segment/3', 'all', 'true', 'copy', 'lm', 'task', '../../etc/passwd', '\u0000', 'é', 'a'.repeat(500)]);
    case 2: return r.pick([null, true, false, undefined]);
    case 3: return r.pick([[], [1, 2], [0.9, 0.98], [null], ['a'], [[[]]]]);
    case 4: return r.pick([{}, { a: 1 }, { kind: 'task' }, { kind: 'lm' }, JSON.parse('{"__proto__":{"polluted":1}}'), { constructor: { prototype: { polluted: 1 } } }, deep(r.pick([3, 20, 40, 2000]))]);
    default: return r.pick([NaN, Infinity, -Infinity, 0.1, 32, 64, 128, 100_000]);
  }
}

const configPaths = [
  'model.kind', 'model.layers', 'model.dModel', 'model.heads', 'model.dInner', 'model.dropout', 'model.norm', 'model.memLen',
  'model.numMemTokens', 'model.previousToken', 'model.adaptiveSpan', 'model.expireSpan', 'model.compressive', 'model.unknown',
  'data', 'data.kind', 'data.name', 'data.options', 'data.options.sourceLength', 'data.options.numSegments', 'data.options.segmentLength',
  'data.options.numSymbols', 'data.options.length', 'data.corpus', 'data.segmentLength', 'data.validFraction', 'data.maxEvalTokens',
  'train', 'train.steps', 'train.batchSize', 'train.bpttDepth', 'train.seed', 'train.evalSeed', 'train.logEvery', 'train.evalEvery',
  'train.evalBatches', 'train.checkpointEvery', 'train.threads', 'train.nonFinite', 'train.precision', 'optim', 'optim.optimizer', 'optim.lr',
  'optim.weightDecay', 'optim.betas', 'optim.eps', 'optim.clipGradNorm', 'optim.warmupSteps', 'optim.decay', 'optim.minLr',
  'optim.plateau', 'optim.plateau.factor', 'optim.plateau.patience', '__proto__.polluted', 'constructor.prototype.polluted', 'x.y.z',
];

/** A small valid configuration; the fuzz cases damage it. */
export const baseConfig: TrainConfigInput = {
  model: { dModel: 16, layers: 1, heads: 2, dInner: 16 },
  data: { kind: 'task', name: 'copy', options: { sourceLength: 4 } },
  train: { steps: 4, batchSize: 4, evalEvery: 0, evalBatches: 1, checkpointEvery: 2, logEvery: 2 },
};

function hostileConfig(r: FuzzRng): unknown {
  if (r.chance(0.05)) return hostileValue(r); // the whole file: 42, null, [1, 2], ...
  const c = structuredClone(baseConfig) as Record<string, unknown>;
  for (let n = 1 + r.int(3); n > 0; n--) setPath(c, r.pick(configPaths), hostileValue(r));
  return c;
}

// ---- outcomes ------------------------------------------------------------------------------------------

export interface FuzzCase {
  index: number;
  kind: string;
  /** What was done, enough to see the input (replay with --case for the exact bytes). */
  detail: unknown;
}

export interface FuzzFailure extends FuzzCase {
  problem: string;
}

class CaseFailure extends Error {}

const fail = (problem: string): never => {
  throw new CaseFailure(problem);
};

/** Runs fn; an EngramError is a clean outcome, anything else a failure. Returns whether it succeeded. */
async function clean(what: string, fn: () => unknown): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    if (e instanceof CaseFailure) throw e;
    if (!(e instanceof EngramError)) return fail(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e)}`);
    if (!e.message.trim() || /\n\s+at /.test(e.message)) return fail(`${what}: EngramError without a proper message: ${JSON.stringify(e.message)}`);
    return false;
  }
}

/** Hashes of every file of a run directory (lock and temporary files aside). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    if (f === LOCK_FILE || f.endsWith('.tmp')) continue;
    const p = join(dir, f);
    try {
      out[f] = createHash('sha256').update(readFileSync(p)).digest('hex');
    } catch {
      out[f] = 'dir';
    }
  }
  return out;
}

function sameSnapshot(a: Record<string, string>, b: Record<string, string>): boolean {
  return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}

async function mustLoad(dir: string, what: string): Promise<void> {
  try {
    const { tensors } = await loadCheckpoint(dir);
    for (const t of Object.values(tensors)) t.dispose();
  } catch (e) {
    fail(`${what}: the run directory no longer loads: ${(e as Error).message}`);
  }
  if (existsSync(join(dir, LOCK_FILE))) fail(`${what}: a lock was left behind`);
}

// ---- the case kinds ---------------------------------------------------------------------------------------

interface Context {
  work: string;
  /** A finished run of baseConfig (step 4, checkpoints every 2). */
  goodRun: string;
  goodConfig: TrainConfig;
  counter: number;
}

function freshCopy(ctx: Context): string {
  const dir = join(ctx.work, `run-${ctx.counter++}`);
  cpSync(ctx.goodRun, dir, { recursive: true });
  return dir;
}

/** A configuration (file or flags) through validation; now and then a real step when it passed. */
async function configCase(r: FuzzRng, c: FuzzCase): Promise<void> {
  const input = hostileConfig(r);
  c.detail = input;
  let resolved: TrainConfig | null = null;
  const ok = await clean('resolveTrainConfig', () => {
    resolved = resolveTrainConfig(deepMerge({}, input));
  });
  const cfg = resolved as TrainConfig | null;
  if (ok && cfg && cfg.model.dModel <= 64 && cfg.model.layers <= 2 && cfg.model.dInner <= 128 && cfg.train.batchSize <= 8 && cfg.data.kind === 'task' && r.chance(0.15)) {
    await clean('train (1 step)', () => train(deepMerge(cfg, { train: { steps: 1, evalEvery: 0, evalBatches: 1, threads: 0 } })));
  }
}

const metaFields = [
  'step', 'tensorsFile', 'tensorsSha256', 'format', 'version', 'config', 'config.model.dModel', 'config.train.steps', 'config.optim',
  'modelConfig', 'modelConfig.dModel', 'modelConfig.kind', 'vocab', 'optimizer', 'optimizer.groups', 'optimizer.stepCount', 'optimizer.steps',
  'scheduler', 'scheduler.lastStep', 'scheduler.baseLrs', 'plateau', 'data', 'data.taskRng', 'data.stream', 'carry', 'lastEval', 'bestEval',
  'elapsed', 'peakHeapBytes', 'savedAt',
];
const hostilePaths = ['../x.safetensors', '../../../etc/passwd', '/etc/passwd', 'a/b.safetensors', '.hidden.safetensors', 'checkpoint.json', '', '.', '..', `${'x'.repeat(300)}.safetensors`, 'checkpoint-2.safetensors', 'con.safetensors'];

/** A damaged checkpoint: loading and resuming give clean errors, never a silent load of a flipped byte. */
async function checkpointCase(r: FuzzRng, c: FuzzCase, ctx: Context): Promise<void> {
  const dir = freshCopy(ctx);
  const jsonPath = join(dir, 'checkpoint.json');
  const meta = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  const tensorsPath = join(dir, meta.tensorsFile as string);
  const how = r.pick(['truncate-json', 'truncate-tensors', 'flip-tensors', 'flip-json', 'field', 'field', 'hostile-path', 'delete']);
  let flippedTensors = false;
  const detail: Record<string, unknown> = { how };
  if (how === 'truncate-json' || how === 'truncate-tensors') {
    const p = how === 'truncate-json' ? jsonPath : tensorsPath;
    const size = readFileSync(p).length;
    detail.length = r.int(size);
    truncateSync(p, detail.length as number);
  } else if (how === 'flip-tensors' || how === 'flip-json') {
    const p = how === 'flip-json' ? jsonPath : tensorsPath;
    const bytes = readFileSync(p);
    const flips: [number, number][] = [];
    for (let n = 1 + r.int(3); n > 0; n--) {
      const at = r.int(bytes.length), bit = 1 << r.int(8);
      bytes[at]! ^= bit;
      flips.push([at, bit]);
    }
    detail.flips = flips;
    writeFileSync(p, bytes);
    flippedTensors = how === 'flip-tensors';
  } else if (how === 'field' || how === 'hostile-path') {
    const path = how === 'field' ? r.pick(metaFields) : 'tensorsFile';
    const value = how === 'field' ? hostileValue(r) : r.pick(hostilePaths);
    Object.assign(detail, { path, value });
    setPath(meta, path, value);
    writeFileSync(jsonPath, JSON.stringify(meta));
  } else {
    const p = r.chance(0.5) ? jsonPath : tensorsPath;
    detail.removed = p;
    rmSync(p);
  }
  c.detail = detail;
  const before = snapshot(dir);
  const loaded = await clean('loadCheckpoint', async () => {
    const { tensors } = await loadCheckpoint(dir);
    for (const t of Object.values(tensors)) t.dispose();
  });
  if (loaded && flippedTensors) fail('a flipped byte in the tensor file loaded without an error');
  if (r.chance(0.4)) {
    const resumed = await clean('Trainer.create (resume)', async () => {
      const t = await Trainer.create(ctx.goodConfig, { runDir: dir, resume: true });
      t.dispose();
    });
    if (resumed && flippedTensors) fail('a flipped byte in the tensor file resumed without an error');
    if (!resumed && !sameSnapshot(before, snapshot(dir))) fail('a failed resume changed the run directory');
  }
  if (existsSync(join(dir, LOCK_FILE))) fail('a lock was left behind');
  rmSync(dir, { recursive: true, force: true });
}

/** An operation on a good run directory in an odd state: afterwards the run still loads. */
async function runDirCase(r: FuzzRng, c: FuzzCase, ctx: Context): Promise<void> {
  const dir = freshCopy(ctx);
  const what = r.pick(['fresh', 'resume-changed', 'resume-more', 'stale-lock', 'garbage-lock', 'foreign-lock', 'temp-files']);
  const detail: Record<string, unknown> = { what };
  let config: unknown = ctx.goodConfig;
  let resume = true;
  if (what === 'fresh') resume = false;
  else if (what === 'resume-changed') {
    const change = hostileConfig(r);
    detail.change = change;
    c.detail = detail;
    if (!(await clean('deepMerge', () => { config = deepMerge(structuredClone(ctx.goodConfig), change); }))) return;
  } else if (what === 'resume-more') {
    detail.steps = 4 + r.int(3);
    config = deepMerge(ctx.goodConfig, { train: { steps: detail.steps } });
  } else if (what === 'stale-lock') {
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + r.int(1000), host: hostname(), started: 'then' }));
  } else if (what === 'garbage-lock') {
    detail.lock = r.pick(['', '{', 'null', '{"pid":"x"}', '\u0000\u0001']);
    writeFileSync(join(dir, LOCK_FILE), detail.lock as string);
  } else if (what === 'foreign-lock') {
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: `${hostname()}-other`, started: 'then' }));
  } else {
    for (let n = 1 + r.int(3); n > 0; n--) writeFileSync(join(dir, `.checkpoint-${r.int(9)}.safetensors.${r.int(99999)}.${'0123456789ab'}.tmp`), 'partial');
  }
  c.detail = detail;
  const before = snapshot(dir);
  const ok = await clean(`train (${what})`, () => train(config as TrainConfigInput, { runDir: dir, resume }));
  if (!ok && !sameSnapshot(before, snapshot(dir))) fail('a failed run changed the run directory');
  if (what === 'foreign-lock' || what === 'garbage-lock') rmSync(join(dir, LOCK_FILE), { force: true }); // those stay for a person to remove
  await mustLoad(dir, what);
  rmSync(dir, { recursive: true, force: true });
}

/** A corpus file nobody should use, for language modelling. */
async function dataCase(r: FuzzRng, c: FuzzCase, ctx: Context): Promise<void> {
  const kinds: Record<string, () => Buffer> = {
    empty: () => Buffer.alloc(0),
    'one char': () => Buffer.from('a'),
    binary: () => Buffer.from(Array.from({ length: 1 + r.int(4000) }, () => r.int(256))),
    'invalid utf8': () => Buffer.from([0xff, 0xfe, 0xc3, 0x28, ...Buffer.from('hello world '.repeat(50))]),
    'huge line': () => Buffer.from('x'.repeat(50_000 + r.int(200_000))),
    'one line of many symbols': () => Buffer.from(Array.from({ length: 3000 }, (_, i) => String.fromCodePoint(0x4e00 + (i % 2000))).join('')),
    'nul bytes': () => Buffer.alloc(2000),
    text: () => Buffer.from('the quick brown fox jumps over the lazy dog.\n'.repeat(20 + r.int(40))),
  };
  const kind = r.pick(Object.keys(kinds));
  const file = join(ctx.work, `corpus-${ctx.counter++}.txt`);
  writeFileSync(file, kinds[kind]!());
  const segmentLength = r.pick([1, 2, 8, 16, 64, 1000]);
  c.detail = { kind, segmentLength };
  const input = { model: { dModel: 16, layers: 1, heads: 2, dInner: 16 }, data: { kind: 'lm', corpus: file, segmentLength }, train: { steps: 1, batchSize: r.pick([1, 2, 4]), evalEvery: 0, checkpointEvery: 0 } };
  let config: TrainConfig | null = null;
  if (!(await clean('resolveTrainConfig', () => { config = resolveTrainConfig(input); })) || !config) return;
  const cfg = config as TrainConfig;
  if (r.chance(0.5)) await clean('createObjective', async () => (await createObjective(cfg)).dispose());
  else await clean('train (1 step)', () => train({ ...cfg, data: { ...cfg.data, maxEvalTokens: 64 } } as TrainConfigInput));
  rmSync(file, { force: true });
}

const flagNames = [
  '--model', '--layers', '--d-model', '--heads', '--d-inner', '--dropout', '--norm', '--mem-len', '--mem-tokens', '--segments', '--source-length',
  '--steps', '--batch-size', '--bptt', '--seed', '--threads', '--lr', '--clip', '--warmup', '--decay', '--on-nan', '--precision', '--task', '--corpus', '--set', '--task-option',
];

/** The real command line (a child process): exit 0 or 2, one `engram:` line, never a trace. */
function cliCase(r: FuzzRng, c: FuzzCase, ctx: Context): void {
  let args: string[];
  if (r.chance(0.6)) {
    args = ['train', '--print-config'];
    for (let n = 1 + r.int(4); n > 0; n--) {
      const flag = r.pick(flagNames);
      const v = hostileValue(r);
      const text = (typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined').replaceAll('\u0000', ''); // argv cannot hold NUL
      args.push(flag, flag === '--set' || flag === '--task-option' ? `${r.pick(configPaths)}=${text}` : text);
    }
  } else {
    const dir = freshCopy(ctx);
    const meta = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as Record<string, unknown>;
    if (r.chance(0.5)) {
      const p = join(dir, meta.tensorsFile as string);
      const bytes = readFileSync(p);
      bytes[r.int(bytes.length)]! ^= 1 << r.int(8);
      writeFileSync(p, bytes);
    } else {
      setPath(meta, r.pick(metaFields), hostileValue(r));
      writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(meta));
    }
    args = r.pick([['eval', dir], ['generate', dir, '--samples', '1'], ['train', '--out', dir, '--resume', '--steps', '5'], ['inspect', dir, '--out', join(dir, 'insp')]]);
  }
  c.detail = { args };
  const p = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: ctx.work, timeout: 60_000 });
  if (p.status !== 0 && p.status !== 2) fail(`exit status ${String(p.status)} (signal ${String(p.signal)}): ${p.stderr}`);
  if (/\n\s+at /.test(p.stderr) || /internal error/.test(p.stderr)) fail(`a trace or an internal error: ${p.stderr}`);
  if (p.status === 2 && p.stderr.split('\n').filter((l) => l.startsWith('engram: ')).length !== 1) fail(`not one 'engram:' line: ${p.stderr}`);
}

// ---- the runner -------------------------------------------------------------------------------------------

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** Run only this case (replay). */
  only?: number;
  /** One case in `spawnEvery` is a real CLI process (default 50). */
  spawnEvery?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  run: number;
  byKind: Record<string, number>;
  failures: FuzzFailure[];
  seconds: number;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const work = mkdtempSync(join(tmpdir(), 'engram-fuzz-'));
  const goodRun = join(work, 'good');
  try {
    await train(baseConfig, { runDir: goodRun });
    const ctx: Context = { work, goodRun, goodConfig: resolveTrainConfig(baseConfig), counter: 0 };
    const byKind: Record<string, number> = {};
    const failures: FuzzFailure[] = [];
    const spawnEvery = o.spawnEvery ?? 50;
    const indices = o.only !== undefined ? [o.only] : Array.from({ length: o.cases }, (_, i) => i);
    for (const index of indices) {
      const r = new FuzzRng(caseSeed(o.seed, index));
      const roll = r.next();
      const kind = index % spawnEvery === spawnEvery - 1 ? 'cli' : roll < 0.45 ? 'config' : roll < 0.75 ? 'checkpoint' : roll < 0.9 ? 'run-dir' : 'data';
      const c: FuzzCase = { index, kind, detail: null };
      byKind[kind] = (byKind[kind] ?? 0) + 1;
      try {
        if (kind === 'config') await configCase(r, c);
        else if (kind === 'checkpoint') await checkpointCase(r, c, ctx);
        else if (kind === 'run-dir') await runDirCase(r, c, ctx);
        else if (kind === 'data') await dataCase(r, c, ctx);
        else cliCase(r, c, ctx);
        if ('polluted' in Object.prototype || ({} as Record<string, unknown>).polluted !== undefined) fail('Object.prototype was polluted');
      } catch (e) {
        const problem = e instanceof CaseFailure ? e.message : `the fuzzer itself failed: ${(e as Error).stack ?? String(e)}`;
        failures.push({ ...c, problem });
        o.log?.(`FAIL seed ${o.seed} case ${index} (${kind}): ${problem}\n  input: ${describe(c.detail)}\n  replay: npm run fuzz -- --seed ${o.seed} --case ${index}`);
        delete (Object.prototype as Record<string, unknown>).polluted;
      }
      if (o.only !== undefined) o.log?.(`case ${index} (${kind}): ${describe(c.detail)}`);
    }
    return { seed: o.seed, run: indices.length, byKind, failures, seconds: (performance.now() - started) / 1000 };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function describe(v: unknown): string {
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x === undefined ? 'undefined' : x));
  return s === undefined ? String(v) : s.length > 600 ? `${s.slice(0, 600)}... (${s.length} characters)` : s;
}

// ---- as a program: npm run fuzz -- --cases N [--seed S] [--case i] ----------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name);
    if (i < 0) return undefined;
    const v = Number(process.argv[i + 1]);
    if (!Number.isSafeInteger(v) || v < 0) {
      process.stderr.write(`fuzz: ${name} needs a non-negative integer\n`);
      process.exit(2);
    }
    return v;
  };
  const seed = arg('--seed') ?? Math.floor(Math.random() * 2 ** 31);
  const cases = arg('--cases') ?? 1000;
  const only = arg('--case');
  process.stdout.write(`fuzz: seed ${seed}, ${only !== undefined ? `case ${only}` : `${cases} cases`}\n`);
  const report = await runFuzz({ cases, seed, ...(only !== undefined ? { only } : {}), spawnEvery: 25, log: (l) => process.stdout.write(`${l}\n`) });
  process.stdout.write(`fuzz: ${report.run} cases (${Object.entries(report.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}) in ${report.seconds.toFixed(1)} s; ${report.failures.length} failed (seed ${seed})\n`);
  process.exitCode = report.failures.length ? 1 : 0;
}
