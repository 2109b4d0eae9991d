// The training stack: learning end to end, truncated BPTT, exact resume, the JSONL log,
// configuration errors, experiments, generation, the chart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EngramError, createModel, grad, manualSeed, randint, randn, tidy, liveTensors,
  train, Trainer, unroll, detachesBefore, resolveTrainConfig, runExperiment, loadRun, generateAnswers, lineChart,
  niceTicks, defaultRecipe, parseRecipe, experimentCells, sampleToken, Rng,
  type LogRecord, type TrainConfigInput, type SegmentState, type SegmentModel,
} from '../src/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'engram-train-'));

function readLog(dir: string): LogRecord[] {
  return readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as LogRecord);
}

const trainLosses = (records: LogRecord[]): [number, number][] =>
  records.flatMap((r) => (r.type === 'train' ? [[r.step, r.loss] as [number, number]] : []));

test('a tiny transformer learns 1-segment copy to high accuracy', async () => {
  const r = await train({
    model: { kind: 'transformer', layers: 2, dModel: 64, heads: 4, dInner: 128 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 8, numSegments: 1 } },
    train: { steps: 150, batchSize: 32, evalEvery: 0 },
    optim: { lr: 3e-3 },
  });
  assert.ok(r.finished && !r.aborted);
  assert.ok(r.finalEval !== null);
  assert.ok(r.finalEval.accuracy > 0.95, `accuracy ${r.finalEval.accuracy}`);
  assert.ok(r.losses[0]!.loss > 2 && r.losses[r.losses.length - 1]!.loss < 0.2);
  assert.equal(r.metric?.name, 'accuracy');
});

test('with previousToken a tiny transformer learns 1-segment associative retrieval in a few hundred steps', async () => {
  const r = await train({
    model: { kind: 'transformer', layers: 2, dModel: 64, heads: 4, dInner: 128, previousToken: true },
    data: { kind: 'task', name: 'associative-retrieval', options: { numSegments: 1 } },
    train: { steps: 300, batchSize: 32, evalEvery: 0 },
    optim: { lr: 1e-3 },
  });
  assert.ok(r.finalEval !== null);
  // chance is 0.1, and 0.25 the plateau of knowing the sample's 4 values but not which one
  assert.ok(r.finalEval.accuracy > 0.9, `accuracy ${r.finalEval.accuracy}`);
});

test('detachesBefore: the state entering segment τ of n is detached when τ < n - k', () => {
  assert.deepEqual([0, 1, 2, 3].map((τ) => detachesBefore(τ, 4, 0)), [true, true, true, true]);
  assert.deepEqual([0, 1, 2, 3].map((τ) => detachesBefore(τ, 4, 2)), [true, true, false, false]);
  assert.deepEqual([0, 1, 2, 3].map((τ) => detachesBefore(τ, 4, 'all')), [false, false, false, false]);
  assert.deepEqual([0, 1].map((τ) => detachesBefore(τ, 2, 1)), [true, false]); // LM: k + 1 segments
});

test('BPTT depth k: gradients reach the RMT memory written k segments before the loss, not k + 1', () => {
  manualSeed(1);
  const model = createModel({ kind: 'rmt', vocabSize: 10, layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 }) as SegmentModel<SegmentState>;
  const n = 5;
  const segments = Array.from({ length: n }, () => randint(0, 10, [2, 3]).keep());
  const init = model.stateDict()['memory.init']!;
  try {
    for (const k of [0, 1, 2, 3, 'all'] as const) {
      tidy(() => {
        const { outputs } = unroll(model, segments, null, { bpttDepth: k });
        const loss = outputs[n - 1]!.logits.square().sum(); // a loss on the last segment only
        const written = outputs.slice(0, n - 1).map((o) => o.state.memory!); // memory written by segments 0 .. n-2
        const grads = grad(loss, [...written, init], { allowUnused: true, retainGraph: true });
        written.forEach((_, j) => {
          const distance = n - 1 - j; // segments between the write and the loss
          const reaches = k === 'all' || distance <= k;
          const g = grads[j];
          assert.equal(g !== null && g.abs().sum().item() > 0, reaches, `k=${k}: memory written at segment ${j} (${distance} before the loss)`);
        });
        // the learned initial memory enters segment 0: reached only when nothing is cut
        const gInit = grads[n - 1];
        assert.equal(gInit !== null && gInit.abs().sum().item() > 0, k === 'all', `k=${k}: initial memory`);
      });
    }
  } finally {
    segments.forEach((s) => s.dispose());
    model.dispose();
  }
});

test('an LM unroll always detaches the state carried in from the previous step', () => {
  manualSeed(2);
  const model = createModel({ kind: 'rmt', vocabSize: 10, layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 }) as SegmentModel<SegmentState>;
  try {
    tidy(() => {
      const carried = randn([2, 2, 16]).requiresGrad_();
      const segments = [randint(0, 10, [2, 4]), randint(0, 10, [2, 4])];
      const { outputs } = unroll(model, segments, { cache: null, memory: carried }, { bpttDepth: 1 });
      const loss = outputs.map((o) => o.logits.sum()).reduce((a, b) => a.add(b));
      const [g] = grad(loss, [carried], { allowUnused: true });
      assert.equal(g, null);
    });
  } finally {
    model.dispose();
  }
});

async function interruptedAndResumed(config: TrainConfigInput, stopAt: number): Promise<{ full: [number, number][]; resumed: [number, number][]; dirs: string[] }> {
  const a = tmp(), b = tmp();
  await train(config, { runDir: a });
  const controller = new AbortController();
  const first = await train(config, {
    runDir: b, signal: controller.signal,
    onEvent: (e) => { if (e.type === 'step' && e.step === stopAt) controller.abort(); },
  });
  assert.ok(first.aborted && !first.finished);
  assert.equal(first.step, stopAt);
  assert.ok(existsSync(join(b, 'checkpoint.json')));
  const second = await train(config, { runDir: b, resume: true });
  assert.ok(second.finished);
  assert.equal(second.losses[0]!.step, stopAt + 1);
  return { full: trainLosses(readLog(a)), resumed: trainLosses(readLog(b)), dirs: [a, b] };
}

test('checkpoint and resume continue a task run exactly (RMT, dropout, warmup + cosine, plateau)', async () => {
  const config: TrainConfigInput = {
    model: { kind: 'rmt', layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2, dropout: 0.1 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } },
    train: { steps: 12, batchSize: 8, logEvery: 1, evalEvery: 3, evalBatches: 1, checkpointEvery: 5 },
    optim: { optimizer: 'adamw', lr: 3e-3, weightDecay: 0.01, warmupSteps: 3, decay: 'cosine', plateau: { patience: 0, factor: 0.5 } },
  };
  const { full, resumed, dirs } = await interruptedAndResumed(config, 7);
  assert.equal(full.length, 12);
  assert.deepEqual(resumed, full); // identical losses, bit for bit
  // the final checkpoints hold the same weights
  const [ra, rb] = [await loadRun(dirs[0]!), await loadRun(dirs[1]!)];
  const wa = ra.model.stateDict(), wb = rb.model.stateDict();
  for (const name of Object.keys(wa)) assert.equal(wa[name]!.sub(wb[name]!).abs().max().item(), 0, name);
  ra.model.dispose();
  rb.model.dispose();
  dirs.forEach((d) => rmSync(d, { recursive: true }));
});

test('checkpoint and resume continue a language-model run exactly (stream position and carried XL cache)', async () => {
  const config: TrainConfigInput = {
    model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32 },
    data: { kind: 'lm', corpus: 'tinyshakespeare', segmentLength: 16, maxEvalTokens: 256 },
    train: { steps: 8, batchSize: 4, bpttDepth: 1, logEvery: 1, evalEvery: 4, checkpointEvery: 0 },
    optim: { lr: 3e-3 },
  };
  const { full, resumed, dirs } = await interruptedAndResumed(config, 5);
  assert.equal(full.length, 8);
  assert.deepEqual(resumed, full);
  dirs.forEach((d) => rmSync(d, { recursive: true }));
});

test('log.jsonl: every line parses; start, train, eval, checkpoint and end records', async () => {
  const dir = tmp();
  const r = await train({
    model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32 },
    data: { kind: 'task', name: 'associative-retrieval', options: { numPairs: 2, numSegments: 2 } },
    train: { steps: 6, batchSize: 4, logEvery: 2, evalEvery: 3, evalBatches: 1, checkpointEvery: 3 },
  }, { runDir: dir });
  const records = readLog(dir);
  assert.equal(records[0]!.type, 'start');
  assert.deepEqual(records.filter((x) => x.type === 'train').map((x) => x.step), [2, 4, 6]);
  assert.deepEqual(records.filter((x) => x.type === 'eval').map((x) => x.step), [3, 6]);
  assert.deepEqual(records.filter((x) => x.type === 'checkpoint').map((x) => x.step), [3, 6]);
  assert.equal(records[records.length - 1]!.type, 'end');
  for (const x of records) {
    if (x.type === 'train') {
      assert.ok(Number.isFinite(x.loss) && Number.isFinite(x.tokensPerSec) && x.accuracy >= 0 && x.accuracy <= 1);
      assert.ok(x.exactMatch !== undefined);
    }
  }
  // the result and the one remaining tensor file
  const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { finished: boolean; step: number };
  assert.ok(result.finished && result.step === 6 && r.step === 6);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.safetensors')), ['checkpoint-6.safetensors']);
  // a second fresh run into the same directory is refused
  await assert.rejects(train({ train: { steps: 1 } }, { runDir: dir }), (e: unknown) => e instanceof EngramError && /resume/.test(e.message));
  rmSync(dir, { recursive: true });
});

test('training steps and evaluations free their temporaries (live tensor count stays flat)', async () => {
  const configs: TrainConfigInput[] = [
    {
      model: { kind: 'rmt', layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 },
      data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } },
      train: { batchSize: 4, evalBatches: 1 },
    },
    {
      model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32 },
      data: { kind: 'lm', corpus: 'tinyshakespeare', segmentLength: 8, maxEvalTokens: 64 },
      train: { batchSize: 4, bpttDepth: 1 },
    },
  ];
  for (const config of configs) {
    const trainer = await Trainer.create(config);
    try {
      trainer.trainStep(); // the first steps make the optimiser's state and the model's cached masks
      trainer.trainStep();
      trainer.evaluate();
      const before = liveTensors();
      for (let i = 0; i < 3; i++) trainer.trainStep();
      trainer.evaluate();
      assert.equal(liveTensors(), before, config.data?.kind ?? '');
    } finally {
      trainer.dispose();
    }
  }
});

test('invalid configurations fail with one message listing every problem and what is allowed', () => {
  assert.throws(() => resolveTrainConfig({ model: { kind: 'lstm', layers: 0 }, optim: { optimizer: 'sgd' }, extra: 1 }), (e: unknown) => {
    assert.ok(e instanceof EngramError && e.kind === 'config');
    assert.match(e.message, /model\.kind: must be one of 'transformer', 'xl', 'mem-transformer', 'mem-bottleneck', 'rmt', 'sequential', .* \(got 'lstm'\)/);
    assert.match(e.message, /model\.layers: must be > 0/);
    assert.match(e.message, /optim\.optimizer: must be one of 'adam', 'adamw'/);
    assert.match(e.message, /unknown option 'extra'; allowed: model, data, train, optim/);
    return true;
  });
  assert.throws(() => resolveTrainConfig({ data: { kind: 'lm' }, train: { bpttDepth: 'all' } }), /needs a number of segments/);
  assert.throws(() => resolveTrainConfig({ data: { kind: 'task', name: 'copy', options: { numSegment: 2 } } }), /unknown option 'numSegment'/);
  const c = resolveTrainConfig({ model: { kind: 'xl' }, data: { kind: 'task', name: 'copy', options: { sourceLength: 8, numSegments: 4 } } });
  assert.equal(c.model.memLen, 6); // xl: the segment length
  assert.equal(c.train.bpttDepth, 'all');
});

test('experiment: a grid runs, skips finished cells, resumes an interrupted one, continues with more steps, writes table and plot', async () => {
  const out = tmp();
  const recipe = {
    name: 'tiny',
    base: { model: { layers: 1, dModel: 16, heads: 2, dInner: 32 }, data: { kind: 'task', name: 'copy', options: { sourceLength: 4 } }, train: { steps: 6, batchSize: 4, evalBatches: 1, evalEvery: 0, checkpointEvery: 2 } },
    models: [{ name: 'Baseline', config: { model: { kind: 'transformer' } } }, { name: 'RMT', config: { model: { kind: 'rmt', numMemTokens: 2 } } }],
    settingsTitle: 'segments',
    settings: [1, 2].map((n) => ({ name: String(n), x: n, config: { data: { options: { numSegments: n } } } })),
  };
  const controller = new AbortController();
  const first = await runExperiment(recipe, {
    out, signal: controller.signal,
    onEvent: (cell, e) => { if (cell.model === 'RMT' && cell.setting === '2' && e.type === 'step' && e.step === 3) controller.abort(); },
  });
  assert.equal(first.complete, false);
  assert.deepEqual(first.cells.map((c) => c.status), ['ran', 'ran', 'ran', 'aborted']);
  const second = await runExperiment(recipe, { out });
  assert.ok(second.complete);
  assert.deepEqual(second.cells.map((c) => c.status), ['skipped', 'skipped', 'skipped', 'resumed']);
  const third = await runExperiment(recipe, { out });
  assert.deepEqual(third.cells.map((c) => c.status), ['skipped', 'skipped', 'skipped', 'skipped']);
  const md = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(md, /\| model \\ segments \| 1 \| 2 \|/);
  assert.match(md, /\| RMT \| \d\.\d{3} \| \d\.\d{3} \|/);
  const svg = readFileSync(join(out, 'plot.svg'), 'utf8');
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, />Baseline</);
  // fewer steps than the cells have taken: a clear error before any training, every cell kept
  const before = readFileSync(join(out, 'rmt--2', 'log.jsonl'), 'utf8');
  await assert.rejects(runExperiment(recipe, { out, overrides: { train: { steps: 4 } } }), /baseline--1 has trained 6 steps, more than the 4 asked; nothing was changed/);
  assert.equal(readFileSync(join(out, 'rmt--2', 'log.jsonl'), 'utf8'), before);
  // more steps: every finished cell continues from its checkpoint (a grid trained longer), its log going on
  const longer = await runExperiment(recipe, { out, overrides: { train: { steps: 8 } } });
  assert.deepEqual(longer.cells.map((c) => c.status), ['resumed', 'resumed', 'resumed', 'resumed']);
  const records = readFileSync(join(out, 'rmt--2', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step: number });
  assert.ok(records.some((r) => r.type === 'resume' && r.step === 6));
  assert.equal(records.at(-1)!.type, 'end');
  assert.equal(records.at(-1)!.step, 8);
  assert.deepEqual((await runExperiment(recipe, { out, overrides: { train: { steps: 8 } } })).cells.map((c) => c.status), ['skipped', 'skipped', 'skipped', 'skipped']);
  // any other change (here the learning rate) reruns its cells from the start
  const changed = await runExperiment({ ...recipe, base: { ...recipe.base, optim: { lr: 3e-4 } } }, { out });
  assert.deepEqual(changed.cells.map((c) => c.status), ['ran', 'ran', 'ran', 'ran']);
  rmSync(out, { recursive: true });
});

test('experiment with seeds: one run per seed, in its own folder, the table giving the mean and every seed', async () => {
  const out = tmp();
  const recipe = {
    name: 'seeds',
    base: { model: { kind: 'transformer', layers: 1, dModel: 16, heads: 2, dInner: 32 }, data: { kind: 'task', name: 'copy', options: { sourceLength: 4 } }, train: { steps: 4, batchSize: 4, evalBatches: 1, evalEvery: 0 } },
    models: [{ name: 'Baseline' }],
    settings: [{ name: '1' }],
    seeds: [3, 7],
  };
  const cells = experimentCells(parseRecipe(recipe), out);
  assert.deepEqual(cells.map((c) => [c.seed, c.config.train.seed, c.dir]), [[3, 3, join(out, 'baseline--1--seed-3')], [7, 7, join(out, 'baseline--1--seed-7')]]);
  const r = await runExperiment(recipe, { out });
  assert.ok(r.complete);
  const [a, b] = r.cells.map((c) => c.finalEval!.accuracy);
  assert.notEqual(r.cells[0]!.finalEval!.loss, r.cells[1]!.finalEval!.loss); // different seeds, different runs
  const mean = ((a! + b!) / 2).toFixed(3);
  assert.match(r.table, new RegExp(`\\| Baseline \\| ${mean.replace('.', '\\.')} \\[${a!.toFixed(3).replace('.', '\\.')} / ${b!.toFixed(3).replace('.', '\\.')}\\] \\|`));
  assert.match(r.table, /\| Baseline \/ seed 7 \|/); // the cost table names each seed's run
  assert.throws(() => parseRecipe({ ...recipe, seeds: [1, 1] }), /each seed once/);
  rmSync(out, { recursive: true });
});

test('the built-in default recipe is valid and matches recipes/copy-rmt-vs-xl.json', () => {
  const recipe = parseRecipe(defaultRecipe);
  const cells = experimentCells(recipe, 'out');
  assert.equal(cells.length, recipe.models.length * recipe.settings.length);
  const file = JSON.parse(readFileSync(new URL('../../recipes/copy-rmt-vs-xl.json', import.meta.url), 'utf8')) as unknown;
  assert.deepEqual(parseRecipe(file), recipe);
  for (const name of readdirSync(new URL('../../recipes/', import.meta.url))) {
    const r = parseRecipe(JSON.parse(readFileSync(new URL(`../../recipes/${name}`, import.meta.url), 'utf8')));
    assert.ok(experimentCells(r, 'out').length > 0, name);
  }
});

test('generation: task answers are generated token by token; sampling is seeded', async () => {
  const dir = tmp();
  await train({
    model: { kind: 'transformer', layers: 2, dModel: 64, heads: 4, dInner: 128 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 6, numSegments: 1 } },
    train: { steps: 120, batchSize: 32, evalEvery: 0 },
    optim: { lr: 3e-3 },
  }, { runDir: dir });
  const run = await loadRun(dir);
  assert.ok(run.kind === 'task');
  const answers = generateAnswers(run.model, run.task, { samples: 4, seed: 3, temperature: 0, topK: 0 });
  assert.equal(answers.length, 4);
  assert.ok(answers.filter((a) => a.exact).length >= 3, JSON.stringify(answers));
  assert.equal(answers[0]!.expected.length, 12);
  run.model.dispose();
  rmSync(dir, { recursive: true });

  const logits = Float32Array.from([0, 3, 1, 2.5]);
  assert.equal(sampleToken(logits, { temperature: 0, topK: 0 }, new Rng(0)), 1);
  const draws = (seed: number) => Array.from({ length: 20 }, ((rng) => () => sampleToken(logits, { temperature: 1, topK: 2 }, rng))(new Rng(seed)));
  assert.deepEqual(draws(5), draws(5));
  assert.ok(draws(5).every((t) => t === 1 || t === 3));
});

test('lineChart: an SVG with axes, ticks, a line per series and a legend', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const svg = lineChart({
    title: 'acc', xLabel: 'segments', yLabel: 'accuracy', yDomain: [0, 1],
    xTicks: [{ x: 1, label: '1' }, { x: 2, label: '2' }],
    series: [{ name: 'A <x>', points: [{ x: 1, y: 1 }, { x: 2, y: 0.5 }] }, { name: 'B', points: [{ x: 1, y: null }, { x: 2, y: 0.2 }] }],
  });
  assert.match(svg, /<path d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
  assert.match(svg, /A &lt;x&gt;/);
  assert.equal((svg.match(/<text/g) ?? []).length, 1 + 6 + 2 + 2 + 2); // title, y ticks, x ticks, axis labels, legend
});

test("memory sizes can follow the segment length: 'segment' and 'segment/N'", () => {
  const data = { kind: 'task', name: 'copy', options: { sourceLength: 8, numSegments: 2 } }; // 24 tokens: M = 12
  assert.equal(resolveTrainConfig({ data, model: { kind: 'rmt', numMemTokens: 'segment/2' } }).model.numMemTokens, 6);
  assert.equal(resolveTrainConfig({ data, model: { kind: 'xl', memLen: 'segment' } }).model.memLen, 12);
  assert.throws(() => resolveTrainConfig({ data, model: { kind: 'xl', memLen: 'half' } }), /segment\/N/);
});
