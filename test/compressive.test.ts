// The Compressive Transformer (SPEC §4): the raw and compressed FIFOs block by block, the pooled
// slots against direct computations, equivalences with the sequential baseline, the convolution's
// gradient, and the attention-reconstruction loss (its value, and that only f_c learns from it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CompressiveTransformer, createModel, DecoderLayer, gradcheck, manualSeed, randint, randn,
  SequentialTransformer, tidy, Trainer, type CompressiveOptions, type MemoryState, type ModelConfigInputOf,
  type SegmentModel, type SegmentOutput, type Tensor,
} from '../src/index.js';
import { attentionReconstructionLoss, compress } from '../src/memory/compressive.js';
import { assertClose, inFloat64 } from './helpers.js';

const V = 11;
const sizes = { vocabSize: V, layers: 2, dModel: 8, heads: 2, dInner: 16 } as const;

const compressive = (memLen: number, options: Partial<CompressiveOptions>, extra: Partial<ModelConfigInputOf<'compressive'>> = {}) =>
  createModel({ kind: 'compressive', ...sizes, memLen, compressive: options, ...extra }) as CompressiveTransformer;

/** Runs the blocks in order from the initial state; returns each block's output. */
function runBlocks<S extends MemoryState>(model: SegmentModel<S>, blocks: Tensor[]): SegmentOutput<S>[] {
  let state = model.initState(blocks[0]!.shape[0]!);
  return blocks.map((block) => {
    const out = model.forward(block, state);
    state = out.state;
    return out;
  });
}

test('FIFOs over five blocks (L 4, M 3, c 2, C 3): raw length, slots appended as memories fall out, oldest dropped beyond C; pooled values exact', () => {
  // Positions each memory holds after each block (layer 0). Block 2 overflows by 2: one slot.
  // Block 3 overflows by 3: one slot, and the odd memory (4) waits in the raw FIFO for its pair.
  // Block 4 overflows by 4: two slots, and the oldest slot [0, 1] falls out beyond C = 3.
  const expected = [
    { raw: [0, 1, 2], slots: [] },
    { raw: [2, 3, 4, 5], slots: [[0, 1]] },
    { raw: [4, 5, 6, 7, 8], slots: [[0, 1], [2, 3]] },
    { raw: [8, 9, 10, 11], slots: [[2, 3], [4, 5], [6, 7]] },
    { raw: [10, 11, 12, 13, 14], slots: [[4, 5], [6, 7], [8, 9]] },
  ];
  for (const fn of ['mean', 'max'] as const) {
    tidy(() => {
      manualSeed(3);
      const model = compressive(4, { compressedLen: 3, rate: 2, fn });
      const tokens = randint(0, V, [2, 15]);
      const embedded = model.embed.forward(tokens).toArray() as number[][][]; // layer 0's inputs (dropout 0)
      const pool = (positions: number[]) => embedded.map((row) => {
        const vectors = positions.map((p) => row[p]!);
        return vectors[0]!.map((_, k) => {
          const values = vectors.map((v) => v[k]!);
          return fn === 'mean' ? values.reduce((a, b) => a + b, 0) / values.length : Math.max(...values);
        });
      });
      const outputs = runBlocks(model, tokens.split(3, 1));
      outputs.forEach(({ state, auxLoss }, b) => {
        const { raw, slots } = expected[b]!;
        assert.equal(auxLoss, null, `${fn}: nothing to train, no reconstruction loss`);
        for (let l = 0; l < 2; l++) {
          assert.equal(state.cache![l]!.shape[1], raw.length, `${fn} block ${b} layer ${l}: raw length`);
          assert.equal(state.compressed?.[l]!.shape[1] ?? 0, slots.length, `${fn} block ${b} layer ${l}: compressed slots`);
          assert.equal(state.cache![l]!.requiresGrad, false);
          if (state.compressed) assert.equal(state.compressed[l]!.requiresGrad, false);
        }
        assertClose(state.cache![0]!, embedded.map((row) => raw.map((p) => row[p]!)), { atol: 0 });
        if (slots.length) {
          const pooled = slots.map(pool); // [slot][B][H]
          assertClose(state.compressed![0]!, embedded.map((_, i) => pooled.map((s) => s[i]!)), { atol: 1e-6 });
        } else {
          assert.equal(state.compressed, null);
        }
      });
      model.dispose();
    });
  }
});

/** A compressive model with the weights of a sequential one (its compressors keep their own). */
function withWeightsOf(model: CompressiveTransformer, baseline: SequentialTransformer): void {
  const missing = Object.keys(model.stateDict()).filter((k) => !(k in baseline.stateDict()));
  assert.ok(missing.every((k) => k.startsWith('compressors.')), `only the compressors are new: ${missing.join(', ')}`);
  model.loadStateDict(baseline.stateDict(), { strict: false });
}

test('with rate 1 and an identity f_c (mean, max, conv at init) the model is the sequential baseline of span L + C, block after block', () => {
  tidy(() => {
    for (const fn of ['mean', 'max', 'conv'] as const) {
      manualSeed(4);
      const baseline = createModel({ kind: 'sequential', ...sizes, memLen: 4 + 3 }) as SequentialTransformer;
      const model = compressive(4, { compressedLen: 3, rate: 1, fn });
      withWeightsOf(model, baseline);
      const blocks = randint(0, V, [2, 18]).split(3, 1);
      let baseState = baseline.initState(2);
      const ours = runBlocks(model, blocks);
      blocks.forEach((block, b) => {
        const base = baseline.forward(block, baseState);
        baseState = base.state;
        assertClose(ours[b]!.logits, base.logits.toArray(), { atol: 1e-5 });
      });
      // By then memories have passed through f_c: 18 seen, L = 4 raw, C = 3 compressed.
      assert.equal(ours[5]!.state.compressed![0]!.shape[1], 3);
      assert.equal(ours[5]!.state.cache![1]!.shape[1], 4);
      model.dispose();
      baseline.dispose();
    }
  });
});

test('until a memory is compressed, outputs equal the sequential baseline of span L + C; after, they differ', () => {
  tidy(() => {
    manualSeed(5);
    const baseline = createModel({ kind: 'sequential', ...sizes, memLen: 6 + 4 }) as SequentialTransformer;
    const model = compressive(6, { compressedLen: 4, rate: 2, fn: 'conv' });
    withWeightsOf(model, baseline);
    model.eval();
    baseline.eval();
    const blocks = randint(0, V, [2, 12]).split(3, 1);
    const ours = runBlocks(model, blocks);
    const theirs = runBlocks(baseline, blocks);
    // Blocks 0-2 see at most 6 = L past positions: nothing has fallen out of the raw FIFO yet.
    for (const b of [0, 1, 2]) assertClose(ours[b]!.logits, theirs[b]!.logits.toArray(), { atol: 1e-5 });
    assert.equal(ours[1]!.state.compressed, null);
    assert.equal(ours[2]!.state.compressed![0]!.shape[1], 1, 'block 2 overflows by 3: one slot of 2, one memory waits');
    const gap = ours[3]!.logits.sub(theirs[3]!.logits).abs().max().item();
    assert.ok(gap > 1e-4, `block 3 attends to a compressed slot, so it differs (max gap ${gap})`);
    model.dispose();
    baseline.dispose();
  });
});

test("the conv compressor's gradient (memories, weight, bias) matches finite differences, and so does the reconstruction loss's", () => {
  inFloat64(() => tidy(() => {
    manualSeed(6);
    const old = randn([2, 6, 4]).requiresGrad_();
    const weight = randn([4, 4, 3]).mul(0.5).requiresGrad_();
    const bias = randn([4]).requiresGrad_();
    const r = gradcheck((x, w, b) => compress(x!, 'conv', 3, w!, b!), [old, weight, bias]);
    assert.ok(r.ok, r.message);

    // Through the loss, f_c's weights are the inputs that learn; the attention is a constant.
    const layer = new DecoderLayer({ dModel: 4, heads: 2, dInner: 8, dropout: 0, norm: 'post', relative: false });
    const queries = randn([2, 5, 4]);
    const fixed = old.detach();
    const w2 = randn([4, 4, 2]).mul(0.5).requiresGrad_();
    const b2 = randn([4]).requiresGrad_();
    const loss = gradcheck((w, b) => attentionReconstructionLoss(layer, queries, fixed, compress(fixed, 'conv', 2, w!, b!)), [w2, b2]);
    assert.ok(loss.ok, loss.message);
    layer.dispose();
  }));
});

test('the reconstruction attention is the layer attention without positions or mask (post- and pre-LN); identical memories give 0', () => {
  tidy(() => {
    manualSeed(7);
    const post = new DecoderLayer({ dModel: 8, heads: 2, dInner: 16, dropout: 0, norm: 'post', relative: false });
    const pre = new DecoderLayer({ dModel: 8, heads: 2, dInner: 16, dropout: 0, norm: 'pre', relative: false });
    pre.ln1.weight.detach().uniform_(0.5, 1.5);
    pre.ln1.bias.detach().normal_(0, 0.3);
    const h = randn([2, 3, 8]);
    const memories = randn([2, 5, 8]);
    const direct = post.attn.forward({ query: h, context: memories, mask: null, positions: null });
    assertClose(post.frozenAttention(h, memories), direct.toArray(), { atol: 1e-6 });
    const normed = pre.attn.forward({ query: pre.ln1.forward(h), context: pre.ln1.forward(memories), mask: null, positions: null });
    assertClose(pre.frozenAttention(h, memories), normed.toArray(), { atol: 1e-6 });

    const pooled = compress(memories.narrow(1, 0, 4), 'mean', 2);
    const expected = post.frozenAttention(h, pooled).sub(post.frozenAttention(h, memories.narrow(1, 0, 4))).square().mean();
    assertClose(attentionReconstructionLoss(post, h, memories.narrow(1, 0, 4), pooled), expected.item(), { atol: 1e-7 });
    assert.ok(expected.item() > 1e-4, 'pooling loses something');
    assertClose(attentionReconstructionLoss(post, h, memories, memories), 0, { atol: 1e-7 });
    post.dispose();
    pre.dispose();
  });
});

test('the reconstruction loss trains the compressors only; the task loss never reaches them', () => {
  for (const norm of ['post', 'pre'] as const) {
    tidy(() => {
      manualSeed(8);
      const model = compressive(4, { compressedLen: 4, rate: 2, fn: 'conv' }, { norm });
      const blocks = randint(0, V, [2, 9]).split(3, 1);
      const outputs = runBlocks(model, blocks);
      assert.equal(outputs[0]!.auxLoss, null, 'nothing compressed after the first block');
      const aux = outputs[1]!.auxLoss!; // block 1 overflows by 2: one slot per layer
      assert.ok(aux.item() > 0);
      aux.backward();
      for (const [name, p] of model.namedParameters()) {
        const g = p.grad;
        if (name.startsWith('compressors.')) {
          assert.ok(g && g.abs().sum().item() > 0, `${norm}: ${name} gets a gradient from the reconstruction loss`);
        } else {
          assert.ok(g === null || g.abs().sum().item() === 0, `${norm}: ${name} must get no gradient from the reconstruction loss`);
        }
      }
      for (const p of model.parameters()) p.zeroGrad();
      outputs[2]!.logits.square().sum().backward(); // block 2 attends to a compressed slot
      for (const [name, p] of model.namedParameters()) {
        if (name.startsWith('compressors.')) assert.ok(p.grad === null || p.grad.abs().sum().item() === 0, `${name}: the compressed memory is detached`);
      }
      model.dispose();
    });
  }
});

test('no reconstruction loss for the pools, with reconstruction off, or in evaluation', () => {
  tidy(() => {
    const blocks = randint(0, V, [1, 9]).split(3, 1);
    const cases: [Partial<CompressiveOptions>, boolean][] = [
      [{ fn: 'mean' }, true], [{ fn: 'max' }, true], [{ fn: 'conv', reconstruction: false }, true], [{ fn: 'conv' }, false], [{ fn: 'conv' }, true],
    ];
    for (const [options, training] of cases) {
      manualSeed(9);
      const model = compressive(4, { compressedLen: 2, rate: 2, ...options });
      model.train(training);
      const aux = runBlocks(model, blocks)[2]!.auxLoss;
      const expectLoss = options.fn === 'conv' && options.reconstruction !== false && training;
      assert.equal(aux !== null, expectLoss, `${JSON.stringify(options)} training ${training}`);
      model.dispose();
    }
  });
});

test('options are checked: the kind needs its options, f_c and the rate are validated', () => {
  assert.throws(() => compressive(4, { rate: 0 }), /rate/);
  assert.throws(() => compressive(4, { fn: 'median' as never }), /fn/);
  const made = createModel({ kind: 'compressive', ...sizes, memLen: 4 });
  const config = made.config;
  made.dispose();
  assert.throws(() => new CompressiveTransformer({ ...config, compressive: null } as never), /needs its options/);
  assert.throws(() => compress(randn([1, 5, 4]), 'mean', 2), /not a multiple of the compression rate 2/);
});

test('a tiny compressive model trains end to end: finite losses, a reconstruction loss, compressors and attention updated', async () => {
  manualSeed(10);
  const trainer = await Trainer.create({
    model: { kind: 'compressive', layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 4, compressive: { compressedLen: 4, rate: 2 } },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 6, numSegments: 3 } },
    train: { steps: 4, batchSize: 4, evalEvery: 0 },
    optim: { lr: 1e-2 },
  });
  const model = trainer.model as CompressiveTransformer;
  const before = tidy(() => [model.compressors[0]!.weight!, model.layers[0]!.attn.q.weight].map((t) => t.clone().keep()));
  for (let step = 0; step < 4; step++) {
    const { counts } = trainer.trainStep();
    assert.ok(Number.isFinite(counts.lossSum) && counts.lossSum > 0, `step ${step}: loss ${counts.lossSum}`);
    assert.ok(counts.auxSum > 0, `step ${step}: the segments compress, so there is a reconstruction loss`);
  }
  const after = [model.compressors[0]!.weight!, model.layers[0]!.attn.q.weight];
  before.forEach((b, i) => assert.ok(tidy(() => b.sub(after[i]!).abs().max().item()) > 0, `parameter ${i} was updated`));
  tidy(() => {
    // 12 positions in blocks of 4: the raw FIFO full (4), two slots from each of blocks 1 and 2.
    const state = runBlocks(model, randint(0, model.config.vocabSize, [2, 12]).split(4, 1)).at(-1)!.state;
    assert.deepEqual([state.cache![0]!.shape[1], state.compressed![0]!.shape[1]], [4, 4]);
  });
  before.forEach((t) => t.dispose());
  trainer.dispose();
});
