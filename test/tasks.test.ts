// The data layer: task generators against their definitions (SPEC §8), the seeded PRNG, character
// vocabularies, text splits, the stream batcher, the Brown loader and the metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  Rng, makeTask, taskNames, CopyTask, ReverseTask, AssociativeRetrievalTask, QuadraticEquationsTask,
  QUADRATIC_CHARS, QUADRATIC_BLOCK_WIDTH, quadraticBlocks, PAD, IGNORE_INDEX, START, FIRST_SYMBOL, QUERY, FIRST_KEY,
  CharVocab, UNKNOWN_ID, splitText, splitTokens, StreamBatcher, loadBrownText, stripBrownTags, loadTinyShakespeare,
  TINY_SHAKESPEARE_PATH, tokenAccuracy, exactMatch, bitsPerCharacter, mergeCounts, EngramError, tensor, liveTensors,
  type TaskSample,
} from '../src/index.js';
import { checkTaskRow } from './helpers.js';

const isConfigError = (pattern: RegExp) => (e: unknown) => e instanceof EngramError && e.kind === 'config' && pattern.test(e.message);

// ---- PRNG -------------------------------------------------------------------------------------------------

test('Rng is xoshiro128** (reference outputs), seeded deterministically, uniform and restorable', () => {
  // reference: xoshiro128starstar.c from state {1, 2, 3, 4}
  const ref = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual([ref.nextUint32(), ref.nextUint32(), ref.nextUint32(), ref.nextUint32()], [11520, 0, 5927040, 70819200]);

  const draw = (r: Rng) => Array.from({ length: 16 }, () => r.nextUint32());
  assert.deepEqual(draw(new Rng(42)), draw(new Rng(42)));
  assert.notDeepEqual(draw(new Rng(42)), draw(new Rng(43)));
  assert.notDeepEqual(draw(new Rng(7)), draw(new Rng(7 + 2 ** 32)), 'the high bits of a seed matter');

  const r = new Rng(1);
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < 7000; i++) counts[r.int(7)]!++;
  for (const c of counts) assert.ok(c > 850 && c < 1150, `int(7) counts ${counts}`);
  for (let i = 0; i < 1000; i++) {
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    const k = r.intBetween(-3, 3);
    assert.ok(Number.isInteger(k) && k >= -3 && k <= 3);
  }
  const pick = r.sampleWithoutReplacement(10, 10);
  assert.deepEqual([...pick].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  const saved = r.state();
  const a = draw(r);
  assert.deepEqual(draw(Rng.fromState(saved)), a, 'state() then fromState() continues the sequence');
  assert.throws(() => new Rng(0.5), isConfigError(/safe integer/));
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), isConfigError(/not all zero/));
});

// ---- copy and reverse -------------------------------------------------------------------------------------

test('copy: target block is [1, s, s]; loss only where the next token is the copy; SPEC totals', () => {
  const task = makeTask('copy');
  assert.ok(task instanceof CopyTask);
  assert.deepEqual([task.sourceLength, task.numSymbols, task.length, task.vocabSize, task.chance], [24, 10, 72, 12, 0.1]);
  assert.equal(makeTask('copy', { sourceLength: 120 }).numSymbols, 8, '8 symbols for length >= 120');
  assert.equal(makeTask('copy', { sourceLength: 120 }).length, 360);
  const rng = new Rng(3);
  for (let k = 0; k < 20; k++) {
    const s = task.sample(rng);
    checkTaskRow(task, s);
    const n = 24;
    const src = s.tokens.slice(0, n);
    for (const x of src) assert.ok(x >= FIRST_SYMBOL && x < FIRST_SYMBOL + 10);
    assert.equal(s.tokens[n], START);
    assert.deepEqual(s.targets.slice(0, n), new Array(n).fill(IGNORE_INDEX), 'no loss on the source');
    assert.deepEqual(s.targets.slice(n, 3 * n), [...src, ...src], 'the target is the source twice');
    assert.deepEqual(s.tokens.slice(n + 1, 3 * n), [...src, ...src].slice(0, 2 * n - 1));
    assert.deepEqual(s.answerMask, s.targets.map((t) => t !== IGNORE_INDEX));
  }
  assert.match(task.decode(task.sample(new Rng(1)).tokens), /^[0-9]{24}\|[0-9]{47}$/);
});

test('reverse: target block is [1, reverse(s)]', () => {
  const task = makeTask('reverse', { sourceLength: 40, numSymbols: 5 });
  assert.ok(task instanceof ReverseTask);
  assert.equal(task.length, 80);
  const rng = new Rng(4);
  for (let k = 0; k < 20; k++) {
    const s = task.sample(rng);
    checkTaskRow(task, s);
    const src = s.tokens.slice(0, 40);
    for (const x of src) assert.ok(x >= FIRST_SYMBOL && x < FIRST_SYMBOL + 5);
    assert.equal(s.tokens[40], START);
    assert.deepEqual(s.targets.slice(40, 80), [...src].reverse());
    assert.deepEqual(s.targets.slice(0, 40), new Array(40).fill(IGNORE_INDEX));
  }
});

test('segments: segmentLength = ceil(length / numSegments), the rest padded without loss; bad splits refused', () => {
  for (const [segs, len] of [[1, 48], [2, 24], [4, 12], [6, 8]]) {
    const t = makeTask('reverse', { numSegments: segs });
    assert.deepEqual([t.numSegments, t.segmentLength], [segs, len]);
  }
  const copy5 = makeTask('copy', { numSegments: 5 }); // 72 tokens -> 5 x 15 = 75
  assert.equal(copy5.segmentLength, 15);
  const s = copy5.sample(new Rng(9));
  checkTaskRow(copy5, s);
  assert.deepEqual(s.tokens.slice(72), [PAD, PAD, PAD]);
  assert.deepEqual(s.targets.slice(72), [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
  assert.equal(s.targets[71], s.targets[71 - 24], 'the last input predicts the last answer token');
  const b = copy5.batch(3, new Rng(9));
  assert.deepEqual(b.tokens.shape, [3, 75]);
  assert.equal(b.tokens.dtype, 'int64');
  assert.equal(b.targets.dtype, 'int64');
  assert.equal(b.answerMask!.dtype, 'bool');
  assert.deepEqual((b.tokens.toArray() as number[][])[0], s.tokens, 'batch row 0 is the first sample of the same seed');
  assert.deepEqual((b.targets.toArray() as number[][])[0], s.targets);
  assert.deepEqual((b.answerMask!.toArray() as boolean[][])[0], s.answerMask);
  for (const t of [b.tokens, b.targets, b.answerMask!]) t.dispose();
  const ar3 = makeTask('associative-retrieval', { numSegments: 3 }); // 10 tokens -> 3 x 4
  assert.deepEqual([ar3.segmentLength, ar3.numSegments * ar3.segmentLength], [4, 12]);
  assert.throws(() => makeTask('associative-retrieval', { numSegments: 6 }), isConfigError(/padding only.*1, 2, 3, 4, 5, 10/));
  assert.throws(() => makeTask('copy', { numSegments: 0 }), isConfigError(/numSegments must be an integer/));
});

// ---- associative retrieval ----------------------------------------------------------------------------------

test('associative retrieval: distinct keys and values, the answer is the queried key\'s value', () => {
  const task = makeTask('associative-retrieval');
  assert.ok(task instanceof AssociativeRetrievalTask);
  assert.deepEqual([task.length, task.numPairs, task.vocabSize], [10, 4, 38]);
  const rng = new Rng(5);
  const queried = new Array<number>(4).fill(0);
  for (let k = 0; k < 400; k++) {
    const s = task.sample(rng);
    checkTaskRow(task, s);
    const keys = [0, 2, 4, 6].map((i) => s.tokens[i]!);
    const values = [1, 3, 5, 7].map((i) => s.tokens[i]!);
    for (const key of keys) assert.ok(key >= FIRST_KEY && key < FIRST_KEY + 26);
    for (const v of values) assert.ok(v >= task.firstValue && v < task.firstValue + 10);
    assert.equal(new Set(keys).size, 4, 'keys without replacement');
    assert.equal(new Set(values).size, 4, 'values without replacement');
    assert.equal(s.tokens[9], QUERY);
    const q = keys.indexOf(s.tokens[8]!);
    assert.ok(q >= 0, 'the query is one of the keys');
    queried[q]!++;
    assert.deepEqual(s.targets, [...new Array(9).fill(IGNORE_INDEX), values[q]]);
    assert.deepEqual(s.answerMask, [...new Array(9).fill(false), true]);
  }
  for (const c of queried) assert.ok(c > 60, `each pair gets queried: ${queried}`);
  const text = task.decode(task.sample(new Rng(2)).tokens);
  assert.match(text, /^([a-z][0-9]){4}[a-z]\?$/);
});

// ---- quadratic equations ------------------------------------------------------------------------------------

/** a, b, c of an `a*x^2+b*x+c=0` block. */
function parseQuadratic(s: string): [number, number, number] {
  const m = /^(-?\d*)\*?x\^2(?:([+-]\d*)\*?x)?([+-]\d+)?=0$/.exec(s);
  assert.ok(m, `not a quadratic: ${s}`);
  const coef = (g: string | undefined, dflt: number) => (g === undefined ? dflt : g === '' || g === '+' ? 1 : g === '-' ? -1 : Number(g));
  return [coef(m[1], 1), coef(m[2], 0), m[3] === undefined ? 0 : Number(m[3])];
}

/** The full 180-character sequence of a sample (its last character is only a target). */
function quadraticText(task: QuadraticEquationsTask, s: TaskSample): string {
  const ids = [...s.tokens.slice(0, task.length), s.targets[task.length - 1]!];
  return ids.map((id) => QUADRATIC_CHARS[id - 1]).join('');
}

test('quadratic equations: SPEC example, arithmetic of every block, widths of 30, loss layout', () => {
  assert.deepEqual(quadraticBlocks(-4, -98, 552), ['-4*x^2+392*x-2208=0', 'x^2-98*x+552=0', 'D=98^2-4*1*552=7396=86^2', 'x=(98-86)/2=6', 'x=(98+86)/2=92', '6,92']);
  const task = makeTask('quadratic-equations', { numSegments: 6 });
  assert.ok(task instanceof QuadraticEquationsTask);
  assert.deepEqual([task.length, task.segmentLength, task.vocabSize], [179, 30, QUADRATIC_CHARS.length + 1]);
  const rng = new Rng(6);
  let noRoots = 0;
  const N = 1500;
  for (let k = 0; k < N; k++) {
    const s = task.sample(rng);
    if (k < 50) checkTaskRow(task, s);
    for (let p = 0; p < 180; p++) {
      assert.equal(s.targets[p] !== IGNORE_INDEX, p >= 29 && p < 179, 'loss on blocks 2-6');
      assert.equal(s.answerMask[p], p >= 149 && p < 179, 'exact match on block 6');
    }
    const text = quadraticText(task, s);
    assert.equal(text.length, 180);
    const blocks = Array.from({ length: 6 }, (_, i) => text.slice(i * QUADRATIC_BLOCK_WIDTH, (i + 1) * QUADRATIC_BLOCK_WIDTH));
    for (const b of blocks) assert.match(b, /^[^ ]+ +$/, 'a block is its text then filler spaces, 30 in all');
    const [eq, canon, disc, r1, r2, answer] = blocks.map((b) => b.trimEnd()) as [string, string, string, string, string, string];
    const [A, B, C] = parseQuadratic(eq);
    const [one, b, c] = parseQuadratic(canon);
    assert.equal(one, 1);
    assert.ok(Math.abs(A) >= 1 && Math.abs(A) <= 10);
    assert.deepEqual([B, C], [A * b + 0, A * c + 0], 'canonical form = equation / α'); // + 0: no -0
    const d = /^D=(\d+)\^2([+-])4\*1\*(\d+)=(-?\d+)(?:=(\d+)\^2|<0)$/.exec(disc);
    assert.ok(d, `discriminant block ${disc}`);
    assert.equal(Number(d[1]), Math.abs(b));
    assert.equal(d[2] === '-' ? Number(d[3]) : -Number(d[3]), c);
    const D = Number(d[4]);
    assert.equal(D, b * b - 4 * c);
    if (D < 0) {
      noRoots++;
      assert.deepEqual([r1, r2, answer], ['x=none', 'x=none', 'none']);
      continue;
    }
    const r = Number(d[5]);
    assert.equal(r * r, D);
    const x1m = /^x=\((-?\d+)-(\d+)\)\/2=(-?\d+)$/.exec(r1), x2m = /^x=\((-?\d+)\+(\d+)\)\/2=(-?\d+)$/.exec(r2);
    assert.ok(x1m && x2m, `root blocks ${r1} ${r2}`);
    assert.deepEqual([Number(x1m[1]), Number(x1m[2]), Number(x2m[1]), Number(x2m[2])], [-b + 0, r, -b + 0, r]);
    const x1 = Number(x1m[3]), x2 = Number(x2m[3]);
    assert.deepEqual([x1, x2], [(-b - r) / 2 + 0, (-b + r) / 2 + 0]);
    for (const x of [x1, x2]) {
      assert.ok(x >= -100 && x <= 100);
      assert.equal(A * x * x + B * x + C, 0, `${x} solves ${eq}`);
    }
    assert.equal(answer, `${x1},${x2}`);
  }
  assert.ok(Math.abs(noRoots / N - 0.2) < 0.035, `no-real-roots fraction ${noRoots / N}`);
  assert.equal(makeTask('quadratic-equations', { noRealRootsFraction: 0 }).batch(200, new Rng(1)).tokens.shape[1], 179);
  const decoded = task.decode(task.sample(new Rng(8)).tokens);
  assert.equal(decoded.split(';').length, 6);
});

// ---- determinism and registry -------------------------------------------------------------------------------

test('every task: the same seed gives the same batch, another seed another', () => {
  for (const name of taskNames) {
    const task = makeTask(name);
    const rows = (seed: number) => {
      const b = task.batch(4, new Rng(seed));
      const out = [b.tokens.toArray(), b.targets.toArray()];
      for (const t of [b.tokens, b.targets, b.answerMask!]) t.dispose();
      return out;
    };
    assert.deepEqual(rows(11), rows(11), name);
    assert.notDeepEqual(rows(11), rows(12), name);
    const s = task.sample(new Rng(11));
    assert.ok(task.decode(s.tokens).length > 0);
  }
});

test('makeTask validates names, option keys and ranges with config errors listing what is allowed', () => {
  assert.throws(() => makeTask('sort' as 'copy'), isConfigError(/unknown task 'sort'.*copy, reverse, associative-retrieval, quadratic-equations/));
  assert.throws(() => makeTask('copy', { sourceLen: 10 } as object), isConfigError(/unknown option 'sourceLen'; allowed: sourceLength, numSymbols, numSegments/));
  assert.throws(() => makeTask('associative-retrieval', { sourceLength: 10 } as object), isConfigError(/allowed: numPairs, numKeys, numValues, numSegments/));
  assert.throws(() => makeTask('copy', { numSymbols: 1 }), isConfigError(/numSymbols must be an integer in \[2,/));
  assert.throws(() => makeTask('reverse', { sourceLength: 2.5 }), isConfigError(/sourceLength/));
  assert.throws(() => makeTask('associative-retrieval', { numPairs: 11 }), isConfigError(/numPairs must be an integer in \[1, 10\]/));
  assert.throws(() => makeTask('associative-retrieval', { numKeys: 27 }), isConfigError(/numKeys/));
  assert.throws(() => makeTask('quadratic-equations', { noRealRootsFraction: 1.5 }), isConfigError(/noRealRootsFraction/));
  assert.equal(makeTask('associative-retrieval', { numPairs: 6, numSegments: 2 }).length, 14);
});

// ---- character vocabulary and splits ---------------------------------------------------------------------

test('CharVocab: ids in code-point order, 0 for unknown, saved and restored as a string', () => {
  const v = CharVocab.fromText('hello, world 🌍!');
  assert.equal(v.toString(), ' !,dehlorw🌍');
  assert.equal(v.size, 12);
  const ids = v.encode('hello 🌍');
  assert.deepEqual([...ids], [6, 5, 7, 7, 8, 1, 11]);
  assert.equal(v.decode(ids), 'hello 🌍');
  assert.deepEqual([...v.encode('hey?')], [6, 5, UNKNOWN_ID, UNKNOWN_ID]);
  assert.equal(v.decode(v.encode('hey?')), 'he\uFFFD\uFFFD');
  const back = CharVocab.fromString(v.toString());
  assert.deepEqual([...back.encode('world 🌍!')], [...v.encode('world 🌍!')]);
  assert.throws(() => CharVocab.fromString('ba'), isConfigError(/code-point order/));
  assert.equal(CharVocab.fromText('cab').toString(), CharVocab.fromText('abcabc').toString(), 'ids do not depend on text order');
});

test('splitText / splitTokens: contiguous 90/5/5 by default, fractions checked', () => {
  const text = 'abcdefghij'.repeat(100);
  const s = splitText(text);
  assert.deepEqual([s.train.length, s.valid.length, s.test.length], [900, 50, 50]);
  assert.equal(s.train + s.valid + s.test, text);
  const t = splitTokens(Int32Array.from({ length: 200 }, (_, i) => i), { train: 0.5, valid: 0.25, test: 0.25 });
  assert.deepEqual([t.train.length, t.valid[0], t.test[0], t.test.length], [100, 100, 150, 50]);
  assert.throws(() => splitText(text, { train: 0.9, valid: 0.2 }), isConfigError(/sum to 1/));
  const surrogate = splitText('a🌍'.repeat(10), { train: 0.5, valid: 0.25, test: 0.25 });
  for (const part of Object.values(surrogate)) assert.ok(!/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(part), 'no half surrogate pair');
});

// ---- stream batcher ------------------------------------------------------------------------------------------

test('StreamBatcher: B contiguous streams, targets shifted by one, epochs, exact resume', () => {
  const data = Int32Array.from({ length: 41 }, (_, i) => i + 1); // value = position + 1
  const B = 3, M = 4;
  const sb = new StreamBatcher(data, { batchSize: B, segmentLength: M });
  assert.deepEqual([sb.streamLength, sb.stepsPerEpoch], [13, 4]); // S = floor(40 / 3); ceil(13 / 4)
  const streams: number[][] = [[], [], []];
  for (let k = 0; k < 4; k++) {
    const seg = sb.next();
    assert.deepEqual([seg.epoch, seg.step, seg.first, seg.last], [0, k, k === 0, k === 3]);
    assert.deepEqual(seg.tokens.shape, [B, k === 3 ? 1 : M], 'short last step');
    const tok = seg.tokens.toArray() as number[][], tgt = seg.targets.toArray() as number[][];
    for (let b = 0; b < B; b++) {
      assert.deepEqual(tgt[b], tok[b]!.map((x) => x + 1), 'targets are the next tokens');
      streams[b]!.push(...tok[b]!);
    }
    seg.tokens.dispose();
    seg.targets.dispose();
  }
  for (let b = 0; b < B; b++) assert.deepEqual(streams[b], [...data.subarray(b * 13, b * 13 + 13)], `stream ${b} covers its slice in order`);
  assert.deepEqual([sb.epoch, sb.step], [1, 0], 'wraps to the next epoch');

  // resume: a new batcher restored to a saved position yields what the original yields next
  sb.next();
  const pos = JSON.parse(JSON.stringify(sb.position()));
  const resumed = new StreamBatcher(data, { batchSize: B, segmentLength: M });
  resumed.restore(pos);
  for (let k = 0; k < 5; k++) {
    const a = sb.next(), r = resumed.next();
    assert.deepEqual([r.epoch, r.step], [a.epoch, a.step]);
    assert.deepEqual(r.tokens.toArray(), a.tokens.toArray());
    assert.deepEqual(r.targets.toArray(), a.targets.toArray());
    for (const t of [a.tokens, a.targets, r.tokens, r.targets]) t.dispose();
  }
  assert.throws(() => new StreamBatcher(data, { batchSize: 4, segmentLength: M }).restore(pos), isConfigError(/position saved for batchSize 3/));

  const padded = new StreamBatcher(data, { batchSize: B, segmentLength: M, remainder: 'pad' }).arraysAt(3);
  assert.equal(padded.width, M);
  assert.deepEqual([...padded.targets.subarray(0, 4)], [14, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
  assert.equal(new StreamBatcher(data, { batchSize: B, segmentLength: M, remainder: 'drop' }).stepsPerEpoch, 3);
  const evalPass = new StreamBatcher(data, { batchSize: 1, segmentLength: 16 });
  let seen = 0;
  for (const seg of evalPass.restOfEpoch()) {
    seen += seg.targets.shape[1]!;
    seg.tokens.dispose();
    seg.targets.dispose();
  }
  assert.equal(seen, 40, 'one pass predicts every token but the first');
  assert.throws(() => new StreamBatcher(data.subarray(0, 3), { batchSize: 3, segmentLength: 2 }), isConfigError(/too few/));
});

// ---- corpora -------------------------------------------------------------------------------------------------

test('Brown corpus: tags stripped, tokens kept', async () => {
  assert.equal(stripBrownTags('\n\n\tThe/at 1/2/cd //in AAb//nn ./.\n\n\tNext/ap line/nn'), 'The 1/2 / AAb/ .\nNext line');
  const text = await loadBrownText();
  assert.ok(text.startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced `` no evidence '' that any irregularities took place .\n"));
  assert.ok(text.length > 5_000_000, `${text.length} characters`);
  const tagged = /\S\/(at|nn|nns|in|vbd|vb|jj|np|cc|rb|cd|dt|ppss|pps|to|be|cs)(-tl|-hl|-nc)?(?=\s|$)/;
  assert.doesNotMatch(text, tagged, 'no word/tag left');
  const words = text.split(/\s+/);
  const slashed = words.filter((w) => w.includes('/')).length;
  assert.ok(slashed < words.length / 1000, `${slashed} of ${words.length} words keep a slash (and/or, 1/2, ...)`);
  const news = await loadBrownText({ categories: ['news'] });
  assert.ok(news.length < text.length / 5 && text.startsWith(news.slice(0, 1000)));
  await assert.rejects(loadBrownText({ categories: ['poetry'] }), isConfigError(/unknown category poetry; categories: news, editorial/));
});

test('Tiny Shakespeare loads and encodes with its own vocabulary', { skip: !existsSync(TINY_SHAKESPEARE_PATH) && 'no tinyshakespeare.txt' }, async () => {
  const text = await loadTinyShakespeare();
  assert.ok(text.startsWith('First Citizen:'));
  const v = CharVocab.fromText(text);
  assert.equal(v.size, 66); // 65 characters + unknown
  const { train, valid, test: testPart } = splitText(text);
  assert.equal(train.length + valid.length + testPart.length, text.length);
  assert.equal(v.decode(v.encode(valid)), valid);
});

// ---- metrics ---------------------------------------------------------------------------------------------------

test('metrics: token accuracy on scored positions, exact match per sample, bits per character', () => {
  const before = liveTensors();
  // logits [2, 3, 4]; argmax per position: [[1, 2, 3], [0, 0, 2]]
  const logits = tensor([
    [[0, 5, 1, 0], [0, 0, 9, 0], [1, 0, 0, 2]],
    [[3, 0, 0, 0], [2, 1, 0, 0], [0, 0, 4, 1]],
  ]);
  const targets = tensor([[1, 2, 0], [-100, 1, 2]], { dtype: 'int64' });
  // scored: (0,0) ok, (0,1) ok, (0,2) wrong, (1,1) wrong, (1,2) ok
  assert.deepEqual(tokenAccuracy(logits, targets), { correct: 3, total: 5, accuracy: 0.6 });
  // answers: sample 0 = positions 0, 1 (right), sample 1 = position 2 (right)
  const mask = tensor([[true, true, false], [false, false, true]]);
  assert.deepEqual(exactMatch(logits, targets, mask), { correct: 2, total: 2, accuracy: 1 });
  // without a mask every scored position is part of the answer: both samples have a mistake
  assert.deepEqual(exactMatch(logits, targets), { correct: 0, total: 2, accuracy: 0 });
  const ids = tensor([[1, 2, 0], [0, 1, 2]], { dtype: 'int64' });
  assert.deepEqual(tokenAccuracy(ids, targets), { correct: 5, total: 5, accuracy: 1 });
  assert.deepEqual(mergeCounts({ correct: 3, total: 5, accuracy: 0.6 }, { correct: 1, total: 5, accuracy: 0.2 }).accuracy, 0.4);
  const wrongShape = tensor([[1, 2]]);
  assert.throws(() => tokenAccuracy(wrongShape, targets), (e: unknown) => e instanceof EngramError && e.kind === 'shape');
  assert.ok(Math.abs(bitsPerCharacter(1.5 * Math.LN2) - 1.5) < 1e-12);
  const loss = tensor(Math.LN2 * 2);
  const bpc = bitsPerCharacter(loss);
  assert.ok(Math.abs(bpc.item() - 2) < 1e-6);
  for (const t of [logits, targets, mask, ids, wrongShape, loss, bpc]) t.dispose();
  assert.equal(liveTensors(), before, 'metrics free what they make');
});
