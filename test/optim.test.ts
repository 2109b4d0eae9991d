// Optimisers, gradient clipping and lr schedules against reference values computed here, in plain
// float64 JS, from the published update rules (and, where a Python with torch is installed,
// against PyTorch itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  Adam, AdamW, SGD, clipGradNorm, tensor, tidy, liveTensors, EngramError, LrScheduler, ReduceLROnPlateau,
  linearWarmup, cosineDecay, stepDecay, withWarmup, sequential, constantLr,
  type Optimizer, type Tensor, type OptimizerStateDict, type Schedule,
  createModel, weightDecayGroups, zerosLike, Trainer, type AdamOptions, manualSeed, randn,
} from '../src/index.js';
import { native } from '../src/tensor/native.js';
import { assertClose, pythonWithTorch } from './helpers.js';

// ---- a tiny problem with a known gradient -----------------------------------------------------------------
// loss(p) = sum(a * p^2), so dloss/dp = 2 * a * p: the reference recomputes it from its own p.

const A = [0.5, -1.5, 2];
const P0 = [1, -2, 0.25];

const param = (values: number[]): Tensor => tensor(values, { dtype: 'float64', requiresGrad: true });
const values = (t: Tensor): number[] => t.toArray() as number[];

/** Sets p.grad to the gradient of sum(a * p^2). */
function backwardQuadratic(p: Tensor, a: number[] = A): void {
  tidy(() => p.mul(p).mul(tensor(a, { dtype: 'float64' })).sum().backward());
}
const quadraticGrad = (p: number[], a: number[] = A): number[] => p.map((v, i) => 2 * a[i]! * v);

/** Runs `steps` optimiser steps on sum(a * p^2); returns p after each step. */
function runSteps(opt: Optimizer<any>, p: Tensor, steps: number): number[][] {
  const trace: number[][] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    backwardQuadratic(p);
    tidy(() => opt.step());
    trace.push(values(p));
  }
  return trace;
}

// ---- reference update rules (float64, one element at a time) --------------------------------------------

interface AdamRef { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean }

/** Adam (Kingma & Ba, with PyTorch's eps placement) and AdamW (Loshchilov & Hutter). */
function adamReference(o: AdamRef, steps: number): number[][] {
  const p = [...P0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const trace: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    const g = quadraticGrad(p);
    for (let i = 0; i < p.length; i++) {
      let gi = g[i]!;
      if (o.decoupled) p[i]! *= 1 - o.lr * o.weightDecay;
      else gi += o.weightDecay * p[i]!;
      m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi;
      const mHat = m[i]! / (1 - o.beta1 ** t);
      const vHat = v[i]! / (1 - o.beta2 ** t);
      p[i] = p[i]! - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
    trace.push([...p]);
  }
  return trace;
}

interface SgdRef { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }

/** SGD with momentum as PyTorch defines it (buffer = gradient on the first step). */
function sgdReference(o: SgdRef, steps: number, p0: number[] = P0): number[][] {
  const p = [...p0];
  const buf = p.map(() => 0);
  const trace: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    const g = quadraticGrad(p);
    for (let i = 0; i < p.length; i++) {
      let d = g[i]! + o.weightDecay * p[i]!;
      if (o.momentum !== 0) {
        buf[i] = t === 1 ? d : o.momentum * buf[i]! + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i]! : buf[i]!;
      }
      p[i] = p[i]! - o.lr * d;
    }
    trace.push([...p]);
  }
  return trace;
}

function assertTraceClose(actual: number[][], expected: number[][], tol = 1e-12): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, s) => row.forEach((v, i) => {
    const e = expected[s]![i]!;
    assert.ok(Math.abs(v - e) <= tol * Math.max(1, Math.abs(e)), `step ${s + 1}, element ${i}: got ${v}, expected ${e}`);
  }));
}

// ---- Adam / AdamW --------------------------------------------------------------------------------------------

const ADAM_CASES: { name: string; make: (p: Tensor) => Optimizer<any>; ref: AdamRef }[] = [
  { name: 'Adam', make: (p) => new Adam([p], { lr: 0.1 }), ref: { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false } },
  {
    name: 'Adam with L2 weight decay and other betas',
    make: (p) => new Adam([p], { lr: 0.05, betas: [0.8, 0.99], eps: 1e-3, weightDecay: 0.3 }),
    ref: { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-3, weightDecay: 0.3, decoupled: false },
  },
  { name: 'AdamW (default weightDecay 0.01)', make: (p) => new AdamW([p], { lr: 0.1 }), ref: { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true } },
  { name: 'AdamW with weightDecay 0.5', make: (p) => new AdamW([p], { lr: 0.05, weightDecay: 0.5 }), ref: { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, decoupled: true } },
];

for (const c of ADAM_CASES) {
  test(`${c.name}: three steps match the reference update`, () => {
    const p = param(P0);
    const opt = c.make(p);
    assertTraceClose(runSteps(opt, p, 3), adamReference(c.ref, 3));
    opt.dispose();
  });
}

test('Adam and AdamW differ once weight decay is on (L2 in the gradient vs decoupled)', () => {
  const pa = param(P0), pw = param(P0);
  const a = runSteps(new Adam([pa], { lr: 0.05, weightDecay: 0.5 }), pa, 3);
  const w = runSteps(new AdamW([pw], { lr: 0.05, weightDecay: 0.5 }), pw, 3);
  assert.ok(Math.abs(a[2]![0]! - w[2]![0]!) > 1e-4, `${a[2]} vs ${w[2]}`);
});

test('Adam and AdamW on float32 parameters (one fused pass each, split over threads) follow the float64 update', () => {
  const cases: [string, (ps: Tensor[]) => Optimizer<any>][] = [
    ['adam', (ps) => new Adam(ps, { lr: 0.01, betas: [0.8, 0.99], eps: 1e-3 })],
    ['adam + L2', (ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.3 })],
    ['adamw', (ps) => new AdamW(ps, { lr: 0.01, weightDecay: 0.5 })],
  ];
  for (const [name, make] of cases) {
    tidy(() => {
      manualSeed(5);
      const start = randn([400, 300]); // 120,000 entries: more than one thread's range
      const scale = randn([400, 300]).abs().add(0.1);
      const p32 = start.clone().requiresGrad_(), p64 = start.to('float64').requiresGrad_();
      const o32 = make([p32]), o64 = make([p64]);
      for (let s = 0; s < 5; s++) {
        for (const [p, o] of [[p32, o32], [p64, o64]] as const) {
          o.zeroGrad();
          tidy(() => p.square().mul(p.dtype === 'float64' ? scale.to('float64') : scale).sum().backward());
          o.step();
        }
      }
      const moved = p64.sub(start.to('float64')).abs().max().item() as number;
      const err = p32.to('float64').sub(p64).abs().max().item() as number;
      assert.ok(moved > 0.04, `${name}: the parameters moved (${moved})`);
      assert.ok(err < 1e-6, `${name}: float32 and float64 updates differ by ${err}`);
    });
  }
});

test('Adam minimises a quadratic', () => {
  // loss = sum((p - target)^2), minimum at target.
  const target = tensor([3, -1, 0.5, 2], { dtype: 'float64' });
  const p = param([0, 0, 0, 0]);
  const opt = new Adam([p], { lr: 0.05 });
  const loss = (): number => tidy(() => p.sub(target).square().sum().item());
  const initial = loss();
  for (let s = 0; s < 600; s++) {
    opt.zeroGrad();
    tidy(() => p.sub(target).square().sum().backward());
    opt.step();
  }
  assert.ok(loss() < 1e-4 * initial, `loss ${initial} -> ${loss()}`);
  assertClose(p, [3, -1, 0.5, 2], { atol: 1e-2, rtol: 0 });
  opt.dispose();
});

test('param groups: each group uses its own lr and weight decay', () => {
  const p1 = param(P0), p2 = param(P0);
  const opt = new Adam([{ params: [p1] }, { params: [p2], lr: 0.01, weightDecay: 0.3 }], { lr: 0.1 });
  assert.deepEqual(opt.paramGroups.map((g) => [g.lr, g.weightDecay]), [[0.1, 0], [0.01, 0.3]]);
  for (let s = 0; s < 3; s++) {
    opt.zeroGrad();
    backwardQuadratic(p1);
    backwardQuadratic(p2);
    opt.step();
  }
  const base = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled: false };
  assertTraceClose([values(p1), values(p2)], [
    adamReference({ ...base, lr: 0.1, weightDecay: 0 }, 3)[2]!,
    adamReference({ ...base, lr: 0.01, weightDecay: 0.3 }, 3)[2]!,
  ]);
  opt.dispose();
});

test('the update is one native call per param group per step', () => {
  const params = [param(P0), param(P0), param(P0)];
  const opt = new Adam([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.01 }]);
  const original = native.adamStep;
  const calls: number[][] = [];
  native.adamStep = (ps, ...rest) => {
    calls.push(ps);
    original(ps, ...rest);
  };
  try {
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      for (const p of params) backwardQuadratic(p);
      opt.step();
    }
  } finally {
    native.adamStep = original;
  }
  assert.deepEqual(calls.map((c) => c.length), [2, 1, 2, 1, 2, 1]);
  opt.dispose();
});

test('a parameter without a gradient is skipped and counts its own steps (bias correction as PyTorch)', () => {
  const pUsed = param(P0), pIdle = param(P0);
  const opt = new Adam([pUsed, pIdle], { lr: 0.1 });
  // Steps 1 and 2: only pUsed has a gradient; pIdle must not move and gets no state.
  for (let s = 0; s < 2; s++) {
    opt.zeroGrad();
    backwardQuadratic(pUsed);
    opt.step();
  }
  assert.deepEqual(values(pIdle), P0);
  assert.equal(opt.stateOf(pIdle), undefined);
  // Step 3: both; pIdle takes its first step, with bias corrections for t = 1.
  opt.zeroGrad();
  backwardQuadratic(pUsed);
  backwardQuadratic(pIdle);
  opt.step();
  const ref = adamReference({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false }, 3);
  assertTraceClose([values(pUsed), values(pIdle)], [ref[2]!, ref[0]!]);
  assert.deepEqual(opt.stateDict().meta.steps, { 0: 3, 1: 1 });
  opt.dispose();
});

// ---- SGD -------------------------------------------------------------------------------------------------------

const SGD_CASES: SgdRef[] = [
  { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
  { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0.2, nesterov: false },
  { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false },
  // dampening != 0 shows whether the first step copies the gradient (PyTorch) or decays a zero buffer.
  { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.2, nesterov: false },
  { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: true },
  { lr: 0.05, momentum: 0.8, dampening: 0, weightDecay: 0.1, nesterov: true },
];

for (const o of SGD_CASES) {
  test(`SGD ${JSON.stringify(o)}: three steps match the reference update`, () => {
    const p = param(P0);
    const opt = new SGD([p], o);
    assertTraceClose(runSteps(opt, p, 3), sgdReference(o, 3));
    opt.dispose();
  });
}

test('SGD: a parameter that first gets a gradient later starts its momentum buffer then', () => {
  const o = { lr: 0.1, momentum: 0.9, dampening: 0.5, weightDecay: 0, nesterov: false };
  const pEarly = param(P0), pLate = param(P0);
  const opt = new SGD([pEarly, pLate], o);
  opt.zeroGrad();
  backwardQuadratic(pEarly);
  opt.step();
  for (let s = 0; s < 2; s++) {
    opt.zeroGrad();
    backwardQuadratic(pEarly);
    backwardQuadratic(pLate);
    opt.step();
  }
  const ref = sgdReference(o, 3);
  assertTraceClose([values(pEarly), values(pLate)], [ref[2]!, ref[1]!]);
  opt.dispose();
});

test('SGD: momentum switched on mid-run starts a buffer from the gradient then', () => {
  const p = param(P0);
  const opt = new SGD([p], { lr: 0.1 });
  const plain = runSteps(opt, p, 1);
  Object.assign(opt.paramGroups[0]!, { momentum: 0.9, dampening: 0.5 });
  const withMomentum = runSteps(opt, p, 2);
  const ref = sgdReference({ lr: 0.1, momentum: 0.9, dampening: 0.5, weightDecay: 0, nesterov: false }, 2, plain[0]!);
  assertTraceClose(withMomentum, ref);
  opt.dispose();
});

test('options are validated', () => {
  const p = param(P0);
  const isConfig = (e: unknown): boolean => e instanceof EngramError && e.kind === 'config';
  assert.throws(() => new Adam([]), isConfig);
  assert.throws(() => new Adam([p, p]), isConfig);
  assert.throws(() => new Adam([p], { lr: -1 }), isConfig);
  assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), isConfig);
  assert.throws(() => new SGD([p], { nesterov: true }), isConfig);
  assert.throws(() => new SGD([p], { nesterov: true, momentum: 0.9, dampening: 0.1 }), isConfig);
  assert.throws(() => clipGradNorm([p], -1), isConfig);
});

// ---- clipGradNorm ----------------------------------------------------------------------------------------------

function withGrads(grads: number[][]): Tensor[] {
  return grads.map((g) => {
    const p = param(g.map(() => 0));
    p.grad = tensor(g, { dtype: 'float64' });
    return p;
  });
}
const gradValues = (p: Tensor): number[] => tidy(() => values(p.grad!));

test('clipGradNorm scales all gradients together to maxNorm and returns the norm before clipping', () => {
  // Total 2-norm of [3, 4] and [12] is sqrt(9 + 16 + 144) = 13.
  const ps = withGrads([[3, 4], [12]]);
  const total = clipGradNorm(ps, 6.5);
  assert.ok(Math.abs(total - 13) < 1e-12, `returned ${total}`);
  const scale = 6.5 / (13 + 1e-6);
  assertClose(ps[0]!.grad!, [3 * scale, 4 * scale], { atol: 1e-12, rtol: 0 });
  assertClose(ps[1]!.grad!, [12 * scale], { atol: 1e-12, rtol: 0 });
  const after = Math.hypot(...gradValues(ps[0]!), ...gradValues(ps[1]!));
  assert.ok(Math.abs(after - 6.5) < 1e-6, `norm after clipping ${after}`);
});

test('clipGradNorm leaves gradients below maxNorm alone, skips params without grad, supports the inf-norm', () => {
  const ps = withGrads([[3, 4], [12]]);
  const noGrad = param([1, 2]);
  assert.ok(Math.abs(clipGradNorm([...ps, noGrad], 100) - 13) < 1e-12);
  assert.deepEqual(gradValues(ps[0]!), [3, 4]);
  assert.equal(noGrad.grad, null);
  // inf-norm: the largest |element| (12); clipped to 3, every element scaled by 3 / 12.
  assert.ok(Math.abs(clipGradNorm(ps, 3, Infinity) - 12) < 1e-12);
  assertClose(ps[0]!.grad!, [0.75, 1], { atol: 1e-6, rtol: 0 });
  // 1-norm: 0.75 + 1 + 3 = 4.75.
  assert.ok(Math.abs(clipGradNorm(ps, 100, 1) - 4.75) < 1e-6);
});

// ---- state dicts and resuming ------------------------------------------------------------------------------

/** Trains a fresh param for `steps` steps, or `split` steps + checkpoint + a new optimiser for the rest. */
function trainWithResume(make: (p: Tensor) => Optimizer<any>, steps: number, split?: number): number[] {
  const p = param(P0);
  let opt = make(p);
  for (let s = 0; s < steps; s++) {
    if (s === split) {
      const dict = opt.stateDict();
      // The checkpoint crosses a JSON boundary (as it would on disk) and outlives the old optimiser.
      const meta = JSON.parse(JSON.stringify(dict.meta)) as OptimizerStateDict['meta'];
      opt.dispose();
      opt = make(p);
      // Other hyper-parameters in the new constructor are overwritten by the checkpoint.
      opt.lr = 123;
      opt.loadStateDict({ tensors: dict.tensors, meta });
      for (const t of Object.values(dict.tensors)) t.dispose();
    }
    opt.zeroGrad();
    backwardQuadratic(p);
    opt.step();
  }
  opt.dispose();
  return values(p);
}

for (const [name, make] of [
  ['Adam', (p: Tensor) => new Adam([p], { lr: 0.1, weightDecay: 0.1 })],
  ['AdamW', (p: Tensor) => new AdamW([p], { lr: 0.1 })],
  ['SGD with Nesterov momentum', (p: Tensor) => new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true })],
] as const) {
  test(`${name}: stateDict -> new optimiser -> loadStateDict continues exactly like an uninterrupted run`, () => {
    const uninterrupted = trainWithResume(make, 6);
    const resumed = trainWithResume(make, 6, 3);
    assert.deepEqual(resumed, uninterrupted); // bit for bit
    // Without the state the run differs, so the comparison above has teeth.
    const restartedWithoutState = trainWithResume((p) => {
      const opt = make(p);
      opt.loadStateDict = () => {}; // drop the checkpoint: the second half starts from fresh state
      return opt;
    }, 6, 3);
    assert.notDeepEqual(restartedWithoutState, uninterrupted);
  });
}

test('stateDict names tensors state.<index>.<name>, holds plain data, and hands out copies', () => {
  const p1 = param(P0), p2 = param([1, 2]);
  const opt = new Adam([{ params: [p1] }, { params: [p2], lr: 0.5 }], { lr: 0.1 });
  opt.zeroGrad();
  backwardQuadratic(p1);
  tidy(() => p2.sum().backward());
  opt.step();
  const dict = opt.stateDict();
  assert.deepEqual(Object.keys(dict.tensors).sort(), ['state.0.expAvg', 'state.0.expAvgSq', 'state.1.expAvg', 'state.1.expAvgSq']);
  assert.deepEqual(JSON.parse(JSON.stringify(dict.meta)), dict.meta);
  assert.deepEqual(dict.meta, {
    kind: 'Adam',
    stepCount: 1,
    steps: { 0: 1, 1: 1 },
    groups: [
      { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, params: [0] },
      { lr: 0.5, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, params: [1] },
    ],
  });
  // expAvg after one step = (1 - beta1) * grad; p2's gradient is all ones.
  assertClose(dict.tensors['state.1.expAvg']!, [0.1, 0.1], { atol: 1e-12, rtol: 0 });
  // A copy: disposing it leaves the optimiser working, and later steps do not change it.
  const copy = dict.tensors['state.0.expAvg']!;
  const before = values(copy);
  opt.zeroGrad();
  backwardQuadratic(p1);
  opt.step();
  assert.deepEqual(values(copy), before);
  for (const t of Object.values(dict.tensors)) t.dispose();
  opt.step();
  opt.dispose();
});

test('loadStateDict rejects a mismatched state and leaves the optimiser as it was', () => {
  const p = param(P0);
  const opt = new Adam([p]);
  opt.zeroGrad();
  backwardQuadratic(p);
  opt.step();
  const dict = opt.stateDict();
  const other = new Adam([param([1, 2])]);
  assert.throws(() => other.loadStateDict(dict), (e: unknown) => e instanceof EngramError && e.kind === 'shape');
  assert.throws(() => new SGD([param(P0)]).loadStateDict(dict), (e: unknown) => e instanceof EngramError && e.kind === 'config');
  assert.equal(other.stateOf(other.params[0]!), undefined);
  assert.equal(other.stepCount, 0);
  opt.dispose();
  other.dispose();
});

// ---- lifetime ------------------------------------------------------------------------------------------------

test('state tensors outlive the tidy() scope of step(), and dispose() frees them', () => {
  const p1 = param(P0), p2 = param([1, 2]);
  const opt = new Adam([p1, p2]);
  const before = liveTensors();
  tidy(() => {
    opt.zeroGrad();
    backwardQuadratic(p1);
    p2.sum().backward();
    opt.step();
  });
  assert.equal(liveTensors(), before + 4); // expAvg and expAvgSq for each parameter
  tidy(() => opt.step());
  assert.ok(!opt.stateOf(p1)!.expAvg!.isDisposed);
  opt.dispose();
  assert.equal(liveTensors(), before);
  assert.throws(() => opt.step(), (e: unknown) => e instanceof EngramError && e.kind === 'disposed');
  opt.dispose(); // twice is harmless
});

// ---- schedules ---------------------------------------------------------------------------------------------

/** The lrs a scheduler sets for steps 0..n-1 (step 0: right after construction). */
function lrSequence(schedule: Schedule, n: number, lr = 0.1): number[] {
  const opt = new SGD([param([0])], { lr });
  const scheduler = new LrScheduler(opt, schedule);
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    out.push(opt.lr);
    scheduler.step();
  }
  return out;
}

function assertNumbersClose(actual: number[], expected: number[], tol = 1e-15): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) <= tol, `index ${i}: got ${v}, expected ${expected[i]} (${actual})`));
}

test('linearWarmup follows LinearLR: base * (start + (1 - start) * min(t, W) / W)', () => {
  const base = 0.1, start = 0.25, W = 4;
  const expected = [0, 1, 2, 3, 4, 5, 6].map((t) => base * (start + ((1 - start) * Math.min(t, W)) / W));
  assertNumbersClose(lrSequence(linearWarmup({ warmupSteps: W, startFactor: start }), 7), expected);
  assertNumbersClose(expected, [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.1]);
  // Default startFactor 1 / warmupSteps.
  assertNumbersClose(lrSequence(linearWarmup({ warmupSteps: 4 }), 2), [0.025, 0.1 * (0.25 + 0.75 / 4)]);
});

/** PyTorch's recursive CosineAnnealingLR.get_lr (lr_scheduler.py), an independent route to the same values. */
function pytorchCosineRecursive(base: number, etaMin: number, tMax: number, n: number): number[] {
  const out = [base];
  for (let e = 1; e < n; e++) {
    const lr = out[e - 1]!;
    out.push((e - 1 - tMax) % (2 * tMax) === 0
      ? lr + ((base - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2
      : ((1 + Math.cos((Math.PI * e) / tMax)) / (1 + Math.cos((Math.PI * (e - 1)) / tMax))) * (lr - etaMin) + etaMin);
  }
  return out;
}

test('cosineDecay matches CosineAnnealingLR up to totalSteps, then holds minLr', () => {
  const lrs = lrSequence(cosineDecay({ totalSteps: 10, minLr: 0.01 }), 13);
  assertNumbersClose(lrs.slice(0, 11), pytorchCosineRecursive(0.1, 0.01, 10, 11), 1e-12);
  assertNumbersClose([lrs[0]!, lrs[5]!, lrs[10]!, lrs[11]!, lrs[12]!], [0.1, 0.055, 0.01, 0.01, 0.01], 1e-12);
});

test('cosineDecay with warmup: linear warmup, then a cosine over the remaining steps', () => {
  const lrs = lrSequence(cosineDecay({ totalSteps: 12, warmupSteps: 2, minLr: 0, warmupStartFactor: 0.5 }), 13);
  const warm = [0.05, 0.075];
  const cos = pytorchCosineRecursive(0.1, 0, 10, 11);
  assertNumbersClose(lrs, [...warm, ...cos], 1e-12);
});

test('stepDecay follows StepLR: base * gamma^floor(t / stepSize)', () => {
  assertNumbersClose(lrSequence(stepDecay({ stepSize: 3, gamma: 0.5 }), 8), [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]);
});

test('withWarmup and sequential restart the next schedule at its own step 0 (SequentialLR)', () => {
  const lrs = lrSequence(withWarmup({ warmupSteps: 2, startFactor: 0.5 }, stepDecay({ stepSize: 2, gamma: 0.1 })), 7);
  assertNumbersClose(lrs, [0.05, 0.075, 0.1, 0.1, 0.01, 0.01, 0.001], 1e-15);
  const three = lrSequence(sequential([constantLr(), stepDecay({ stepSize: 1, gamma: 0.5 }), constantLr()], [2, 4]), 6);
  assertNumbersClose(three, [0.1, 0.1, 0.1, 0.05, 0.1, 0.1]);
});

test('schedules scale each group from its own base lr (initialLr), recorded once', () => {
  const opt = new SGD([{ params: [param([0])] }, { params: [param([0])], lr: 1 }], { lr: 0.1 });
  const scheduler = new LrScheduler(opt, stepDecay({ stepSize: 1, gamma: 0.5 }));
  scheduler.step();
  assert.deepEqual(scheduler.lastLrs, [0.05, 0.5]);
  // A second scheduler reuses initialLr, not the lr the first one set.
  const second = new LrScheduler(opt, constantLr());
  assert.deepEqual(second.baseLrs, [0.1, 1]);
});

test('LrScheduler stateDict/loadStateDict resumes the lr sequence', () => {
  const schedule = cosineDecay({ totalSteps: 10, warmupSteps: 3 });
  const full = lrSequence(schedule, 10);
  const opt = new SGD([param([0])], { lr: 0.1 });
  const first = new LrScheduler(opt, schedule);
  for (let s = 0; s < 6; s++) first.step();
  const saved = JSON.parse(JSON.stringify(first.stateDict()));
  const opt2 = new SGD([param([0])], { lr: 0.1 });
  const resumed = new LrScheduler(opt2, schedule);
  resumed.loadStateDict(saved);
  const tail: number[] = [];
  for (let s = 6; s < 10; s++) {
    tail.push(opt2.lr);
    resumed.step();
  }
  assertNumbersClose(tail, full.slice(6));
});

test('ReduceLROnPlateau: reduces after patience bad epochs, ignores tiny gains, respects cooldown and minLr', () => {
  const opt = new SGD([param([0])], { lr: 0.1 });
  const plateau = new ReduceLROnPlateau(opt, { patience: 2, factor: 0.5, cooldown: 1, minLr: 0.02 });
  // [metric, reduced?, lr after]; threshold 1e-4 'rel': an improvement must beat best * (1 - 1e-4).
  const epochs: [number, boolean, number][] = [
    [1.0, false, 0.1], // best 1.0
    [1.0, false, 0.1], // bad 1
    [0.99995, false, 0.1], // bad 2: better, but by less than the threshold
    [1.0, true, 0.05], // bad 3 > patience: halve; cooldown 1
    [2.0, false, 0.05], // in cooldown: not counted
    [2.0, false, 0.05], // bad 1
    [0.5, false, 0.05], // improvement: best 0.5, bad 0
    [0.6, false, 0.05], // bad 1
    [0.6, false, 0.05], // bad 2
    [0.6, true, 0.025], // bad 3: halve
    [0.6, false, 0.025], // cooldown
    [0.6, false, 0.025],
    [0.6, false, 0.025],
    [0.6, true, 0.02], // 0.0125 is below minLr: clamped to 0.02
    [0.6, false, 0.02],
    [0.6, false, 0.02],
    [0.6, false, 0.02],
    [0.6, false, 0.02], // would reduce, but already at minLr: no change, reports false
  ];
  epochs.forEach(([metric, reduced, lr], i) => {
    assert.equal(plateau.step(metric), reduced, `epoch ${i + 1}`);
    assert.ok(Math.abs(opt.lr - lr) < 1e-15, `epoch ${i + 1}: lr ${opt.lr}, expected ${lr}`);
  });
  assert.equal(plateau.best, 0.5);
});

test("ReduceLROnPlateau: mode 'max' with an absolute threshold, and stateDict resume", () => {
  const opt = new SGD([param([0])], { lr: 1 });
  const plateau = new ReduceLROnPlateau(opt, { mode: 'max', patience: 1, threshold: 0.1, thresholdMode: 'abs' });
  assert.equal(plateau.step(0.5), false); // best 0.5
  assert.equal(plateau.step(0.55), false); // bad 1: not above 0.5 + 0.1
  const saved = JSON.parse(JSON.stringify(plateau.stateDict()));
  const resumed = new ReduceLROnPlateau(opt, { mode: 'max', patience: 1, threshold: 0.1, thresholdMode: 'abs' });
  resumed.loadStateDict(saved);
  assert.equal(resumed.step(0.59), true); // bad 2 > patience 1
  assert.ok(Math.abs(opt.lr - 0.1) < 1e-15);
  assert.equal(resumed.step(0.7), false); // 0.7 > 0.5 + 0.1: improvement
  assert.equal(resumed.best, 0.7);
  // A fresh plateau's state stores the infinite best as null, which JSON keeps.
  assert.equal(new ReduceLROnPlateau(opt).stateDict().best, null);
});

// ---- against PyTorch itself (skipped without a Python that has torch) ----------------------------------------

const python = pythonWithTorch();

test('Adam, AdamW, SGD and the schedules agree with PyTorch', { skip: python === null ? 'no python with torch' : false }, () => {
  // PyTorch: per-step params of each optimiser on sum(a * p^2), and each schedule's lr sequence.
  const script = `
import json, torch
A = torch.tensor(${JSON.stringify(A)}, dtype=torch.float64)
P0 = ${JSON.stringify(P0)}
def run(make, steps=4):
    p = torch.tensor(P0, dtype=torch.float64, requires_grad=True)
    opt = make([p]); out = []
    for _ in range(steps):
        opt.zero_grad(); (A * p * p).sum().backward(); opt.step(); out.append(p.tolist())
    return out
def lrs(make, n, lr=0.1, metrics=None):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr); s = make(opt); out = []
    for i in range(n):
        out.append(opt.param_groups[0]['lr'])
        s.step(metrics[i]) if metrics else s.step()
    return out
L = torch.optim.lr_scheduler
print(json.dumps({
  'adam': run(lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.3)),
  'adamw': run(lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.5)),
  'sgd': run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.2)),
  'nesterov': run(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
  'warmup': lrs(lambda o: L.LinearLR(o, start_factor=0.25, total_iters=4), 7),
  'cosine': lrs(lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 11),
  'step': lrs(lambda o: L.StepLR(o, step_size=3, gamma=0.5), 8),
  'seq': lrs(lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.5, total_iters=2), L.CosineAnnealingLR(o, T_max=10)], milestones=[2]), 12),
  'plateau': lrs(lambda o: L.ReduceLROnPlateau(o, patience=2, factor=0.5, cooldown=1, min_lr=0.02), 18, 0.1,
                 [1, 1, 0.99995, 1, 2, 2, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]),
}))
`;
  const r = spawnSync(python!, ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const torchOut = JSON.parse(r.stdout) as Record<string, number[] | number[][]>;
  const ours = (make: (p: Tensor) => Optimizer<any>): number[][] => {
    const p = param(P0);
    return runSteps(make(p), p, 4);
  };
  assertTraceClose(ours((p) => new Adam([p], { lr: 0.05, betas: [0.8, 0.99], eps: 1e-3, weightDecay: 0.3 })), torchOut.adam as number[][]);
  assertTraceClose(ours((p) => new AdamW([p], { lr: 0.05, weightDecay: 0.5 })), torchOut.adamw as number[][]);
  assertTraceClose(ours((p) => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.2 })), torchOut.sgd as number[][]);
  assertTraceClose(ours((p) => new SGD([p], { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.1 })), torchOut.nesterov as number[][]);
  assertNumbersClose(lrSequence(linearWarmup({ warmupSteps: 4, startFactor: 0.25 }), 7), torchOut.warmup as number[], 1e-12);
  assertNumbersClose(lrSequence(cosineDecay({ totalSteps: 10, minLr: 0.01 }), 11), torchOut.cosine as number[], 1e-12);
  assertNumbersClose(lrSequence(stepDecay({ stepSize: 3, gamma: 0.5 }), 8), torchOut.step as number[], 1e-12);
  assertNumbersClose(lrSequence(cosineDecay({ totalSteps: 12, warmupSteps: 2, warmupStartFactor: 0.5 }), 12), torchOut.seq as number[], 1e-12);
  const opt = new SGD([param([0])], { lr: 0.1 });
  const plateau = new ReduceLROnPlateau(opt, { patience: 2, factor: 0.5, cooldown: 1, minLr: 0.02 });
  const plateauLrs = [1, 1, 0.99995, 1, 2, 2, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6].map((m) => {
    const lr = opt.lr;
    plateau.step(m);
    return lr;
  });
  assertNumbersClose(plateauLrs, torchOut.plateau as number[], 1e-15);
});

// ---- weight-decay parameter groups ------------------------------------------------------------------------

test('weightDecayGroups: only 2-d+ `weight`s decay; biases, norms, memory tokens, u/v, spans do not', () => {
  const models = [
    createModel({ kind: 'rmt', vocabSize: 11, layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 }),
    createModel({ kind: 'adaptive-span', vocabSize: 11, layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 8 }),
    createModel({ kind: 'expire-span', vocabSize: 11, layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 8 }),
  ];
  for (const model of models) {
    const named = new Map(model.namedParameters().map(([n, p]) => [p, n]));
    const isMatrixWeight = (p: Tensor): boolean => p.ndim >= 2 && /(^|\.)weight$/.test(named.get(p)!) && !named.get(p)!.startsWith('spanPredictors.');
    const groups = weightDecayGroups<AdamOptions>(model, 0.1);
    assert.equal(groups.length, 2);
    assert.equal(groups[0]!.weightDecay, 0.1);
    assert.equal(groups[1]!.weightDecay, 0);
    const decayed = groups[0]!.params.map((p) => named.get(p)!);
    const kept = groups[1]!.params.map((p) => named.get(p)!);
    assert.equal(decayed.length + kept.length, named.size);
    for (const p of groups[0]!.params) assert.ok(isMatrixWeight(p), named.get(p));
    for (const p of groups[1]!.params) assert.ok(!isMatrixWeight(p), named.get(p));
    // order within a group is the model's
    const order = [...named.values()];
    assert.deepEqual(decayed, order.filter((n) => decayed.includes(n)));
    for (const expected of ['layers.0.attn.q.weight', 'layers.0.ff.up.weight', 'embed.weight', 'head.weight']) assert.ok(decayed.includes(expected), expected);
    for (const expected of ['layers.0.ff.up.bias', 'layers.0.ln1.weight', 'layers.0.ln1.bias', 'head.bias']) assert.ok(kept.includes(expected), expected);
    model.dispose();
  }
  const expire = createModel({ kind: 'expire-span', vocabSize: 11, layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 8 });
  const expireKept = new Set(weightDecayGroups<AdamOptions>(expire, 0.1)[1]!.params);
  for (const [n, p] of expire.namedParameters()) if (n.startsWith('spanPredictors.')) assert.ok(expireKept.has(p), n);
  expire.dispose();
  const rmt = createModel({ kind: 'rmt', vocabSize: 11, layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 });
  const kept = weightDecayGroups<AdamOptions>(rmt, 0.1)[1]!.params;
  const names = new Map(rmt.namedParameters());
  for (const n of ['memory.init', 'u', 'v']) assert.ok(kept.includes(names.get(n)!), n);
  // weightDecay 0: one group, exactly model.parameters() (the optimiser state numbering of before)
  const single = weightDecayGroups<AdamOptions>(rmt, 0);
  assert.equal(single.length, 1);
  assert.deepEqual(single[0]!.params, rmt.parameters());
  assert.equal(single[0]!.weightDecay, undefined);
  // the caller's rule wins
  const onlyHead = weightDecayGroups<AdamOptions>(rmt, 0.1, (n) => n.startsWith('head.'));
  assert.deepEqual(onlyHead[0]!.params, [names.get('head.weight'), names.get('head.bias')]);
  rmt.dispose();
});

test('AdamW over weightDecayGroups: with zero gradients only the decayed group shrinks, by 1 - lr * wd', () => {
  const model = createModel({ kind: 'rmt', vocabSize: 11, layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 });
  const named = model.namedParameters();
  const before = new Map(named.map(([n, p]) => [n, p.toArray()]));
  const opt = new AdamW(weightDecayGroups<AdamOptions>(model, 0.5), { lr: 0.1 });
  for (const [, p] of named) p.grad = zerosLike(p);
  opt.step();
  const decayed = new Set(opt.paramGroups[0]!.params);
  for (const [n, p] of named) {
    if (decayed.has(p)) assertClose(p, tensor(before.get(n)! as number[]).mul(0.95).toArray(), { atol: 1e-7, rtol: 1e-6 });
    else assert.deepEqual(p.toArray(), before.get(n), `${n} must not decay`);
  }
  for (const n of ['memory.init', 'u', 'v', 'layers.0.ln1.weight', 'layers.0.ff.up.bias']) {
    assert.ok(!decayed.has(named.find(([m]) => m === n)![1]), n);
  }
  opt.dispose();
  model.dispose();
});

test('the Trainer builds its optimiser from weightDecayGroups (one group when weightDecay is 0)', async () => {
  const base = {
    model: { kind: 'rmt', layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } },
    train: { batchSize: 2, evalBatches: 1 },
  } as const;
  for (const [weightDecay, groups] of [[0.1, [0.1, 0]], [0, [0]]] as const) {
    const trainer = await Trainer.create({ ...base, optim: { optimizer: 'adamw', weightDecay } });
    try {
      assert.deepEqual(trainer.optimizer.paramGroups.map((g) => g.weightDecay), groups);
      assert.equal(trainer.optimizer.params.length, trainer.model.parameters().length);
      const init = trainer.model.namedParameters().find(([n]) => n === 'memory.init')![1];
      assert.ok(trainer.optimizer.paramGroups.at(-1)!.params.includes(init)); // memory tokens: no decay
    } finally {
      trainer.dispose();
    }
  }
});
