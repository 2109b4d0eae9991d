// The Feedback Transformer (SPEC §7): the fast path (keys/values projected once per memory, all
// layers in one matmul, windows as views) against a direct step-by-step computation with
// DecoderLayer; causality; blocks with the carried state against one pass; gradients through the
// memories; gradcheck in float64; a few training steps end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, createModel, F, FeedbackTransformer, grad, gradcheck, manualSeed, noGrad, randint, randn,
  randperm, resolveModelConfig, liveTensors, tensor, tidy, train, type ModelConfigInputOf, type Tensor,
} from '../src/index.js';
import type { FeedbackState } from '../src/models/feedback.js';
import { assertClose, inFloat64 } from './helpers.js';

const V = 11;
const config = (extra: Partial<ModelConfigInputOf<'feedback'>> = {}): ModelConfigInputOf<'feedback'> =>
  ({ kind: 'feedback', vocabSize: V, layers: 2, dModel: 16, heads: 2, dInner: 32, memLen: 4, ...extra });
const make = (extra: Partial<ModelConfigInputOf<'feedback'>> = {}) => createModel(config(extra)) as FeedbackTransformer;

/** Merge logits away from their uniform start, so that a wrong weighting shows. */
function spreadMergeWeights(model: FeedbackTransformer): void {
  noGrad(() => model.mergeLogits.copy_(randn(model.mergeLogits.shape).mul(2)));
}

/**
 * The model computed the slow, obvious way: step by step, each layer a DecoderLayer.forward over
 * cat(the last L memories, x_t^l) with the current position masked out and distances given
 * explicitly (memory j steps back: column j - 1), and each memory the weighted sum written out
 * term by term. Nothing is cached or shared between steps or layers.
 */
function direct(model: FeedbackTransformer, tokens: Tensor): { logits: Tensor; memories: Tensor[] } {
  const L = model.span;
  const weights = model.mergeWeights().toArray() as number[];
  const embedded = model.embed.forward(tokens); // [B, M, H] (eval: no dropout)
  const memories: Tensor[] = [];
  const outputs: Tensor[] = [];
  for (let t = 0; t < tokens.shape[1]!; t++) {
    const window = memories.slice(-L);
    const n = window.length;
    const cache = n ? cat(window, 1) : null; // [B, n, H]
    const mask = tensor([[...Array(n).fill(false), true]]); // [1, n + 1]: not the current position
    const distance = tensor([[...Array.from({ length: n }, (_, i) => n - i - 1), 0]], { dtype: 'int64' });
    let h = embedded.narrow(1, t, 1);
    const representations = [h];
    for (const layer of model.layers) {
      h = layer.forward(h, cache, mask, { keyPe: model.keyPe, distance });
      representations.push(h);
    }
    let memory = representations[0]!.mul(weights[0]!);
    for (let l = 1; l < representations.length; l++) memory = memory.add(representations[l]!.mul(weights[l]!));
    memories.push(memory);
    outputs.push(h);
  }
  const out = cat(outputs, 1);
  return { logits: model.head.forward(model.finalNorm ? model.finalNorm.forward(out) : out), memories };
}

test('the fast path equals the direct computation (post-LN and pre-LN, windows shorter and longer than the block)', () => {
  inFloat64(() => tidy(() => {
    for (const [norm, L] of [['post', 3], ['pre', 3], ['post', 9], ['pre', 1]] as const) {
      manualSeed(3);
      const model = make({ norm, memLen: L, layers: 2 });
      model.eval();
      spreadMergeWeights(model);
      const tokens = randint(0, V, [2, 7]);
      const ref = direct(model, tokens);
      const out = model.forward(tokens, model.initState(2));
      assertClose(out.logits, ref.logits.toArray(), { atol: 1e-10 });
      // the carried state is the last L merged memories, each the softmax-weighted sum of x_t^0 .. x_t^N
      const kept = ref.memories.slice(-L);
      assertClose(out.state.memory!, cat(kept, 1).toArray(), { atol: 1e-10 });
      // and a second block, reading the carried memories, continues the direct computation
      const more = randint(0, V, [2, 4]);
      const next = model.forward(more, out.state);
      const whole = direct(model, cat([tokens, more], 1));
      assertClose(next.logits, whole.logits.narrow(1, 7, 4).toArray(), { atol: 1e-10 });
      model.dispose();
    }
  }));
});

test('a memory is the softmax-weighted sum of the embedding and every layer output (first step, checked by hand)', () => {
  tidy(() => {
    manualSeed(4);
    const model = make({ layers: 2, memLen: 2 });
    model.eval();
    spreadMergeWeights(model);
    const tokens = randint(0, V, [3, 1]);
    // With no memory yet, each layer's attention adds nothing: x^{l+1} = LN2(y + FF(y)), y = LN1(x^l).
    let h = model.embed.forward(tokens); // [3, 1, 16]
    const representations = [h];
    for (const layer of model.layers) {
      const y = layer.ln1.forward(h);
      h = layer.ln2.forward(y.add(layer.ff.forward(y)));
      representations.push(h);
    }
    const logits = model.mergeLogits.toArray() as number[];
    const z = logits.reduce((s, v) => s + Math.exp(v), 0);
    const expected = representations.reduce((sum, x, l) => sum.add(x.mul(Math.exp(logits[l]!) / z)), representations[0]!.mul(0));
    const memory = model.forward(tokens, model.initState(3)).state.memory!;
    assert.deepEqual(memory.shape, [3, 1, 16]);
    assertClose(memory, expected.toArray(), { atol: 1e-5 });
    // and the weights are not uniform, so the check would catch an unweighted mean
    const mean = representations.reduce((s, x) => s.add(x), representations[0]!.mul(0)).div(3);
    assert.ok(memory.sub(mean).abs().max().item() > 1e-3);
    model.dispose();
  });
});

test('causality: the outputs of step t do not change when later tokens change', () => {
  tidy(() => {
    manualSeed(5);
    const model = make({ memLen: 3 });
    model.eval();
    const tokens = randint(0, V, [2, 8]);
    const changed = cat([tokens.narrow(1, 0, 5), tokens.narrow(1, 5, 3).add(1).remainder(V)], 1); // tokens 5.. differ
    const a = model.forward(tokens, model.initState(2)).logits;
    const b = model.forward(changed, model.initState(2)).logits;
    assertClose(b.narrow(1, 0, 5), a.narrow(1, 0, 5).toArray(), { atol: 0, rtol: 0 }); // steps 0 .. 4 read tokens 0 .. 4 only
    for (let t = 5; t < 8; t++) {
      assert.ok(b.select(1, t).sub(a.select(1, t)).abs().max().item() > 1e-4, `step ${t} does see the change`);
    }
    model.dispose();
  });
});

test('blocks with the carried state give the outputs of one pass (uneven blocks, spans shorter and longer than them)', () => {
  tidy(() => {
    for (const L of [1, 3, 5, 12]) {
      manualSeed(6);
      const model = make({ memLen: L, norm: L % 2 ? 'post' : 'pre' });
      model.eval();
      const tokens = randint(0, V, [2, 12]);
      const whole = model.forward(tokens, model.initState(2));
      let state = model.initState(2);
      const parts: Tensor[] = [];
      for (const block of tokens.split([3, 1, 5, 3], 1)) {
        const out = model.forward(block, state);
        parts.push(out.logits);
        state = model.detachState(out.state);
      }
      assertClose(cat(parts, 1), whole.logits.toArray(), { atol: 1e-5 });
      assertClose(state.memory!, whole.state.memory!.toArray(), { atol: 1e-5 });
      assert.deepEqual(state.memory!.shape, [2, Math.min(L, 12), 16], 'the state is the last L memories');
      model.dispose();
    }
  });
});

test('gradients from the last step reach the merge weights and the first step through the memories', () => {
  tidy(() => {
    manualSeed(7);
    const model = make({ memLen: 8, layers: 2 });
    const tokens = randperm(V).narrow(0, 0, 6).view(1, 6); // distinct tokens: one embedding row per step
    const out = model.forward(tokens, model.initState(1));
    const loss = F.crossEntropy(out.logits.select(1, 5), tensor([3], { dtype: 'int64' })); // the last step only
    const [gMerge, gEmbed] = grad(loss, [model.mergeLogits, model.embed.weight]) as [Tensor, Tensor];
    assert.ok(gMerge.abs().min().item() > 0, `every merge weight gets a gradient: ${gMerge.toArray()}`);
    const ids = tokens.view(6).toArray() as number[];
    const rowNorm = (id: number) => gEmbed.select(0, id).abs().sum().item();
    // step 0's token reaches the last step's loss only through m_0 and the memories after it
    assert.ok(rowNorm(ids[0]!) > 0, 'the first step gets a gradient from the last step through the memory');
    const unused = Array.from({ length: V }, (_, i) => i).filter((i) => !ids.includes(i));
    for (const id of unused) assert.equal(rowNorm(id), 0, `token ${id} is not in the input`);
    // the state comes back attached (gradients could run on into the next block); detachState cuts it
    assert.equal(out.state.memory!.requiresGrad, true);
    assert.equal(model.detachState(out.state).memory!.requiresGrad, false);
    model.dispose();
  });
});

/** A model whose merge logits come from outside, so gradcheck can perturb them. */
class ProbeMerge extends FeedbackTransformer {
  logits: Tensor | null = null;
  override mergeWeights(): Tensor {
    return this.logits!.softmax(0);
  }
}

test('gradcheck (float64): the loss with respect to the merge weights and to the carried memory', () => {
  inFloat64(() => tidy(() => {
    for (const norm of ['post', 'pre'] as const) {
      manualSeed(8);
      const model = new ProbeMerge(resolveModelConfig(config({ layers: 2, dModel: 8, heads: 2, dInner: 16, memLen: 3, norm })));
      const tokens = randint(0, V, [2, 5]);
      const targets = randint(0, V, [2, 5]);
      const loss = (logits: Tensor, memory: Tensor | null) => {
        model.logits = logits;
        const out = model.forward(tokens, { memory });
        return F.crossEntropy(out.logits.reshape(10, V), targets.view(10));
      };
      const logits = randn([3]).requiresGrad_();
      const r = gradcheck((w: Tensor) => loss(w, null), [logits], { atol: 1e-7 });
      assert.ok(r.ok, `${norm}: ${r.message}`);
      const memory = randn([2, 2, 8]).requiresGrad_(); // C = 2 < L: carried and new memories share windows
      const rm = gradcheck((m: Tensor) => loss(logits.detach(), m), [memory], { atol: 1e-7 });
      assert.ok(rm.ok, `${norm}, carried memory: ${rm.message}`);
      model.dispose();
    }
  }));
});

test('a training step frees everything it made (the per-step scopes lose nothing that backward needs)', () => {
  const model = make({ memLen: 3 });
  const before = liveTensors();
  const kept = tidy(() => {
    const out = model.forward(randint(0, V, [2, 6]), model.initState(2));
    F.crossEntropy(out.logits.reshape(12, V), randint(0, V, [12])).backward();
    return model.detachState(out.state).memory!;
  });
  tidy(() => assert.ok(model.mergeLogits.grad !== null && model.layers[0]!.attn.kv.weight.grad !== null)); // .grad is a new handle
  kept.dispose();
  for (const p of model.parameters()) p.grad = null;
  assert.equal(liveTensors(), before);
  model.dispose();
});

test('bad carried memories fail with a message that says what to do', () => {
  tidy(() => {
    const model = make();
    const state: FeedbackState = { memory: randn([3, 2, 16]) };
    assert.throws(() => model.forward(randint(0, V, [2, 4]), state), /expected \[2, C, 16\].*initState\(2\)/);
    model.dispose();
  });
  assert.throws(() => createModel({ kind: 'feedback', vocabSize: 5 }), /needs memLen > 0/);
});

test('end to end: a tiny feedback model trains a few steps on a two-segment copy task', async () => {
  const r = await train({
    model: { kind: 'feedback', layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 8 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } },
    train: { steps: 12, batchSize: 8, evalEvery: 0, evalBatches: 1, logEvery: 1 },
    optim: { lr: 1e-2 },
  });
  assert.ok(r.finished && !r.aborted);
  assert.equal(r.modelConfig.kind, 'feedback');
  assert.equal(r.losses.length, 12);
  assert.ok(r.losses.every(({ loss }) => Number.isFinite(loss)));
  const first = r.losses.slice(0, 3).reduce((s, x) => s + x.loss, 0) / 3;
  const last = r.losses.slice(-3).reduce((s, x) => s + x.loss, 0) / 3;
  assert.ok(last < first, `the loss goes down: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  assert.ok(r.finalEval !== null && Number.isFinite(r.finalEval.accuracy));
});
