// Errors above the tensor layer (nn, memory, models, tasks, train, inspect) come from the same factories
// as the tensor layer's: an EngramError of the right kind whose message reads `${op}: ${problem}`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CharVocab, Decoder, EngramError, Module, Rng, StreamBatcher, compress, corpusText, createModel, deepMerge, experimentCells,
  inspect, loadCheckpoint, lockRunDir, makeTask, parseRecipe, quadraticBlocks, randn, resolveTrainConfig, tidy, unflattenState, zeros,
  type ErrorKind,
} from '../src/index.js';

/** Checks an error for kind, op, the op prefix, a message pattern and (unless it wraps another) one line. */
function check(caught: unknown, kind: ErrorKind, op: string, re: RegExp, oneLine = true): EngramError {
  assert.ok(caught instanceof EngramError, `expected an EngramError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  assert.equal(caught.op, op, caught.message);
  assert.ok(caught.message.startsWith(`${op}: `), caught.message);
  assert.match(caught.message, re);
  if (oneLine) assert.ok(!caught.message.includes('\n'), `one line: ${caught.message}`);
  return caught;
}

function engramFrom(fn: () => unknown, kind: ErrorKind, op: string, re: RegExp, oneLine = true): EngramError {
  try {
    fn();
  } catch (e) {
    return check(e, kind, op, re, oneLine);
  }
  assert.fail(`expected ${op} to throw`);
}

class Twice extends Module {
  constructor() {
    super();
    this.param('w', zeros([2]));
    this.param('w', zeros([2]));
  }
}

class One extends Module {
  constructor(n: number) {
    super();
    this.param('w', zeros([n]));
  }
}

test('nn: registering a name twice and loading a state dict that does not fit', () => {
  engramFrom(() => new Twice(), 'config', 'Twice', /'w' is registered twice/);
  engramFrom(() => new One(2).loadStateDict({}), 'config', 'Module.loadStateDict', /missing w/);
  engramFrom(() => new One(2).loadStateDict({ w: zeros([2]), v: zeros([1]) }), 'config', 'Module.loadStateDict', /^[^;]*unexpected v;/);
  engramFrom(() => new One(2).loadStateDict({ w: zeros([3]) }), 'shape', 'Module.loadStateDict', /w has shape \[3\], the model needs \[2\]/);
});

test('memory and models: compression, model configs, forward and inspect', () => {
  tidy(() => {
    engramFrom(() => compress(randn([1, 5, 4]), 'mean', 2), 'shape', 'compress', /not a multiple of the compression rate 2/);
    engramFrom(() => compress(randn([1, 4, 4]), 'conv', 2), 'config', 'compress', /needs the convolution's weight/);
    engramFrom(() => createModel({ kind: 'xl', vocabSize: 5 }), 'config', 'resolveModelConfig', /kind 'xl' needs memLen > 0/);
    engramFrom(() => createModel({ kind: 'gpt' as never, vocabSize: 5 }), 'config', 'resolveModelConfig', /kind 'gpt' is not one of/);
    const model = createModel({ kind: 'feedback', vocabSize: 5, memLen: 4, layers: 1, dModel: 8, heads: 2, dInner: 16 });
    engramFrom(() => model.forward(zeros([4], { dtype: 'int64' }), model.initState(1)), 'shape', 'FeedbackTransformer.forward', /tokens must be \[batch, block\]/);
    engramFrom(() => inspect(model, [], { segmentLength: 4 }), 'config', 'inspect', /the input is empty/);
    engramFrom(() => new Decoder(model, 4).feed([[]]), 'config', 'Decoder.feed', /feed at least one token/);
    model.dispose();
  });
});

test('train: corpora and recipes', async () => {
  check(await corpusText('no-such-corpus.txt').catch((e: unknown) => e), 'config', 'corpusText', /'no-such-corpus.txt' is neither a built-in corpus/);
  const cell = { name: 'a', config: {} };
  engramFrom(() => parseRecipe({ name: 'r', models: [cell, cell], settings: [{ name: 's' }] }), 'config', 'parseRecipe', /two models are named 'a'/);
  const recipe = parseRecipe({ name: 'r', models: [{ name: 'm', config: { model: { layers: 0 } } }], settings: [{ name: 's' }] });
  // The resolver's message may list several problems, one per line, after the cell's name.
  const e = engramFrom(() => experimentCells(recipe, 'out'), 'config', 'experimentCells', /^experimentCells: recipe cell 'm' × 's': .*layers/s, false);
  assert.ok(e.cause instanceof EngramError, 'the resolver\'s own error is kept as the cause');
});

test('tasks: the registry, task options, the batcher, the generator and the vocabulary', () => {
  engramFrom(() => makeTask('nope' as never), 'config', 'makeTask', /unknown task 'nope'; tasks: .*copy/);
  engramFrom(() => makeTask('copy', { numSegment: 2 } as never), 'config', 'copy', /unknown option 'numSegment'; allowed: /);
  engramFrom(() => new StreamBatcher(new Int32Array(10), { batchSize: 0, segmentLength: 2 }), 'config', 'StreamBatcher', /batchSize must be a positive integer, got 0/);
  engramFrom(() => new Rng(1.5), 'config', 'Rng', /seed must be a safe integer/);
  engramFrom(() => quadraticBlocks(1, 3, 1), 'config', 'quadraticBlocks', /D = 5 is not a perfect square/);
  engramFrom(() => CharVocab.fromString('ba'), 'config', 'CharVocab.fromString', /not a saved vocabulary/);
});

test('train: configurations, checkpoints and run directories name their op', async () => {
  // A configuration's problems follow its first line, one per '  - ' line.
  engramFrom(() => resolveTrainConfig({ train: { threads: 1e6 } }), 'config', 'resolveTrainConfig', /^resolveTrainConfig: invalid config:\n {2}- train\.threads: must be <= 1024/, false);
  engramFrom(() => parseRecipe({ name: 'r' }), 'config', 'parseRecipe', /^parseRecipe: invalid recipe:\n {2}- models: /, false);
  let deep: unknown = {};
  for (let i = 0; i < 40; i++) deep = { a: deep };
  engramFrom(() => deepMerge({}, deep), 'config', 'deepMerge', /nests deeper than 32 levels/);
  engramFrom(() => unflattenState({}, { h: 'tensor' }), 'io', 'unflattenState', /missing tensor carry\.h/);
  const dir = mkdtempSync(join(tmpdir(), 'engram-error-ops-'));
  try {
    check(await loadCheckpoint(dir).catch((e: unknown) => e), 'io', 'loadCheckpoint', /no readable checkpoint in /);
    const lock = lockRunDir(dir);
    engramFrom(() => lockRunDir(dir), 'config', 'lockRunDir', /is in use by process \d+ .*\(this process: dispose the other Trainer first\)/);
    lock.release();
  } finally {
    rmSync(dir, { recursive: true });
  }
});
