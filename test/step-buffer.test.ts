// StepBuffer (src/tensor/step-buffer.ts, native/src/step_buffer_ops.cpp): rows written in place
// step by step and read back as views give the values and the gradients of the concatenation
// path (cat([old, row]) per step), in a recurrence where each step reads what earlier steps wrote
// (as the Feedback Transformer's keys and values); reduced precision; a second backward; errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cat, EngramError, grad, liveTensors, manualSeed, noGrad, randn, StepBuffer, tidy, type Tensor } from '../src/index.js';

const B = 2, T = 7, H = 5;

/**
 * A recurrence over T steps: step t reads the last `window` rows (or all of them), attends to
 * them from x_t, and writes row t = tanh(h_t W) [B, 1, H]. Returns the loss and every read.
 * `useBuffer` picks the step buffer or the concatenation path.
 */
function run(x: Tensor, W: Tensor, useBuffer: boolean, window = 3, last = false): { loss: Tensor; reads: Tensor[] } {
  const buffer = new StepBuffer(1, T);
  let grown: Tensor | null = null; // [B, t, H]
  const reads: Tensor[] = [];
  let loss: Tensor | null = null;
  try {
    for (let t = 0; t < T; t++) {
      const n = Math.min(t, window);
      const xt = x.narrow(1, t, 1); // [B, 1, H]
      let h = xt;
      if (n > 0) {
        const seen = useBuffer ? buffer.read(t - n, n) : grown!.narrow(1, grown!.shape[1]! - n, n); // [B, n, H]
        reads.push(seen);
        const weights = xt.matmul(seen.mT).softmax(-1); // [B, 1, n]
        h = xt.add(weights.matmul(seen)); // [B, 1, H]
      }
      const row = h.matmul(W).tanh(); // [B, 1, H]
      if (useBuffer) {
        if (last || t + 1 < T) buffer.write(row, t);
      } else {
        grown = grown ? cat([grown, row], 1) : row;
      }
      const term = h.pow(2).sum().mul(t + 1);
      loss = loss ? loss.add(term) : term;
    }
  } finally {
    buffer.dispose();
  }
  return { loss: loss!, reads };
}

test('values and gradients equal the concatenation path (windows shorter and longer than the sequence)', () => {
  manualSeed(3);
  for (const window of [2, 3, T]) {
    tidy(() => {
      const x = randn([B, T, H], { dtype: 'float64' }).requiresGrad_();
      const W = randn([H, H], { dtype: 'float64' }).mul(0.5).detach().requiresGrad_();
      const a = run(x, W, false, window);
      const b = run(x, W, true, window);
      assert.equal(b.reads.length, a.reads.length);
      a.reads.forEach((r, i) => assert.ok(b.reads[i]!.sub(r).abs().max().item() < 1e-12, `read ${i} differs`));
      assert.ok(Math.abs(a.loss.item() - b.loss.item()) < 1e-9 * Math.abs(a.loss.item()));
      const [gxA, gWA] = grad(a.loss, [x, W]);
      const [gxB, gWB] = grad(b.loss, [x, W]);
      assert.ok(gxB!.sub(gxA!).abs().max().item() < 1e-10, `window ${window}: dx differs`);
      assert.ok(gWB!.sub(gWA!).abs().max().item() < 1e-10, `window ${window}: dW differs`);
      assert.ok(gWA!.abs().max().item() > 1e-3, 'the gradient through the written rows is not trivial');
    });
  }
});

test('a row written but never read gets a zero gradient; backward through the rows, not .grad only', () => {
  manualSeed(4);
  tidy(() => {
    const x = randn([B, T, H], { dtype: 'float64' }).requiresGrad_();
    const W = randn([H, H], { dtype: 'float64' }).requiresGrad_();
    const a = run(x, W, true, 3, false);
    const b = run(x, W, true, 3, true); // also writes the last row (never read)
    const [gA] = grad(a.loss, [W]);
    const [gB] = grad(b.loss, [W]);
    assert.ok(gB!.sub(gA!).abs().max().item() < 1e-12);
    // .backward() accumulates into .grad as autograd.grad returns it
    const c = run(x, W, true);
    c.loss.backward();
    assert.ok(W.grad!.sub(gA!).abs().max().item() < 1e-12);
  });
});

test('a second backward of a retained graph gives the same gradients (the buffer\'s gradient is cleared as it is used)', () => {
  manualSeed(5);
  tidy(() => {
    const x = randn([B, T, H], { dtype: 'float64' }).requiresGrad_();
    const W = randn([H, H], { dtype: 'float64' }).requiresGrad_();
    const { loss } = run(x, W, true);
    const [g1] = grad(loss, [W], { retainGraph: true });
    const [g2] = grad(loss, [W]);
    assert.ok(g2!.sub(g1!).abs().max().item() < 1e-12);
  });
});

test('bfloat16 rows: the gradient (accumulated in float32) stays close to the float32 path', () => {
  manualSeed(6);
  tidy(() => {
    const x = randn([B, T, H]).requiresGrad_();
    const W = randn([H, H]).mul(0.5).detach().requiresGrad_();
    const ref = run(x, W, false);
    const [gRef] = grad(ref.loss, [W]);
    // the recurrence in bfloat16 for the rows only (what the buffer holds)
    const buffer = new StepBuffer(1, T);
    let loss: Tensor | null = null;
    for (let t = 0; t < T; t++) {
      const n = Math.min(t, 3);
      const xt = x.narrow(1, t, 1);
      let h = xt;
      if (n > 0) {
        const seen = buffer.read(t - n, n).to('float32');
        assert.equal(buffer.data!.dtype, 'bfloat16');
        h = xt.add(xt.matmul(seen.mT).softmax(-1).matmul(seen));
      }
      if (t + 1 < T) buffer.write(h.matmul(W).tanh().to('bfloat16'), t);
      const term = h.pow(2).sum().mul(t + 1);
      loss = loss ? loss.add(term) : term;
    }
    buffer.dispose();
    const [g] = grad(loss!, [W]);
    const rel = g!.sub(gRef!).norm().item() / gRef!.norm().item();
    assert.ok(rel < 0.05, `relative gradient difference ${rel}`);
  });
});

test('without gradients (noGrad) reads see the written rows; nothing is left behind', () => {
  const before = liveTensors();
  tidy(() => noGrad(() => {
    const buffer = new StepBuffer(0, 3);
    buffer.write(randn([1, 4]).fill_(1), 0);
    buffer.write(randn([2, 4]).fill_(2), 1);
    assert.deepEqual(buffer.read(0, 3).toArray(), [[1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]]);
    buffer.dispose();
  }));
  tidy(() => {
    const x = randn([B, T, H]).requiresGrad_();
    const W = randn([H, H]).requiresGrad_();
    run(x, W, true).loss.backward();
  });
  assert.equal(liveTensors(), before);
});

test('misuse fails with an EngramError that says what is wrong', () => {
  tidy(() => {
    const buffer = new StepBuffer(1, 4);
    assert.throws(() => buffer.read(0, 1), (e: unknown) => e instanceof EngramError && /nothing has been written/.test(e.message));
    buffer.write(randn([2, 1, 3]), 0);
    assert.throws(() => buffer.write(randn([2, 1, 5]), 1), (e: unknown) => e instanceof EngramError && /does not fit/.test(e.message));
    assert.throws(() => buffer.write(randn([2, 1, 3]), 4), (e: unknown) => e instanceof EngramError && /outside/.test(e.message));
    assert.throws(() => buffer.read(2, 3), (e: unknown) => e instanceof EngramError && /outside/.test(e.message));
    assert.throws(() => new StepBuffer(1, 0), (e: unknown) => e instanceof EngramError);
    buffer.dispose();
  });
});
