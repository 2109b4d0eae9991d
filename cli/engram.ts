#!/usr/bin/env node
// engram: train, evaluate and sample segment-level memory models, and run experiment grids.
//
//   engram train      [--config file.json] [flags]        train one model (a run directory)
//   engram eval       <run-dir> [--batches n] [--segments n] [--split valid|test]
//   engram generate   <run-dir> [--prompt text] [--length n] [--temperature t] [--top-k k] [--top-p p]
//                     [--stop text]... [--seed s] [--stream]
//   engram score      <run-dir> <file | -> [--chunk n] [--unknown map|error]   bits per character, read in chunks
//   engram serve      <run-dir>... [--host h] [--port n] [--max-sessions n] [--session-ttl s] [--queue n]
//                     [--timeout s] [--max-tokens n] [--max-prompt n] [--body-limit bytes] [--grace s]
//   engram view       <run-dir> [--port n] [--no-open]                  serve one model; open the memory viewer
//   engram inspect    <run-dir> [--text t | --length n --offset k | --seed s] [--out dir]
//   engram export     <run-dir> <dir> [--overwrite]                   a model folder; eval, generate
//                                                                       and inspect take one in place of <run-dir>
//   engram experiment [recipe.json | built-in name] [--out dir] [--steps n] [--set path=value]
//
// Configuration precedence: built-in defaults <- --config file <- flags. Every value is checked
// (zod); an invalid one stops the command with every problem listed and exit status 2.
// Progress goes to stderr (a bar on a terminal, lines otherwise); results to stdout.
//
// Exit status: 0 done; 2 a problem with what was asked (options, files, a run directory in use,
// a non-finite loss), as one line `engram: <problem and what to do>` (a config's problems listed
// below it), and also an internal error (a bug: `engram: internal error: ...`); 130 / 143 / 129 after
// SIGINT / SIGTERM / SIGHUP: the run stops after its current step and checkpoints first (a second
// signal exits at once). Stack traces only with --debug or ENGRAM_DEBUG=1.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import {
  EngramError, configError, ioError, checkDepth, engramVersion, modelKinds, taskNames,
  resolveTrainConfig, parseWith, deepMerge, setPath, describeMetrics, formatDuration,
  Trainer, hasCheckpoint, readCheckpointMeta, loadRun, runName, exportRun, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE,
  runExperiment, parseRecipe, builtinRecipes, defaultRecipe,
  inspect, writeInspection, generate, score,
  ProcessGroup, distEnvFrom, launch,
  type TrainConfig, type TrainConfigInput, type ProgressMode, type DeviceSpec,
} from '../src/index.js';
import { startServer, defaultLimits, type EngramServer } from '../src/serve/server.js';

// ---- flags that set configuration values ------------------------------------------------------------

interface ConfigFlag {
  /** commander's flag text. */
  flags: string;
  /** Dotted path in the configuration. */
  path: string;
  description: string;
}

const PRECISION_HELP = "'float32' (default) or 'bf16': matrix products in bfloat16, weights, optimiser state, softmax, norms and loss in float32 (needs AVX512-BF16 or AMX)";
/** --precision of the commands that run a trained model (a run trained at either loads into either). */
const precisionOption = z.enum(['float32', 'bf16']).default('float32');

const configFlags: ConfigFlag[] = [
  { flags: '--model <kind>', path: 'model.kind', description: `model kind: ${modelKinds.join(', ')}` },
  { flags: '--layers <n>', path: 'model.layers', description: 'layers' },
  { flags: '--d-model <n>', path: 'model.dModel', description: 'hidden size' },
  { flags: '--heads <n>', path: 'model.heads', description: 'attention heads' },
  { flags: '--d-inner <n>', path: 'model.dInner', description: 'feed-forward inner size' },
  { flags: '--dropout <p>', path: 'model.dropout', description: 'dropout probability' },
  { flags: '--norm <where>', path: 'model.norm', description: "layer norm: 'post' or 'pre'" },
  { flags: '--mem-len <n>', path: 'model.memLen', description: 'Transformer-XL cache length; maximum span L of sequential, adaptive-span, expire-span, compressive (raw memory), feedback (default for these and xl: the segment length)' },
  { flags: '--mem-tokens <n>', path: 'model.numMemTokens', description: 'memory tokens (rmt, mem-transformer, mem-bottleneck; default 10)' },
  { flags: '--previous-token <bool>', path: 'model.previousToken', description: "true: each position's input also embeds the token before it in its segment (default false)" },
  { flags: '--segments <n>', path: 'data.options.numSegments', description: 'task: segments a sample is cut into' },
  { flags: '--source-length <n>', path: 'data.options.sourceLength', description: 'copy / reverse: source length' },
  { flags: '--segment-length <n>', path: 'data.segmentLength', description: 'language modelling: tokens per segment (long tasks: --task-option segmentLength=N)' },
  { flags: '--steps <n>', path: 'train.steps', description: 'optimiser steps' },
  { flags: '--batch-size <n>', path: 'train.batchSize', description: 'samples (tasks) or streams (LM) per step' },
  { flags: '--bptt <k>', path: 'train.bpttDepth', description: "BPTT depth in segments, or 'all' (tasks)" },
  { flags: '--seed <n>', path: 'train.seed', description: 'seed of initialisation and data' },
  { flags: '--log-every <n>', path: 'train.logEvery', description: 'steps between log records' },
  { flags: '--eval-every <n>', path: 'train.evalEvery', description: 'steps between evaluations (0: at the end only)' },
  { flags: '--eval-batches <n>', path: 'train.evalBatches', description: 'held-out batches per task evaluation' },
  { flags: '--checkpoint-every <n>', path: 'train.checkpointEvery', description: 'steps between checkpoints (0: at the end only)' },
  { flags: '--threads <n>', path: 'train.threads', description: "ATen threads (0: libtorch's choice)" },
  { flags: '--curriculum <stages>', path: 'train.curriculum.segments', description: "task: grow the segments during the run, stage by stage: '1,2,3,6,9', '1..9' or '1..9/2' (with --curriculum-every and/or --curriculum-threshold)" },
  { flags: '--curriculum-every <steps>', path: 'train.curriculum.advance.everySteps', description: 'curriculum: steps each stage lasts' },
  { flags: '--curriculum-threshold <x>', path: 'train.curriculum.advance.threshold', description: 'curriculum: a stage ends when the held-out accuracy reaches x (metric: --set train.curriculum.advance.metric=exactMatch)' },
  { flags: '--init-from <dir>', path: 'train.initFrom', description: "start from this run directory's or model folder's weights (same model; fresh optimiser)" },
  { flags: '--device <name>', path: 'train.device', description: "where the model, optimiser state and batches live: 'cpu' (default), 'cuda', 'cuda:N' or 'auto' (cuda when available); a run may resume on another device" },
  { flags: '--precision <p>', path: 'train.precision', description: PRECISION_HELP },
  { flags: '--on-nan <what>', path: 'train.nonFinite', description: "a step with a NaN / infinite loss: 'stop' the run (default; the last checkpoint is kept) or 'skip' the batch" },
  { flags: '--optimizer <name>', path: 'optim.optimizer', description: "'adam' or 'adamw'" },
  { flags: '--lr <x>', path: 'optim.lr', description: 'learning rate' },
  { flags: '--weight-decay <x>', path: 'optim.weightDecay', description: 'weight decay' },
  { flags: '--clip <norm>', path: 'optim.clipGradNorm', description: 'clip the gradient norm (0: off)' },
  { flags: '--warmup <steps>', path: 'optim.warmupSteps', description: 'linear warmup steps' },
  { flags: '--decay <kind>', path: 'optim.decay', description: "'none' or 'cosine'" },
  { flags: '--min-lr <x>', path: 'optim.minLr', description: 'cosine decay floor' },
  { flags: '--plateau-factor <x>', path: 'optim.plateau.factor', description: 'reduce the lr by this factor on a plateau of the eval metric (enables it)' },
  { flags: '--plateau-patience <n>', path: 'optim.plateau.patience', description: 'evaluations without improvement before reducing (enables it)' },
];

/** commander's attribute name of a flag: '--d-model <n>' -> 'dModel'. */
const attributeOf = (flags: string): string => flags.split(/[ ,]+/).find((f) => f.startsWith('--'))!.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const flagOfPath = new Map(configFlags.map((f) => [f.path, f.flags.split(' ')[0]!]));

/** A flag's text as a JSON value: numbers, booleans, null, JSON arrays / objects, else the string. */
function parseValue(text: string): unknown {
  const t = text.trim();
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null') return null;
  if (t.startsWith('[') || t.startsWith('{') || t.startsWith('"')) {
    try {
      return JSON.parse(t);
    } catch {
      return text;
    }
  }
  return text;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function splitAssignment(text: string, flag: string, op: string): [string, string] {
  const i = text.indexOf('=');
  if (i <= 0) throw configError(op, `${flag} expects key=value, got '${text}'`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/** The configuration overrides that the flags of command op give. */
function flagOverrides(opts: Record<string, unknown>, op: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (opts.task !== undefined && opts.corpus !== undefined) throw configError(op, '--task and --corpus exclude each other (a task, or language modelling on a corpus)');
  if (opts.task !== undefined) o.data = { kind: 'task', name: opts.task };
  if (opts.corpus !== undefined) o.data = { kind: 'lm', corpus: opts.corpus };
  for (const f of configFlags) {
    const v = opts[attributeOf(f.flags)];
    if (v !== undefined) setPath(o, f.path, parseValue(String(v)));
  }
  for (const kv of (opts.taskOption as string[] | undefined) ?? []) {
    const [k, v] = splitAssignment(kv, '--task-option', op);
    setPath(o, `data.options.${k}`, parseValue(v));
  }
  for (const kv of (opts.set as string[] | undefined) ?? []) {
    const [k, v] = splitAssignment(kv, '--set', op);
    setPath(o, k, parseValue(v));
  }
  return o;
}

/** A JSON file that must hold an object (a configuration or a recipe), read for the command op. */
function readJson(path: string, op: string, what: string): Record<string, unknown> {
  if (!existsSync(path)) throw ioError(op, `${what}: no such file ${path}`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw configError(op, `${what}: ${path} is not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw configError(op, `${what}: ${path} must hold a JSON object ({ ... }), not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`);
  }
  checkDepth(value, op, `${what}: ${path}`);
  return value as Record<string, unknown>;
}

/** Adds a flag hint to config error lines: '  - optim.lr: ...' -> '  - optim.lr (--lr): ...'. */
function withFlagHints(message: string): string {
  return message.replace(/^(\s+- )([\w.]+):/gm, (m, lead: string, path: string) => {
    const flag = flagOfPath.get(path) ?? (path === 'data.name' ? '--task' : path === 'data.corpus' ? '--corpus' : undefined);
    return flag ? `${lead}${path} (${flag}):` : m;
  });
}

const progressOption = () => new Option('--progress <mode>', 'progress display: auto (a bar on a terminal, lines otherwise), bar, lines, none').default('auto');

function progressMode(v: unknown, op: string): ProgressMode {
  return parseWith(z.enum(['auto', 'bar', 'lines', 'none']), v, op, 'invalid option value', () => '--progress');
}

/** Exit status after a stop signal, by the shell's convention 128 + the signal's number. */
const signalExitCodes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
/** The exit status of the signal that stopped the command (130 until one arrives). */
let stopExitCode = 130;

/**
 * Aborts on the first SIGINT (Ctrl-C), SIGTERM (kill, schedulers) or SIGHUP (a closed terminal):
 * the run checkpoints after its current step and stops. A second signal exits at once (the run
 * directory's lock is released by its exit hook; the previous checkpoint stays intact).
 */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  // After SIGHUP the terminal may be gone: a failed write to it must not end the run before its checkpoint.
  process.stderr.on('error', () => {});
  for (const [name, code] of Object.entries(signalExitCodes)) {
    process.on(name, () => {
      if (controller.signal.aborted) process.exit(code);
      stopExitCode = code;
      process.stderr.write(`\n${name}: stopping after this step (${name === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to quit now)...\n`);
      controller.abort();
    });
  }
  return controller.signal;
}

const out = (line = '') => process.stdout.write(`${line}\n`);
// `engram ... | head` closes stdout early: end quietly instead of crashing on EPIPE.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

// ---- the commands --------------------------------------------------------------------------------------

function defaultRunDir(config: TrainConfig): string {
  return join('runs', `${runName(config.data)}-${config.model.kind}`);
}

// Flags of the launcher (`--nproc`): the workers are started without them (they read the job from
// their environment, as under torchrun).
const launchFlags = ['--nproc', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

function intFlag(opts: Record<string, unknown>, key: string, flag: string): number | undefined {
  const raw = opts[key];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw configError('train', `${flag} must be an integer, got '${String(raw)}'`);
  return n;
}

/** `engram train --nproc N ...`: this machine's N workers of the job, each `engram train ...` without the launch flags. */
async function launchTrainWorkers(opts: Record<string, unknown>): Promise<void> {
  const args: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (launchFlags.includes(a)) i++; // and its value
    else if (!launchFlags.some((f) => a.startsWith(`${f}=`))) args.push(a);
  }
  const r = await launch({
    nproc: intFlag(opts, 'nproc', '--nproc')!,
    nnodes: intFlag(opts, 'nnodes', '--nnodes') ?? 1,
    nodeRank: intFlag(opts, 'nodeRank', '--node-rank') ?? 0,
    ...(opts.masterAddr !== undefined ? { masterAddr: String(opts.masterAddr) } : {}),
    ...(opts.masterPort !== undefined ? { masterPort: intFlag(opts, 'masterPort', '--master-port')! } : {}),
    command: process.execPath,
    args: [...process.execArgv, process.argv[1]!, ...args],
    // the other ranks stop by themselves within the collectives' timeout; past it they are stopped
    ...(opts.distTimeout !== undefined && Number(opts.distTimeout) > 0 ? { graceSeconds: Number(opts.distTimeout) } : {}),
  });
  process.exitCode = r.exitCode;
}

async function trainCommand(opts: Record<string, unknown>): Promise<void> {
  const distEnv = distEnvFrom();
  if (opts.nproc !== undefined && !distEnv && !opts.printConfig) return launchTrainWorkers(opts);
  const rank = distEnv?.rank ?? 0;
  const progress = rank === 0 ? progressMode(opts.progress, 'train') : 'none';
  let base: unknown = {};
  const runDirFlag = opts.out as string | undefined;
  if (opts.resume && opts.overwrite) throw configError('train', '--resume and --overwrite exclude each other (continue the run, or replace it)');
  const fromFile = opts.config ? readJson(opts.config as string, 'train', '--config') : {};
  if (opts.resume) {
    const dir = runDirFlag ?? defaultRunDir(resolveTrainConfig(deepMerge(fromFile, flagOverrides(opts, 'train'))));
    if (!hasCheckpoint(dir)) throw ioError('train', `cannot resume: ${dir} has no checkpoint.json; nothing was changed (start a new run without --resume${existsSync(dir) ? ', adding --overwrite to replace what is there' : ''})`);
    base = (await readCheckpointMeta(dir)).config;
  }
  base = deepMerge(base, fromFile);
  const merged = deepMerge(base, flagOverrides(opts, 'train')) as Record<string, unknown>;
  // `--source-length 16` alone: task options over the default task (not a data section without a kind)
  const data = merged.data as Record<string, unknown> | undefined;
  if (data && typeof data === 'object' && !Array.isArray(data) && !('kind' in data)) merged.data = deepMerge(resolveTrainConfig({}).data, data);
  const config = resolveTrainConfig(merged);
  if (opts.printConfig) {
    out(JSON.stringify(config, null, 2));
    return;
  }
  const runDir = runDirFlag ?? defaultRunDir(config);
  const backend = (opts.backend as string | undefined) ?? 'gloo';
  if (backend !== 'gloo' && backend !== 'nccl') throw configError('train', `--backend must be gloo or nccl, got '${backend}'`);
  const timeoutSeconds = opts.distTimeout !== undefined ? Number(opts.distTimeout) : undefined;
  if (timeoutSeconds !== undefined && !(timeoutSeconds > 0)) throw configError('train', `--dist-timeout must be a positive number of seconds, got '${String(opts.distTimeout)}'`);
  const processGroup = distEnv ? ProcessGroup.init(distEnv, { backend, ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}) }) : null;
  let trainer: Trainer;
  try {
    trainer = await Trainer.create(config, { runDir, resume: Boolean(opts.resume), overwrite: Boolean(opts.overwrite), progress, signal: interruptSignal(), processGroup });
  } catch (e) {
    processGroup?.destroy();
    throw e;
  }
  const print = rank === 0 ? out : () => {}; // results from rank 0 only
  try {
    if (rank === 0) process.stderr.write(`${trainer.step > 0 ? `resuming at step ${trainer.step}` : 'training'}: ${config.model.kind}, ${trainer.model.numParameters()} parameters; ` +
      `${trainer.objective.describe()}; ${config.train.steps} steps of ${config.train.batchSize}${processGroup ? ` over ${processGroup.worldSize} processes` : ''}; run directory ${runDir}` +
      `${trainer.curriculum ? `; curriculum over ${trainer.curriculum.config.segments.join(', ')} segments, at ${trainer.curriculum.describe()}` : ''}` +
      `${trainer.initFrom ? `; weights from ${trainer.initFrom.dir} (step ${trainer.initFrom.step})` : ''}\n`);
    const r = await trainer.run();
    if (r.aborted) {
      print(`stopped at step ${r.step}/${config.train.steps}; continue with: engram train --out ${runDir} --resume`);
      process.exitCode = stopExitCode;
      return;
    }
    print(`step ${r.step}: ${r.finalEval ? describeMetrics(r.finalEval) : ''}`);
    print(`trained in ${formatDuration(r.elapsed)} (${Math.round(r.tokensPerSec)} tokens/s); run directory ${runDir}`);
  } finally {
    trainer.dispose();
    processGroup?.destroy();
  }
}

/** --device: checked against the machine by loadRun / the trainer (resolveDevice), with the fix in the message. */
const deviceOption = z.string().default('cpu');
const DEVICE_HELP = "where the model runs: 'cpu' (default), 'cuda', 'cuda:N' or 'auto' (cuda when available)";

const evalSchema = z.strictObject({
  device: deviceOption,
  precision: precisionOption,
  batches: z.number().int().positive().max(1_000_000).optional(),
  seed: z.number().int().optional(),
  segments: z.number().int().positive().max(1_000_000).optional(),
  split: z.enum(['valid', 'test']).default('valid'),
  json: z.boolean().default(false),
});

const kebab = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

async function evalCommand(runDir: string, raw: Record<string, unknown>): Promise<void> {
  const o = parseWith(evalSchema, numbers(raw, ['batches', 'seed', 'segments']), 'eval', 'invalid option value', kebab);
  const run = await loadRun(runDir, { device: o.device as DeviceSpec, precision: o.precision });
  try {
    const { metrics, what } = await run.objective.evaluateRun(run.model, o);
    if (o.json) out(JSON.stringify({ run: runDir, step: run.step, ...metrics }));
    else out(`${runDir} @ step ${run.step} on ${what}: ${describeMetrics(metrics)}`);
  } finally {
    run.model.dispose();
  }
}

const generateSchema = z.strictObject({
  device: deviceOption,
  precision: precisionOption,
  prompt: z.string().default(''),
  length: z.number().int().positive().max(1_000_000).default(200),
  temperature: z.number().min(0).optional(),
  topK: z.number().int().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  stop: z.array(z.string().min(1)).default([]),
  seed: z.number().int().default(0),
  samples: z.number().int().positive().max(100_000).default(5),
  stream: z.boolean().default(false),
});

async function generateCommand(runDir: string, raw: Record<string, unknown>): Promise<void> {
  const o = parseWith(generateSchema, numbers(raw, ['length', 'temperature', 'topK', 'topP', 'seed', 'samples']), 'generate', 'invalid option value', kebab);
  const streaming = o.stream || o.topP < 1 || o.stop.length > 0;
  const run = await loadRun(runDir, { device: o.device as DeviceSpec, precision: o.precision });
  try {
    if (!streaming) {
      for (const line of run.objective.generate(run.model, o)) out(line);
      return;
    }
    if (run.kind !== 'lm') throw configError('generate', '--stream, --top-p and --stop are for language-model runs; this is a task run');
    // the streaming generator: --stream writes each character as it is made
    const write = (text: string) => (o.stream ? process.stdout.write(text) : undefined);
    write(o.prompt);
    let text = '';
    for await (const t of generate(run, o.prompt, { maxTokens: o.length, temperature: o.temperature ?? 0.8, topK: o.topK, topP: o.topP, stop: o.stop, seed: o.seed })) {
      text += t.text;
      write(t.text);
    }
    if (o.stream) out();
    else out(`${o.prompt}${text}`);
  } finally {
    run.model.dispose();
  }
}

const scoreSchema = z.strictObject({
  device: deviceOption,
  precision: precisionOption,
  chunk: z.number().int().positive().max(1 << 24).default(4096),
  unknown: z.enum(['map', 'error']).default('map'),
});

async function scoreCommand(runDir: string, file: string, raw: Record<string, unknown>): Promise<void> {
  const o = parseWith(scoreSchema, numbers(raw, ['chunk']), 'score', 'invalid option value', kebab);
  if (file !== '-' && !existsSync(file)) throw ioError('score', `no such file ${file}`);
  const run = await loadRun(runDir, { device: o.device as DeviceSpec, precision: o.precision });
  try {
    let start = 0, characters = 0, unknown = 0;
    let last: { totalTokens: number; cumulativeBitsPerToken: number } | null = null;
    for await (const c of score(run, file === '-' ? process.stdin : { path: file }, { chunkSize: o.chunk, unknown: o.unknown })) {
      out(`characters ${start}-${start + c.characters}: ${c.bitsPerToken.toFixed(4)} bpc (cumulative ${c.cumulativeBitsPerToken.toFixed(4)})`);
      start += c.characters;
      characters += c.characters;
      unknown += c.unknown;
      last = c;
    }
    const name = file === '-' ? 'stdin' : file;
    if (!last || last.totalTokens === 0) throw configError('score', `${name} has fewer than 2 characters: nothing to predict`);
    out(`${name}: ${characters} characters, ${last.cumulativeBitsPerToken.toFixed(4)} bits per character over ${last.totalTokens} predicted` + (unknown > 0 ? `; ${unknown} outside the vocabulary (scored as unknown)` : ''));
  } finally {
    run.model.dispose();
  }
}

const serveSchema = z.strictObject({
  device: deviceOption,
  precision: precisionOption,
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  maxSessions: z.number().int().positive().default(defaultLimits.maxSessions),
  sessionTtl: z.number().positive().default(defaultLimits.sessionTtlMs / 1000),
  queue: z.number().int().min(0).default(defaultLimits.queue),
  timeout: z.number().positive().default(defaultLimits.timeoutMs / 1000),
  maxTokens: z.number().int().positive().default(defaultLimits.maxTokens),
  maxPrompt: z.number().int().positive().default(defaultLimits.maxPromptChars),
  bodyLimit: z.number().int().positive().default(defaultLimits.bodyLimit),
  grace: z.number().min(0).default(defaultLimits.graceMs / 1000),
  open: z.boolean().default(true),
});

/** Serves models until SIGTERM / SIGINT / SIGHUP, then closes gracefully (exit 0); a second signal exits at once. */
async function serveUntilSignal(server: EngramServer): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    for (const [name, code] of Object.entries(signalExitCodes)) {
      process.on(name, () => {
        if (stopping) process.exit(code);
        stopping = true;
        process.stderr.write(`${name}: closing (in-flight requests have ${server.limits.graceMs / 1000} s to finish)\n`);
        server.close().then(resolve, (e: unknown) => {
          process.stderr.write(`engram: closing the server failed: ${(e as Error).message}\n`);
          process.exitCode = 2;
          resolve();
        });
      });
    }
  });
}

async function startFromFlags(models: string[], raw: Record<string, unknown>, op: string) {
  const o = parseWith(serveSchema, numbers(raw, ['port', 'maxSessions', 'sessionTtl', 'queue', 'timeout', 'maxTokens', 'maxPrompt', 'bodyLimit', 'grace']), op, 'invalid option value', kebab);
  const server = await startServer({
    models, precision: o.precision, host: o.host, port: o.port, maxSessions: o.maxSessions, sessionTtlMs: o.sessionTtl * 1000, queue: o.queue,
    timeoutMs: o.timeout * 1000, maxTokens: o.maxTokens, maxPromptChars: o.maxPrompt, bodyLimit: o.bodyLimit, graceMs: o.grace * 1000,
    device: o.device as DeviceSpec,
  });
  return { server, open: o.open };
}

async function serveCommand(models: string[], raw: Record<string, unknown>): Promise<void> {
  const { server } = await startFromFlags(models, raw, 'serve');
  out(`engram serve: listening on ${server.url} (models: ${[...server.context.models.keys()].join(', ')})`);
  await serveUntilSignal(server);
}

/** The desktop's opener of URLs, where there is one (none on a headless Linux). */
function openCommand(): [string, string[]] | null {
  if (process.platform === 'darwin') return ['open', []];
  if (process.platform === 'win32') return ['cmd', ['/c', 'start', '""']];
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return null;
  return ['xdg-open', []];
}

async function viewCommand(model: string, raw: Record<string, unknown>): Promise<void> {
  const { server, open } = await startFromFlags([model], raw, 'view');
  const url = `${server.url}/`;
  out(`engram view: the memory viewer of ${[...server.context.models.keys()][0]} is at ${url}`);
  const opener = open ? openCommand() : null;
  if (opener) spawn(opener[0], [...opener[1], url], { stdio: 'ignore', detached: true }).on('error', () => {}).unref();
  await serveUntilSignal(server);
}

const inspectSchema = z.strictObject({
  device: deviceOption,
  precision: precisionOption,
  text: z.string().min(1).optional(),
  length: z.number().int().positive().max(1 << 20).default(512),
  offset: z.number().int().min(0).default(0),
  seed: z.number().int().default(0),
  attention: z.enum(['all', 'last', 'none']).default('last'),
  out: z.string().optional(),
});

async function inspectCommand(runDir: string, raw: Record<string, unknown>): Promise<void> {
  const o = parseWith(inspectSchema, numbers(raw, ['length', 'offset', 'seed']), 'inspect', 'invalid option value', kebab);
  const run = await loadRun(runDir, { device: o.device as DeviceSpec, precision: o.precision });
  try {
    const { tokens, decode, segmentLength } = await run.objective.inspectionInput(o);
    const inspection = inspect(run.model, tokens, { segmentLength, attention: o.attention });
    const dir = o.out ?? join(runDir, 'inspect');
    const files = await writeInspection(inspection, { dir, decode, maxSpan: run.model.config.memLen });
    out(`${runDir}: ${run.model.config.kind}, ${tokens.length} tokens in ${inspection.segments.length} segment(s) of ${segmentLength}`);
    // The model's diagnostics, whatever its kind (Diagnostics: per head, per token, per layer, scalars).
    const fixed = (x: number) => x.toFixed(1);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    for (const [name, layers] of Object.entries(inspection.perHead)) layers.forEach((heads, l) => out(`layer ${l} ${name} per head: ${heads.map(fixed).join(', ')}`));
    for (const [name, layers] of Object.entries(inspection.perToken)) layers.forEach((values, l) => out(`layer ${l}: mean ${name} ${fixed(mean(values))}, max ${fixed(Math.max(...values))}`));
    for (const name of new Set(inspection.segments.flatMap((s) => Object.keys(s.perLayer)))) {
      const perSegment = inspection.segments.flatMap((s) => (s.perLayer[name] ? [s.perLayer[name]] : []));
      out(`${name} per layer (mean over segments): ${perSegment[0]!.map((_, l) => fixed(mean(perSegment.map((v) => v[l]!)))).join(', ')}`);
    }
    for (const [name, value] of Object.entries(inspection.scalars)) if (name !== 'memories attended') out(`${name}: ${value.toFixed(3)}`);
    const memory = inspection.segments.map((s) => s.memory).filter((m): m is number => m !== null);
    if (memory.length) out(`memories attended per segment (mean over layers): ${(memory.reduce((a, b) => a + b, 0) / memory.length).toFixed(1)} on average`);
    out(`wrote ${files.join(', ')}`);
  } finally {
    run.model.dispose();
  }
}

async function exportCommand(runDir: string, dir: string, opts: Record<string, unknown>): Promise<void> {
  if (!hasCheckpoint(runDir)) throw ioError('export', `${runDir} has no checkpoint.json; give a run directory that engram train wrote`);
  const run = await loadRun(runDir);
  try {
    await exportRun(run, dir, { overwrite: Boolean(opts.overwrite) });
    out(`${runDir} @ step ${run.step}: ${run.model.config.kind}, ${run.model.numParameters()} parameters; wrote ${join(dir, MODEL_CONFIG_FILE)} and ${join(dir, MODEL_WEIGHTS_FILE)}`);
  } finally {
    run.model.dispose();
  }
}

async function experimentCommand(recipeArg: string | undefined, opts: Record<string, unknown>): Promise<void> {
  if (opts.list) {
    for (const [name, r] of Object.entries(builtinRecipes)) out(`${name}${name === defaultRecipe.name ? ' (default)' : ''}: ${r.description ?? ''}`);
    return;
  }
  const source = recipeArg === undefined ? defaultRecipe : builtinRecipes[recipeArg] ?? readJson(recipeArg, 'experiment', 'recipe');
  const recipe = parseRecipe(source);
  if (opts.printRecipe) {
    out(JSON.stringify(recipe, null, 2));
    return;
  }
  const progress = progressMode(opts.progress, 'experiment');
  const fromFile = opts.config ? readJson(opts.config as string, 'experiment', '--config') : {};
  const overrides = deepMerge(fromFile, flagOverrides(opts, 'experiment')) as TrainConfigInput;
  const outDir = (opts.out as string | undefined) ?? join('runs', 'experiments', recipe.name);
  if (opts.fresh) rmSync(outDir, { recursive: true, force: true });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`experiment ${recipe.name}: ${recipe.models.length} models × ${recipe.settings.length} settings → ${outDir}`);
  const r = await runExperiment(recipe, { out: outDir, overrides, progress, signal: interruptSignal(), log });
  out();
  out(r.table);
  out(`results: ${r.files.table}, ${r.files.plot}, ${r.files.results}`);
  if (!r.complete) {
    out('stopped before the last cell; run the same command again to continue');
    process.exitCode = 130;
  }
}

/** Options commander gives as strings, as numbers where they look like numbers (zod checks them). */
function numbers(raw: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) o[k] = keys.includes(k) && typeof v === 'string' ? parseValue(v) : v;
  return o;
}

// ---- the program ------------------------------------------------------------------------------------------

function addConfigFlags(cmd: Command): Command {
  cmd
    .option('--config <file>', 'configuration file (JSON: { model, data, train, optim }); flags override it')
    .option('--task <name>', `task: ${taskNames.join(', ')}`)
    .option('--task-option <key=value>', 'a task option (repeatable), e.g. numSymbols=8', collect)
    .option('--corpus <name>', "language modelling on 'tinyshakespeare', 'brown' or a text file");
  for (const f of configFlags) cmd.option(f.flags, f.description);
  cmd.option('--set <path=value>', 'any configuration value by its path (repeatable), e.g. optim.betas=[0.9,0.98]', collect);
  return cmd;
}

function buildProgram(): Command {
  const program = new Command('engram')
    .description('Memory-augmented transformers on libtorch: train, evaluate, sample, compare')
    .version(engramVersion(), '-V, --version', "print engram's version")
    .showHelpAfterError('(add --help for usage)')
    .option('--debug', 'print the stack trace of an error (also ENGRAM_DEBUG=1)')
    .exitOverride();

  addConfigFlags(program.command('train')
    .description('train a model on a task or a corpus; writes a run directory (log.jsonl, checkpoints, result.json)')
    .option('--out <dir>', 'run directory (default runs/<data>-<model>)')
    .option('--resume', "continue the run in --out from its checkpoint (its configuration is the base)")
    .option('--overwrite', "replace the run already in --out (removes its checkpoints, log.jsonl, result.json, config.json, inspect/; keeps other files)")
    .option('--print-config', 'print the resolved configuration and exit')
    .option('--nproc <n>', 'data-parallel: start n worker processes on this machine (the global batch --batch-size is split over all ranks)')
    .option('--nnodes <n>', 'data-parallel: machines in the job (default 1); run the same command on each')
    .option('--node-rank <r>', "data-parallel: this machine's index, 0 .. nnodes - 1 (default 0)")
    .option('--master-addr <host>', 'data-parallel: host of node 0, which serves the rendezvous (default 127.0.0.1)')
    .option('--master-port <port>', 'data-parallel: its port (default: a free one on one machine, 29500 on several)')
    .option('--backend <name>', "data-parallel: c10d backend, 'gloo' (CPU, default) or 'nccl' (CUDA)")
    .option('--dist-timeout <seconds>', 'data-parallel: how long a rank waits for the others before the job stops (default 60)')
    .addOption(progressOption()))
    .addHelpText('after', `
Examples:
  engram train --task copy --source-length 8 --segments 2 --model rmt --mem-tokens 8 --steps 300
  engram train --corpus tinyshakespeare --model xl --segment-length 64 --bptt 0 --steps 2000
  engram train --config my-run.json --lr 1e-3
  engram train --out runs/copy-rmt --resume --steps 600
  engram train --task copy --model rmt --mem-tokens 8 --curriculum 1..6 --curriculum-threshold 0.99 --eval-every 50
  engram train --task copy --segments 6 --model rmt --init-from runs/copy-2seg-rmt
  engram train --corpus tinyshakespeare --model xl --batch-size 16 --nproc 2     (data-parallel, 2 processes)
  (workers started by torchrun-style launchers read MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK)`)
    .action((opts: Record<string, unknown>) => trainCommand(opts));

  program.command('eval')
    .description("evaluate a run's checkpoint on held-out data")
    .argument('<run-dir>', 'a run directory (with checkpoint.json) or a model folder (engram export)')
    .option('--batches <n>', 'tasks: held-out batches (default: the run\'s evalBatches)')
    .option('--seed <n>', "tasks: seed of the held-out samples (default: the run's evalSeed)")
    .option('--segments <n>', 'tasks: evaluate with this many segments instead (same sample length)')
    .option('--split <name>', "language modelling: 'valid' or 'test'")
    .option('--json', 'print the metrics as JSON')
    .option('--device <name>', DEVICE_HELP)
    .option('--precision <p>', PRECISION_HELP)
    .action((dir: string, opts: Record<string, unknown>) => evalCommand(dir, opts));

  program.command('generate')
    .description("sample text from a language-model run given a prompt, or generate answers for a task run's samples")
    .argument('<run-dir>', 'a run directory (with checkpoint.json) or a model folder (engram export)')
    .option('--prompt <text>', 'language modelling: text to continue')
    .option('--length <n>', 'language modelling: characters to generate (default 200)')
    .option('--temperature <t>', 'sampling temperature; 0 is greedy (default 0.8 for text, 0 for task answers)')
    .option('--top-k <k>', 'sample among the k most likely tokens (0: all)')
    .option('--top-p <p>', 'language modelling: sample among the most likely tokens whose probabilities sum to p (default 1: all)')
    .option('--stop <text>', 'language modelling: stop before this text (repeatable)', collect)
    .option('--seed <n>', 'seed of the samples and of the sampling (default 0)')
    .option('--samples <n>', 'tasks: samples to answer (default 5)')
    .option('--stream', 'language modelling: print each character as it is made')
    .option('--device <name>', DEVICE_HELP)
    .option('--precision <p>', PRECISION_HELP)
    .action((dir: string, opts: Record<string, unknown>) => generateCommand(dir, opts));

  program.command('score')
    .description("a language model's bits per character on a text file of any length, read in chunks with the memory carried")
    .argument('<run-dir>', 'a run directory (with checkpoint.json) or a model folder (engram export)')
    .argument('<file>', "the text to score ('-': standard input)")
    .option('--chunk <n>', 'characters per chunk: a line of output each (default 4096)')
    .option('--unknown <policy>', "characters outside the vocabulary: 'map' them to the unknown id (default) or 'error'")
    .option('--device <name>', DEVICE_HELP)
    .option('--precision <p>', PRECISION_HELP)
    .action((dir: string, file: string, opts: Record<string, unknown>) => scoreCommand(dir, file, opts));

  const serveFlags = (cmd: Command): Command => cmd
    .option('--device <name>', DEVICE_HELP)
    .option('--host <host>', 'interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)')
    .option('--port <n>', 'port (default 8080; 0: any free port)')
    .option('--max-sessions <n>', `sessions open at once; the least recently used idle one makes room (default ${defaultLimits.maxSessions})`)
    .option('--session-ttl <s>', `seconds a session lives unused (default ${defaultLimits.sessionTtlMs / 1000})`)
    .option('--queue <n>', `requests that may wait for a busy model; more get 429 (default ${defaultLimits.queue})`)
    .option('--timeout <s>', `seconds a request may take, waiting included (default ${defaultLimits.timeoutMs / 1000})`)
    .option('--max-tokens <n>', `tokens one generation may ask for (default ${defaultLimits.maxTokens})`)
    .option('--max-prompt <n>', `characters of a prompt (default ${defaultLimits.maxPromptChars})`)
    .option('--body-limit <bytes>', `bytes of a request body (default ${defaultLimits.bodyLimit})`)
    .option('--grace <s>', `on SIGTERM, seconds in-flight requests have to finish before they are cut short (default ${defaultLimits.graceMs / 1000})`)
    .option('--precision <p>', PRECISION_HELP);

  serveFlags(program.command('serve')
    .description('serve models over HTTP: GET /v1/models, POST /v1/generate (SSE with "stream": true), /v1/score, /v1/inspect, sessions; the memory viewer at /')
    .argument('<run-dirs...>', 'model folders or run directories (each served under its folder name)'))
    .addHelpText('after', `
Examples:
  engram serve runs/lm-tinyshakespeare-xl --port 8080
  curl -s localhost:8080/v1/generate -H 'content-type: application/json' -d '{"prompt": "ROMEO:", "maxTokens": 100}'`)
    .action((dirs: string[], opts: Record<string, unknown>) => serveCommand(dirs, opts));

  serveFlags(program.command('view')
    .description("serve one model and open its memory viewer in the browser (prints the address)")
    .argument('<run-dir>', 'a model folder or run directory')
    .option('--no-open', 'print the address only'))
    .action((dir: string, opts: Record<string, unknown>) => viewCommand(dir, opts));

  program.command('inspect')
    .description('run a checkpoint over a text or a task sample and show what it keeps in memory: inspection.json and SVG plots (attention, Adaptive-Span spans per layer and head, Expire-Span spans per character and live memories)')
    .argument('<run-dir>', 'a run directory (with checkpoint.json) or a model folder (engram export)')
    .option('--text <text>', 'language modelling: the text to read (default: --length characters of the validation split from --offset)')
    .option('--length <n>', 'language modelling: characters of the validation split (default 512)')
    .option('--offset <n>', 'language modelling: where in the validation split to start (default 0)')
    .option('--seed <n>', 'tasks: seed of the sample to inspect (default 0)')
    .option('--attention <which>', "attention maps kept: 'all' segments, the 'last' one, or 'none' (default last)")
    .option('--out <dir>', 'output folder (default <run-dir>/inspect)')
    .option('--device <name>', DEVICE_HELP)
    .option('--precision <p>', PRECISION_HELP)
    .action((dir: string, opts: Record<string, unknown>) => inspectCommand(dir, opts));

  program.command('export')
    .description('write a model folder: config.json (model config, vocabulary or task, segment length, training configuration, checksum) and model.safetensors (weights only); eval, generate and inspect take it in place of the run')
    .argument('<run-dir>', 'a run directory (with checkpoint.json)')
    .argument('<dir>', 'the model folder to write (new or empty)')
    .option('--overwrite', 'replace the model files of a folder that is not empty (other files are kept)')
    .action((runDir: string, dir: string, opts: Record<string, unknown>) => exportCommand(runDir, dir, opts));

  addConfigFlags(program.command('experiment')
    .description('run a grid of models × settings from a recipe; reruns skip finished cells and resume interrupted ones; writes results.md, plot.svg, results.json')
    .argument('[recipe]', `a recipe JSON file or a built-in recipe (default: ${defaultRecipe.name})`)
    .option('--out <dir>', 'output folder (default runs/experiments/<recipe name>)')
    .option('--fresh', 'delete the output folder first')
    .option('--list', 'list the built-in recipes')
    .option('--print-recipe', 'print the recipe and exit')
    .addOption(progressOption()))
    .addHelpText('after', `
--config and the configuration flags apply to every cell, over the recipe (e.g. --steps 100 for a quick look).
Examples:
  engram experiment                          the built-in default: RMT vs Transformer-XL vs baseline on copy
  engram experiment recipes/copy24-paper.json --out runs/copy24
  engram experiment --print-recipe > my-recipe.json`)
    .action((recipe: string | undefined, opts: Record<string, unknown>) => experimentCommand(recipe, opts));

  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed its message (or the help) already
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const debug = process.argv.includes('--debug') || process.env.ENGRAM_DEBUG === '1';
    const trace = debug && e instanceof Error && e.stack ? `${e.stack}\n` : '';
    if (e instanceof EngramError) {
      // One line; a configuration's problems follow as '  - ' lines. libtorch's own traces are dropped.
      const [first, ...rest] = withFlagHints(e.message).split('\n');
      const list = rest.filter((l) => /^\s+- /.test(l));
      process.stderr.write(`engram: ${[first, ...list].join('\n')}\n${trace}`);
      process.exitCode = 2;
      return;
    }
    // Not one of ours: a bug in Engram. Still one line and exit 2, as every error; the words
    // 'internal error' tell it from a problem with the input (the fuzz test fails on them).
    const message = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    process.stderr.write(`engram: internal error: ${message}; this is a bug in Engram${trace ? '' : ': rerun with --debug and report the trace'}\n${trace}`);
    process.exitCode = 2;
  }
}

await main();
