// The options that reproduce the reference code (docs/deviations.md): where they belong, their
// defaults (today's behaviour, bit for bit), the combinations refused with one clear line,
// configurations saved before the options existed, and the round trip through checkpoints and
// model folders. Their numbers against the reference code are test/parity.test.ts's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EngramError, createModel, exportRun, loadModel, loadRun, manualSeed, noGrad, resolveModelConfig, tensor, tidy, train,
  type ModelConfig, type ModelConfigInput, type SegmentModel, type TrainConfigInput, type UncheckedModelConfigInput,
} from '../src/index.js';

const tiny = { vocabSize: 11, layers: 2, dModel: 16, heads: 2, dInner: 32, dropout: 0 };

/** Logits of three segments of fixed tokens from a fresh state (batch 2, M tokens a segment). */
function logitsOf(model: SegmentModel, M = 4): number[] {
  return noGrad(() => tidy(() => {
    let state = model.initState(2);
    const values: number[] = [];
    for (let s = 0; s < 3; s++) {
      const ids = [0, 1].map((b) => Array.from({ length: M }, (_, i) => (s * 7 + i * 3 + b * 5) % 11));
      const out = model.forward(tensor(ids, { dtype: 'int64' }), state);
      values.push(...(out.logits.double().flatten().toArray() as number[]));
      state = out.state;
    }
    return values;
  }));
}

function rejects(input: UncheckedModelConfigInput, pattern: RegExp): void {
  assert.throws(() => resolveModelConfig(input), (e: unknown) => {
    assert.ok(e instanceof EngramError, String(e));
    assert.equal(e.kind, 'config');
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('each option belongs to the kinds whose code path it changes; the defaults are today\'s behaviour', () => {
  const sequentialFamily = ['sequential', 'adaptive-span', 'expire-span'] as const;
  for (const kind of sequentialFamily) {
    const c = resolveModelConfig({ kind, ...tiny, memLen: 8 });
    assert.equal(c.window, 'with-query', kind);
    assert.equal(c.initialMemory, 'empty', kind);
    assert.equal(c.finalNorm, null, kind);
    assert.equal(c.rmtCache, null, kind);
  }
  const compressive = resolveModelConfig({ kind: 'compressive', ...tiny, memLen: 8 });
  assert.equal(compressive.window, null);
  assert.equal(compressive.initialMemory, 'empty');
  if (compressive.kind === 'compressive') assert.equal(compressive.compressive.scheme, 'fifo');
  const feedback = resolveModelConfig({ kind: 'feedback', ...tiny, memLen: 8 });
  assert.deepEqual([feedback.window, feedback.initialMemory], [null, 'empty']);
  const expire = resolveModelConfig({ kind: 'expire-span', ...tiny, memLen: 8 });
  if (expire.kind === 'expire-span') assert.equal(expire.expireSpan.keyPositions, 'all');
  for (const kind of ['transformer', 'xl', 'mem-transformer'] as const) {
    const c = resolveModelConfig({ kind, ...tiny, memLen: kind === 'xl' ? 4 : 0, numMemTokens: kind === 'mem-transformer' ? 2 : 0 });
    assert.deepEqual([c.finalNorm, c.rmtCache, c.window, c.initialMemory], [true, null, null, null], kind);
  }
  const rmt = resolveModelConfig({ kind: 'rmt', ...tiny, numMemTokens: 2, memLen: 4 });
  assert.deepEqual(rmt.rmtCache, { readSeesCache: false, writeSeesCache: true, rows: 'sequence' });
  assert.equal(resolveModelConfig({ kind: 'mem-bottleneck', ...tiny, numMemTokens: 2 }).finalNorm, null);

  // The defaults written out give the same numbers as leaving them out, bit for bit.
  const pairs: [ModelConfigInput, ModelConfigInput][] = [
    [{ kind: 'sequential', ...tiny, memLen: 6 }, { kind: 'sequential', ...tiny, memLen: 6, window: 'with-query', initialMemory: 'empty' }],
    [{ kind: 'rmt', ...tiny, numMemTokens: 2, memLen: 4, norm: 'pre' }, { kind: 'rmt', ...tiny, numMemTokens: 2, memLen: 4, norm: 'pre', finalNorm: true, rmtCache: {} }],
    [{ kind: 'compressive', ...tiny, memLen: 4, compressive: { rate: 2 } }, { kind: 'compressive', ...tiny, memLen: 4, compressive: { rate: 2, scheme: 'fifo' }, initialMemory: 'empty' }],
  ];
  for (const [a, b] of pairs) {
    manualSeed(3);
    const ma = createModel(a);
    manualSeed(3);
    const mb = createModel(b);
    assert.deepEqual(logitsOf(mb), logitsOf(ma), a.kind);
    ma.dispose();
    mb.dispose();
  }
});

test('combinations that make no sense are refused with one line; options on the wrong kind too', () => {
  rejects({ kind: 'xl', ...tiny, memLen: 4, window: 'before-query' }, /window options belong to kinds 'sequential', 'adaptive-span', 'expire-span', not 'xl'/);
  rejects({ kind: 'sequential', ...tiny, memLen: 4, finalNorm: false }, /finalNorm options belong to kinds 'transformer', 'xl', 'mem-transformer', 'rmt', not 'sequential'/);
  rejects({ kind: 'xl', ...tiny, memLen: 4, rmtCache: { rows: 'all' } }, /rmtCache options belong to kind 'rmt', not 'xl'/);
  rejects({ kind: 'compressive', ...tiny, memLen: 4, window: 'before-query' }, /belong to kinds/);
  rejects({ kind: 'sequential', ...tiny, memLen: 4, window: 'before-query' }, /window 'before-query' needs initialMemory 'zeros'/);
  rejects({ kind: 'expire-span', ...tiny, memLen: 4, window: 'before-query', initialMemory: 'empty' }, /needs initialMemory 'zeros'/);
  rejects({ kind: 'compressive', ...tiny, memLen: 4, compressive: { scheme: 'overlap', fn: 'mean' } }, /scheme 'overlap' needs initialMemory 'zeros'/);
  rejects({ kind: 'compressive', ...tiny, memLen: 4, initialMemory: 'zeros', compressive: { scheme: 'overlap' } }, /pools with fn 'mean'/);
  rejects({ kind: 'xl', ...tiny, memLen: 4, finalNorm: false }, /finalNorm: false applies to norm 'pre' only/);
  rejects({ kind: 'rmt', ...tiny, numMemTokens: 2, rmtCache: { readSeesCache: true } }, /rmtCache options need a cache \(memLen > 0\)/);
  rejects({ kind: 'sequential', ...tiny, memLen: 4, initialMemory: 'ones' }, /initialMemory/);
  rejects({ kind: 'rmt', ...tiny, numMemTokens: 2, memLen: 4, rmtCache: { rows: 'write' } }, /rmtCache: rows/);
  // Block length not a multiple of the rate: refused at the forward, with what to do.
  const model = createModel({ kind: 'compressive', ...tiny, memLen: 4, initialMemory: 'zeros', compressive: { scheme: 'overlap', fn: 'mean', rate: 3 } });
  assert.throws(() => logitsOf(model, 4), /multiple of the rate 3/);
  model.dispose();
});

test('a configuration saved before the options existed loads with their defaults, and gives the same model', () => {
  const inputs: ModelConfigInput[] = [
    { kind: 'sequential', ...tiny, memLen: 6 },
    { kind: 'expire-span', ...tiny, memLen: 6, expireSpan: { ramp: 2 } },
    { kind: 'compressive', ...tiny, memLen: 4, compressive: { rate: 2, fn: 'mean' } },
    { kind: 'feedback', ...tiny, memLen: 3 },
    { kind: 'rmt', ...tiny, numMemTokens: 2, memLen: 4, norm: 'pre' },
  ];
  for (const input of inputs) {
    const now = resolveModelConfig(input);
    // What an older release saved: no new top-level keys, no new mechanism fields.
    const old = JSON.parse(JSON.stringify(now)) as Record<string, unknown>;
    for (const k of ['window', 'initialMemory', 'finalNorm', 'rmtCache']) delete old[k];
    if (old.expireSpan) delete (old.expireSpan as Record<string, unknown>).keyPositions;
    if (old.compressive) delete (old.compressive as Record<string, unknown>).scheme;
    assert.deepEqual(resolveModelConfig(old as UncheckedModelConfigInput), now, input.kind);
    // ... and a model built straight from it (createModel's input as a checkpoint's reader passes it)
    manualSeed(5);
    const a = createModel(now);
    manualSeed(5);
    const b = createModel(old as unknown as ModelConfig);
    assert.deepEqual(logitsOf(b), logitsOf(a), input.kind);
    a.dispose();
    b.dispose();
  }
});

test('the options round-trip through checkpoints and model folders', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'engram-reference-options-'));
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, 'the quick brown fox jumps over the lazy dog. '.repeat(40));
  const small = { layers: 1, dModel: 16, heads: 2, dInner: 32 };
  const models: Record<string, TrainConfigInput['model']> = {
    sequential: { kind: 'sequential', ...small, memLen: 6, window: 'before-query', initialMemory: 'zeros' },
    compressive: { kind: 'compressive', ...small, memLen: 4, initialMemory: 'zeros', compressive: { scheme: 'overlap', fn: 'mean', rate: 2, compressedLen: 2 } },
    rmt: { kind: 'rmt', ...small, numMemTokens: 2, memLen: 4, norm: 'pre', finalNorm: false, rmtCache: { readSeesCache: true, rows: 'all' } },
  };
  try {
    for (const [name, model] of Object.entries(models)) {
      const runDir = join(dir, name), folder = join(dir, `${name}-model`);
      await train({ model, data: { kind: 'lm', corpus, segmentLength: 8 }, train: { steps: 2, batchSize: 2, bpttDepth: 1, evalEvery: 0 } }, { runDir });
      const run = await loadRun(runDir); // from the checkpoint
      const given = model as Record<string, unknown>;
      for (const key of ['window', 'initialMemory', 'finalNorm']) {
        if (key in given) assert.equal((run.model.config as unknown as Record<string, unknown>)[key], given[key], `${name}: ${key}`);
      }
      await exportRun(run, folder);
      const { model: loaded, config } = await loadModel(folder);
      assert.deepEqual(config.model, run.model.config, name);
      assert.deepEqual(logitsOf(loaded, 8), logitsOf(run.model, 8), name);
      if (name === 'rmt') {
        assert.deepEqual(config.model.rmtCache, { readSeesCache: true, writeSeesCache: true, rows: 'all' });
        assert.equal(Object.keys(loaded.stateDict()).some((k) => k.startsWith('finalNorm.')), false);
      }
      if (name === 'compressive' && config.model.kind === 'compressive') assert.equal(config.model.compressive.scheme, 'overlap');
      loaded.dispose();
      run.model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("initialMemory 'zeros': the state a stream starts from, per kind", () => {
  const H = tiny.dModel;
  const shapes = (ts: unknown): number[][] => (ts as { shape: number[] }[]).map((t) => t.shape);
  const seq = createModel({ kind: 'sequential', ...tiny, memLen: 6, initialMemory: 'zeros' });
  assert.deepEqual(shapes(seq.initState(2).cache), [[2, 6, H], [2, 6, H]]);
  const comp = createModel({ kind: 'compressive', ...tiny, memLen: 4, initialMemory: 'zeros', compressive: { rate: 2, compressedLen: 3, fn: 'mean' } });
  const cs = comp.initState(2);
  assert.deepEqual([shapes(cs.cache), shapes(cs.compressed)], [[[2, 4, H], [2, 4, H]], [[2, 3, H], [2, 3, H]]]);
  assert.equal(logitsOf(comp).every(Number.isFinite), true); // the 'fifo' scheme runs from zeros too
  const fb = createModel({ kind: 'feedback', ...tiny, memLen: 3, initialMemory: 'zeros' });
  assert.deepEqual((fb.initState(2).memory as unknown as { shape: number[] }).shape, [2, 3, H]);
  // Expire-Span's M zero memories are made at the first block (its length is not known before).
  const es = createModel({ kind: 'expire-span', ...tiny, memLen: 16, initialMemory: 'zeros', expireSpan: { ramp: 2, initFraction: 0.9 } });
  assert.equal(es.initState(2).cache, null);
  const ages = noGrad(() => tidy(() => {
    const out = es.forward(tensor([[1, 2, 3, 4], [4, 3, 2, 1]], { dtype: 'int64' }), es.initState(2));
    return (out.state.age as unknown as { toArray(): number[][] }[])[0]!.toArray()[0]!;
  }));
  assert.deepEqual(ages, [8, 7, 6, 5, 4, 3, 2, 1]); // the 4 zero memories (ages 4 … 1, now + 4) and the block
  for (const m of [seq, comp, fb, es]) m.dispose();
});
