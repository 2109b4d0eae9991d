// The objective interface: a task and a language model through the same generic code, the
// headline metric's direction, the data position's round trip through JSON, and a loaded run's
// objective (a language-model run generates without its corpus).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EngramError, createModel, manualSeed, liveTensors, zeros, resolveTrainConfig, createObjective, headline, isBetter, headlineMetric, runName,
  stepSeed, train, loadRun, TaskObjective,
  type Objective, type SegmentModel, type Metrics, type TrainConfigInput, type MemoryState,
} from '../src/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'engram-objective-'));

/** A small text corpus file (about 3,000 characters). */
function corpusFile(dir: string): string {
  const path = join(dir, 'corpus.txt');
  writeFileSync(path, 'the quick brown fox jumps over the lazy dog. '.repeat(70));
  return path;
}

const tiny = { kind: 'xl' as const, layers: 1, dModel: 16, heads: 2, dInner: 32 };

async function objectiveOf(input: TrainConfigInput): Promise<{ objective: Objective; model: SegmentModel }> {
  const config = resolveTrainConfig(input);
  const objective = await createObjective(config);
  manualSeed(0);
  const model = createModel({ ...tiny, memLen: objective.segmentLength, vocabSize: objective.vocabSize });
  return { objective, model };
}

/** Steps without updating the model (the backward receives the loss and drops it); returns each step's loss sum. */
function steps(objective: Objective, model: SegmentModel, n: number, from = 0): number[] {
  const sums: number[] = [];
  for (let i = 0; i < n; i++) {
    manualSeed(stepSeed(0, from + i));
    const stats = objective.step(model, (ce, tokens) => { assert.ok(ce === null || tokens > 0); });
    assert.equal(stats.tokens, objective.tokensPerStep);
    assert.ok(stats.counts.tokens > 0 && stats.counts.lossSum > 0);
    sums.push(stats.counts.lossSum);
  }
  return sums;
}

const cases = (corpus: string): [string, TrainConfigInput][] => [
  ['task', { data: { kind: 'task', name: 'copy', options: { sourceLength: 3, numSegments: 2 } }, train: { batchSize: 4, evalBatches: 1 } }],
  ['lm', { data: { kind: 'lm', corpus, segmentLength: 8, maxEvalTokens: 64 }, train: { batchSize: 2, bpttDepth: 1 } }],
];

test('both objectives run through the same generic steps; the data position round-trips through JSON', async () => {
  const dir = tmp();
  for (const [name, input] of cases(corpusFile(dir))) {
    const before = liveTensors();
    const { objective: a, model } = await objectiveOf(input);
    steps(a, model, 3);
    const position = JSON.parse(JSON.stringify(a.position())) as ReturnType<Objective['position']>;
    const carry: MemoryState | null = a.carry ? model.detachState(a.carry) : null;
    assert.equal(carry !== null, name === 'lm', 'only the language model carries a state between steps');
    const expected = steps(a, model, 2, 3);
    const { objective: b, model: other } = await objectiveOf(input);
    other.dispose();
    b.restore(position, carry);
    assert.deepEqual(steps(b, model, 2, 3), expected, `${name}: a restored objective reads what the original read next`);
    const m = a.evaluate(model);
    assert.ok(Number.isFinite(headline(a, m).value));
    assert.ok(a.describe().length > 0 && !a.describe().includes('\n'));
    a.dispose();
    b.dispose();
    model.dispose();
    assert.equal(liveTensors(), before, `${name}: the objective frees its carried state`);
  }
  rmSync(dir, { recursive: true });
});

test('the headline metric and its direction: accuracy higher is better for tasks, bpc lower for LM', async () => {
  const dir = tmp();
  const metrics = (accuracy: number, bpc: number): Metrics => ({ loss: bpc * Math.LN2, bpc, accuracy, tokens: 1 });
  const good = metrics(0.9, 1.5), bad = metrics(0.5, 2.5);
  for (const [name, input] of cases(corpusFile(dir))) {
    const config = resolveTrainConfig(input);
    const objective = await createObjective(config);
    assert.equal(objective.metric, name === 'task' ? 'accuracy' : 'bpc');
    assert.equal(objective.mode, name === 'task' ? 'max' : 'min');
    assert.equal(headlineMetric(config.data), objective.metric);
    assert.deepEqual(headline(objective, good), { name: objective.metric, value: name === 'task' ? 0.9 : 1.5 });
    assert.ok(isBetter(objective, good, bad) && !isBetter(objective, bad, good));
    assert.ok(isBetter(objective, bad, null), 'any evaluation beats none');
    objective.dispose();
  }
  rmSync(dir, { recursive: true });
  assert.equal(runName(resolveTrainConfig({ data: { kind: 'task', name: 'copy', options: { numSegments: 2 } } }).data), 'copy-2seg');
  assert.equal(runName(resolveTrainConfig({ data: { kind: 'lm', corpus: 'data/my.corpus.txt' } }).data), 'lm-my.corpus');
});

test('a task objective refuses a carried state (a checkpoint not from a task run)', async () => {
  const { objective, model } = await objectiveOf(cases('')[0]![1]);
  assert.ok(objective instanceof TaskObjective);
  const before = liveTensors();
  const carry: MemoryState = { memory: zeros([2, 3]), cache: [zeros([2]), zeros([3])] };
  assert.equal(liveTensors(), before + 3);
  assert.throws(() => objective.restore({}, carry), (e: unknown) => e instanceof EngramError && /task run/.test(e.message));
  assert.equal(liveTensors(), before, 'the refused state is freed');
  model.dispose();
});

test('a loaded run is a task run or a language-model run with its objective; an LM run generates without its corpus', async () => {
  const dir = tmp();
  const corpus = corpusFile(dir);
  const lmDir = join(dir, 'lm'), taskDir = join(dir, 'task');
  await train({ model: tiny, ...cases(corpus)[1]![1], train: { steps: 2, batchSize: 2, bpttDepth: 1 } }, { runDir: lmDir });
  await train({ model: tiny, ...cases(corpus)[0]![1], train: { steps: 2, batchSize: 4, evalBatches: 1 } }, { runDir: taskDir });

  const lm = await loadRun(lmDir);
  assert.equal(lm.kind, 'lm');
  assert.ok(lm.kind === 'lm' && lm.vocab.size > 10);
  const valid = await lm.objective.evaluateRun(lm.model, { split: 'valid' });
  assert.match(valid.what, /valid split \(\d+ characters\)/);
  rmSync(corpus);
  const fresh = await loadRun(lmDir); // its corpus is gone: generating and reading a given text still work
  const [text, ...rest] = fresh.objective.generate(fresh.model, { prompt: 'the ', length: 12, topK: 0, seed: 1, samples: 1 });
  assert.equal(rest.length, 0);
  assert.ok(text!.startsWith('the ') && text!.length === 16, text);
  const input = await fresh.objective.inspectionInput({ text: 'the fox', length: 512, offset: 0, seed: 0 });
  assert.equal(input.tokens.length, 7);
  assert.equal(input.segmentLength, 8);
  await assert.rejects(fresh.objective.evaluateRun(fresh.model, { split: 'test' }), (e: unknown) => e instanceof EngramError && /corpus\.txt/.test(e.message));
  lm.model.dispose();
  fresh.model.dispose();

  const task = await loadRun(taskDir);
  assert.equal(task.kind, 'task');
  const lines = task.objective.generate(task.model, { prompt: '', length: 1, topK: 0, seed: 0, samples: 2 });
  assert.equal(lines.length, 2 * 4 + 1);
  assert.match(lines.at(-1)!, /^\d\/2 answers exactly right$/);
  const one = await task.objective.evaluateRun(task.model, { segments: 1 });
  assert.match(one.what, /^copy, 1 segment\(s\) of \d+, 4 held-out samples$/);
  await assert.rejects(task.objective.inspectionInput({ text: 'x', length: 1, offset: 0, seed: 0 }), /--text is for language-model runs/);
  task.model.dispose();
  rmSync(dir, { recursive: true });
});
