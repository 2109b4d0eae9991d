// Adaptive attention span (SPEC §2): the ramp mask cell by cell, trimming that changes nothing but
// the cost, gradients of the spans against finite differences, the clamp after a step, the span
// loss, the per-head span read-out, and a few steps through the Trainer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdaptiveSpanTransformer, createModel, grad, liveTensors, manualSeed, noGrad, randint, randn, SGD,
  tensor, tidy, Trainer, type ModelConfigInputOf, type AdaptiveSpanOptions, type Tensor,
} from '../src/index.js';
import { AdaptiveSpan, DYNAMIC_INIT_FLOOR, trimmedWindow } from '../src/memory/adaptive-span.js';
import { assertClose, inFloat64 } from './helpers.js';

const options = (o: Partial<AdaptiveSpanOptions> = {}): AdaptiveSpanOptions =>
  ({ ramp: 2, init: 0, lossCoef: 0, dynamic: false, trimStep: 1, ...o });

const make = (adaptiveSpan: Partial<AdaptiveSpanOptions>, extra: Partial<ModelConfigInputOf<'adaptive-span'>> = {}): AdaptiveSpanTransformer =>
  createModel({
    kind: 'adaptive-span', vocabSize: 11, layers: 2, dModel: 16, heads: 2, dInner: 32, memLen: 16, adaptiveSpan, ...extra,
  }) as AdaptiveSpanTransformer;

/** Sets a parameter's values (no gradient recorded). */
const assign = (p: Tensor, values: number[] | number[][]) => noGrad(() => p.copy_(tensor(values)));

/** The expected mask value, straight from SPEC §2. */
const ramp = (R: number, z: number, x: number) => Math.min(1, Math.max(0, (R + z - x) / R));

/**
 * The gradient of objective() with respect to some model parameters, against central differences
 * (float64; each parameter is perturbed in place through its memory, one element at a time).
 */
function parameterGradcheck(params: Tensor[], objective: () => Tensor, { eps = 1e-6, atol = 1e-7, rtol = 1e-4 } = {}): void {
  const analytic = tidy(() => grad(objective(), params).map((g) => Array.from(g!.data() as Float64Array)));
  params.forEach((p, i) => {
    const memory = p.dataView() as Float64Array;
    for (let j = 0; j < memory.length; j++) {
      const original = memory[j]!;
      const at = (v: number) => { memory[j] = v; return tidy(() => noGrad(() => objective().item())); };
      const numeric = (at(original + eps) - at(original - eps)) / (2 * eps);
      memory[j] = original;
      const a = analytic[i]![j]!;
      assert.ok(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric),
        `parameter ${i} element ${j}: analytic ${a}, numeric ${numeric}`);
    }
    assert.ok(analytic[i]!.some((g) => Math.abs(g) > 1e-6), `parameter ${i} gets a non-zero gradient`);
  });
}

test('the static soft mask equals clamp((R + z - x) / R, 0, 1) cell by cell', () => {
  tidy(() => {
    const spans = new AdaptiveSpan(options({ ramp: 2 }), 6, 3, 4); // L 6, K 3 heads
    assign(spans.spanRatio!, [0, 0.25, 0.7]); // z = 0, 1.5, 4.2 tokens
    const distance = tensor([[0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0]]); // [M 2, Tk 8]
    const z = spans.span(randn([1, 2, 4]));
    assert.deepEqual(z.shape, [1, 3, 1]);
    const mask = spans.mask(z, distance).toArray() as number[][][][]; // [1, K, M, Tk]
    const zs = [0, 1.5, 4.2];
    const rows = distance.toArray() as number[][];
    zs.forEach((zk, k) => rows.forEach((row, i) => row.forEach((x, j) => {
      assert.ok(Math.abs(mask[0]![k]![i]![j]! - ramp(2, zk, x)) < 1e-6, `head ${k}, query ${i}, key ${j}`);
    })));
    // A few cells by hand: head 1 (z = 1.5) at distances 1, 2, 3: 1, 0.75, 0.25; head 0 at 2: 0.
    assert.deepEqual([1, 2, 3].map((j) => Number(mask[0]![1]![0]![j]!.toFixed(6))), [1, 0.75, 0.25]);
    assert.equal(mask[0]![0]![0]![2], 0);
    spans.dispose();
  });
});

test('the dynamic span z_t = L·σ(v·x_t + b) gives each query its own mask, cell by cell', () => {
  tidy(() => {
    manualSeed(3);
    const L = 8, K = 2, H = 4, R = 3;
    const spans = new AdaptiveSpan(options({ ramp: R, dynamic: true, init: 0.4 }), L, K, H);
    assign(spans.spanWeight!, [[0.5, -1, 0.25, 0.8], [-0.3, 0.2, 1.1, -0.6]]);
    assign(spans.spanBias!, [0.1, -0.7]);
    const x = randn([1, 3, H]); // three queries
    const z = spans.span(x);
    assert.deepEqual(z.shape, [1, K, 3]);
    const xs = x.toArray() as number[][][], v = spans.spanWeight!.toArray() as number[][], b = [0.1, -0.7];
    const expected = [0, 1].map((k) => [0, 1, 2].map((t) =>
      L / (1 + Math.exp(-(xs[0]![t]!.reduce((s, xi, d) => s + xi * v[k]![d]!, 0) + b[k]!)))));
    assertClose(z, [expected]);
    const distance = tensor([[2, 1, 0, 0, 0], [3, 2, 1, 0, 0], [4, 3, 2, 1, 0]].map((r) => r.map((d) => d * 2))); // [3, 5]
    const mask = spans.mask(z, distance).toArray() as number[][][][];
    const dist = distance.toArray() as number[][];
    for (let k = 0; k < K; k++) for (let t = 0; t < 3; t++) for (let j = 0; j < 5; j++) {
      assert.ok(Math.abs(mask[0]![k]![t]![j]! - ramp(R, expected[k]![t]!, dist[t]![j]!)) < 1e-5, `head ${k}, query ${t}, key ${j}`);
    }
    spans.dispose();
  });
});

test('the trimmed window: ceil(max z) + R distances, rounded up to the trim step, at most L', () => {
  assert.equal(trimmedWindow(0, 32, 64, 1024), 64); // init 0: the ramp alone, rounded up
  assert.equal(trimmedWindow(100.2, 32, 64, 1024), 192); // 101 + 32 = 133 -> 192
  assert.equal(trimmedWindow(128, 32, 64, 1024), 192); // 160 -> 192 (x < z + R: distances 0 .. 159)
  assert.equal(trimmedWindow(1000, 32, 64, 1024), 1024); // capped at L
  assert.equal(trimmedWindow(4.8, 3, 1, 24), 8);
  assert.equal(trimmedWindow(4, 3, 1, 24), 7); // distance 7 has mask (3 + 4 - 7) / 3 = 0: not needed
});

/** Logits of `blocks` consecutive blocks, and the key count layer 0 attended over in the last one. */
function runBlocks(model: AdaptiveSpanTransformer, tokens: Tensor, M: number): { logits: number[]; keys: number } {
  const attn = model.layers[0]!.attn;
  attn.recordAttention = true;
  let state = model.initState(tokens.shape[0]!);
  const logits: number[] = [];
  for (const block of tokens.split(M, 1)) {
    const out = model.forward(block, state);
    logits.push(...(out.logits.data() as Float32Array));
    state = out.state;
  }
  const keys = attn.lastAttention!.shape[3]!;
  attn.recordAttention = false;
  attn.lastAttention?.dispose();
  attn.lastAttention = null;
  return { logits, keys };
}

test('trimming leaves outputs unchanged over several blocks and attends over fewer keys (static and dynamic)', () => {
  tidy(() => {
    for (const dynamic of [false, true]) {
      manualSeed(4);
      const model = make({ ramp: 3, trimStep: 2, dynamic }, { memLen: 24, norm: dynamic ? 'pre' : 'post' });
      model.eval();
      if (dynamic) {
        model.adaptiveSpans.forEach((s) => noGrad(() => { s.spanWeight!.normal_(0, 0.3); s.spanBias!.fill_(-2.5); }));
      } else {
        assign(model.adaptiveSpans[0]!.spanRatio!, [0.05, 0.2]); // max z = 4.8: window 4.8 -> 5 + 3 = 8
        assign(model.adaptiveSpans[1]!.spanRatio!, [0.1, 0.3]); // max z = 7.2: window 8 + 3 = 11 -> 12
      }
      const tokens = randint(0, 11, [2, 32]); // 8 blocks of 4: the cache fills to L = 24
      const trimmed = runBlocks(model, tokens, 4);
      model.trimming = false;
      const full = runBlocks(model, tokens, 4);
      model.trimming = true;
      assert.equal(full.keys, 24 + 4, 'untrimmed, the last block attends over the whole cache');
      // Dynamic spans here reach about 10.6 tokens at most: a window of 14, 13 cached keys + 4.
      assert.ok(trimmed.keys <= full.keys - 8, `${dynamic ? 'dynamic' : 'static'}: trimmed, layer 0 attends over ${trimmed.keys} keys`);
      if (!dynamic) assert.equal(trimmed.keys, 7 + 4, 'a window of 8 distances needs the last 7 cached positions');
      assertClose(tensor(trimmed.logits), full.logits, { atol: 1e-5 });
      model.dispose();
    }
  });
});

test('gradients of the spans (z/L; dynamic v and b) match finite differences (float64)', () => {
  inFloat64(() => tidy(() => {
    for (const dynamic of [false, true]) {
      manualSeed(5);
      const model = createModel({
        kind: 'adaptive-span', vocabSize: 7, layers: 1, dModel: 8, heads: 2, dInner: 16, memLen: 8,
        adaptiveSpan: { ramp: 2, trimStep: 1, lossCoef: 0.05, dynamic },
      }) as AdaptiveSpanTransformer;
      model.eval();
      const spans = model.adaptiveSpans[0]!;
      if (dynamic) noGrad(() => { spans.spanWeight!.normal_(0, 0.5); spans.spanBias!.fill_(-0.5); });
      else assign(spans.spanRatio!, [0.37, 0.61]); // z = 2.96, 4.88: away from the ramp's corners
      const blocks = randint(0, 7, [2, 8]).split(4, 1);
      const weights = randn([2, 4, 7]);
      // Two blocks, so the second attends over a cache; the span loss is in the objective too.
      const objective = () => {
        const first = model.forward(blocks[0]!, model.initState(2));
        const second = model.forward(blocks[1]!, first.state);
        return first.logits.mul(weights).sum().add(second.logits.mul(weights).sum()).add(first.auxLoss!).add(second.auxLoss!);
      };
      parameterGradcheck(dynamic ? [spans.spanWeight!, spans.spanBias!] : [spans.spanRatio!], objective);
      model.dispose();
    }
  }));
});

test('afterOptimizerStep clamps z/L to [0, 1] after a step pushed it out', () => {
  tidy(() => {
    const model = make({ init: 0.5, lossCoef: 1 });
    const ratios = model.adaptiveSpans.map((s) => s.spanRatio!);
    const optimizer = new SGD(ratios, { lr: 0.1 }); // d(aux)/d(z/L) = λ·L/K = 8 per head: a step of 0.8
    const tokens = randint(0, 11, [1, 4]);
    const stepOn = (sign: number) => tidy(() => {
      optimizer.zeroGrad();
      model.forward(tokens, model.initState(1)).auxLoss!.mul(sign).backward();
      optimizer.step();
    });
    const values = () => ratios.map((r) => r.toArray() as number[]);
    stepOn(1);
    assert.ok(values().flat().every((v) => v < 0), `the step took every ratio below 0: ${values()}`);
    model.afterOptimizerStep();
    assert.deepEqual(values(), [[0, 0], [0, 0]]);
    stepOn(-1);
    stepOn(-1);
    assert.ok(values().flat().every((v) => v > 1), `two steps up took every ratio above 1: ${values()}`);
    model.afterOptimizerStep();
    assert.deepEqual(values(), [[1, 1], [1, 1]]);
    model.dispose();
  });
});

test('the span loss is λ·mean_heads(z) per layer, z in tokens (static and dynamic)', () => {
  tidy(() => {
    const tokens = randint(0, 11, [2, 4]);
    const staticModel = make({ init: 0.25, lossCoef: 0.1 }); // L 16: z = 4 in every head
    assertClose(staticModel.forward(tokens, staticModel.initState(2)).auxLoss!, 2 * 0.1 * 4);
    assign(staticModel.adaptiveSpans[1]!.spanRatio!, [0.5, 1]); // layer 1: z = 8, 16, mean 12
    assertClose(staticModel.forward(tokens, staticModel.initState(2)).auxLoss!, 0.1 * 4 + 0.1 * 12);
    staticModel.dispose();
    const dynamicModel = make({ init: 0.25, lossCoef: 0.1, dynamic: true }); // v = 0: z_t = L·0.25 = 4
    assertClose(dynamicModel.forward(tokens, dynamicModel.initState(2)).auxLoss!, 2 * 0.1 * 4, { atol: 1e-6 });
    dynamicModel.dispose();
    const defaults = make({});
    assert.deepEqual(defaults.config.adaptiveSpan, { ramp: 32, init: 0, lossCoef: 2e-6, dynamic: false, trimStep: 64 });
    assert.equal(defaults.forward(tokens, defaults.initState(2)).auxLoss!.item(), 0, 'init 0: no span, no loss');
    defaults.dispose();
  });
});

test('spans(): per layer, per head, in tokens (dynamic: the mean z_t of the last forward)', () => {
  tidy(() => {
    const staticModel = make({ init: 0.25 });
    assert.deepEqual(staticModel.spans(), [[4, 4], [4, 4]]);
    assign(staticModel.adaptiveSpans[1]!.spanRatio!, [0.5, 0.75]);
    assert.deepEqual(staticModel.spans(), [[4, 4], [8, 12]]);
    staticModel.dispose();

    manualSeed(6);
    const model = make({ init: 0.25, dynamic: true });
    model.eval();
    assertClose(tensor(model.spans()), [[4, 4], [4, 4]], { atol: 1e-5 }); // before any forward: L·σ(b)
    const spans = model.adaptiveSpans[0]!;
    noGrad(() => spans.spanWeight!.normal_(0, 0.5));
    const tokens = randint(0, 11, [2, 5]);
    model.forward(tokens, model.initState(2));
    // Layer 0's input is the token embedding (no dropout): the mean over batch and queries by hand.
    const expected = model.embed.forward(tokens).matmul(spans.spanWeight!.mT).add(spans.spanBias!).sigmoid().mul(16).mean([0, 1]);
    assertClose(tensor(model.spans()[0]!), expected.toArray(), { atol: 1e-5 });
    assert.notDeepEqual(model.spans()[0], model.spans()[1], 'layer 1 has its own spans');
    model.dispose();
  });
});

test('dynamic spans start at init·L: b = logit(init), with init 0 floored', () => {
  tidy(() => {
    const half = make({ init: 0.5, dynamic: true });
    assert.deepEqual(half.adaptiveSpans[0]!.spanBias!.toArray(), [0, 0]);
    assert.deepEqual(half.adaptiveSpans[0]!.spanWeight!.shape, [2, 16]);
    half.dispose();
    const zero = make({ init: 0, dynamic: true });
    const b = zero.adaptiveSpans[0]!.spanBias!.toArray() as number[];
    assert.ok(b.every((v) => Number.isFinite(v) && Math.abs(v - Math.log(DYNAMIC_INIT_FLOOR / (1 - DYNAMIC_INIT_FLOOR))) < 1e-5));
    assertClose(tensor(zero.spans()), [[0.016, 0.016], [0.016, 0.016]], { atol: 1e-6 }); // 0.001 · L 16
    assert.deepEqual(Object.keys(zero.stateDict()).filter((k) => k.startsWith('adaptiveSpans')),
      ['adaptiveSpans.0.spanWeight', 'adaptiveSpans.0.spanBias', 'adaptiveSpans.1.spanWeight', 'adaptiveSpans.1.spanBias']);
    zero.dispose();
  });
});

test('a few Trainer steps: finite losses, spans clamped after every step, no tensor leaks', async () => {
  // λ = 1 makes the span loss dominate: from init 0 each step pushes z/L below 0, and only the
  // clamp the trainer calls after the step brings it back to exactly 0.
  const trainer = await Trainer.create({
    model: { kind: 'adaptive-span', layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 8, adaptiveSpan: { ramp: 2, trimStep: 2, lossCoef: 1 } },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 3 } },
    train: { batchSize: 4, evalBatches: 1 },
    optim: { lr: 1e-2 },
  });
  try {
    const model = trainer.model as AdaptiveSpanTransformer;
    assert.ok(model instanceof AdaptiveSpanTransformer);
    const loss = () => { const { counts } = trainer.trainStep(); return counts.lossSum / counts.tokens; };
    const losses = [loss(), loss()]; // the first steps make the optimiser's state and the cached masks
    const before = liveTensors();
    for (let i = 0; i < 3; i++) losses.push(loss());
    assert.equal(liveTensors(), before, 'no tensors leak across steps');
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
    assert.deepEqual(model.spans(), [[0, 0]]);
  } finally {
    trainer.dispose();
  }
});
