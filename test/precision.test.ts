// Mixed precision (precision 'bf16', src/tensor/precision.ts): matrix products in bfloat16 under
// libtorch's autocast, float32 master weights, optimiser state, softmax, norms, losses, logits and
// carried memories; checkpoints float32 and loadable at either precision. On a machine where bf16
// has no fast path (no AVX512-BF16 / AMX) the tests check the refusal, then run the rest with ENGRAM_BF16_ANY_CPU=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  Decoder, EngramError, F, Trainer, autocastState, eye, grad, checkPrecision, createModel, einsum, loadCheckpoint, loadRun, manualSeed,
  memoryDefaults, modelKindSpecs, precisionProblem, rand, randint, randn, resolveTrainConfig, tensor, tidy, withPrecision,
  type MemoryState, type ModelConfigInput, type Tensor, type TrainConfigInput,
} from '../src/index.js';
import { cpuBf16Problem } from '../src/tensor/precision.js';
import { createServer } from '../src/serve/server.js';
import { assertClose } from './helpers.js';

// Without a bf16 fast path here, the behaviour tests run with ENGRAM_BF16_ANY_CPU=1 (the same
// numerics, slowly); the error test below checks the refusal without it.
const problem = precisionProblem('bf16');

/** A test of bf16's behaviour: on a CPU without a fast path, run under ENGRAM_BF16_ANY_CPU=1. */
function bf16Test(name: string, fn: () => unknown): void {
  test(problem ? `${name} (ENGRAM_BF16_ANY_CPU=1: ${problem})` : name, async () => {
    const before = process.env.ENGRAM_BF16_ANY_CPU;
    if (problem) process.env.ENGRAM_BF16_ANY_CPU = '1';
    try {
      await fn();
    } finally {
      if (before === undefined) delete process.env.ENGRAM_BF16_ANY_CPU;
      else process.env.ENGRAM_BF16_ANY_CPU = before;
    }
  });
}
const cli = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'cli', 'engram.js');

/** Every tensor of a state. */
const stateTensors = (s: MemoryState): Tensor[] => Object.values(s).flatMap((v) => (Array.isArray(v) ? v : v ? [v] : []));

test('the support check reads the CPU flags: AVX512-BF16 or AMX-BF16 and oneDNN, else a reason', () => {
  assert.equal(cpuBf16Problem('processor : 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512bw\n', true), null);
  assert.equal(cpuBf16Problem('flags : fpu amx_bf16 amx_tile\n', true), null);
  assert.match(cpuBf16Problem('flags : fpu sse avx2 avx512f\n', true)!, /neither AVX512-BF16 nor AMX-BF16/);
  assert.match(cpuBf16Problem('flags : avx512_bf16\n', false)!, /no oneDNN/);
  assert.equal(cpuBf16Problem(null, true), null, 'no /proc/cpuinfo (not Linux): not checked');
  assert.equal(precisionProblem('float32'), null);
  assert.throws(() => checkPrecision('fp16', 'op', '--precision'), (e: unknown) =>
    e instanceof EngramError && e.kind === 'config' && /--precision must be one of 'float32', 'bf16' \(got "fp16"\)/.test(e.message));
  assert.throws(() => withPrecision('half' as never, () => 1), /precision must be one of/);
});

test('on a CPU without a bf16 fast path, bf16 is a config error naming the fix', { skip: problem ? false : 'this CPU has one' }, async () => {
  assert.throws(() => withPrecision('bf16', () => 1), (e: unknown) => e instanceof EngramError && e.kind === 'config' &&
    /use precision 'float32' \(or set ENGRAM_BF16_ANY_CPU=1 to run it slowly\)/.test(e.message));
  await assert.rejects(Trainer.create({ train: { precision: 'bf16' } }), /train\.precision \(--precision\) 'bf16' cannot run on cpu here/);
  process.env.ENGRAM_BF16_ANY_CPU = '0';
  try {
    assert.throws(() => withPrecision('bf16', () => 1), /cannot run on cpu here/, 'only 1 waives the check');
    process.env.ENGRAM_BF16_ANY_CPU = '1';
    assert.equal(withPrecision('bf16', () => autocastState().enabled), true, 'ENGRAM_BF16_ANY_CPU=1 waives it');
  } finally {
    delete process.env.ENGRAM_BF16_ANY_CPU;
  }
  assert.throws(() => withPrecision('bf16', () => 1), /cannot run on cpu here/, 'read at every check: refused again');
});

bf16Test('withPrecision: autocast on inside, restored after (also after a throw), off again in a float32 region', () => {
  assert.deepEqual(autocastState(), { enabled: false, dtype: 'bfloat16' });
  withPrecision('bf16', () => {
    assert.equal(autocastState().enabled, true);
    assert.equal(autocastState().dtype, 'bfloat16');
    withPrecision('float32', () => assert.equal(autocastState().enabled, false));
    withPrecision('bf16', () => assert.equal(autocastState().enabled, true)); // nested: nothing changes
    assert.equal(autocastState().enabled, true);
  });
  assert.equal(autocastState().enabled, false);
  assert.throws(() => withPrecision('bf16', () => { throw new Error('inside'); }), /inside/);
  assert.equal(autocastState().enabled, false);
  assert.throws(() => withPrecision('bf16', async () => 1), /synchronous/);
  assert.equal(autocastState().enabled, false);
});

bf16Test('under bf16 matrix products run in bfloat16; softmax, norms and losses stay float32', () => {
  tidy(() => {
    const x = randn([2, 3, 8]), w = randn([4, 8], { requiresGrad: true }), b = randn([4]);
    const out = withPrecision('bf16', () => ({
      linear: F.linear(x, w, b),
      matmul: x.matmul(w.transpose(0, 1)),
      bmm: x.bmm(x.transpose(1, 2)),
      baddbmm: randn([2, 3, 3]).baddbmm(x, x.transpose(1, 2)),
      einsum: einsum('bij,bkj->bik', x, x),
      conv1d: F.conv1d(x, randn([5, 3, 2])),
      softmax: F.softmax(x.to('bfloat16'), -1),
      logSoftmax: F.logSoftmax(x.to('bfloat16'), -1),
      maskedSoftmax: F.maskedSoftmax(x.to('bfloat16'), rand([3, 8]).lt(0.3)),
      layerNorm: F.layerNorm(x.to('bfloat16'), 8, randn([8]), randn([8])),
      crossEntropy: F.crossEntropy(x.reshape(6, 8).to('bfloat16'), randint(0, 8, [6])),
      mse: F.mseLoss(x.to('bfloat16'), x),
    }));
    for (const k of ['linear', 'matmul', 'bmm', 'baddbmm', 'einsum', 'conv1d'] as const) assert.equal(out[k].dtype, 'bfloat16', k);
    for (const k of ['softmax', 'logSoftmax', 'maskedSoftmax', 'layerNorm', 'crossEntropy', 'mse'] as const) assert.equal(out[k].dtype, 'float32', k);
    // the product is bf16-rounded, close to float32's
    const exact = F.linear(x, w, b);
    assert.equal(exact.dtype, 'float32');
    const err = out.linear.float().sub(exact).abs().max().item();
    assert.ok(err > 0 && err < 5e-2 * Math.max(1, exact.abs().max().item()), `bf16 linear error ${err}`);
    // gradients of a bf16 product reach the float32 weight in float32
    out.linear.float().sum().backward();
    assert.equal(w.grad?.dtype, 'float32');
    // outside any region nothing is cast: a bf16 softmax stays bf16, as before
    assert.equal(F.softmax(x.to('bfloat16'), -1).dtype, 'bfloat16');
  });
});

// Tolerance: on these small models (2 layers, H 32, vocabulary 11) bf16 logits are within
// 5e-2 (absolute) of float32's; measured 5e-3 to 7e-3 for every kind over three segments.
const LOGIT_ATOL = 5e-2;

bf16Test('F.expiringAttention at bf16 (queries in bfloat16, both ways of scoring positions) equals the composed ops at bf16, with float32 gradients', () => tidy(() => {
  const B = 2, K = 2, M = 4, N = 7, D = 8, P = 20;
  const ages = tensor([[9, 5, 2, 0, -1, -2, -3], [12, 6, 1, 0, -1, -2, -3]], { dtype: 'int64' });
  const keys = { age: ages, spans: randn([B, N]).mul(3).add(8), ramp: 4, nearest: 0 };
  const content = randn([B, K, M, N]).requiresGrad_(), q = randn([B, K, M, D]).requiresGrad_(), keyPe = randn([D, P]).requiresGrad_();
  withPrecision('bf16', () => {
    const bf16Queries = () => q.matmul(eye(D)); // bfloat16, as a projection's output is under autocast
    assert.equal(bf16Queries().dtype, 'bfloat16');
    const composed = F.composedExpiringAttention(content, bf16Queries(), keyPe, keys, { scale: 0.5 });
    for (const positions of ['per-key', 'table'] as const) {
      const query = bf16Queries();
      const fused = F.expiringAttention(content, query, keyPe, keys, { scale: 0.5, positions });
      assert.equal(fused.dtype, 'float32');
      assertClose(fused, composed.toArray(), { atol: 2e-2 });
      const grads = grad(fused.sum(), [content, q, keyPe]);
      grads.forEach((g) => { assert.equal(g!.dtype, 'float32'); assert.ok(Number.isFinite(g!.abs().sum().item())); });
    }
  });
}));

bf16Test('every kind at bf16: logits close to float32 (and not equal: the products ran in bfloat16), float32 logits and state, finite float32 gradients', () => {
  for (const spec of modelKindSpecs) {
    tidy(() => {
      manualSeed(1);
      const sizes = memoryDefaults({ kind: spec.kind }, 8);
      const model = createModel({ kind: spec.kind, vocabSize: 11, layers: 2, dModel: 32, heads: 2, dInner: 64, ...sizes } as ModelConfigInput);
      const tokens = randint(0, 11, [2, 8]);
      const three = () => {
        let o = model.forward(tokens, model.initState(2));
        for (let i = 0; i < 2; i++) o = model.forward(tokens, model.detachState(o.state));
        return o;
      };
      const ref = three();
      model.precision = 'bf16';
      const out = three();
      assert.equal(out.logits.dtype, 'float32', spec.kind);
      const diff = out.logits.sub(ref.logits).abs().max().item();
      assert.ok(diff > 0, `${spec.kind}: bf16 logits equal float32's bit for bit: the products did not run in bfloat16`);
      assert.ok(diff <= LOGIT_ATOL, `${spec.kind}: bf16 logits differ from float32 by ${diff} > ${LOGIT_ATOL}`);
      for (const t of stateTensors(out.state)) {
        if (t.dtype !== 'int64' && t.dtype !== 'bool') assert.equal(t.dtype, 'float32', `${spec.kind}: carried memory is ${t.dtype}`);
      }
      if (out.auxLoss) assert.equal(out.auxLoss.dtype, 'float32', spec.kind);
      out.logits.logSoftmax(-1).mean().mul(-1).add(out.auxLoss ?? 0).backward();
      for (const [name, p] of model.namedParameters()) {
        assert.equal(p.dtype, 'float32', `${spec.kind}: ${name}`);
        if (p.grad) {
          assert.equal(p.grad.dtype, 'float32', `${spec.kind}: grad of ${name}`);
          assert.ok(p.grad.isfinite().all().item(), `${spec.kind}: grad of ${name} is not finite`);
        }
      }
      assert.equal(autocastState().enabled, false, 'forward leaves autocast as it found it');
      model.dispose();
    });
  }
});

bf16Test('decoding at bf16: for every kind the cached decoder gives what forward() gives at bf16, in float32', () => {
  for (const { kind } of modelKindSpecs) {
    tidy(() => {
      manualSeed(2);
      const model = createModel({ kind, vocabSize: 11, layers: 2, dModel: 32, heads: 2, dInner: 64, ...memoryDefaults({ kind }, 6) } as ModelConfigInput);
      model.eval();
      model.precision = 'bf16';
      const ids = Array.from({ length: 12 }, (_, i) => (i * 7) % 11);
      const whole = model.forward(tensor([ids.slice(0, 6)], { dtype: 'int64' }), model.initState(1));
      const second = model.forward(tensor([ids.slice(6)], { dtype: 'int64' }), model.detachState(whole.state));
      const decoder = new Decoder(model, 6);
      const fed = ids.map((t) => decoder.feed([[t]]));
      decoder.dispose();
      const expected = [whole.logits, second.logits];
      fed.forEach((l, i) => {
        assert.equal(l.dtype, 'float32');
        const e = expected[Math.floor(i / 6)]!.narrow(1, i % 6, 1);
        const d = l.sub(e).abs().max().item();
        assert.ok(d < 2e-2, `${kind} position ${i}: decoder vs forward ${d}`);
      });
      model.dispose();
    });
  }
});

bf16Test('training at bf16: float32 weights and optimiser state; its checkpoint is float32 and loads at either precision', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'engram-bf16-'));
  try {
    const config: TrainConfigInput = {
      model: { kind: 'xl', layers: 1, dModel: 32, heads: 2, dInner: 64 },
      data: { kind: 'lm', corpus: 'tinyshakespeare', segmentLength: 16, maxEvalTokens: 512 },
      train: { steps: 6, batchSize: 4, bpttDepth: 1, evalEvery: 0, checkpointEvery: 0, precision: 'bf16' },
      optim: { lr: 3e-3 },
    };
    assert.equal(resolveTrainConfig(config).train.precision, 'bf16');
    assert.equal(resolveTrainConfig({}).train.precision, undefined, 'left out when not given');
    const trainer = await Trainer.create(config, { runDir: dir });
    let metric: number;
    try {
      assert.equal(trainer.model.precision, 'bf16');
      const r = await trainer.run();
      assert.ok(r.finished && Number.isFinite(r.metric!.value) && r.losses.every((l) => Number.isFinite(l.loss)));
      metric = r.metric!.value;
      for (const p of trainer.model.parameters()) assert.equal(p.dtype, 'float32');
      const optim = trainer.optimizer.stateDict();
      assert.ok(Object.keys(optim.tensors).length > 0);
      for (const [k, t] of Object.entries(optim.tensors)) assert.equal(t.dtype, 'float32', `optimiser state ${k}`);
      Object.values(optim.tensors).forEach((t) => t.dispose());
    } finally {
      trainer.dispose();
    }
    const { tensors } = await loadCheckpoint(dir);
    const floats = Object.entries(tensors).filter(([, t]) => t.dtype !== 'int64' && t.dtype !== 'bool');
    assert.ok(floats.length > 0);
    for (const [k, t] of floats) assert.equal(t.dtype, 'float32', `checkpoint tensor ${k}`);
    Object.values(tensors).forEach((t) => t.dispose());
    // loads at float32 and at bf16: the same weights, evaluations within 0.02 bpc of each other
    const evaluations: Record<string, number> = {};
    for (const precision of ['float32', 'bf16'] as const) {
      const run = await loadRun(dir, { precision });
      try {
        assert.equal(run.model.precision, precision);
        const { metrics } = await run.objective.evaluateRun(run.model, { split: 'valid' });
        evaluations[precision] = metrics.bpc;
      } finally {
        run.model.dispose();
      }
    }
    // (evaluateRun reads the whole validation split, the run's evaluation its first 512 characters)
    assert.ok(Number.isFinite(metric) && Number.isFinite(evaluations.bf16!));
    assert.ok(Math.abs(evaluations.float32! - evaluations.bf16!) < 0.02, `float32 evaluation ${evaluations.float32} vs bf16 ${evaluations.bf16}`);
    // the CLI's --precision reaches the model: engram eval at bf16 gives loadRun's bf16 figure
    const r = spawnSync(process.execPath, [cli, 'eval', dir, '--precision', 'bf16', '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Math.abs((JSON.parse(r.stdout.trim().split('\n').pop()!) as { bpc: number }).bpc - evaluations.bf16!) < 1e-9);
    // engram serve --precision: the models it loads run at it; a score request answers
    const server = await createServer({ models: [dir], precision: 'bf16' });
    try {
      const served = [...server.context.models.values()][0]!;
      assert.equal(served.run.model.precision, 'bf16');
      const res = await server.app.inject({ method: 'POST', url: '/v1/score', payload: { text: 'ROMEO: What light through yonder window breaks?' } });
      assert.equal(res.statusCode, 200, res.body);
      assert.ok(Number.isFinite((JSON.parse(res.body) as { bitsPerToken: number }).bitsPerToken), res.body);
    } finally {
      await server.close();
    }
    // a bf16 run resumes at float32 (precision may change on resume)
    const resumed = await Trainer.create({ ...config, train: { ...config.train, steps: 7, precision: 'float32' } }, { runDir: dir, resume: true });
    try {
      assert.equal(resumed.step, 6);
      assert.equal(resumed.model.precision, 'float32');
      const r = await resumed.run();
      assert.ok(r.finished && r.step === 7);
    } finally {
      resumed.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--precision: a wrong value is one line naming the flag', () => {
  const r = spawnSync(process.execPath, [cli, 'train', '--corpus', 'tinyshakespeare', '--steps', '1', '--precision', 'fp16', '--print-config'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /train\.precision \(--precision\): must be one of 'float32', 'bf16' \(got 'fp16'\)/);
  const e = spawnSync(process.execPath, [cli, 'eval', 'no-such-run', '--precision', 'fp16'], { encoding: 'utf8' });
  assert.equal(e.status, 2);
  assert.match(e.stderr, /--precision: must be one of 'float32', 'bf16'/);
});
