// Expire-Span (SPEC §3): the mask and loss against their formulas, the drop rule (batch minimum
// floored to M, compaction in order, the current block kept), dropping equal to masking alone over
// many blocks, a long span surviving thousands of steps, and the span predictor's gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, createModel, F, grad, gradcheck, manualSeed, MultiHeadAttention, noGrad, rand, randint, randn,
  tensor, tidy, ExpireSpanTransformer, type Tensor,
} from '../src/index.js';
import {
  droppableMemories, dropCount, keptIndices, predictSpans, rampQueries, spanLoss,
} from '../src/memory/expire-span.js';
import type { ExpireSpanState } from '../src/models/expire-span.js';
import type { ExpireSpanOptions } from '../src/models/types.js';
import { assertClose, inFloat64 } from './helpers.js';

type Options = Partial<ExpireSpanOptions>;
const make = (memLen: number, expireSpan: Options, extra: { layers?: number; dModel?: number; heads?: number; norm?: 'post' | 'pre'; vocabSize?: number } = {}) =>
  createModel({ kind: 'expire-span', vocabSize: extra.vocabSize ?? 11, layers: extra.layers ?? 2, dModel: extra.dModel ?? 16, heads: extra.heads ?? 2,
    dInner: 2 * (extra.dModel ?? 16), norm: extra.norm ?? 'post', memLen, expireSpan }) as ExpireSpanTransformer;

/** Sets every span predictor to random weights and the given bias, so that spans differ by memory. */
function randomPredictors(model: ExpireSpanTransformer, scale: number, bias: number): void {
  noGrad(() => tidy(() => {
    for (const p of model.spanPredictors) {
      p.weight.copy_(randn(p.weight.shape).mul(scale));
      p.bias.fill_(bias);
    }
  }));
}

const logit = (p: number) => Math.log(p / (1 - p));

/**
 * Expire-Span's attention weights by their formula, cell by cell, in plain numbers: content and
 * byDistance [B][K][M][.], spans and ages [B][N] -> weights [B][K][M][N].
 */
function expiringWeights(content: number[][][][], byDistance: number[][][][], spans: number[][], ages: number[][], R: number, nearest: number, scale: number): number[][][][] {
  return content.map((heads, b) => heads.map((rows, k) => rows.map((scores, i) => {
    const P = byDistance[b]![k]![i]!.length;
    const cells = scores.map((c, j) => {
      const d = ages[b]![j]! + i;
      const m = Math.min(1, Math.max(0, (spans[b]![j]! - d) / R + 1));
      const blocked = d < nearest || m === 0;
      return { m, blocked, logit: scale * (c + byDistance[b]![k]![i]![Math.min(P - 1, Math.max(0, d))]!) };
    });
    const top = Math.max(...cells.filter((c) => !c.blocked).map((c) => c.logit));
    const exps = cells.map((c) => (c.blocked ? 0 : Math.exp(c.logit - top)));
    const total = exps.reduce((a, e) => a + e, 0);
    const u = exps.map((e, j) => (total > 0 ? (e / total) * cells[j]!.m : 0));
    const z = u.reduce((a, v) => a + v, 0) + 1e-8;
    return u.map((v) => v / z);
  })));
}

const positionWays = ['per-key', 'table', 'auto'] as const;

test('expiringAttention equals its formula cell by cell (soft mask, hard mask, key positions), fused (both position scores) and composed', () => tidy(() => {
  manualSeed(11);
  const L = 6, R = 2, M = 3, P = L + R, K = 2, D = 5;
  // Three rows: cached memories at ages 5, 3, 1 / 7, 4, 2 / 9, 8, 7 from the first query, then the block (0, -1, -2);
  // the third row's spans are all 0, so with nearest = 1 its first query sees nothing (weights 0, not NaN).
  const spansRows = [[3.5, 1.0, 6.0, 0.5, 2.0, 1.5], [5.5, 0.2, 4.0, 3.0, 0.0, 5.9], [0, 0, 0, 0, 0, 0]];
  const agesRows = [[5, 3, 1, 0, -1, -2], [7, 4, 2, 0, -1, -2], [9, 8, 7, 0, -1, -2]];
  const content = randn([3, K, M, 6]), queries = randn([3, K, M, D]), keyPe = randn([D, P]);
  const byDistance = queries.matmul(keyPe).toArray() as number[][][][]; // [B, K, M, P]: column d, distance d
  const spans = tensor(spansRows), ages = tensor(agesRows, { dtype: 'int64' });
  for (const nearest of [0, 1]) {
    const keys = { age: ages, spans, ramp: R, nearest };
    const expected = expiringWeights(content.toArray() as number[][][][], byDistance, spansRows, agesRows, R, nearest, 0.5);
    assertClose(F.composedExpiringAttention(content, queries, keyPe, keys, { scale: 0.5 }), expected, { atol: 1e-6 });
    for (const positions of positionWays) {
      const fused = F.expiringAttention(content, queries, keyPe, keys, { scale: 0.5, positions });
      assert.deepEqual(fused.shape, [3, K, M, 6]);
      assertClose(fused, expected, { atol: 1e-6 });
      const w = fused.toArray() as number[][][][];
      // A few cells by hand: e = 1 at age 3 has r = -2 = -R (m = 0): no weight; e = 3.5 at age 5 is on
      // the ramp (m = 0.25): some; a later key (age -1 from query 0) none; with nearest = 1 the query's own key none.
      assert.equal(w[0]![0]![0]![1], 0);
      assert.ok(w[0]![0]![0]![0]! > 0);
      assert.equal(w[0]![1]![0]![4], 0);
      assert.equal(w[1]![0]![2]![5]! > 0, nearest === 0);
      if (nearest === 1) assert.deepEqual(w[2]![0]![0], Array(6).fill(0), 'a query that sees nothing has zero weights');
    }
  }
  assert.throws(() => F.expiringAttention(content, queries, keyPe, { age: ages, spans, ramp: R, nearest: 0 }, { positions: 'dense' as never }), /positions must be/);
}));

test('expiringAttention in float32: rows longer than its eight-wide exponentials and logits far apart equal the composed ops (ATen\'s softmax)', () => tidy(() => {
  manualSeed(5);
  // 37 keys (four groups of eight and a tail), every memory seen; content scaled so that a row's
  // logits span hundreds and many exponentials fall below float32's range
  const B = 2, K = 2, M = 5, D = 4, C = 32, Tk = C + M, P = 48;
  const agesRow = Array.from({ length: Tk }, (_, j) => C - j); // memories C … 1, then the block 0 … −(M − 1)
  const ages = tensor([agesRow, agesRow], { dtype: 'int64' });
  const spans = rand([B, Tk]).mul(40).add(2);
  const content = randn([B, K, M, Tk]).mul(60), queries = randn([B, K, M, D]), keyPe = randn([D, P]);
  for (const nearest of [0, 1]) {
    const keys = { age: ages, spans, ramp: 4, nearest };
    const composed = F.composedExpiringAttention(content, queries, keyPe, keys, { scale: 0.9 });
    for (const positions of positionWays) assertClose(F.expiringAttention(content, queries, keyPe, keys, { scale: 0.9, positions }), composed.toArray() as number[][][][], { atol: 1e-6 });
  }
}));

test('expiringAttention: the fused gradients (content, queries, key positions, spans) equal the composed ones and central differences', () => inFloat64(() => tidy(() => {
  manualSeed(12);
  const B = 2, K = 3, M = 5, L = 12, R = 4, P = L + R, N = 9, D = 3;
  // Ages: four memories with gaps (dropped ones between them), then the block 0 … −4.
  const ages = tensor([[11, 8, 7, 5, 0, -1, -2, -3, -4], [14, 9, 6, 5, 0, -1, -2, -3, -4]], { dtype: 'int64' });
  const content = randn([B, K, M, N]).requiresGrad_();
  const queries = randn([B, K, M, D]).requiresGrad_();
  const keyPe = randn([D, P]).requiresGrad_();
  const spans = randn([B, N]).mul(4).add(7).clamp(0.3, L - 0.3).requiresGrad_(); // many cells on the ramp
  const inputs = [content, queries, keyPe, spans];
  for (const nearest of [0, 1]) {
    const keys = { age: ages, spans, ramp: R, nearest };
    const upstream = randn([B, K, M, N]);
    const lossOf = (weights: Tensor) => weights.mul(upstream).sum();
    const composed = grad(lossOf(F.composedExpiringAttention(content, queries, keyPe, keys, { scale: 0.7 })), inputs);
    for (const positions of positionWays) {
      const fused = grad(lossOf(F.expiringAttention(content, queries, keyPe, keys, { scale: 0.7, positions })), inputs);
      fused.forEach((g, i) => assertClose(g!, composed[i]!.toArray(), { atol: 1e-10, rtol: 1e-8 }));
      assert.ok(fused[2]!.abs().sum().item() > 0 && fused[3]!.abs().sum().item() > 0, 'keyPe and the spans get gradients');
      const r = gradcheck((c: Tensor, q: Tensor, pe: Tensor, e: Tensor) => F.expiringAttention(c, q, pe, { age: ages, spans: e, ramp: R, nearest }, { scale: 0.7, positions }), inputs, { atol: 1e-6 });
      assert.ok(r.ok, r.message);
    }
  }
})));

test('the model\'s two attention paths agree: one op (expiringAttend) and weights then values (expiringAttention, taken while the weights are recorded), outputs and every gradient', () => inFloat64(() => tidy(() => {
  for (const norm of ['post', 'pre'] as const) {
    manualSeed(21);
    const model = make(12, { ramp: 4, initFraction: 0.5, lossCoef: 0.01 }, { norm });
    randomPredictors(model, 0.5, logit(0.4));
    const attentions = model.namedModules().map(([, m]) => m).filter((m): m is MultiHeadAttention => m instanceof MultiHeadAttention);
    assert.ok(attentions.length > 0);
    const params = model.parameters();
    const blocks = [0, 1, 2, 3].map(() => randint(0, 11, [3, 5]));
    const run = (recorded: boolean) => {
      for (const a of attentions) a.recordAttention = recorded;
      let state = model.initState(3);
      let loss: Tensor | null = null;
      const outs: Tensor[] = [];
      for (let s = 0; s < 4; s++) { // four blocks of 5: memories dropped, some rows on the ramp
        const out = model.forward(blocks[s]!, state);
        const part = out.logits.mul(out.logits.detach().sin()).sum().add(out.auxLoss ?? 0);
        loss = loss ? loss.add(part) : part;
        outs.push(out.logits);
        state = out.state;
      }
      return { logits: cat(outs, 1), grads: grad(loss!, params) };
    };
    const fused = run(false);
    assert.ok(attentions.every((a) => !a.lastAttention), 'the one op leaves no weights to record');
    const weights = run(true);
    assert.ok(attentions.every((a) => a.lastAttention), 'recorded: the weights path ran');
    assertClose(fused.logits, weights.logits.toArray(), { atol: 1e-10 });
    fused.grads.forEach((g, i) => assertClose(g!, weights.grads[i]!.toArray(), { atol: 1e-9 }));
    for (const a of attentions) {
      a.recordAttention = false;
      a.lastAttention?.dispose();
      a.lastAttention = null;
    }
  }
})));

test('the span loss is α Σ e over the cells on the ramp, / (R · M), averaged over rows', () => tidy(() => {
  const R = 2, M = 2;
  const e = [[3.5, 1.0, 2.0, 4.0], [0.5, 6.0, 1.0, 1.0]];
  const a = [[5, 2, 0, -1], [2, 1, 0, -1]];
  let expected = 0;
  for (let row = 0; row < 2; row++) {
    for (let t = 0; t < M; t++) {
      for (let j = 0; j < 4; j++) {
        const m = Math.min(1, Math.max(0, (e[row]![j]! - (a[row]![j]! + t)) / R + 1));
        if (m > 0 && m < 1) expected += e[row]![j]!;
      }
    }
  }
  expected = (0.1 * expected) / (R * M) / 2;
  assert.ok(expected > 0, 'the case has cells on the ramp');
  assertClose(spanLoss(tensor(e), tensor(a, { dtype: 'int64' }), M, 0.1, R), expected, { atol: 1e-7 });
}));

test('the drop count is the batch minimum floored to a multiple of M; rows are compacted in order', () => tidy(() => {
  const M = 2;
  // N = 10 keys, the last M are the current block (never droppable). Droppable counts 6, 5, 8.
  const rows = [
    [1, 0, 1, 1, 0, 1, 1, 1, 0, 0],
    [0, 1, 1, 0, 1, 0, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
  ];
  const droppable = tensor(rows).bool();
  const count = dropCount(droppable, M);
  assert.equal(count, 4, 'min(6, 5, 8) = 5, floored to a multiple of 2');
  // Each row drops its 4 oldest droppable memories; the others keep their order.
  assert.deepEqual(keptIndices(droppable, count).toArray(), [[1, 4, 6, 7, 8, 9], [0, 3, 5, 7, 8, 9], [4, 5, 6, 7, 8, 9]]);
  assert.equal(dropCount(tensor([[1, 1, 1, 0], [1, 0, 0, 0]]).bool(), 2), 0, 'a row with one droppable memory keeps the batch from dropping');
  // Spans of 0: every memory has expired, but the current block is still kept.
  const all = droppableMemories(tensor([[0, 0, 0, 0, 0]]), tensor([[3, 1, 0, -1, -2]], { dtype: 'int64' }), 3, 2);
  assert.deepEqual(all.long().toArray(), [[1, 1, 0, 0, 0]]);
  // e − (age + M) + R ≤ 0 decides: e = 4 at age 2 with M = 3, R = 1: 4 − 5 + 1 = 0, dropped; e = 4.5 is not.
  const edge = droppableMemories(tensor([[4, 4.5, 0, 0, 0]]), tensor([[2, 2, 0, -1, -2]], { dtype: 'int64' }), 3, 1);
  assert.deepEqual(edge.long().toArray(), [[1, 0, 0, 0, 0]]);
}));

test('the init gives every span p·L (w = 0, b = logit(p))', () => tidy(() => {
  manualSeed(2);
  const model = make(16, { initFraction: 0.25, ramp: 4 });
  model.recordDiagnostics = true;
  model.forward(randint(0, 11, [2, 4]), model.initState(2));
  for (const p of model.spanPredictors) {
    assert.deepEqual(p.weight.toArray(), [Array(16).fill(0)]);
    assertClose(p.bias, [logit(0.25)], { atol: 1e-6 });
  }
  assertClose(tensor(model.diagnostics().perToken['predicted span']!), Array(2).fill(Array(2).fill(Array(4).fill(4))), { atol: 1e-5 });
  model.dispose();
}));

/** Runs a dropping and a non-dropping model with the same weights over `blocks` blocks, in eval mode. */
function dropVersusKeep(norm: 'post' | 'pre', blocks: number, visit: (k: {
  block: number; dropOut: { logits: Tensor; auxLoss: Tensor | null }; keepOut: { logits: Tensor; auxLoss: Tensor | null };
  dropState: ExpireSpanState; keepState: ExpireSpanState; dropping: ExpireSpanTransformer; keeping: ExpireSpanTransformer;
}) => void, spans: 'random' | 'equal' = 'random'): void {
  const L = 32, R = 4, M = 4, B = 3;
  manualSeed(3);
  const dropping = make(L, { ramp: R, lossCoef: 1 }, { norm });
  // 'random': spans from about 1 to 25 (σ(-1.7 ± 2) · 32), different for every memory (rows compact
  // their own memories); 'equal': every span 0.15 · L (memories expire oldest first in every row).
  randomPredictors(dropping, spans === 'random' ? 0.5 : 0, logit(0.15));
  const keeping = make(L, { ramp: R, lossCoef: 1, drop: false }, { norm });
  keeping.loadStateDict(dropping.stateDict());
  dropping.eval();
  keeping.eval();
  const tokens = randint(0, 11, [B, M * blocks]);
  let dropState = dropping.initState(B), keepState = keeping.initState(B);
  noGrad(() => tokens.split(M, 1).forEach((chunk, block) => {
    const dropOut = dropping.forward(chunk, dropState), keepOut = keeping.forward(chunk, keepState);
    dropState = dropOut.state;
    keepState = keepOut.state;
    visit({ block, dropOut, keepOut, dropState, keepState, dropping, keeping });
  }));
  dropping.dispose();
  keeping.dispose();
}

test('dropping expired memories gives the same outputs and losses as masking them, over 20 blocks', () => tidy(() => {
  for (const norm of ['post', 'pre'] as const) {
    let dropped = 0, smallest = Infinity;
    dropVersusKeep(norm, 20, ({ block, dropOut, keepOut, dropState, keepState }) => {
      assertClose(dropOut.logits, keepOut.logits.toArray(), { atol: 1e-5 });
      assertClose(dropOut.auxLoss!, keepOut.auxLoss!.item(), { atol: 1e-6, rtol: 1e-5 });
      dropState.cache!.forEach((c, l) => {
        const kept = c.shape[1]!, all = keepState.cache![l]!.shape[1]!;
        assert.equal(kept % 4, 0, 'caches grow and shrink by multiples of M');
        assert.ok(kept <= all, 'dropping never keeps more');
        if (block === 19) smallest = Math.min(smallest, kept);
        dropped += all - kept;
      });
    });
    assert.ok(dropped > 0, 'memories were really dropped');
    assert.ok(smallest <= 24, `after 20 blocks a layer keeps at most 24 memories, not the L + R - 1 = 35 that masking alone keeps (kept ${smallest})`);
  }
  // Equal spans: every row drops its oldest memories (the copy without per-row compaction).
  let droppedInOrder = 0;
  dropVersusKeep('post', 12, ({ dropOut, keepOut, dropState, keepState }) => {
    assertClose(dropOut.logits, keepOut.logits.toArray(), { atol: 1e-5 });
    dropState.age!.forEach((age, l) => {
      const all = keepState.age![l]!.shape[1]!, kept = age.shape[1]!;
      droppedInOrder += all - kept;
      // The kept memories are the newest `kept` of what masking alone keeps, in order, in every row.
      assert.deepEqual(age.toArray(), keepState.age![l]!.narrow(1, all - kept, kept).toArray());
    });
  }, 'equal');
  assert.ok(droppedInOrder > 0, 'memories were dropped');
  const keepAux = (out: { auxLoss: Tensor | null }) => out.auxLoss!.item();
  dropVersusKeep('post', 3, ({ keepOut }) => assert.ok(keepAux(keepOut) > 0, 'the span loss is active'));
}));

test('nothing whose mask is > 0 at the next query is ever dropped', () => tidy(() => {
  const R = 4;
  let live = 0;
  dropVersusKeep('post', 20, ({ dropState, keepState, keeping, dropping }) => {
    dropping.recordDiagnostics = true; // from the next block on: the diagnostics count live memories too
    keepState.cache!.forEach((cache, l) => {
      // Every memory the non-dropping model holds, with its span from the same predictor.
      const spans = keeping.predictSpans(l, cache).toArray() as number[][];
      const ages = keepState.age![l]!.toArray() as number[][];
      const keptAges = dropState.age![l]!.toArray() as number[][];
      ages.forEach((row, b) => row.forEach((age, j) => {
        if (spans[b]![j]! - age + R > 0) {
          live++;
          assert.ok(keptAges[b]!.includes(age), `layer ${l} row ${b}: the live memory at age ${age} was dropped`);
        }
      }));
    });
    const { perLayer } = dropping.diagnostics();
    const kept = perLayer['memories kept']!;
    perLayer['live memories']?.forEach((n, l) => assert.ok(n <= kept[l]!, 'live memories are among the kept ones'));
  });
  assert.ok(live > 100, 'the check covered many live memories');
}));

test('a memory with a long span is still attended to 3000 steps later while the others are dropped', () => tidy(() => {
  const L = 4096, R = 8, M = 16, blocks = 190;
  manualSeed(4);
  const model = make(L, { ramp: R }, { layers: 1, dModel: 8, heads: 2, vocabSize: 5 });
  model.eval();
  // Token 0's embedding has +1 in feature 0, every other token -1; w = 20 on that feature: token 0
  // predicts e = L·σ(20) ≈ L, the others e = L·σ(-20) ≈ 1e-5, gone after one block.
  noGrad(() => tidy(() => {
    const embed = model.embed.weight;
    embed.copy_(cat([tensor([[1], [-1], [-1], [-1], [-1]]), randn([5, 7]).mul(0.3)], 1));
    model.spanPredictors[0]!.weight.copy_(tensor([[20, 0, 0, 0, 0, 0, 0, 0]]));
    model.spanPredictors[0]!.bias.fill_(0);
  }));
  const tokens = cat([tensor([[0]], { dtype: 'int64' }), randint(1, 5, [1, M * blocks - 1])], 1);
  let state = model.initState(1);
  let largest = 0;
  const chunks = tokens.split(M, 1);
  noGrad(() => chunks.slice(0, blocks - 1).forEach((chunk) => {
    state = tidy(() => model.forward(chunk, state).state);
    largest = Math.max(largest, state.cache![0]!.shape[1]!);
  }));
  assert.ok(largest <= 3 * M, `the cache stays small (at most ${largest} memories instead of thousands)`);
  const firstQuery = (blocks - 1) * M; // 3024
  const ages = state.age![0]!.toArray() as number[][];
  const column = ages[0]!.indexOf(firstQuery);
  assert.ok(column >= 0, 'token 0 (position 0) is still in the cache');
  const attention = model.layers[0]!.attn;
  attention.recordAttention = true;
  noGrad(() => model.forward(chunks[blocks - 1]!, state));
  const weights = attention.lastAttention!.narrow(-1, column, 1); // [1, K, M, 1]
  assert.ok(weights.gt(0).all().item(), 'every head and query of the last block attends to position 0');
  assert.ok(weights.min().item() > 1e-6);
  attention.recordAttention = false;
  attention.lastAttention?.dispose();
  model.dispose();
}));

test('gradcheck: the span predictor (w, b) through the mask, the attention and the span loss', () => inFloat64(() => tidy(() => {
  manualSeed(5);
  const L = 8, R = 3, M = 3, P = L + R;
  const attention = new MultiHeadAttention(8, 2, 0, { relative: false });
  const keyPe = randn([4, P]);
  const x = randn([2, 3 + M, 8]); // [B, C + M, H]: three cached memories, then the block
  const ages = tensor([[6, 4, 1, 0, -1, -2], [7, 5, 2, 0, -1, -2]], { dtype: 'int64' });
  const w = randn([1, 8]).mul(0.3).requiresGrad_();
  const b = tensor([-0.4], { dtype: 'float64' }).requiresGrad_();
  const run = (weight: Tensor, bias: Tensor) => {
    const spans = predictSpans(x, weight, bias, L, 2);
    const out = attention.forward({ query: x.narrow(1, 3, M), context: x, mask: null, positions: { keyPe, expiring: { age: ages, spans, ramp: R, nearest: 0 } } });
    return cat([out.flatten(), spanLoss(spans, ages, M, 1, R).view(1)]);
  };
  const onRamp = noGrad(() => rampQueries(predictSpans(x, w, b, L, 2), ages, M, R));
  assert.ok(onRamp.gt(0).any().item(), 'some memories are on the ramp');
  const r = gradcheck(run, [w, b], { atol: 1e-6 });
  assert.ok(r.ok, r.message);
  attention.dispose();
})));

test('the whole model: gradients of every span predictor match central differences', () => inFloat64(() => tidy(() => {
  manualSeed(6);
  const M = 4, B = 2;
  const model = make(8, { ramp: 4, initFraction: 0.5, lossCoef: 0.5 }, { dModel: 8 });
  randomPredictors(model, 0.4, 0);
  model.eval();
  const tokens = randint(0, 11, [B, 4 * M]);
  const [warm1, warm2, warm3, last] = tokens.split(M, 1) as [Tensor, Tensor, Tensor, Tensor];
  // Memories from earlier blocks (detached) are in the cache: their spans are recomputed with the
  // current predictor, so the gradient reaches w and b through them too.
  let state = model.initState(B);
  noGrad(() => { for (const chunk of [warm1, warm2, warm3]) state = model.forward(chunk, state).state; });
  const targets = randint(0, 11, [B, M]);
  const loss = () => {
    const out = model.forward(last, state);
    return F.crossEntropy(out.logits.reshape(B * M, 11), targets.reshape(B * M)).add(out.auxLoss!);
  };
  const params = model.spanPredictors.flatMap((p) => [p.weight, p.bias]);
  const analytic = grad(loss(), params);
  const eps = 1e-6;
  params.forEach((p, k) => {
    const g = analytic[k]!.view(-1).toArray() as number[];
    assert.ok(g.some((v) => Math.abs(v) > 1e-6), `parameter ${k} has a gradient`);
    const flat = p.detach().view(-1);
    for (let i = 0; i < g.length; i++) {
      const at = (delta: number) => tidy(() => {
        noGrad(() => flat.narrow(0, i, 1).add_(delta));
        return noGrad(() => loss().item());
      });
      const numeric = (at(eps) - at(-2 * eps)) / (2 * eps);
      noGrad(() => flat.narrow(0, i, 1).add_(eps));
      assert.ok(Math.abs(g[i]! - numeric) <= 1e-6 + 1e-4 * Math.abs(numeric), `parameter ${k} element ${i}: analytic ${g[i]}, numeric ${numeric}`);
    }
  });
  model.dispose();
})));

test('noisy spans change the mask and loss in training, not what is dropped', () => tidy(() => {
  manualSeed(7);
  const noisy = make(16, { ramp: 2, initFraction: 0.9, noisy: true }, { layers: 1 });
  randomPredictors(noisy, 0.3, logit(0.3));
  const plain = make(16, { ramp: 2, initFraction: 0.9 }, { layers: 1 });
  plain.loadStateDict(noisy.stateDict());
  noisy.train();
  plain.train();
  const tokens = randint(0, 11, [2, 40]);
  let a = noisy.initState(2), b = plain.initState(2);
  let differ = 0;
  noGrad(() => tokens.split(4, 1).forEach((chunk) => {
    const x = noisy.forward(chunk, a), y = plain.forward(chunk, b);
    if (x.logits.sub(y.logits).abs().max().item() > 1e-4) differ++;
    a = x.state;
    b = y.state;
    // One layer: its input is the embedding, so the spans, and the drop decisions, are the same.
    assert.deepEqual(a.age![0]!.toArray(), b.age![0]!.toArray());
  }));
  assert.ok(differ > 0, 'the noise clamped spans in some block');
  noisy.eval();
  const evalA = noGrad(() => noisy.forward(tokens.narrow(1, 0, 4), noisy.initState(2)).logits);
  const evalB = noGrad(() => plain.forward(tokens.narrow(1, 0, 4), plain.initState(2)).logits);
  assertClose(evalA, evalB.toArray(), { atol: 1e-6 });
  noisy.dispose();
  plain.dispose();
}));

test('expire-span options are checked', () => {
  assert.throws(() => createModel({ kind: 'expire-span', vocabSize: 5, memLen: 8, expireSpan: { initFraction: 1 } }), /initFraction/);
  assert.throws(() => createModel({ kind: 'expire-span', vocabSize: 5 }), /needs memLen > 0/);
});
