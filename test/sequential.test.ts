// The sequential baseline of the Expire-Span code base (SPEC §1, last paragraph): the sliding
// window with learned key positions, and block-by-block processing equal to one long pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arange, cat, createModel, F, grad, manualSeed, randint, randn, SequentialTransformer, tidy, zeros } from '../src/index.js';
import { addSkewedKeyPositions, skewedKeyPositions } from '../src/nn/positions.js';
import { assertClose } from './helpers.js';

const make = (memLen: number) =>
  createModel({ kind: 'sequential', vocabSize: 11, layers: 2, dModel: 16, heads: 2, dInner: 32, memLen }) as SequentialTransformer;

test('the window mask lets query i see exactly the L positions up to itself (cell by cell)', () => {
  manualSeed(0);
  const model = make(3);
  const { mask, distance } = model.window(2, 3); // keys [c0 c1 | s0 s1 s2]
  assert.deepEqual(mask.long().toArray(), [
    [0, 0, 0, 1, 1], // s0 at position 2: distances 2, 1, 0
    [1, 0, 0, 0, 1], // s1: c0 is 3 back (= L): not seen
    [1, 1, 0, 0, 0],
  ]);
  assert.deepEqual(distance.toArray(), [[2, 1, 0, 0, 0], [2, 2, 1, 0, 0], [2, 2, 2, 1, 0]]);
  model.dispose();
});

test('blocks with a cache give the outputs of one pass over the whole stream', () => {
  tidy(() => {
    for (const L of [2, 5, 12]) {
      manualSeed(1);
      const model = make(L);
      model.eval();
      const tokens = randint(0, 11, [2, 12]);
      const whole = model.forward(tokens, model.initState(2)).logits;
      let state = model.initState(2);
      const parts = [];
      for (const block of tokens.split(4, 1)) {
        const out = model.forward(block, state);
        parts.push(out.logits);
        state = out.state;
      }
      assertClose(cat(parts, 1), whole.toArray(), { atol: 1e-5 });
      assert.equal(state.cache![0]!.shape[1], Math.min(L, 12), 'the cache keeps the last L layer inputs');
      assert.equal(state.cache![0]!.requiresGrad, false, 'the cache is detached');
      model.dispose();
    }
  });
});

test('skewedKeyPositions gives the gathered key position scores at every rank the window allows, and their gradients', () => {
  manualSeed(5);
  // (cached C, block Tq, window w, offset f): full cache, short cache, no cache, w larger than the keys, before-query
  for (const [C, Tq, w, f] of [[6, 4, 7, 0], [2, 4, 7, 0], [0, 5, 3, 0], [3, 2, 9, 0], [7, 4, 7, 1], [1, 3, 4, 1], [0, 1, 1, 0]] as const) {
    tidy(() => {
      const Tk = C + Tq;
      const q = randn([2, 3, Tq, 4], { dtype: 'float64' }).requiresGrad_();
      const keyPe = randn([4, w], { dtype: 'float64' }).requiresGrad_();
      const rank = arange(C - f, C + Tq - f, 1, { dtype: 'int64' }).unsqueeze(1).sub(arange(0, Tk, 1, { dtype: 'int64' })); // [Tq, Tk]
      const seen = rank.ge(0).logicalAnd(rank.lt(w)); // [Tq, Tk]
      const gathered = q.matmul(keyPe).gather(-1, rank.clamp(0, w - 1).view(1, 1, Tq, Tk).expand(2, 3, Tq, Tk));
      const skewed = skewedKeyPositions(q, keyPe, C - f, Tk);
      assert.deepEqual(skewed.shape, [2, 3, Tq, Tk]);
      const keep = seen.expand(2, 3, Tq, Tk);
      assertClose(skewed.maskedSelect(keep), gathered.maskedSelect(keep).toArray() as number[], { atol: 1e-12 });
      const weights = randn([2, 3, Tq, Tk], { dtype: 'float64' }).mul(seen);
      const [gq, gk] = grad(skewed.mul(weights).sum(), [q, keyPe]);
      const [rq, rk] = grad(gathered.mul(weights).sum(), [q, keyPe]);
      assertClose(gq!, rq!.toArray() as number[], { atol: 1e-12 });
      assertClose(gk!, rk!.toArray() as number[], { atol: 1e-12 });
      // added to content scores in one op (F.skewAdd): the same sum and gradients, content's included
      const content = randn([2, 3, Tq, Tk], { dtype: 'float64' }).requiresGrad_();
      const added = addSkewedKeyPositions(content, q, keyPe, C - f);
      assert.match(added.gradFn ?? '', /SkewAdd/);
      assertClose(added, content.add(skewed).toArray() as number[], { atol: 1e-12 });
      const [aq, ak, ac] = grad(added.mul(weights).sum(), [q, keyPe, content]);
      assertClose(aq!, rq!.toArray() as number[], { atol: 1e-12 });
      assertClose(ak!, rk!.toArray() as number[], { atol: 1e-12 });
      assertClose(ac!, weights.toArray() as number[], { atol: 1e-12 });
    });
  }
  assert.throws(() => F.skewAdd(zeros([2, 3, 4]), zeros([2, 3, 4]), 1), /must be within x.s Tq·W entries/);
  assert.throws(() => F.skewAdd(zeros([2, 3, 4]), zeros([2, 4, 5]), 0), /agree in every dim but the last/);
});

test('sequential models need a span', () => {
  assert.throws(() => createModel({ kind: 'sequential', vocabSize: 5 }), /needs memLen > 0/);
  // @ts-expect-error: expireSpan options exist on kind 'expire-span' only, at compile time too
  assert.throws(() => createModel({ kind: 'sequential', vocabSize: 5, memLen: 4, expireSpan: { ramp: 4 } }), /belong to kind 'expire-span'/);
});
