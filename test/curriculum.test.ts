// Curriculum over segments (train.curriculum), staged training by hand (train.initFrom), and the
// quadratic-equation metrics that split exact match by kind of sample and count distinct answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EngramError, train, Trainer, resolveTrainConfig, loadRun, exportRun, answerBreakdown, makeTask, Rng, IGNORE_INDEX,
  evaluateTask, createModel, resultsTable, parseRecipe, describeMetrics, TaskObjective,
  type LogRecord, type TrainConfigInput, type CellResult,
} from '../src/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'engram-curriculum-'));

function readLog(dir: string): LogRecord[] {
  return readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as LogRecord);
}

const tiny = { kind: 'rmt', layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 } as const;
/** Copy of 4 symbols: 12 tokens, which 1, 2, 3, 4 and 6 segments cut evenly. */
const copy4 = { kind: 'task', name: 'copy', options: { sourceLength: 4 } } as const;

function configError(input: TrainConfigInput): string {
  try {
    resolveTrainConfig(input);
  } catch (e) {
    assert.ok(e instanceof EngramError && e.kind === 'config', String(e));
    return e.message;
  }
  assert.fail('expected a config error');
}

test('curriculum config: the stage forms, the target as data.options.numSegments, and clear errors', () => {
  const stages = (segments: unknown) => resolveTrainConfig({ data: copy4, train: { curriculum: { segments, advance: { everySteps: 5 } } } as never });
  assert.deepEqual(stages('1..4/2').train.curriculum?.segments, [1, 3, 4]); // the target is always a stage
  assert.deepEqual(stages({ from: 2, to: 4 }).train.curriculum?.segments, [2, 3, 4]);
  assert.deepEqual(stages('1, 2, 4').train.curriculum?.segments, [1, 2, 4]);
  const c = stages([1, 3, 6]);
  assert.deepEqual(c.data, { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 6 } });
  assert.deepEqual(c.train.curriculum, { segments: [1, 3, 6], advance: { everySteps: 5 }, finalEval: 'target' });
  // the resolved form resolves to itself (a checkpoint's config is re-resolved on load)
  assert.deepEqual(resolveTrainConfig(c), c);
  const t = resolveTrainConfig({ data: copy4, train: { evalEvery: 10, curriculum: { segments: [1, 2], advance: { threshold: 0.9 } } } });
  assert.deepEqual(t.train.curriculum?.advance, { metric: 'accuracy', threshold: 0.9, patience: 1 });

  assert.match(configError({ data: copy4, train: { curriculum: { segments: [3, 2], advance: { everySteps: 5 } } } }), /train\.curriculum\.segments: counts must rise from stage to stage \(got \[3,2\]\)/);
  assert.match(configError({ data: copy4, train: { curriculum: { segments: [2], advance: { everySteps: 5 } } } }), /at least 2 stages/);
  assert.match(configError({ data: copy4, train: { curriculum: { segments: 'two', advance: { everySteps: 5 } } } }), /train\.curriculum\.segments: must be a list of segment counts/);
  assert.match(configError({ data: copy4, train: { curriculum: { segments: [1, 2], advance: {} } } }), /train\.curriculum\.advance: give everySteps .* and\/or threshold/);
  assert.match(configError({ data: copy4, train: { evalEvery: 0, curriculum: { segments: [1, 2], advance: { threshold: 0.5 } } } }), /train\.evalEvery is 0/);
  assert.match(configError({ data: copy4, train: { curriculum: { segments: [1, 2], advance: { everySteps: 5, patience: 2 } } } }), /metric and patience go with a threshold/);
  assert.match(configError({ data: { ...copy4, options: { sourceLength: 4, numSegments: 3 } }, train: { curriculum: { segments: [1, 2], advance: { everySteps: 5 } } } }),
    /data\.options\.numSegments \(3\) must be the curriculum's target, its last stage \(2\), or left out/);
  // 12 tokens in 5 segments of 3 would leave the last one padding only
  assert.match(configError({ data: copy4, train: { curriculum: { segments: [1, 5], advance: { everySteps: 5 } } } }), /train\.curriculum\.segments: stage 2 \(5 segments\): .*padding only/);
  assert.match(configError({ data: { kind: 'lm' }, train: { bpttDepth: 1, curriculum: { segments: [1, 2], advance: { everySteps: 5 } } } }), /language modelling has none to grow/);
  assert.match(configError({ data: copy4, train: { curriculum: { segments: [1, 2], advance: { everySteps: 5 }, typo: 1 } } } as never), /unknown option 'typo'; allowed: segments, advance, finalEval/);
});

test('curriculum: stages advance on the schedule; steps and evaluations use the stage’s segments', async () => {
  const dir = tmp();
  const seen: number[] = [];
  const trainer = await Trainer.create({
    model: tiny, data: copy4,
    train: { steps: 8, batchSize: 4, logEvery: 1, evalEvery: 2, evalBatches: 1, checkpointEvery: 0, curriculum: { segments: [1, 2, 4], advance: { everySteps: 3 } } },
  }, { runDir: dir, onEvent: (e) => { if (e.type === 'step') seen.push((trainer.objective as TaskObjective).task.numSegments); } });
  let r;
  try {
    assert.equal((trainer.objective as TaskObjective).task.numSegments, 1);
    r = await trainer.run();
  } finally {
    trainer.dispose();
  }
  // a stage ends after its last step (3, then 6): the next step reads the new count
  assert.deepEqual(seen, [1, 1, 1, 2, 2, 2, 4, 4]);
  const log = readLog(dir);
  const stage = log.filter((x) => x.type === 'stage');
  assert.deepEqual(stage.map((x) => [x.step, x.stage, x.segments, x.reason]), [[3, 2, 2, 'steps'], [6, 3, 4, 'steps']]);
  const trainRecords = log.flatMap((x) => (x.type === 'train' ? [[x.step, x.stage, x.segments]] : []));
  assert.deepEqual(trainRecords, [[1, 1, 1], [2, 1, 1], [3, 1, 1], [4, 2, 2], [5, 2, 2], [6, 2, 2], [7, 3, 4], [8, 3, 4]]);
  const evals = log.flatMap((x) => (x.type === 'eval' ? [[x.step, x.segments]] : []));
  assert.deepEqual(evals, [[2, 1], [4, 2], [6, 2], [8, 4]]); // the run ends at the target: no extra evaluation
  // an evaluation at a stage is the task cut into that stage's segments (here: the target's, 4)
  const run = await loadRun(dir);
  try {
    const direct = evaluateTask(run.model, makeTask('copy', { sourceLength: 4, numSegments: 4 }), { batches: 1, batchSize: 4, seed: run.config.train.evalSeed });
    assert.equal(direct.loss, r.finalEval!.loss);
  } finally {
    run.model.dispose();
  }
  assert.deepEqual(r.curriculum, { stage: 3, segments: 4, target: 4 });
  rmSync(dir, { recursive: true });
});

test('curriculum: stages advance when the held-out metric passes the threshold (with patience); a final evaluation at the target', async () => {
  const run = async (advance: Record<string, unknown>, finalEval?: 'stage') => {
    const dir = tmp();
    const r = await train({
      model: tiny, data: copy4,
      train: { steps: 8, batchSize: 4, logEvery: 4, evalEvery: 1, evalBatches: 1, checkpointEvery: 0, curriculum: { segments: [1, 2, 3, 6], advance, ...(finalEval ? { finalEval } : {}) } },
    }, { runDir: dir });
    const log = readLog(dir);
    rmSync(dir, { recursive: true });
    return { r, log, stages: log.flatMap((x) => (x.type === 'stage' ? [[x.step, x.segments, x.reason]] : [])) };
  };
  // a loss below 100 nats: every evaluation passes
  const always = await run({ metric: 'loss', threshold: 100 });
  assert.deepEqual(always.stages, [[1, 2, 'threshold'], [2, 3, 'threshold'], [3, 6, 'threshold']]);
  const twice = await run({ metric: 'loss', threshold: 100, patience: 2 });
  assert.deepEqual(twice.stages, [[2, 2, 'threshold'], [4, 3, 'threshold'], [6, 6, 'threshold']]);
  // accuracy never reaches 2; the schedule still moves on, whichever comes first
  const both = await run({ threshold: 2, everySteps: 5 });
  assert.deepEqual(both.stages, [[5, 2, 'steps']]);
  // stopped at 2 segments: the run's final evaluation is at the target's 6
  const target = both.log.filter((x) => x.type === 'eval' && x.target);
  assert.equal(target.length, 1);
  assert.equal(target[0]!.type === 'eval' && target[0]!.segments, 6);
  assert.equal(both.r.finalEval!.loss, target[0]!.type === 'eval' ? target[0]!.loss : NaN);
  assert.deepEqual(both.r.curriculum, { stage: 2, segments: 2, target: 6 });
  // finalEval 'stage': the last evaluation is the stage's
  const stage = await run({ threshold: 2 }, 'stage');
  assert.deepEqual(stage.stages, []);
  assert.equal(stage.log.filter((x) => x.type === 'eval' && x.target).length, 0);
  const last = stage.log.filter((x) => x.type === 'eval').pop()!;
  assert.equal(last.type === 'eval' && last.segments, 1);
  assert.equal(stage.r.finalEval!.loss, last.type === 'eval' ? last.loss : NaN);
});

test('curriculum: a run resumed mid-curriculum computes exactly the losses of the uninterrupted run', async () => {
  const config: TrainConfigInput = {
    model: { ...tiny, dropout: 0.1 }, data: copy4,
    train: { steps: 10, batchSize: 4, logEvery: 1, evalEvery: 2, evalBatches: 1, checkpointEvery: 0, curriculum: { segments: [1, 2, 4], advance: { everySteps: 6, metric: 'loss', threshold: 100, patience: 2 } } },
    optim: { lr: 3e-3, plateau: { patience: 0, factor: 0.5 } },
  };
  const a = tmp(), b = tmp();
  await train(config, { runDir: a });
  const controller = new AbortController();
  const first = await train(config, { runDir: b, signal: controller.signal, onEvent: (e) => { if (e.type === 'step' && e.step === 5) controller.abort(); } });
  assert.ok(first.aborted && first.curriculum?.stage === 2, 'stopped in stage 2');
  const saved = JSON.parse(readFileSync(join(b, 'checkpoint.json'), 'utf8')) as { curriculum: unknown };
  assert.deepEqual(saved.curriculum, { stage: 2, stageStart: 4, passes: 0 });
  const second = await train(config, { runDir: b, resume: true });
  assert.ok(second.finished);
  const losses = (dir: string) => readLog(dir).flatMap((x) => (x.type === 'train' ? [[x.step, x.segments, x.loss]] : []));
  const stages = (dir: string) => readLog(dir).flatMap((x) => (x.type === 'stage' ? [[x.step, x.stage]] : []));
  assert.equal(losses(a).length, 10);
  assert.deepEqual(losses(b), losses(a)); // identical losses, bit for bit, at the same stages
  assert.deepEqual(stages(b), stages(a));
  assert.deepEqual(stages(a), [[4, 2], [8, 3]]);
  [a, b].forEach((d) => rmSync(d, { recursive: true }));
});

test('initFrom: a new run starts from another run’s (or model folder’s) weights with a fresh optimiser; a mismatch is refused by name', async () => {
  const source = tmp(), folder = join(tmp(), 'model');
  const base = { model: tiny, data: { ...copy4, options: { sourceLength: 4, numSegments: 2 } }, train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1 } } as const;
  await train(base, { runDir: source });
  const src = await loadRun(source);
  await exportRun(src, folder);
  const want = src.model.stateDict();
  try {
    for (const from of [source, folder]) {
      // another stage: 4 segments, from the 2-segment run's weights
      const trainer = await Trainer.create({ ...base, data: { ...copy4, options: { sourceLength: 4, numSegments: 4 } }, train: { ...base.train, initFrom: from } });
      try {
        const got = trainer.model.stateDict();
        for (const [name, t] of Object.entries(want)) assert.equal(t.sub(got[name]!).abs().max().item(), 0, name);
        assert.equal(trainer.step, 0);
        const optim = trainer.optimizer.stateDict();
        assert.equal(optim.meta.stepCount, 0); // the optimiser starts afresh
        Object.values(optim.tensors).forEach((t) => t.dispose());
        assert.deepEqual(trainer.initFrom, { dir: from, source: from === source ? 'run' : 'model-folder', step: 3 });
      } finally {
        trainer.dispose();
      }
    }
    // the start record names the source
    const dir = tmp();
    await train({ ...base, train: { ...base.train, steps: 1, initFrom: source } }, { runDir: dir });
    const start = readLog(dir)[0]!;
    assert.deepEqual(start.type === 'start' && start.initFrom, { dir: source, source: 'run', step: 3 });
    rmSync(dir, { recursive: true });
  } finally {
    src.model.dispose();
  }
  await assert.rejects(Trainer.create({ ...base, model: { ...tiny, dModel: 32 }, train: { ...base.train, initFrom: source } }),
    (e: unknown) => e instanceof EngramError && /train\.initFrom \(--init-from\): parameter '[\w.]+' is \[\d+(, \d+)*\] in .* but \[\d+(, \d+)*\] in this model; start from a run of the same model/.test(e.message));
  await assert.rejects(Trainer.create({ ...base, model: { ...tiny, layers: 2 }, train: { ...base.train, initFrom: source } }),
    (e: unknown) => e instanceof EngramError && /this model's parameter '[\w.]+' .* is not in /.test(e.message));
  await assert.rejects(Trainer.create({ ...base, train: { ...base.train, initFrom: join(source, 'nothing') } }),
    (e: unknown) => e instanceof EngramError && /is neither a run directory with a checkpoint\.json nor a model folder/.test(e.message));
  [source, join(folder, '..')].forEach((d) => rmSync(d, { recursive: true }));
});

test('quadratic equations: exact match split by real roots / none and distinct answers, on hand-made predictions', () => {
  const task = makeTask('quadratic-equations', { numSegments: 6 });
  assert.deepEqual(task.answerKinds?.names, ['realRoots', 'noRealRoots']);
  // samples of both kinds
  const rng = new Rng(5);
  const rows: { targets: number[]; mask: boolean[]; none: boolean }[] = [];
  while (rows.length < 6 || !rows.some((r) => r.none) || rows.every((r) => r.none)) {
    const s = task.sample(rng);
    rows.push({ targets: s.targets, mask: s.answerMask, none: task.decode(s.tokens).includes('x=none') });
  }
  const B = rows.length, T = rows[0]!.targets.length;
  const targets = rows.flatMap((r) => r.targets), mask = rows.flatMap((r) => r.mask);
  const nNone = rows.filter((r) => r.none).length;
  assert.deepEqual(rows.map((r) => task.answerKinds!.of(r.targets)), rows.map((r) => (r.none ? 1 : 0)));

  const perfect = answerBreakdown(targets.map((t) => (t === IGNORE_INDEX ? 0 : t)), targets, mask, B, task.answerKinds);
  assert.deepEqual(perfect.kinds, { realRoots: { samples: B - nNone, exact: B - nNone }, noRealRoots: { samples: nNone, exact: nNone } });
  assert.equal(perfect.exact, B);
  assert.equal(perfect.distinct, perfect.distinctTargets);

  // one memorised answer for every equation: 'none' (the answer of a sample without real roots)
  const noneRow = rows.find((r) => r.none)!;
  const memorised = rows.flatMap((r) => r.targets.map((t, p) => (r.mask[p] ? noneRow.targets[p]! : t === IGNORE_INDEX ? 0 : t)));
  const rote = answerBreakdown(memorised, targets, mask, B, task.answerKinds);
  assert.deepEqual(rote.kinds, { realRoots: { samples: B - nNone, exact: 0 }, noRealRoots: { samples: nNone, exact: nNone } });
  assert.equal(rote.distinct, 1);
  assert.ok(rote.distinctTargets > 1);
  assert.equal(T % 6, 0);

  // a wrong character in one real-roots answer costs that sample only
  const oneOff = targets.map((t) => (t === IGNORE_INDEX ? 0 : t));
  const r0 = rows.findIndex((r) => !r.none);
  const p0 = rows[r0]!.mask.indexOf(true);
  oneOff[r0 * T + p0] = oneOff[r0 * T + p0] === 2 ? 3 : 2;
  const off = answerBreakdown(oneOff, targets, mask, B, task.answerKinds);
  assert.equal(off.kinds!.realRoots!.exact, B - nNone - 1);
  assert.equal(off.kinds!.noRealRoots!.exact, nNone);
  assert.throws(() => answerBreakdown([1, 2, 3], targets, mask, B), /must hold batch/);
});

test('quadratic equations: evaluation reports exact match per kind, generated exact match and distinct answers; describeMetrics and the results table show them', () => {
  const task = makeTask('quadratic-equations', { numSegments: 6 });
  const model = createModel({ kind: 'rmt', vocabSize: task.vocabSize, layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 });
  try {
    const m = evaluateTask(model, task, { batches: 2, batchSize: 8, seed: 3 });
    assert.deepEqual(Object.keys(m.exactMatchBy ?? {}), ['realRoots', 'noRealRoots']);
    for (const v of [m.distinctAnswers!, m.distinctTargets!, m.exactMatchGenerated!]) assert.ok(v >= 0 && v <= 1, String(v));
    // the expected answers of the same held-out batches, counted directly
    const rng = new Rng(3);
    let distinct = 0;
    for (let b = 0; b < 2; b++) {
      const answers = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const s = task.sample(rng);
        answers.add(s.targets.filter((_, p) => s.answerMask[p]).join(','));
      }
      distinct += answers.size;
    }
    assert.equal(m.distinctTargets, distinct / 16);
    assert.match(describeMetrics(m), /exact \d\.\d{4} {2}exact\[realRoots\] [\d.–]+ {2}exact\[noRealRoots\] [\d.–]+ {2}exact\(generated\) [\d.]+ {2}distinct [\d.]+\/[\d.]+/);
    // a task without kinds of sample keeps its metrics as they were
    const copyModel = createModel({ kind: 'transformer', vocabSize: 12, layers: 1, dModel: 16, heads: 2, dInner: 32 });
    const copy = evaluateTask(copyModel, makeTask('copy', { sourceLength: 4, numSymbols: 10 }), { batches: 1, batchSize: 4, seed: 3 });
    copyModel.dispose();
    assert.equal(copy.exactMatchBy, undefined);
    assert.equal(copy.distinctAnswers, undefined);

    const recipe = parseRecipe({ name: 'q', models: [{ name: 'RMT' }], settings: [{ name: '6' }] });
    const cell: CellResult = { model: 'RMT', setting: '6', seed: null, dir: '', status: 'ran', finalEval: { ...m, exactMatchBy: { realRoots: 0.04, noRealRoots: 1 }, exactMatch: 0.234, distinctAnswers: 0.031 }, bestEval: null, parameters: 1, elapsed: 1, tokensPerSec: 1, secondsPerStep: null, peakHeapBytes: null };
    const table = resultsTable(recipe, [cell], 'exactMatch');
    assert.match(table, /\| model \| exact \| exact realRoots \| exact noRealRoots \| exact generated \| distinct generated \| distinct expected \|/);
    assert.match(table, /\| RMT \| 0\.234 \| 0\.040 \| 1\.000 \| [\d.]+ \| 0\.031 \| [\d.]+ \|/);
  } finally {
    model.dispose();
  }
});

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));

test('CLI: --curriculum, --curriculum-every, --curriculum-threshold and --init-from set the configuration', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [cli, 'train', ...args], { encoding: 'utf8', timeout: 60_000 });
  const r = run(['--task', 'copy', '--source-length', '8', '--curriculum', '1..6/2', '--curriculum-every', '50', '--curriculum-threshold', '0.99', '--init-from', 'runs/x', '--print-config']);
  assert.equal(r.status, 0, r.stderr);
  const config = JSON.parse(r.stdout) as { data: { options: { numSegments: number } }; train: { curriculum: unknown; initFrom: string } };
  assert.deepEqual(config.train.curriculum, { segments: [1, 3, 5, 6], advance: { everySteps: 50, metric: 'accuracy', threshold: 0.99, patience: 1 }, finalEval: 'target' });
  assert.equal(config.data.options.numSegments, 6);
  assert.equal(config.train.initFrom, 'runs/x');
  const bad = run(['--task', 'copy', '--source-length', '4', '--curriculum', '3,2', '--curriculum-every', '5', '--print-config']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /train\.curriculum\.segments \(--curriculum\): counts must rise/);
  assert.ok(!existsSync('runs/x'));
});
