// Model folders: export then load gives the same model (logits, eval, generate, inspect), and a
// damaged or mismatched folder is refused with one clear EngramError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EngramError, tensor, train, loadRun, loadModel, saveModel, exportRun, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE,
  type LoadedRun, type ModelKind, type SegmentModel, type TrainConfigInput,
} from '../src/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'engram-model-folder-'));
const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));
const engram = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

const tiny = { layers: 1, dModel: 16, heads: 2, dInner: 32 };

function corpusFile(dir: string): string {
  const path = join(dir, 'corpus.txt');
  writeFileSync(path, 'the quick brown fox jumps over the lazy dog. '.repeat(70));
  return path;
}

function taskConfig(kind: ModelKind): TrainConfigInput {
  return { model: { kind, ...tiny }, data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } }, train: { steps: 2, batchSize: 4, evalBatches: 1 } };
}

function lmConfig(kind: ModelKind, corpus: string): TrainConfigInput {
  return { model: { kind, ...tiny }, data: { kind: 'lm', corpus, segmentLength: 8 }, train: { steps: 2, batchSize: 2, bpttDepth: 1 } };
}

/** Logits of two segments of fixed tokens, run from a fresh state: [2 * M * vocab] values. */
function logitsOf(model: SegmentModel, segmentLength: number): number[] {
  const V = model.config.vocabSize;
  let state = model.initState(1);
  const values: number[] = [];
  for (let s = 0; s < 2; s++) {
    const ids = Array.from({ length: segmentLength }, (_, i) => (s * 7 + i * 3) % V);
    const tokens = tensor([ids], { dtype: 'int64' });
    const out = model.forward(tokens, state);
    values.push(...Array.from(out.logits.data() as Float32Array));
    state = out.state;
    tokens.dispose();
    out.logits.dispose();
  }
  return values;
}

function check(e: unknown, kind: string, pattern: RegExp): boolean {
  assert.ok(e instanceof EngramError, String(e));
  assert.equal(e.kind, kind, e.message);
  assert.equal(e.op, 'loadModel');
  assert.ok(!e.message.includes('\n'), e.message);
  assert.match(e.message, pattern);
  return true;
}

test('export then load: the same logits, evaluation and generation, for task and LM runs of several kinds', async () => {
  const dir = tmp();
  const corpus = corpusFile(dir);
  const cases: [string, TrainConfigInput][] = [
    ['task-xl', taskConfig('xl')], ['task-rmt', taskConfig('rmt')],
    ['lm-xl', lmConfig('xl', corpus)], ['lm-expire', lmConfig('expire-span', corpus)],
  ];
  for (const [name, config] of cases) {
    const runDir = join(dir, name), folder = join(dir, `${name}-model`);
    await train(config, { runDir });
    const run = await loadRun(runDir);
    await exportRun(run, folder);
    assert.ok(existsSync(join(folder, MODEL_CONFIG_FILE)) && existsSync(join(folder, MODEL_WEIGHTS_FILE)));
    const saved = JSON.parse(readFileSync(join(folder, MODEL_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    assert.equal(saved.format, 'engram-model');
    assert.equal(saved.step, 2);
    assert.equal(typeof saved.engramVersion, 'string');
    assert.equal(saved.vocab === null, run.kind === 'task', name);

    const folderRun = await loadRun(folder);
    assert.equal(folderRun.source, 'model-folder');
    assert.equal(folderRun.kind, run.kind);
    assert.equal(folderRun.step, run.step);
    const M = run.objective.segmentLength;
    assert.equal(folderRun.objective.segmentLength, M);
    assert.deepEqual(logitsOf(folderRun.model, M), logitsOf(run.model, M), name);
    assert.deepEqual(await folderRun.objective.evaluateRun(folderRun.model, {}), await run.objective.evaluateRun(run.model, {}), name);
    const g = { prompt: run.kind === 'lm' ? 'the ' : '', length: 10, topK: 0, seed: 1, samples: 2 };
    assert.deepEqual(folderRun.objective.generate(folderRun.model, g), run.objective.generate(run.model, g), name);

    // the library's own pair: loadModel gives the model and its config.json
    const { model, config: mc } = await loadModel(folder);
    assert.equal(mc.training.data.kind, run.config.data.kind);
    assert.deepEqual(logitsOf(model, M), logitsOf(run.model, M));
    model.dispose();
    for (const r of [run, folderRun] as LoadedRun[]) r.model.dispose();
  }
  rmSync(dir, { recursive: true });
});

test('saveModel refuses a non-empty folder unless overwrite; a damaged or mismatched folder is a one-line error', async () => {
  const dir = tmp();
  const runDir = join(dir, 'run'), folder = join(dir, 'model');
  await train(taskConfig('xl'), { runDir });
  const run = await loadRun(runDir);
  mkdirSync(folder);
  writeFileSync(join(folder, 'notes.txt'), 'mine');
  await assert.rejects(exportRun(run, folder), (e: unknown) => e instanceof EngramError && e.kind === 'config' && e.op === 'saveModel' && /not empty .*--overwrite/.test(e.message));
  await exportRun(run, folder, { overwrite: true });
  await assert.rejects(exportRun(run, runDir, { overwrite: true }), (e: unknown) => e instanceof EngramError && e.kind === 'config' && /is a run directory/.test(e.message));
  assert.equal((await loadRun(runDir).then((r) => { r.model.dispose(); return r.source; })), 'run');
  assert.equal(readFileSync(join(folder, 'notes.txt'), 'utf8'), 'mine', 'other files are kept');
  await assert.rejects(saveModel(run.model, join(dir, 'lm'), { training: { ...run.config, data: { kind: 'lm', corpus: 'x', segmentLength: 8, maxEvalTokens: 0 } } as never, vocab: null }), /needs its vocabulary/);
  run.model.dispose();

  const configPath = join(folder, MODEL_CONFIG_FILE), weights = join(folder, MODEL_WEIGHTS_FILE);
  const goodConfig = readFileSync(configPath, 'utf8'), goodWeights = readFileSync(weights);
  const restore = () => { writeFileSync(configPath, goodConfig); writeFileSync(weights, goodWeights); };

  const flipped = Buffer.from(goodWeights);
  flipped[flipped.length - 5] ^= 0x40;
  writeFileSync(weights, flipped);
  await assert.rejects(loadModel(folder), (e: unknown) => check(e, 'io', /model\.safetensors is corrupt: its SHA-256 differs/));
  await assert.rejects(loadRun(folder), (e: unknown) => check(e, 'io', /is corrupt/));
  restore();

  const edited = JSON.parse(goodConfig) as { model: { dModel: number }; format: string };
  edited.model.dModel = 32;
  writeFileSync(configPath, JSON.stringify(edited));
  await assert.rejects(loadModel(folder), (e: unknown) => check(e, 'config', /does not describe model\.safetensors: they differ on model dModel/));
  restore();

  writeFileSync(configPath, JSON.stringify({ ...JSON.parse(goodConfig), format: 'hf-model' }));
  await assert.rejects(loadRun(folder), (e: unknown) => check(e, 'io', /not an Engram model config \(format "hf-model"/));
  restore();

  unlinkSync(weights);
  await assert.rejects(loadRun(folder), (e: unknown) => check(e, 'io', /model\.safetensors is missing/));
  restore();

  unlinkSync(configPath);
  await assert.rejects(loadModel(folder), (e: unknown) => check(e, 'io', /is not a model folder: no readable config\.json/));
  restore();

  const ok = await loadRun(folder);
  ok.model.dispose();
  rmSync(dir, { recursive: true });
});

test('engram export, then eval, generate and inspect on the folder print what they print on the run', async () => {
  const dir = tmp();
  const corpus = corpusFile(dir);
  const runDir = join(dir, 'run'), folder = join(dir, 'model');
  await train(lmConfig('adaptive-span', corpus), { runDir });
  const ex = engram(['export', runDir, folder]);
  assert.equal(ex.status, 0, ex.stderr);
  assert.match(ex.stdout, /wrote .*config\.json and .*model\.safetensors/);
  const again = engram(['export', runDir, folder]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /^engram: saveModel: .* is not empty .*--overwrite/);
  assert.equal(engram(['export', runDir, folder, '--overwrite']).status, 0);
  const notRun = engram(['export', folder, join(dir, 'other')]);
  assert.equal(notRun.status, 2);
  assert.match(notRun.stderr, /has no checkpoint\.json/);

  const same = (args: string[], skipLast = false) => {
    const a = engram([args[0]!, runDir, ...args.slice(1)]), b = engram([args[0]!, folder, ...args.slice(1)]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    const lines = (s: string, d: string) => s.split(d).join('<dir>').trimEnd().split('\n').slice(0, skipLast ? -1 : undefined);
    assert.deepEqual(lines(b.stdout, folder), lines(a.stdout, runDir), args.join(' '));
  };
  same(['eval', '--json']);
  same(['eval', '--split', 'test']);
  same(['generate', '--prompt', 'the ', '--length', '20', '--seed', '3']);
  same(['inspect', '--length', '24', '--out', join(dir, 'insp')], true);
  rmSync(dir, { recursive: true });
});
