// Models and their mechanisms: masks (SPEC §1, §6), relative positions, the XL cache, memory
// tokens, gradients of the attention variants, and equivalences that must hold exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  arange, cat, createModel, F, grad, tensor, TokenEmbedding, gradcheck, manualSeed, MultiHeadAttention, ones, randint, randn,
  relShift, relSkew, segmentMask, sinusoidalDistances, tidy, type ModelConfig, type ModelConfigInput, type RelativePositions,
  sameDevice, keyBlocks, distanceBlocks, setKeyBlockSkipping, KEY_BLOCK_ROWS, type Device, type SegmentModel, type Tensor,
} from '../src/index.js';
import { modelKindSpecs, memoryDefaults } from '../src/index.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertClose, deviceTest, inFloat64 } from './helpers.js';

const tiny = (kind: ModelConfig['kind'], extra: Partial<ModelConfig> = {}, device: Device = 'cpu'): SegmentModel =>
  createModel({ kind, vocabSize: 11, layers: 2, dModel: 16, heads: 2, dInner: 32, ...extra } as ModelConfigInput, { device });

test('segment mask equals SPEC §6 cell by cell (cache 2, read 2, sequence 3, write 2)', () => {
  // Rows: queries [r0 r1 | s0 s1 s2 | w0 w1]; columns: keys [c0 c1 | r0 r1 | s0 s1 s2 | w0 w1]; 1 = blocked.
  const expected = [
    [1, 1, 0, 0, 1, 1, 1, 1, 1], // read tokens see the read block only
    [1, 1, 0, 0, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1, 1, 1], // sequence: cache, read block, causal among themselves
    [0, 0, 0, 0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0], // write tokens see everything
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
  ];
  assertClose(segmentMask({ cached: 2, read: 2, sequence: 3, write: 2 }).long(), expected, { atol: 0 });
});

test('without memory tokens the mask is Transformer-XL causal mask triu(ones(M, C+M), 1+C)', () => {
  for (const [C, M] of [[0, 4], [3, 4], [5, 2]] as const) {
    const xl = ones([M, C + M]).triu(1 + C).bool();
    assert.ok(segmentMask({ cached: C, read: 0, sequence: M, write: 0 }).eq(xl).all().item());
  }
});

test('rel_shift puts distance mlen + i - j at [i, j] (every unmasked cell), as a direct computation', () => {
  const mlen = 3, tq = 4, tk = mlen + tq;
  // x[b, h, i, p] = distance of column p (Tk-1-p) + 100 * i, so each row's values are recognisable.
  const p = arange(0, tk, 1, { dtype: 'float32' });
  const i = arange(0, tq, 1, { dtype: 'float32' });
  const x = p.neg().add(tk - 1).unsqueeze(0).add(i.unsqueeze(1).mul(100)).expand(2, 3, tq, tk).contiguous();
  const shifted = relShift(x).toArray() as number[][][][];
  for (let qi = 0; qi < tq; qi++) {
    for (let j = 0; j <= mlen + qi; j++) assert.equal(shifted[1]![2]![qi]![j], mlen + qi - j + 100 * qi, `cell ${qi},${j}`);
  }
});

test('the native rel_shift (+ content) equals pad, view, slice, view and add in every entry, with the same gradients', () => {
  // the reference's composed rel_shift, wrapped entries past the causal mask included
  const composed = (x: Tensor) => {
    const [tq, tk] = x.shape.slice(-2) as [number, number];
    const lead = x.shape.slice(0, -2);
    return F.pad(x, [1, 0]).view([...lead, tk + 1, tq]).slice(-2, 1).view([...lead, tq, tk]);
  };
  for (const dtype of ['float64', 'float32'] as const) {
    for (const [tq, tk] of [[4, 7], [5, 5], [1, 6], [6, 3], [9, 40], [33, 20]] as const) { // rows longer than a vector, and more queries than keys
      tidy(() => {
        manualSeed(tq * 10 + tk);
        const x = randn([2, 3, tq, tk], { dtype }).requiresGrad_();
        const content = randn([2, 3, tq, tk], { dtype }).requiresGrad_();
        const weights = randn([2, 3, tq, tk], { dtype });
        const fused = F.relShiftAdd(content, x);
        const [dContent, dx] = grad(fused.mul(weights).sum(), [content, x]);
        const reference = content.add(composed(x));
        const [rContent, rx] = grad(reference.mul(weights).sum(), [content, x]);
        assert.deepEqual(fused.toArray(), reference.toArray(), `${dtype} ${tq}x${tk}: values`);
        assert.deepEqual(dx!.toArray(), rx!.toArray(), `${dtype} ${tq}x${tk}: gradient of x`);
        assert.deepEqual(dContent!.toArray(), rContent!.toArray(), `${dtype} ${tq}x${tk}: gradient of content`);
        assert.deepEqual(relShift(x).toArray(), composed(x).toArray(), `${dtype} ${tq}x${tk}: relShift alone`);
      });
    }
  }
});

test('relSkew gives distance mlen + i - j everywhere, and agrees with relShift on causal cells', () => {
  const mlen = 2, tq = 3, tk = mlen + tq, width = tk + tq - 1;
  const p = arange(0, width, 1, { dtype: 'float32' });
  const i = arange(0, tq, 1, { dtype: 'float32' });
  const x = p.neg().add(tk - 1).unsqueeze(0).add(i.unsqueeze(1).mul(100)).expand(1, 1, tq, width).contiguous();
  const skewed = relSkew(x).toArray() as number[][][][];
  for (let qi = 0; qi < tq; qi++) for (let j = 0; j < tk; j++) assert.equal(skewed[0]![0]![qi]![j], mlen + qi - j + 100 * qi);
  const causal = relShift(x.narrow(-1, 0, tk).contiguous()).toArray() as number[][][][];
  for (let qi = 0; qi < tq; qi++) for (let j = 0; j <= mlen + qi; j++) assert.equal(causal[0]![0]![qi]![j], skewed[0]![0]![qi]![j]);
});

test('sinusoidal distances follow SPEC §1 (inv_freq = 1/10000^(2k/H), cat(sin, cos))', () => {
  const r = sinusoidalDistances(3, 4, 4); // distances 3, 2, 1, 0
  const row = (d: number) => [Math.sin(d), Math.sin(d / 100), Math.cos(d), Math.cos(d / 100)];
  assertClose(r, [row(3), row(2), row(1), row(0)], { atol: 1e-6 });
});

function attentionCheck(positions: 'causal' | 'bidirectional' | 'none'): void {
  inFloat64(() => tidy(() => {
    manualSeed(1);
    const attn = new MultiHeadAttention(8, 2, 0, { relative: positions !== 'none' });
    const mlen = 2, tq = 3, tk = mlen + tq;
    const query = randn([2, tq, 8]).requiresGrad_();
    const cache = randn([2, mlen, 8]).requiresGrad_();
    const bidirectional = positions === 'bidirectional';
    const mask = bidirectional ? null : segmentMask({ cached: mlen, read: 0, sequence: tq, write: 0 });
    const pos: RelativePositions | null = positions === 'none' ? null : {
      u: randn([2, 4]).requiresGrad_(), v: randn([2, 4]).requiresGrad_(),
      r: sinusoidalDistances(tk - 1, bidirectional ? tk + tq - 1 : tk, 8), bidirectional,
    };
    const fn = (q: Tensor, c: Tensor, u?: Tensor, v?: Tensor) => attn.forward({
      query: q, context: cat([c, q], 1), mask, positions: pos && u && v ? { ...pos, u, v } : null,
    });
    const inputs = pos ? [query, cache, pos.u, pos.v] : [query, cache];
    const r = gradcheck(fn, inputs, { atol: 1e-6 });
    assert.ok(r.ok, r.message);
  }));
}
test('gradcheck: attention with relative positions and a causal mask (rel_shift)', () => attentionCheck('causal'));
test('gradcheck: attention with relative positions seeing later keys (relSkew)', () => attentionCheck('bidirectional'));
test('gradcheck: attention without positions', () => attentionCheck('none'));

test('gradcheck: a whole model (RMT, pre-LN) with respect to its carried memory', () => {
  inFloat64(() => tidy(() => {
    manualSeed(2);
    const model = tiny('rmt', { numMemTokens: 2, memLen: 3, norm: 'pre', layers: 1 });
    const tokens = randint(0, 11, [2, 4]);
    const memory = randn([2, 2, 16]).requiresGrad_();
    const cache = [randn([2, 3, 16])];
    const r = gradcheck((m: Tensor) => model.forward(tokens, { cache, memory: m }).logits, [memory], { atol: 1e-6 });
    assert.ok(r.ok, r.message);
  }));
});

test('Transformer-XL cache is detached, holds the last memLen layer inputs, and grows to memLen', () => {
  tidy(() => {
    const model = tiny('xl', { memLen: 5 });
    let state = model.initState(2);
    const lengths: number[] = [];
    for (let s = 0; s < 3; s++) {
      state = model.forward(randint(0, 11, [2, 3]), state).state;
      const cache = state.cache as Tensor[];
      assert.equal(cache.length, 2);
      for (const c of cache) {
        assert.equal(c.requiresGrad, false);
        assert.equal(c.gradFn, null);
      }
      lengths.push(cache[0]!.shape[1]!);
    }
    assert.deepEqual(lengths, [3, 5, 5]);
  });
});

deviceTest('Transformer-XL on two segments equals one pass over the whole sequence (cache + relative positions)', (device) => {
  tidy(() => {
    manualSeed(3);
    const model = tiny('xl', { memLen: 8 }, device).eval();
    const tokens = randint(0, 11, [2, 8], { device });
    const whole = model.forward(tokens, model.initState(2)).logits;
    const first = model.forward(tokens.narrow(1, 0, 4), model.initState(2));
    const second = model.forward(tokens.narrow(1, 4, 4), first.state);
    const split = cat([first.logits, second.logits], 1);
    assert.ok(split.sub(whole).abs().max().item() < 1e-4, `max diff ${split.sub(whole).abs().max().item()}`);
  });
});

test('RMT memory carries information across segments; the baseline forgets', () => {
  tidy(() => {
    manualSeed(4);
    for (const [kind, carries] of [['rmt', true], ['transformer', false]] as const) {
      const model = tiny(kind, kind === 'rmt' ? { numMemTokens: 2 } : {}).eval();
      const run = (firstSegment: Tensor) => {
        const a = model.forward(firstSegment, model.initState(1));
        return model.forward(tokensB, a.state).logits;
      };
      const tokensB = randint(0, 11, [1, 4]);
      const diff = run(randint(0, 11, [1, 4])).sub(run(randint(0, 11, [1, 4]))).abs().max().item();
      assert.equal(diff > 1e-6, carries, `${kind}: second segment's logits changed by ${diff}`);
    }
  });
});

test('RMT gradients flow from a later segment back into the memory it was given', () => {
  tidy(() => {
    const model = tiny('rmt', { numMemTokens: 2 });
    const m0 = model.initState(2).memory as Tensor;
    const start = randn(m0.shape).requiresGrad_();
    const a = model.forward(randint(0, 11, [2, 3]), { cache: null, memory: start });
    const b = model.forward(randint(0, 11, [2, 3]), a.state);
    b.logits.sum().backward();
    assert.ok(start.grad!.abs().sum().item() > 0);
    // detachState cuts that path: the memory handed on no longer requires grad.
    assert.equal((model.detachState(a.state).memory as Tensor).requiresGrad, false);
  });
});

test('MemBottleneck: tokens of one segment reach each other only through memory of earlier segments', () => {
  tidy(() => {
    manualSeed(5);
    const model = tiny('mem-bottleneck', { numMemTokens: 2, memLen: 4 }).eval();
    const tokens = randint(0, 11, [1, 4]);
    const changed = tokens.clone();
    changed.indexPut_([null, arange(0, 1)], randint(0, 11, [1, 1]).add(1).remainder(11));
    const a = model.forward(tokens, model.initState(1)), b = model.forward(changed, model.initState(1));
    // Position 0 changed; positions 1..3 of the same segment do not see it.
    assert.ok(a.logits.narrow(1, 1, 3).sub(b.logits.narrow(1, 1, 3)).abs().max().item() < 1e-6);
    // The next segment does, through the memory reading the cache.
    const next = randint(0, 11, [1, 4]);
    const diff = model.forward(next, a.state).logits.sub(model.forward(next, b.state).logits).abs().max().item();
    assert.ok(diff > 1e-6);
  });
});

deviceTest('every model kind runs three segments with the shapes of the interface', (device) => {
  tidy(() => {
    const kinds: [ModelConfig['kind'], Partial<ModelConfig>][] = [
      ['transformer', {}], ['xl', { memLen: 4 }], ['mem-transformer', { numMemTokens: 3 }],
      ['mem-bottleneck', { numMemTokens: 3, memLen: 4 }], ['rmt', { numMemTokens: 3 }], ['rmt', { numMemTokens: 3, memLen: 4 }],
    ];
    for (const [kind, extra] of kinds) {
      const model = tiny(kind, extra, device);
      let state = model.initState(2);
      for (let s = 0; s < 3; s++) {
        const out = model.forward(randint(0, 11, [2, 5], { device }), state);
        assert.deepEqual(out.logits.shape, [2, 5, 11], kind);
        assert.ok(sameDevice(out.logits.device, device), `${kind}: logits on ${out.logits.device}, model on ${device}`);
        state = out.state;
      }
      if (kind === 'rmt') assert.deepEqual((state.memory as Tensor).shape, [2, 3, 16]);
    }
  });
});

test('invalid model configs are rejected with what is allowed', () => {
  assert.throws(() => createModel({ kind: 'xl', vocabSize: 5 }), /memLen > 0/);
  assert.throws(() => createModel({ kind: 'rmt', vocabSize: 5 }), /numMemTokens > 0/);
  assert.throws(() => createModel({ kind: 'gpt' as never, vocabSize: 5 }), /not one of transformer, xl/);
  assert.throws(() => createModel({ kind: 'transformer', vocabSize: 5, dModel: 30, heads: 4 }), /divisible/);
  assert.throws(() => createModel({ kind: 'transformer', vocabSize: 5, depth: 3 } as never), /unknown option\(s\) depth/);
});

test("every kind's registry entry: its rules, its memory defaults, and a Diagnostics record after a forward", () => {
  tidy(() => {
    assert.deepEqual(modelKindSpecs.map((s) => s.kind), ['transformer', 'xl', 'mem-transformer', 'mem-bottleneck', 'rmt', 'sequential', 'adaptive-span', 'expire-span', 'compressive', 'feedback']);
    for (const spec of modelKindSpecs) {
      const sizes = memoryDefaults({ kind: spec.kind }, 6);
      assert.equal(sizes.memLen, spec.memLen.use === 'required' ? 6 : 0, spec.kind);
      assert.equal(sizes.numMemTokens, spec.numMemTokens.use === 'required' ? 10 : 0, spec.kind);
      // The defaults satisfy the kind's own rules, and breaking a 'required' rule is refused.
      const model = createModel({ kind: spec.kind, vocabSize: 7, layers: 1, dModel: 8, heads: 2, dInner: 16, ...sizes } as ModelConfigInput);
      if (spec.memLen.use === 'required') assert.throws(() => createModel({ kind: spec.kind, vocabSize: 7, ...sizes, memLen: 0 } as ModelConfigInput), /needs memLen > 0/);
      if (spec.numMemTokens.use === 'none') assert.throws(() => createModel({ kind: spec.kind, vocabSize: 7, ...sizes, numMemTokens: 2 } as ModelConfigInput), /numMemTokens must be 0|has no memory tokens/);
      // A kind's own option keys are filled (non-null), every other kind's are null.
      const own = new Set<string>(spec.options.map((o) => o.key));
      for (const key of ['adaptiveSpan', 'expireSpan', 'compressive', 'window', 'initialMemory', 'finalNorm', 'rmtCache']) {
        assert.equal((model.config as unknown as Record<string, unknown>)[key] !== null, own.has(key), `${spec.kind}: ${key}`);
      }
      model.recordDiagnostics = true;
      model.forward(randint(0, 7, [2, 3]), model.initState(2));
      const d = model.diagnostics();
      assert.deepEqual(Object.keys(d).sort(), ['perHead', 'perLayer', 'perToken', 'scalars'], spec.kind);
      for (const v of Object.values(d.scalars)) assert.ok(Number.isFinite(v), spec.kind);
      for (const v of Object.values(d.perLayer)) assert.equal(v.length, 1, `${spec.kind}: one value per layer`);
      for (const v of Object.values(d.perHead)) assert.deepEqual([v.length, v[0]!.length], [1, 2], `${spec.kind}: [layer][head]`);
      for (const v of Object.values(d.perToken)) assert.deepEqual([v.length, v[0]!.length, v[0]![0]!.length], [1, 2, 3], `${spec.kind}: [layer][row][position]`);
      if (model.memoryFootprint) assert.equal(d.scalars['memories attended'], model.memoryFootprint(), spec.kind);
      model.dispose();
    }
  });
});

test('one attention path: attention over keys/values projected beforehand, in pieces, equals the attention that projects them', () => {
  tidy(() => {
    manualSeed(3);
    const attn = new MultiHeadAttention(8, 2, 0, { relative: false });
    const [B, K, D, T] = [2, 2, 4, 5];
    const query = randn([B, 1, 8]);
    const context = randn([B, T, 8]);
    const keyPe = randn([D, T]); // column d: distance d
    // the query at the last key's position: key j at distance T - 1 - j
    const distance = tensor([[4, 3, 2, 1, 0]], { dtype: 'int64' });
    const direct = attn.forward({ query, context, mask: null, positions: { keyPe, distance } });
    const [k, v] = attn.kv.forward(context).view(B, T, 2, K, D).permute(2, 0, 3, 1, 4).unbind(0);
    const byKey = keyPe.flip(1); // [D, T]: key j is at distance T - 1 - j
    const whole = attn.attendProjected({ query, keys: [[k!, v!]], keyPositions: byKey });
    const pieces = attn.attendProjected({ query, keys: [[k!.narrow(2, 0, 2), v!.narrow(2, 0, 2)], [k!.narrow(2, 2, 3), v!.narrow(2, 2, 3)]], keyPositions: byKey });
    assertClose(whole, direct.toArray(), { atol: 1e-6 });
    assertClose(pieces, direct.toArray(), { atol: 1e-6 });
    attn.dispose();
  });
});

test('layering: src/memory imports nothing from src/models, and no code outside a mechanism asks which model it has', () => {
  const root = join(import.meta.dirname, '..', '..', 'src');
  const sources = (dir: string) => readdirSync(join(root, dir)).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(root, dir, f), 'utf8'));
  for (const text of sources('memory')) assert.doesNotMatch(text, /from '\.\.\/models\//);
  for (const dir of ['inspect', 'train']) for (const text of sources(dir)) assert.doesNotMatch(text, /instanceof \w*Transformer|Kinds\.includes/);
  for (const text of sources('models')) assert.doesNotMatch(text, /c\.compressive\?|c\.expireSpan\?|kind === 'xl'/);
});

test('building and disposing a model leaves no native tensor behind', async () => {
  const { liveTensors } = await import('../src/index.js');
  const before = liveTensors();
  tiny('rmt', { numMemTokens: 2, memLen: 3 }).dispose();
  tiny('mem-bottleneck', { numMemTokens: 2, memLen: 3 }).dispose();
  assert.equal(liveTensors(), before);
});

test('TokenEmbedding with previousToken adds the embedding of the token before (a start row at position 0)', () => {
  tidy(() => {
    manualSeed(0);
    const e = new TokenEmbedding(5, 3, { previousToken: true });
    const tokens = tensor([[4, 1, 1, 0], [2, 3, 4, 2]], { dtype: 'int64' });
    const E = e.weight.toArray() as number[][], P = e.previous!.toArray() as number[][];
    const rows = tokens.toArray() as number[][];
    const expected = rows.map((row) => row.map((t, i) => E[t]!.map((x, d) => x + P[i === 0 ? 5 : row[i - 1]!]![d]!)));
    assertClose(e.forward(tokens), expected, { atol: 1e-6 });
    // without the option: the plain embedding, and no extra parameter in the state dict
    const plain = new TokenEmbedding(5, 3);
    assert.equal(plain.previous, null);
    assert.deepEqual(Object.keys(plain.stateDict()), ['weight']);
    assertClose(plain.forward(tokens), F.embedding(tokens, plain.weight).toArray(), { atol: 0 });
  });
});

test('previousToken: every model family takes it, and gradients reach the previous-token embedding', () => {
  tidy(() => {
    manualSeed(1);
    const tokens = tensor([[3, 4, 5, 6]], { dtype: 'int64' });
    for (const kind of ['transformer', 'rmt', 'mem-bottleneck', 'sequential', 'feedback'] as const) {
      const memory = kind === 'rmt' || kind === 'mem-bottleneck' ? { numMemTokens: 2 } : kind === 'sequential' || kind === 'feedback' ? { memLen: 4 } : {};
      const model = tiny(kind, { previousToken: true, ...memory });
      const previous = model.namedParameters().find(([name]) => name === 'embed.previous')?.[1];
      assert.ok(previous, kind);
      const g = grad(model.forward(tokens, model.initState(1)).logits.sum(), [previous]);
      assert.ok(g[0]!.abs().sum().item() > 0, kind);
      assert.ok(!tiny(kind, memory).namedParameters().some(([name]) => name === 'embed.previous'), kind);
    }
  });
});

test('model config: previousToken must be a boolean', () => {
  assert.throws(() => createModel({ kind: 'transformer', vocabSize: 5, previousToken: 1 as unknown as boolean }), /previousToken must be true or false/);
});

test('keyBlocks: per 64 queries the keys from the first to the last one any of them sees; null where that skips under a fifth', () => {
  tidy(() => {
    assert.equal(KEY_BLOCK_ROWS, 64);
    // causal, 150 queries, no cache: blocks of 64, 64 and 22 rows
    assert.deepEqual(keyBlocks(segmentMask({ cached: 0, read: 0, sequence: 150, write: 0 })), [0, 64, 0, 64, 64, 128, 0, 128, 128, 150, 0, 150]);
    // a cache of 20 seen by every query
    assert.deepEqual(keyBlocks(segmentMask({ cached: 20, read: 0, sequence: 150, write: 0 })), [0, 64, 0, 84, 64, 128, 0, 148, 128, 150, 0, 170]);
    // RMT: 10 read rows see the read block only, 10 write rows see everything (the last block)
    assert.deepEqual(keyBlocks(segmentMask({ cached: 0, read: 10, sequence: 140, write: 10 })), [0, 64, 0, 64, 64, 128, 0, 128, 128, 160, 0, 160]);
    // one block of queries seeing every key: nothing to skip
    assert.equal(keyBlocks(segmentMask({ cached: 8, read: 0, sequence: 40, write: 0 })), null);
    // a block whose queries see nothing is left out; the mask is read once (a second call gives the same object)
    const mask = tensor(Array.from({ length: 130 }, (_, i) => Array.from({ length: 200 }, (_, j) => i < 64 || j > i)), { dtype: 'bool' });
    const blocks = keyBlocks(mask);
    assert.deepEqual(blocks, [64, 128, 0, 128, 128, 130, 0, 130]);
    assert.equal(keyBlocks(mask), blocks);
    // relative positions: entry [i, j] reads column j + Tq − 1 − i of the distance scores
    assert.deepEqual(distanceBlocks([0, 64, 0, 84, 64, 128, 0, 148], 128, 148), [0, 64, 64, 148, 64, 128, 0, 148]);
  });
});

test('attention skipping masked keys by blocks gives the logits and gradients of attention over every key, for every masked kind', () => {
  const kinds: [ModelConfig['kind'], Partial<ModelConfig>][] = [
    ['transformer', {}], ['xl', { memLen: 20 }], ['mem-transformer', { numMemTokens: 4 }], ['mem-bottleneck', { memLen: 20, numMemTokens: 4 }],
    ['rmt', { numMemTokens: 4 }], ['sequential', { memLen: 40 }], ['adaptive-span', { memLen: 40 }], ['compressive', { memLen: 20 }],
  ];
  assert.ok(keyBlocks(segmentMask({ cached: 20, read: 0, sequence: 150, write: 0 })), 'segments of 150 tokens are long enough to skip keys');
  for (const [kind, extra] of kinds) {
    const run = (skip: boolean): { logits: number[]; grads: number[][] } => {
      const was = setKeyBlockSkipping(skip);
      manualSeed(4);
      const model = tiny(kind, extra);
      try {
        return tidy(() => {
          let state = model.initState(2);
          const logits: Tensor[] = [];
          let loss: Tensor | null = null;
          for (const seed of [1, 2]) { // two segments: the carried state too
            manualSeed(seed);
            const out = model.forward(randint(0, 11, [2, 150]), state);
            logits.push(out.logits);
            const l = out.logits.logSoftmax(-1).mean().neg();
            loss = loss ? loss.add(l) : l;
            state = out.state;
          }
          loss!.backward();
          return { logits: cat(logits, 1).flatten().toArray() as number[], grads: model.parameters().map((p) => (p.grad ? (p.grad.flatten().toArray() as number[]) : [])) };
        });
      } finally {
        model.dispose();
        setKeyBlockSkipping(was);
      }
    };
    const [skipped, every] = [run(true), run(false)];
    const diff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    assert.ok(diff(skipped.logits, every.logits) <= 1e-5, `${kind}: logits differ by ${diff(skipped.logits, every.logits)}`);
    skipped.grads.forEach((g, i) => {
      const scale = Math.max(1, ...g.map(Math.abs));
      assert.ok(diff(g, every.grads[i]!) <= 1e-5 * scale, `${kind}: gradient ${i} differs by ${diff(g, every.grads[i]!)}`);
    });
  }
});
