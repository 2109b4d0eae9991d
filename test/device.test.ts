// Devices (issue 14): the device option from configs and the CLI down to every tensor a model,
// the trainer and decoding make; checkpoints and model folders that hold CPU tensors whatever
// device wrote them; CPU/CUDA agreement; out-of-memory that stops a run without losing its last
// checkpoint. Tests marked [device] run once per testDevices() (ENGRAM_TEST_DEVICES, default cpu
// plus cuda where present); without CUDA each prints a skip line saying why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Adam, buildInfo, cat, complete, createModel, deviceCheckMode, cudaAvailable, cudaDeviceCount, Decoder, engramError, EngramError, exportRun, loadCheckpoint, loadModel, loadRun,
  inspect, manualSeed, modelKinds, randint, randn, readCheckpointMeta, resolveDevice, resolveTrainConfig, sameDevice, score, setAllowTF32, setNativeKernels, tensor, tidy, Trainer, train, zeros,
  type Device, type MemoryState, type ModelConfigInput, type ModelKind, type SegmentModel, type Tensor,
} from '../src/index.js';
import { keptIndices } from '../src/memory/expire-span.js';
import { cudaSkipReason, deviceTest } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'engram-device-'));

/** A small model of every kind, with the memory sizes its kind needs. */
function tinyConfig(kind: ModelKind): ModelConfigInput {
  const c: Record<string, unknown> = { kind, vocabSize: 11, layers: 2, dModel: 16, heads: 2, dInner: 32 };
  if (['xl', 'sequential', 'adaptive-span', 'expire-span', 'compressive', 'feedback', 'mem-bottleneck'].includes(kind)) c.memLen = 6;
  if (['rmt', 'mem-transformer', 'mem-bottleneck'].includes(kind)) c.numMemTokens = 3;
  return c as ModelConfigInput;
}

const stateTensors = (state: MemoryState): Tensor[] =>
  Object.values(state).flatMap((v) => (v === null ? [] : Array.isArray(v) ? v : [v]));

const kindOf = (e: unknown): string | undefined => (e instanceof EngramError ? e.kind : undefined);

// ---- the device option ----------------------------------------------------------------------------------

test("resolveDevice: 'cpu', 'auto' and malformed names; CUDA names checked against this build and machine", () => {
  assert.equal(resolveDevice('cpu'), 'cpu');
  assert.equal(resolveDevice(undefined), 'cpu');
  assert.equal(resolveDevice('auto'), cudaAvailable() ? 'cuda' : 'cpu');
  for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:x', 'cuda:-1', 'cpu:0', '']) {
    assert.throws(() => resolveDevice(bad, 'train'), (e: unknown) => kindOf(e) === 'config' && /unknown device .*use 'cpu', 'cuda', 'cuda:N' or 'auto'/.test((e as Error).message), bad);
  }
  if (!buildInfo().cuda) {
    for (const d of ['cuda', 'cuda:0', 'cuda:7']) {
      assert.throws(() => resolveDevice(d, 'train'), (e: unknown) => kindOf(e) === 'device' && /built against a CPU-only libtorch; rebuild it against a CUDA libtorch .* or use --device cpu/.test((e as Error).message), d);
    }
  } else if (cudaDeviceCount() > 0) {
    const n = cudaDeviceCount();
    assert.equal(resolveDevice('cuda:0'), 'cuda:0');
    assert.throws(() => resolveDevice(`cuda:${n}`, 'train'), (e: unknown) => kindOf(e) === 'device' && new RegExp(`out of range: this machine has ${n} CUDA device`).test((e as Error).message));
  } else {
    // A CUDA build on a machine without a visible GPU (scripts/check-debian.sh --cuda).
    for (const d of ['cuda', 'cuda:0']) {
      assert.throws(() => resolveDevice(d, 'train'), (e: unknown) => kindOf(e) === 'device' && /the addon has CUDA but no GPU is visible \(check nvidia-smi and CUDA_VISIBLE_DEVICES\), or use --device cpu/.test((e as Error).message), d);
    }
  }
});

test('the training config takes train.device and rejects a malformed one naming the option; a device stays out of a config that did not set it', () => {
  assert.equal(resolveTrainConfig({ train: { device: 'cuda:1' } }).train.device, 'cuda:1');
  assert.equal('device' in resolveTrainConfig({}).train, false);
  assert.throws(() => resolveTrainConfig({ train: { device: 'gpu' } }), /train\.device: must be 'cpu', 'cuda', 'cuda:N' or 'auto'/);
});

test('createModel, loadModel and train refuse an unusable device before doing anything', { skip: cudaAvailable() ? 'this machine has a GPU' : false }, async () => {
  const why = buildInfo().cuda ? 'the addon has CUDA but no GPU is visible' : 'this addon was built against a CPU-only libtorch';
  assert.throws(() => createModel(tinyConfig('xl'), { device: 'cuda' }), new RegExp(`createModel: device 'cuda': ${why}`));
  await assert.rejects(loadModel('/nonexistent', { device: 'cuda:7' }), /loadModel: device 'cuda:7'/);
  const dir = tmp();
  try {
    await assert.rejects(train({ train: { steps: 1, device: 'cuda' } }, { runDir: join(dir, 'run') }), (e: unknown) => kindOf(e) === 'device' && /^train: device 'cuda'/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Module.to moves every parameter in place: the same Tensor objects (so fields and optimisers follow), requires_grad kept, grads dropped, cached tables emptied', () => {
  manualSeed(0);
  const model = createModel(tinyConfig('xl'));
  try {
    const params = model.parameters();
    const embedding = (model as unknown as { embed: { weight: Tensor } }).embed.weight;
    tidy(() => {
      const out = model.forward(randint(0, 11, [2, 4]), model.initState(2)); // fills the cached mask and position tables
      out.logits.sum().backward();
    });
    assert.ok(params.every((p) => p.grad !== null));
    // 'meta' (shapes without data) stands in for a GPU: a move to any device goes the same way.
    model.to('meta');
    assert.equal(model.device, 'meta');
    assert.ok(model.parameters().every((p, i) => p === params[i] && p.device === 'meta' && p.requiresGrad && p.grad === null));
    assert.equal(embedding.device, 'meta', "a module's field holds the moved tensor");
    assert.deepEqual(model.parameters().map((p) => p.shape), params.map((p) => p.shape));
  } finally {
    model.dispose();
  }
});

test("deviceCheckMode: 'meta' stands in for a GPU: a CPU tensor meeting it fails as on CUDA, scalars and copies pass, reads give zeros", () => {
  assert.throws(() => resolveDevice('meta', 'train'), /unknown device 'meta'/, 'meta is no device for users');
  const was = deviceCheckMode(true);
  try {
    assert.equal(resolveDevice('meta'), 'meta');
    assert.equal(resolveTrainConfig({ train: { device: 'meta' } }).train.device, 'meta');
    tidy(() => {
      const a = randn([3, 4]).to({ device: 'meta' });
      // ATen's meta kernels of matmul, cat and masked_fill accept a CPU operand; the mode does not
      const mixed: [string, () => unknown][] = [
        ['matmul', () => a.matmul(randn([4, 5]))],
        ['cat', () => cat([a, zeros([3, 4])])],
        ['maskedFill', () => a.maskedFill(zeros([3, 4], { dtype: 'bool' }), 0)],
      ];
      for (const [name, f] of mixed) assert.throws(f, new RegExp(`: ${name}: aten::\\w+: expected all tensors on one device, found meta and cpu`), name);
      assert.equal(a.mul(tensor(2)).device, 'meta', 'a 0-dim CPU tensor joins any device');
      assert.equal(a.indexSelect(0, zeros([2], { dtype: 'int64', device: 'meta' })).device, 'meta', 'an op without a meta kernel (index_select) runs');
      assert.deepEqual(a.sum(0).toArray(), [0, 0, 0, 0], 'data read from meta is zeros');
      assert.equal(a.sum().item(), 0);
      assert.equal(a.to({ device: 'cpu' }).device, 'cpu', 'a copy between devices passes');
    });
  } finally {
    deviceCheckMode(was);
  }
  tidy(() => assert.equal(randn([3, 4]).to({ device: 'meta' }).matmul(randn([4, 5])).device, 'meta', "off, libtorch's own meta kernels decide (and mix)"));
});

// ---- on every test device ----------------------------------------------------------------------------------

deviceTest('every kind: parameters, logits, carried state, auxiliary loss, gradients and optimiser state on the model device', (device) => {
  for (const kind of modelKinds) {
    manualSeed(1);
    const model = createModel(tinyConfig(kind), { device });
    const opt = new Adam(model.parameters(), { lr: 1e-3 });
    try {
      assert.ok(model.parameters().every((p) => sameDevice(p.device, device)), `${kind}: parameters`);
      tidy(() => {
        let state = model.initState(2);
        let loss: Tensor | null = null;
        for (let s = 0; s < 3; s++) {
          const out = model.forward(randint(0, 11, [2, 6], { device }), state);
          assert.ok(sameDevice(out.logits.device, device), `${kind}: logits on ${out.logits.device}`);
          for (const t of stateTensors(out.state)) assert.ok(sameDevice(t.device, device), `${kind}: state on ${t.device}`);
          if (out.auxLoss) assert.ok(sameDevice(out.auxLoss.device, device), `${kind}: auxLoss on ${out.auxLoss.device}`);
          const l = out.logits.logSoftmax(-1).mean().neg();
          loss = loss ? loss.add(l) : l;
          if (out.auxLoss) loss = loss.add(out.auxLoss);
          state = out.state;
        }
        loss!.backward();
      });
      opt.step();
      model.afterOptimizerStep?.();
      for (const p of model.parameters()) if (p.grad) assert.ok(sameDevice(p.grad.device, device), `${kind}: grad on ${p.grad.device}`);
      const { tensors } = opt.stateDict();
      assert.ok(Object.keys(tensors).length > 0);
      for (const t of Object.values(tensors)) {
        assert.ok(sameDevice(t.device, device), `${kind}: optimiser state on ${t.device}`);
        t.dispose();
      }
    } finally {
      opt.dispose();
      model.dispose();
    }
  }
});

deviceTest('cached decoding on the device gives the logits of forward()', (device) => {
  for (const kind of ['xl', 'rmt', 'expire-span', 'compressive'] as const) {
    manualSeed(2);
    const model = createModel(tinyConfig(kind), { device }).eval();
    try {
      const ids = [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]];
      tidy(() => {
        const whole = model.forward(tensor(ids, { dtype: 'int64', device }), model.initState(2)).logits; // [2, 6, V]
        const decoder = new Decoder(model, 6, { batch: 2 });
        const fed = decoder.feed(ids.map((r) => r.slice(0, 4)));
        assert.ok(sameDevice(fed.device, device), `${kind}: decoder logits on ${fed.device}`);
        const diff = fed.sub(whole.narrow(1, 0, 4)).abs().max().item();
        assert.ok(diff < 1e-4, `${kind}: decoding differs from forward by ${diff}`);
        decoder.dispose();
      });
    } finally {
      model.dispose();
    }
  }
});

deviceTest('a run trained on the device writes CPU tensors, resumes on the CPU (carried memory included), and its model folder loads on either device with the same logits', async (device) => {
  const dir = tmp();
  try {
    const config = {
      model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 8 },
      data: { kind: 'lm', corpus: 'tinyshakespeare', segmentLength: 8, maxEvalTokens: 64 },
      train: { steps: 2, batchSize: 2, bpttDepth: 1, evalEvery: 0, checkpointEvery: 2, device },
    } as const;
    const run = join(dir, 'run');
    const first = await train(config, { runDir: run });
    assert.equal(first.step, 2);
    const { meta, tensors } = await loadCheckpoint(run);
    try {
      assert.ok(meta.carry !== null, 'an LM run checkpoints its carried memory');
      assert.ok(Object.values(tensors).every((t) => t.device === 'cpu'), 'a checkpoint holds CPU tensors');
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    // Resumed on the CPU (the device may change on resume), two more steps.
    const resumed = await train({ ...config, train: { ...config.train, steps: 4, device: 'cpu' } }, { runDir: run, resume: true });
    assert.equal(resumed.step, 4);
    assert.equal((await readCheckpointMeta(run)).step, 4);

    const loaded = await loadRun(run, { device });
    const folder = join(dir, 'model');
    try {
      assert.ok(sameDevice(loaded.model.device, device));
      await exportRun(loaded, folder);
    } finally {
      loaded.model.dispose();
    }
    const onCpu = await loadModel(folder);
    const onDevice = await loadModel(folder, { device });
    try {
      assert.equal(onCpu.model.device, 'cpu');
      assert.ok(onDevice.model.parameters().every((p) => sameDevice(p.device, device)));
      tidy(() => {
        const ids = randint(0, onCpu.model.config.vocabSize, [2, 8]);
        const a = onCpu.model.forward(ids, onCpu.model.initState(2)).logits;
        const b = onDevice.model.forward(ids.to({ device }), onDevice.model.initState(2)).logits.to({ device: 'cpu' });
        const diff = a.sub(b).abs().max().item();
        assert.ok(diff <= 1e-4, `logits differ by ${diff}`);
      });
    } finally {
      onCpu.model.dispose();
      onDevice.model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

deviceTest('every kind trains with evaluation on the device, and its run generates, scores and is inspected there', async (device) => {
  const dir = tmp();
  try {
    for (const kind of modelKinds) {
      const run = join(dir, kind);
      const config = {
        model: (({ vocabSize: _v, ...rest }) => rest)(tinyConfig(kind) as Record<string, unknown>), // the corpus sets the vocabulary
        data: { kind: 'lm', corpus: 'tinyshakespeare', segmentLength: 6, maxEvalTokens: 24 },
        train: { steps: 2, batchSize: 2, bpttDepth: 2, evalEvery: 2, evalBatches: 1, checkpointEvery: 2, device },
      } as const;
      const result = await train(config, { runDir: run });
      assert.equal(result.step, 2, kind);
      const loaded = await loadRun(run, { device });
      try {
        assert.ok(loaded.model.parameters().every((p) => sameDevice(p.device, device)), `${kind}: loaded parameters`);
        const done = await complete(loaded, 'To be', { maxTokens: 4, temperature: 1, topK: 3 });
        assert.equal(done.tokens, 4, `${kind}: generated tokens`);
        let scored = 0;
        for await (const chunk of score(loaded, 'To be, or not to be', { chunkSize: 8 })) scored += chunk.tokens;
        assert.equal(scored, 18, `${kind}: scored tokens`);
        const ins = inspect(loaded.model, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], { segmentLength: 6, attention: 'all' });
        assert.equal(ins.segments.length, 2, `${kind}: inspected segments`);
      } finally {
        loaded.model.dispose();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// On meta the models read zeros, so Expire-Span never finds an expired memory there: its row
// compaction is checked here directly.
deviceTest("Expire-Span's row compaction (reached only where memories expire) on the device", (device) => tidy(() => {
  const droppable = tensor([[1, 0, 1, 1, 0, 0], [1, 1, 0, 1, 0, 0]], { device }).bool(); // [B, N]
  const kept = keptIndices(droppable, 2); // each row drops its 2 oldest droppable memories
  assert.ok(sameDevice(kept.device, device), `kept indices on ${kept.device}`);
  if (device !== 'meta') assert.deepEqual(kept.toArray(), [[1, 3, 4, 5], [2, 3, 4, 5]]);
}));

// ---- the device-generic paths, checked on the CPU ---------------------------------------------------------------

/** Logits of three segments, every gradient, then the logits after one Adam step: a kind's training step as numbers. */
function trainingNumbers(kind: ModelKind, native: boolean): { logits: number[]; grads: number[][]; after: number[] } {
  const was = setNativeKernels(native);
  manualSeed(3);
  const model = createModel(tinyConfig(kind));
  const opt = new Adam(model.parameters(), { lr: 1e-2 });
  try {
    const ids = [0, 1, 2].map(() => randint(0, 11, [2, 6]).keep());
    const unroll = (): Tensor => {
      let state = model.initState(2);
      const logits: Tensor[] = [];
      let loss: Tensor | null = null;
      for (const x of ids) {
        const out = model.forward(x, state);
        logits.push(out.logits);
        const l = out.logits.logSoftmax(-1).mean().neg();
        loss = loss ? loss.add(l) : l;
        if (out.auxLoss) loss = loss.add(out.auxLoss);
        state = out.state;
      }
      loss!.backward();
      return cat(logits, 1);
    };
    const logits = tidy(() => (unroll().toArray() as number[][][]).flat(2));
    const grads = model.parameters().map((p) => (p.grad ? (p.grad.flatten().toArray() as number[]) : []));
    opt.step();
    model.afterOptimizerStep?.();
    opt.zeroGrad();
    const after = tidy(() => (unroll().toArray() as number[][][]).flat(2));
    for (const x of ids) x.dispose();
    return { logits, grads, after };
  } finally {
    opt.dispose();
    model.dispose();
    setNativeKernels(was);
  }
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length, 'the two runs give as many numbers');
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

test("every kind with the native CPU kernels off (the ATen compositions a GPU runs) gives the kernels' logits, gradients and Adam step", (t) => {
  for (const kind of modelKinds) {
    const kernels = trainingNumbers(kind, true);
    const composed = trainingNumbers(kind, false);
    const logits = maxDiff(kernels.logits, composed.logits);
    t.diagnostic(`${kind}: logits differ by ${logits.toExponential(1)}`);
    assert.ok(logits <= 1e-5, `${kind}: logits differ by ${logits}`);
    kernels.grads.forEach((g, i) => {
      const scale = Math.max(1, ...g.map(Math.abs));
      assert.ok(maxDiff(g, composed.grads[i]!) <= 1e-5 * scale, `${kind}: gradient ${i} differs by ${maxDiff(g, composed.grads[i]!)}`);
    });
    assert.ok(maxDiff(kernels.after, composed.after) <= 1e-4, `${kind}: logits after an Adam step differ by ${maxDiff(kernels.after, composed.after)}`);
  }
});

test('cached decoding with the native CPU kernels off gives the logits of forward(), and those of the kernels', () => {
  for (const kind of ['xl', 'rmt', 'sequential', 'adaptive-span', 'expire-span', 'compressive', 'feedback'] as const) {
    const decode = (native: boolean): { fed: number[]; whole: number[] } => {
      const was = setNativeKernels(native);
      manualSeed(2);
      const model = createModel(tinyConfig(kind)).eval();
      try {
        const ids = [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]];
        return tidy(() => {
          const whole = model.forward(tensor(ids, { dtype: 'int64' }), model.initState(2)).logits.narrow(1, 0, 5);
          const decoder = new Decoder(model, 6, { batch: 2 });
          const first = decoder.feed(ids.map((r) => r.slice(0, 3)));
          const rest = [3, 4].map((t) => decoder.feed(ids.map((r) => [r[t]!])));
          const fed = cat([first, ...rest], 1);
          decoder.dispose();
          return { fed: (fed.toArray() as number[][][]).flat(2), whole: (whole.toArray() as number[][][]).flat(2) };
        });
      } finally {
        model.dispose();
        setNativeKernels(was);
      }
    };
    const kernels = decode(true);
    const composed = decode(false);
    assert.ok(maxDiff(composed.fed, composed.whole) <= 1e-4, `${kind}: composed decoding differs from forward by ${maxDiff(composed.fed, composed.whole)}`);
    assert.ok(maxDiff(composed.fed, kernels.fed) <= 1e-4, `${kind}: composed decoding differs from the kernels' by ${maxDiff(composed.fed, kernels.fed)}`);
  }
});

// ---- CPU against CUDA ----------------------------------------------------------------------------------------

test('CPU and CUDA logits agree to 1e-4 (float32, TF32 off) for every kind over three segments', { skip: cudaSkipReason() ?? false }, () => {
  const was = setAllowTF32({ matmul: false, cudnn: false });
  try {
    for (const kind of modelKinds) {
      manualSeed(5);
      const model = createModel(tinyConfig(kind)).eval();
      try {
        const segments = [0, 1, 2].map(() => randint(0, 11, [2, 6]).keep());
        const run = (m: SegmentModel, device: Device): Tensor[] => {
          let state = m.initState(2);
          return segments.map((s) => {
            const out = m.forward(s.to({ device }), state);
            state = m.detachState(out.state);
            return out.logits.to({ device: 'cpu' });
          });
        };
        tidy(() => {
          const cpu = run(model, 'cpu');
          model.to('cuda');
          const cuda = run(model, 'cuda');
          cpu.forEach((c, i) => {
            const diff = c.sub(cuda[i]!).abs().max().item();
            assert.ok(diff <= 1e-4, `${kind}, segment ${i}: CPU and CUDA logits differ by ${diff}`);
          });
        });
        for (const s of segments) s.dispose();
      } finally {
        model.dispose();
      }
    }
  } finally {
    setAllowTF32(was);
  }
});

// ---- out of memory ----------------------------------------------------------------------------------------------

test('out of memory in a step stops the run with kind oom, names the kept checkpoint, and leaves it intact to resume from', async () => {
  const dir = tmp();
  try {
    const config = {
      model: { kind: 'rmt', layers: 1, dModel: 16, heads: 2, dInner: 32, numMemTokens: 2 },
      data: { kind: 'task', name: 'copy', options: { sourceLength: 3, numSegments: 2 } },
      train: { steps: 6, batchSize: 4, evalEvery: 0, checkpointEvery: 2 },
    } as const;
    const run = join(dir, 'run');
    const trainer = await Trainer.create(config, { runDir: run });
    const forward = trainer.model.forward.bind(trainer.model);
    // What the addon throws for c10::OutOfMemoryError (native/src/addon.cpp, rethrowAsEngram).
    trainer.model.forward = (tokens, state) => {
      if (trainer.step === 3) throw engramError('oom', 'matmul', 'CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 139.00 GiB total capacity)');
      return forward(tokens, state);
    };
    try {
      await assert.rejects(trainer.run(), (e: unknown) => kindOf(e) === 'oom' &&
        /^train: out of memory in step 4 on cpu \(matmul: CUDA out of memory\. .*\); the checkpoint of step 2 in .* is kept \(resume with --resume\); lower train\.batchSize/.test((e as Error).message));
    } finally {
      trainer.dispose();
    }
    const meta = await readCheckpointMeta(run);
    assert.equal(meta.step, 2);
    const checkpointJson = readFileSync(join(run, 'checkpoint.json'), 'utf8');
    // An out-of-memory while a checkpoint is being gathered (moving tensors to the CPU) changes nothing either.
    const again = await Trainer.create(config, { runDir: run, resume: true });
    const stateDict = again.optimizer.stateDict.bind(again.optimizer);
    again.optimizer.stateDict = () => {
      if (again.step === 4) throw engramError('oom', 'to', 'CUDA out of memory. Tried to allocate 1.00 GiB');
      return stateDict();
    };
    try {
      await assert.rejects(again.run(), (e: unknown) => kindOf(e) === 'oom');
    } finally {
      again.dispose();
    }
    assert.equal(readFileSync(join(run, 'checkpoint.json'), 'utf8'), checkpointJson, 'checkpoint.json is unchanged');
    const { tensors } = await loadCheckpoint(run); // its tensors file still matches its SHA-256
    for (const t of Object.values(tensors)) t.dispose();
    const finished = await train(config, { runDir: run, resume: true });
    assert.equal(finished.step, 6);
    assert.equal(finished.finished, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
