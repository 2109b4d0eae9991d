// Incremental (cached) decoding against the recompute path, for every kind: greedy tokens equal and
// logits within 1e-5 over several segment boundaries, batch 2, feeding a prompt as one chunk that
// crosses a boundary, then token by token, and in chunks that cross boundaries. The cached path
// must not call forward() (it cannot silently fall back to recomputing), and the Decoder's
// configuration errors stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrowingTensor } from '../src/nn/growing-tensor.js';
import { KeyValueCache } from '../src/nn/attention.js';
import { Linear, OutputHead, ROW_PRODUCT_MIN } from '../src/nn/layers.js';
import { DecoderLayer } from '../src/nn/decoder-layer.js';
import { sinusoidalDistances } from '../src/nn/positions.js';
import { native } from '../src/tensor/native.js';
import { codeOf } from '../src/tensor/dtype.js';
import { assertClose, inFloat64 } from './helpers.js';
import {
  cat, createModel, Decoder, EngramError, F, liveTensors, manualSeed, noGrad, rand, randn, tensor, tidy,
  type AdaptiveSpanTransformer, type ExpireSpanTransformer, type ModelConfigInput, type SegmentModel, type Tensor,
} from '../src/index.js';

const V = 9, M = 4;
const small = { vocabSize: V, layers: 2, dModel: 8, heads: 2, dInner: 16, dropout: 0.1 } as const;

/** name -> (configuration, what to do to the fresh model so that its mechanism acts). */
const cases: [string, ModelConfigInput, ((m: SegmentModel) => void)?][] = [
  ['transformer', { ...small, kind: 'transformer' }],
  ['xl', { ...small, kind: 'xl', memLen: 6 }],
  ['xl pre-LN', { ...small, kind: 'xl', memLen: 5, norm: 'pre' }],
  ['xl previousToken', { ...small, kind: 'xl', memLen: 4, previousToken: true }],
  ['mem-transformer', { ...small, kind: 'mem-transformer', numMemTokens: 2 }],
  ['mem-transformer with cache, pre-LN', { ...small, kind: 'mem-transformer', numMemTokens: 3, memLen: 4, norm: 'pre' }],
  ['rmt', { ...small, kind: 'rmt', numMemTokens: 2 }],
  ['rmt one memory token', { ...small, kind: 'rmt', numMemTokens: 1 }],
  ['rmt with cache, pre-LN, previousToken', { ...small, kind: 'rmt', numMemTokens: 2, memLen: 5, norm: 'pre', previousToken: true }],
  ['mem-bottleneck', { ...small, kind: 'mem-bottleneck', numMemTokens: 2, memLen: 4, previousToken: true }],
  ['sequential', { ...small, kind: 'sequential', memLen: 6 }],
  ['sequential pre-LN', { ...small, kind: 'sequential', memLen: 3, norm: 'pre' }],
  ['adaptive-span trimming', { ...small, kind: 'adaptive-span', memLen: 12, adaptiveSpan: { ramp: 2, init: 0.1, trimStep: 1 } }],
  ['adaptive-span dynamic, pre-LN', { ...small, kind: 'adaptive-span', memLen: 12, norm: 'pre', adaptiveSpan: { ramp: 2, init: 0.2, trimStep: 2, dynamic: true } },
    (m) => randomize((m as AdaptiveSpanTransformer).adaptiveSpans.map((s) => s.spanWeight!), 1)],
  ['expire-span dropping', { ...small, kind: 'expire-span', memLen: 8, expireSpan: { ramp: 2, initFraction: 0.3 } },
    (m) => randomize((m as ExpireSpanTransformer).spanPredictors.map((p) => p.weight), 3)],
  ['expire-span pre-LN, previousToken', { ...small, kind: 'expire-span', memLen: 6, norm: 'pre', previousToken: true, expireSpan: { ramp: 1, initFraction: 0.2 } },
    (m) => randomize((m as ExpireSpanTransformer).spanPredictors.map((p) => p.weight), 3)],
  ['compressive conv', { ...small, kind: 'compressive', memLen: 4, compressive: { rate: 2, compressedLen: 3, fn: 'conv' } },
    (m) => randomize(m.namedParameters().filter(([name]) => name.includes('compressors')).map(([, p]) => p), 0.3)],
  ['compressive max, pre-LN', { ...small, kind: 'compressive', memLen: 3, norm: 'pre', compressive: { rate: 2, compressedLen: 4, fn: 'max' } }],
  ['feedback', { ...small, kind: 'feedback', memLen: 5 }],
  ['feedback pre-LN, previousToken', { ...small, kind: 'feedback', memLen: 3, norm: 'pre', previousToken: true }],
  // The options that reproduce the reference implementations (docs/deviations.md).
  ['sequential reference window, zeros', { ...small, kind: 'sequential', memLen: 6, window: 'before-query', initialMemory: 'zeros' }],
  ['adaptive-span reference window', { ...small, kind: 'adaptive-span', memLen: 8, window: 'before-query', initialMemory: 'zeros', adaptiveSpan: { ramp: 2, init: 0.3, trimStep: 1 } }],
  ['expire-span reference keys, zeros', { ...small, kind: 'expire-span', memLen: 6, window: 'before-query', initialMemory: 'zeros', expireSpan: { ramp: 2, initFraction: 0.3, keyPositions: 'block-length' } },
    (m) => randomize((m as ExpireSpanTransformer).spanPredictors.map((p) => p.weight), 3)],
  ['compressive overlap scheme', { ...small, kind: 'compressive', memLen: 4, initialMemory: 'zeros', compressive: { scheme: 'overlap', fn: 'mean', rate: 2, compressedLen: 2 } }],
  ['feedback zeros', { ...small, kind: 'feedback', memLen: 4, initialMemory: 'zeros' }],
  ['rmt reference cache', { ...small, kind: 'rmt', numMemTokens: 2, memLen: 4, norm: 'pre', finalNorm: false, rmtCache: { readSeesCache: true, writeSeesCache: true, rows: 'all' } }],
  ['rmt cache unseen by the write block', { ...small, kind: 'rmt', numMemTokens: 2, memLen: 5, rmtCache: { readSeesCache: false, writeSeesCache: false, rows: 'all' } }],
  ['xl pre-LN without final norm', { ...small, kind: 'xl', memLen: 4, norm: 'pre', finalNorm: false }],
];

function randomize(params: Tensor[], scale: number): void {
  noGrad(() => tidy(() => { for (const p of params) p.copy_(randn(p.shape).mul(scale)); }));
}

/** Argmax of each row's last position: logits [B, n, V] -> B tokens. */
function greedy(logits: Tensor): number[] {
  const rows = logits.toArray() as number[][][];
  return rows.map((r) => { const last = r[r.length - 1]!; return last.indexOf(Math.max(...last)); });
}

/** Feeds a prompt chunk, then `steps` greedy tokens one at a time: the tokens fed and every logit row. */
function decode(model: SegmentModel, cached: boolean, prompt: number[][], steps: number): { tokens: number[][]; logits: number[][][] } {
  const d = new Decoder(model, M, { batch: prompt.length, cached });
  assert.equal(d.cached, cached);
  const tokens = prompt.map((row) => [...row]);
  const logits: number[][][] = prompt.map(() => []);
  const take = (t: Tensor) => (t.toArray() as number[][][]).forEach((rows, b) => logits[b]!.push(...rows));
  try {
    tidy(() => {
      let out = d.feed(prompt);
      take(out);
      for (let s = 0; s < steps; s++) {
        const next = greedy(out);
        next.forEach((t, b) => tokens[b]!.push(t));
        out = d.feed(next.map((t) => [t]));
        take(out);
      }
    });
    assert.equal(d.position, prompt[0]!.length + steps);
    return { tokens, logits };
  } finally {
    d.dispose();
  }
}

/** Feeds the stream in chunks of the given sizes: every logit row. */
function chunked(model: SegmentModel, cached: boolean, stream: number[][], sizes: number[]): number[][][] {
  const d = new Decoder(model, M, { batch: stream.length, cached });
  const logits: number[][][] = stream.map(() => []);
  try {
    tidy(() => {
      let at = 0;
      for (const size of sizes) {
        const out = d.feed(stream.map((row) => row.slice(at, at + size)));
        (out.toArray() as number[][][]).forEach((rows, b) => logits[b]!.push(...rows));
        at += size;
      }
    });
    return logits;
  } finally {
    d.dispose();
  }
}

function assertLogitsClose(actual: number[][][], expected: number[][][], what: string): void {
  let worst = 0;
  expected.forEach((rows, b) => rows.forEach((row, i) => row.forEach((e, v) => {
    worst = Math.max(worst, Math.abs(actual[b]![i]![v]! - e));
  })));
  assert.equal(actual.flat().length, expected.flat().length, `${what}: as many positions`);
  assert.ok(worst <= 1e-5, `${what}: logits differ by ${worst}`);
}

/**
 * Logits [B][positions][V] of forward() over the stream's whole segments, state carried, in
 * evaluation mode: what training computes (the reference for the models whose outputs depend on the
 * segment's length, which the recompute path cannot give).
 */
function segmentLogits(model: SegmentModel, stream: number[][]): number[][][] {
  const training = model.training;
  model.eval();
  const B = stream.length, segments = Math.floor(stream[0]!.length / M);
  const logits: number[][][] = stream.map(() => []);
  try {
    noGrad(() => tidy(() => {
      let state = model.initState(B);
      for (let s = 0; s < segments; s++) {
        const tokens = tensor(Int32Array.from(stream.flatMap((row) => row.slice(s * M, (s + 1) * M))), { dtype: 'int64', shape: [B, M] });
        const out = model.forward(tokens, state);
        (out.logits.float().toArray() as number[][][]).forEach((rows, b) => logits[b]!.push(...rows));
        state = out.state;
      }
    }));
  } finally {
    model.train(training);
  }
  return logits;
}

/** The first `positions` rows of each batch row's logits. */
const firstRows = (logits: number[][][], positions: number) => logits.map((rows) => rows.slice(0, positions));

/** Counts the model's forward() calls while fn runs. */
function countForwards(model: SegmentModel, fn: () => void): number {
  const forward = model.forward;
  let calls = 0;
  model.forward = (...args) => { calls += 1; return forward.apply(model, args); };
  try {
    fn();
  } finally {
    model.forward = forward;
  }
  return calls;
}

for (const [name, config, prepare] of cases) {
  test(`${name}: cached decoding equals recomputing (batch 2, 4+ boundaries)`, () => {
    manualSeed(7);
    const model = createModel(config);
    prepare?.(model);
    model.train(); // the decoder decodes in evaluation mode whatever the model's mode (dropout is on here)
    try {
      const prompt = [[1, 2, 3, 4, 5, 6], [8, 7, 0, 3, 3, 1]]; // crosses the first boundary
      const steps = 4 * M + 1;
      if (model.dependsOnSegmentLength) {
        // Recomputing a part of a segment is not defined for it: the reference is forward() over whole segments.
        assert.throws(() => new Decoder(model, M, { cached: false }), (e: unknown) => e instanceof EngramError && /decode it with cached: true/.test(e.message));
        let cached!: ReturnType<typeof decode>;
        assert.equal(countForwards(model, () => { cached = decode(model, true, prompt, steps); }), 0, 'the cached path never runs forward()');
        const whole = segmentLogits(model, cached.tokens);
        const positions = whole[0]!.length;
        assert.ok(positions >= 4 * M);
        assertLogitsClose(firstRows(cached.logits, positions), whole, 'greedy');
        const sizes = [3, 6, 1, 2, 5, 2, 3];
        assertLogitsClose(firstRows(chunked(model, true, cached.tokens, sizes), positions), whole, 'chunks');
        const live = liveTensors();
        decode(model, true, prompt, steps);
        assert.equal(liveTensors(), live, 'every tensor of the cached path is freed');
        return;
      }
      let cached!: ReturnType<typeof decode>;
      const cachedForwards = countForwards(model, () => { cached = decode(model, true, prompt, steps); });
      let reference!: ReturnType<typeof decode>;
      const recomputeForwards = countForwards(model, () => { reference = decode(model, false, prompt, steps); });
      assert.equal(cachedForwards, 0, 'the cached path never runs forward()');
      assert.ok(recomputeForwards > steps, 'the recompute path does');
      assert.ok(model.training, 'the model is back in its mode');
      assert.deepEqual(cached.tokens, reference.tokens);
      assertLogitsClose(cached.logits, reference.logits, 'greedy');

      // Chunks that cross boundaries, over the greedy stream.
      const stream = reference.tokens;
      const sizes = [3, 6, 1, 2, 5, 2, 3];
      assert.ok(sizes.reduce((a, b) => a + b) <= stream[0]!.length);
      assertLogitsClose(chunked(model, true, stream, sizes), chunked(model, false, stream, sizes), 'chunks');

      // Nothing is left behind once a decoder is disposed (the model's tables are built already).
      const live = liveTensors();
      decode(model, true, prompt, steps);
      assert.equal(liveTensors(), live, 'every tensor of the cached path is freed');
    } finally {
      model.dispose();
    }
  });
}

// Batch-1 decoding of one token runs each layer as one native call (F.decoderLayerRow, which writes
// the row into the cache's buffers: KeyValueCache.advanceRow counts it) whose projections are
// matrix-vector products once a weight has ROW_PRODUCT_MIN entries (H 256 puts every one past it),
// and the output head as a row product (Linear.forwardRow).
const wide = { vocabSize: V, layers: 2, dModel: 256, heads: 2, dInner: 256, dropout: 0 } as const;
const rowCases: [string, ModelConfigInput][] = [
  ['xl', { ...wide, kind: 'xl', memLen: 6 }],
  ['rmt', { ...wide, kind: 'rmt', numMemTokens: 2, norm: 'pre' }],
  ['expire-span', { ...wide, kind: 'expire-span', memLen: 6 }],
];
for (const [name, config] of rowCases) {
  test(`${name}, H 256: batch-1 cached decoding (matrix-vector rows) equals recomputing`, () => {
    manualSeed(3);
    const model = createModel(config);
    const forwardRow = Linear.prototype.forwardRow, advanceRow = KeyValueCache.prototype.advanceRow;
    let rows = 0, fused = 0;
    Linear.prototype.forwardRow = function (this: Linear, x: Tensor) { rows += 1; return forwardRow.call(this, x); };
    KeyValueCache.prototype.advanceRow = function (this: KeyValueCache) { fused += 1; advanceRow.call(this); };
    try {
      const prompt = [[1, 2, 3]];
      const cached = decode(model, true, prompt, 3 * M);
      // every token after the first of a segment with an empty cache: one fused call per layer
      assert.ok(fused >= (3 * M - 3) * wide.layers, `one fused call per layer and token (${fused} calls)`);
      assert.ok(rows >= 3 * M, `the output head of a one-token step is a row product (${rows} calls)`);
      Linear.prototype.forwardRow = forwardRow;
      KeyValueCache.prototype.advanceRow = advanceRow;
      const reference = decode(model, false, prompt, 3 * M);
      assert.deepEqual(cached.tokens, reference.tokens);
      assertLogitsClose(cached.logits, reference.logits, 'greedy');
    } finally {
      Linear.prototype.forwardRow = forwardRow;
      KeyValueCache.prototype.advanceRow = advanceRow;
      model.dispose();
    }
  });
}

test('Linear.forwardRow equals forward for one row, above and below ROW_PRODUCT_MIN, with and without bias; more rows fall back', () => {
  manualSeed(5);
  tidy(() => {
    const layers = [new Linear(256, 1024), new Linear(1024, 256, { bias: false }), new Linear(256, 256), new Linear(16, 8), new OutputHead(256, 300)];
    assert.ok(layers[0]!.weight.numel >= ROW_PRODUCT_MIN && layers[3]!.weight.numel < ROW_PRODUCT_MIN);
    for (const layer of layers) {
      for (const shape of [[1, 1, layer.inFeatures], [1, layer.inFeatures], [layer.inFeatures], [2, 3, layer.inFeatures]]) {
        const x = randn(shape);
        const [a, b] = [layer.forwardRow(x), layer.forward(x)];
        assert.deepEqual(a.shape, b.shape);
        const diff = a.sub(b).abs().max().item() as number;
        assert.ok(diff <= 1e-5, `[${layer.inFeatures} -> ${layer.outFeatures}] on [${shape}]: differs by ${diff}`);
      }
    }
    layers.forEach((l) => l.dispose());
  });
});

test('while decoding on the cached path, expire-span drops memories and adaptive-span trims its keys', () => {
  manualSeed(7);
  const [, expireConfig, prepareExpire] = cases.find(([n]) => n === 'expire-span dropping')!;
  const expire = createModel(expireConfig) as ExpireSpanTransformer;
  prepareExpire!(expire);
  const adaptive = createModel(cases.find(([n]) => n === 'adaptive-span trimming')![1]) as AdaptiveSpanTransformer;
  const stream = [Array.from({ length: 7 * M }, (_, i) => (i * 5) % V), Array.from({ length: 7 * M }, (_, i) => (i * 3 + 1) % V)];
  const sizes = Array.from({ length: 7 * M }, () => 1);
  try {
    assert.equal(countForwards(expire, () => chunked(expire, true, stream, sizes)), 0);
    const kept = expire.diagnostics().perLayer['memories kept']!; // after the last commit (nextState)
    assert.ok(kept.every((c) => c < 6 * M), `memories were dropped (kept ${kept} of ${7 * M})`);

    const windows: number[] = [];
    const window = adaptive.window;
    adaptive.window = (cached, block, span) => { windows.push(span ?? adaptive.span); return window.call(adaptive, cached, block, span); };
    try {
      chunked(adaptive, true, stream, sizes);
    } finally {
      adaptive.window = window;
    }
    assert.ok(windows.length > 0 && windows.every((w) => w < adaptive.span), `trimmed windows (${[...new Set(windows)]}) of ${adaptive.span}`);
  } finally {
    expire.dispose();
    adaptive.dispose();
  }
});

test('the decoder reports bad tokens and row counts as configuration errors', () => {
  manualSeed(1);
  const model = createModel({ ...small, kind: 'xl', memLen: 4 });
  const d = new Decoder(model, M, { batch: 2 });
  const configError = (re: RegExp) => (e: unknown) => e instanceof EngramError && e.kind === 'config' && re.test(e.message) && !e.message.includes('\n');
  try {
    assert.throws(() => d.feed([[1], [V]]), configError(/token 9 at row 1, position 0 is not an id in \[0, 9\)/));
    assert.throws(() => d.feed([[1]]), configError(/expected 2 rows of tokens \(got 1\)/));
    assert.throws(() => d.feed([[1, 2], [3]]), configError(/every row needs the same number of tokens/));
    assert.throws(() => d.feed([[], []]), configError(/feed at least one token/));
    tidy(() => d.feed([[1], [2]]));
    assert.equal(d.position, 1);
  } finally {
    d.dispose();
    model.dispose();
  }
  assert.throws(() => d.feed([[1], [2]]), configError(/disposed/));
});

test('GrowingTensor: appended rows read back as their concatenation, across capacity doublings; a row of another shape is refused', () => {
  tidy(() => {
    const rows = new GrowingTensor(2);
    const parts = [5, 1, 1, 3, 1, 9].map((n) => randn([2, 3, n, 4])); // [B, K, n, D]
    try {
      parts.forEach((p, i) => {
        rows.append(p);
        const expected = cat(parts.slice(0, i + 1), 2);
        assert.deepEqual(rows.tensor!.shape, expected.shape);
        assert.equal(rows.tensor!.sub(expected).abs().max().item(), 0);
      });
      assert.equal(rows.length, 20);
      assert.throws(() => rows.append(randn([2, 4, 1, 4])), /do not continue/);
    } finally {
      rows.dispose();
    }
    assert.equal(rows.tensor, null);
  });
});

/** fn under CPU autocast to bfloat16, also where withPrecision refuses bf16 as slow (no AVX512-BF16): correctness only. */
function underAutocast<T>(fn: () => T): T {
  const [on, code] = native.autocastState('cpu');
  native.setAutocast('cpu', true, codeOf('bfloat16', 'test')!);
  try {
    return fn();
  } finally {
    native.setAutocast('cpu', on, code);
  }
}

// F.decoderLayerRow (DecoderLayer.forwardCached's one-call path) against the composed layer step it
// replaces (the same layer and cache with KeyValueCache.reserveRow refused): every position scheme it
// takes, post- and pre-LN, batch 2, on each of its paths: the float32 loops (no gradient), ATen's ops
// (a gradient wanted; float64) and bf16 autocast. The new row's key and value land in the cache.
test('F.decoderLayerRow equals the composed layer step: post-/pre-LN, positions none/relative/expiring, float32 loops, ATen, float64, bf16', () => {
  const H = 8, K = 2, D = 4, B = 2, C = 5, used = C + 1;
  for (const norm of ['post', 'pre'] as const) {
    for (const mode of ['loops', 'aten', 'float64', 'bf16'] as const) {
      const build = () => {
        manualSeed(11);
        const layer = new DecoderLayer({ dModel: H, heads: K, dInner: 16, dropout: 0, norm });
        layer.eval();
        noGrad(() => layer.parameters().forEach((p) => p.copy_(randn(p.shape).mul(0.5)))); // norms' weights and biases too
        const memory = randn([B, C, H]).keep(), h = randn([B, 1, H]).keep();
        const relative = { u: randn([K, D]).keep(), v: randn([K, D]).keep(), r: sinusoidalDistances(7, 8, H).keep(), bidirectional: false };
        const expiring = {
          keyPe: randn([D, 9]).keep(),
          expiring: { age: tensor([[7, 5, 4, 3, 1, 0], [6, 5, 3, 2, 1, 0]], { dtype: 'int64' }).keep(), spans: rand([B, used]).mul(6).keep(), ramp: 2, nearest: 0 },
        };
        return { layer, memory, h, schemes: { none: null, relative, expiring } as const };
      };
      const { layer, memory, h, schemes } = mode === 'float64' ? inFloat64(build) : build();
      for (const [name, positions] of Object.entries(schemes)) {
        const step = (fused: boolean) => {
          const cache = new KeyValueCache();
          let rows = 0;
          const advanceRow = cache.advanceRow.bind(cache);
          cache.advanceRow = () => { rows += 1; advanceRow(); };
          if (!fused) cache.reserveRow = () => null;
          const run = () => tidy(() => {
            layer.cacheRows(memory, cache);
            const out = layer.forwardCached(h, cache, null, positions, null, name === 'expiring' ? used : undefined);
            return { out: out.float().keep(), key: cache.key!.float().keep(), value: cache.value!.float().keep() };
          });
          const r = mode === 'loops' ? noGrad(run) : mode === 'bf16' ? noGrad(() => underAutocast(run)) : run();
          assert.equal(rows, fused ? 1 : 0, `${norm} ${mode} ${name}: the fused path ${fused ? 'ran' : 'was refused'}`);
          assert.equal(cache.length, used);
          cache.dispose();
          return r;
        };
        const fused = step(true), composed = step(false);
        const tol = mode === 'bf16' ? { atol: 2e-2, rtol: 2e-2 } : { atol: 1e-5, rtol: 1e-5 };
        assert.equal(fused.out.requiresGrad, mode === 'aten' || mode === 'float64', `${norm} ${mode} ${name}: differentiable where a gradient is wanted`);
        for (const key of ['out', 'key', 'value'] as const) assertClose(fused[key], composed[key].toArray() as number[][][], tol);
      }
    }
  }
  const cache = new KeyValueCache();
  const layer = new DecoderLayer({ dModel: H, heads: K, dInner: 16, dropout: 0, norm: 'post' });
  noGrad(() => layer.cacheRows(randn([1, 2, H]), cache));
  const room = cache.reserveRow()!;
  const weights = { ln1: [layer.ln1.weight, layer.ln1.bias, 1e-5], q: [layer.attn.q.weight, null], kv: [layer.attn.kv.weight, null], out: [layer.attn.out.weight, null],
    ln2: [layer.ln2.weight, layer.ln2.bias, 1e-5], up: [layer.ff.up.weight, layer.ff.up.bias], down: [layer.ff.down.weight, layer.ff.down.bias] } as const;
  assert.throws(() => F.decoderLayerRow(randn([1, 1, H]), weights, { ...room, used: 3 }, { kind: 'sideways' } as never, { pre: false, scale: 1 }),
    (e: unknown) => e instanceof EngramError && e.kind === 'config' && /positions must be 'none', 'relative' or 'expiring'/.test(e.message));
  assert.throws(() => F.decoderLayerRow(randn([1, 1, H]), weights, { ...room, used: 4 }, { kind: 'none' }, { pre: false, scale: 1 }),
    (e: unknown) => e instanceof EngramError && /1 <= used <= filled \+ 1/.test(e.message));
  cache.dispose();
});
