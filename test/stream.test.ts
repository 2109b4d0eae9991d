// The streaming API: generate() yields tokens one by one as they are made (stop strings, maxTokens,
// seeds, top-p, abort), and score() reads any input in chunks with the memory carried, matching a
// whole-text evaluation without reading its input whole.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EngramError, train, loadRun, generate, complete, score, sampleNext, generateText, evaluateLm, createModel, CharVocab, Rng, TextSession,
  type LoadedRun, type TextModel, type ScoreChunk,
} from '../src/index.js';

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));
const engram = (args: string[], input?: string) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, ...(input !== undefined ? { input } : {}) });
const text = 'the quick brown fox jumps over the lazy dog; café au lait. '.repeat(40);
let dir: string, run: LoadedRun & { kind: 'lm' }, lm: TextModel;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'engram-stream-'));
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, text);
  await train({ model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32 }, data: { kind: 'lm', corpus, segmentLength: 8 }, train: { steps: 3, batchSize: 2, bpttDepth: 1 } }, { runDir: join(dir, 'run') });
  const loaded = await loadRun(join(dir, 'run'));
  assert.equal(loaded.kind, 'lm');
  run = loaded as LoadedRun & { kind: 'lm' };
  lm = { model: run.model, vocab: run.vocab, segmentLength: 8 };
  await train({ model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32 }, data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } }, train: { steps: 1, batchSize: 2, evalBatches: 1 } }, { runDir: join(dir, 'task') });
});

after(() => {
  run.model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('generate yields each token as it is made, with the event loop running in between', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const seen: number[] = [];
  try {
    for await (const t of generate(run, 'the ', { maxTokens: 20, temperature: 0 })) {
      assert.equal(t.index, seen.length);
      assert.equal(t.text, run.vocab.decode([t.id]));
      seen.push(ticks);
    }
  } finally {
    clearInterval(timer);
  }
  assert.equal(seen.length, 20);
  assert.ok(seen[seen.length - 1]! > seen[0]!, `timers ran between tokens (ticks at each token: ${seen.join(',')})`);
});

test('generate gives the tokens of generateText for the same seed, temperature and top-k; maxTokens bounds it', async () => {
  for (const o of [{ temperature: 0, topK: 0, seed: 0 }, { temperature: 1, topK: 0, seed: 3 }, { temperature: 0.8, topK: 5, seed: 7 }]) {
    const expected = generateText(run.model, run.vocab, 8, { prompt: 'the q', length: 30, ...o });
    const r = await complete(lm, 'the q', { maxTokens: 30, ...o });
    assert.equal(r.text, expected, JSON.stringify(o));
    assert.equal(r.tokens, 30);
    assert.equal(r.promptTokens, 5);
    assert.equal(r.finishReason, 'length');
  }
  const empty = await complete(run, '', { maxTokens: 12, temperature: 0 });
  assert.equal(empty.text, generateText(run.model, run.vocab, 8, { prompt: '', length: 12, temperature: 0, topK: 0, seed: 0 }), "an empty prompt starts from '\\n' as generateText does");
  assert.equal((await complete(run, 'the', { maxTokens: 0 })).tokens, 0);
});

test('seeds: the same seed gives the same tokens, other seeds other tokens', async () => {
  const sample = (seed: number) => complete(run, 'a', { maxTokens: 60, temperature: 1.5, seed }).then((r) => r.text);
  assert.equal(await sample(11), await sample(11));
  const others = new Set([await sample(1), await sample(2), await sample(3)]);
  assert.ok(others.size > 1, 'different seeds differ');
});

test('stop strings end the generation before them, also across tokens; the stop is not yielded', async () => {
  const free = (await complete(run, 'the ', { maxTokens: 60, temperature: 1, seed: 5 })).text;
  const stop = free.slice(20, 23);
  const cut = free.indexOf(stop);
  const tokens = await collect(generate(run, 'the ', { maxTokens: 60, temperature: 1, seed: 5, stop: ['\u0000never', stop] }));
  assert.equal(tokens.map((t) => t.text).join(''), free.slice(0, cut));
  const r = await complete(run, 'the ', { maxTokens: 60, temperature: 1, seed: 5, stop: [stop] });
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.text, free.slice(0, cut));
  // a stop string that never comes: everything is yielded, held-back tokens included
  const all = await complete(run, 'the ', { maxTokens: 60, temperature: 1, seed: 5, stop: [`${free.slice(-1)}\u0001`] });
  assert.equal(all.text, free);
  assert.equal(all.finishReason, 'length');
});

test('top-p samples only within the nucleus; a tiny top-p is greedy', async () => {
  const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
  for (const [topP, allowed] of [[0.7, [0, 1]], [0.85, [0, 1, 2]], [1, [0, 1, 2, 3]]] as const) {
    const rng = new Rng(1);
    const drawn = new Set(Array.from({ length: 400 }, () => sampleNext(logits, { temperature: 1, topK: 0, topP }, rng)));
    assert.deepEqual([...drawn].sort(), [...allowed], `topP ${topP}`);
  }
  const greedy = await complete(run, 'the ', { maxTokens: 25, temperature: 0 });
  assert.equal((await complete(run, 'the ', { maxTokens: 25, temperature: 1, topP: 1e-6, seed: 4 })).text, greedy.text);
  await assert.rejects(complete(run, 'x', { topP: 0 }), (e: unknown) => e instanceof EngramError && /topP must be in \(0, 1\]/.test(e.message));
});

test('an AbortSignal ends a generation after the current token', async () => {
  const controller = new AbortController();
  const it = generate(run, 'the ', { maxTokens: 50, signal: controller.signal });
  const got = [];
  for (;;) {
    const r = await it.next();
    if (r.done) {
      assert.equal(r.value.finishReason, 'abort');
      assert.equal(r.value.tokens, 3);
      break;
    }
    got.push(r.value);
    if (got.length === 3) controller.abort();
  }
  assert.equal(got.length, 3);
});

test('a session carries the memory: generation continues after what it read', async () => {
  const session = new TextSession(lm);
  try {
    await collect(score(lm, 'the quick brown fox ', { session }));
    const continued = await complete(lm, 'jumps ', { maxTokens: 15, temperature: 0, session });
    assert.equal(continued.text, (await complete(lm, 'the quick brown fox jumps ', { maxTokens: 15, temperature: 0 })).text);
    assert.equal(session.position, 'the quick brown fox jumps '.length + 15);
    await assert.rejects(Promise.all([complete(lm, 'a', { session }), complete(lm, 'b', { session })]), /in use/);
  } finally {
    session.dispose();
  }
});

test('score over a file equals the evaluation of the whole text as one stream, at any chunk size', async () => {
  const file = join(dir, 'score.txt');
  const sample = text.slice(0, 700);
  writeFileSync(file, sample);
  const ids = run.vocab.encode(sample);
  const expected = evaluateLm(run.model, ids, { batchSize: 1, segmentLength: 8 });
  for (const chunkSize of [5, 8, 100, 4096]) {
    const chunks = await collect(score(run, { path: file }, { chunkSize }));
    const last = chunks[chunks.length - 1]!;
    assert.equal(chunks.length, Math.ceil(sample.length / chunkSize));
    assert.equal(last.totalTokens, sample.length - 1);
    assert.equal(chunks.reduce((a, c) => a + c.characters, 0), sample.length);
    assert.ok(Math.abs(last.cumulativeBitsPerToken - expected.bpc) < 1e-4, `chunk ${chunkSize}: ${last.cumulativeBitsPerToken} vs ${expected.bpc}`);
    assert.ok(Math.abs(chunks.reduce((a, c) => a + c.bits, 0) - last.totalBits) < 1e-6);
  }
  // two pieces on one session: the bits of the whole
  const session = new TextSession(lm);
  const first = await collect(score(lm, sample.slice(0, 333), { session }));
  const second = await collect(score(lm, sample.slice(333), { session }));
  session.dispose();
  const bits = [...first, ...second].reduce((a, c) => a + c.bits, 0), tokens = [...first, ...second].reduce((a, c) => a + c.tokens, 0);
  assert.equal(tokens, sample.length - 1);
  assert.ok(Math.abs(bits / tokens - expected.bpc) < 1e-4);
});

test('score decodes UTF-8 across byte pieces; unknown characters are mapped and counted, or refused', async () => {
  const sample = 'café au lait; the café. ';
  const whole = await collect(score(run, sample));
  const bytes = Buffer.from(sample);
  const pieces = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)); // 'é' cut in two
  const byBytes = await collect(score(run, pieces));
  assert.deepEqual(byBytes.map((c) => c.totalBits), whole.map((c) => c.totalBits));
  const withUnknown = await collect(score(run, 'the ζ fox'));
  assert.equal(withUnknown[0]!.unknown, 1);
  assert.equal(withUnknown[0]!.characters, 9);
  await assert.rejects(collect(score(run, 'the ζ fox', { unknown: 'error' })), (e: unknown) => e instanceof EngramError && e.kind === 'config' && /"ζ" \(U\+03B6\) is not in the model's vocabulary/.test(e.message));
});

test('score reads a long stream lazily, chunk by chunk, in constant memory', async () => {
  // an untrained model with long segments keeps this quick; the input is made as it is read
  const vocab = CharVocab.fromText('abcdefgh ');
  const model = createModel({ kind: 'xl', vocabSize: vocab.size, layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 64 });
  model.eval();
  const total = 1 << 18, piece = 1 << 12, chunkSize = 1 << 13;
  let produced = 0;
  async function* source(): AsyncGenerator<string> {
    const rng = new Rng(0);
    while (produced < total) {
      produced += piece;
      yield Array.from({ length: piece }, () => 'abcdefgh '[rng.int(9)]).join('');
    }
  }
  let scored = 0, maxAhead = 0, last: ScoreChunk | undefined;
  const heap: number[] = [];
  for await (const c of score({ model, vocab, segmentLength: 256 }, source(), { chunkSize })) {
    scored += c.characters;
    maxAhead = Math.max(maxAhead, produced - scored);
    if (c.index % 4 === 0) heap.push(process.memoryUsage().heapUsed);
    last = c;
  }
  model.dispose();
  assert.equal(scored, total);
  assert.equal(last!.totalTokens, total - 1);
  assert.ok(maxAhead <= chunkSize + piece, `read at most a chunk and a piece ahead of scoring (${maxAhead})`);
  assert.ok(Number.isFinite(last!.cumulativeBitsPerToken) && last!.cumulativeBitsPerToken > 0);
  assert.ok(Math.max(...heap) - heap[0]! < 64 << 20, `heap stays flat (${heap.map((h) => h >> 20).join(', ')} MiB)`);
});

test('task runs are refused with a clear error', async () => {
  const task = await loadRun(join(dir, 'task'));
  try {
    await assert.rejects(complete(task, 'x'), (e: unknown) => e instanceof EngramError && /is a task run \(copy\).*need a language-model run/.test(e.message));
  } finally {
    task.model.dispose();
  }
});

test('engram generate --stream prints characters as they are made; --top-p and --stop reach the sampler', async () => {
  const runDir = join(dir, 'run');
  const args = ['generate', runDir, '--prompt', 'the ', '--length', '300', '--seed', '2', '--temperature', '1'];
  const plain = engram(args);
  assert.equal(plain.status, 0, plain.stderr);
  const child = spawn(process.execPath, [cli, ...args, '--stream'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pieces: string[] = [];
  child.stdout.on('data', (d: Buffer) => pieces.push(d.toString()));
  assert.equal(await new Promise((resolve) => child.on('exit', resolve)), 0);
  assert.equal(pieces.join(''), plain.stdout, 'the same text as without --stream');
  assert.ok(pieces.length > 1, `written in pieces as it was made (${pieces.length})`);

  const o = { maxTokens: 300, seed: 2, temperature: 1 };
  const withTopP = engram([...args, '--top-p', '0.5']);
  assert.equal(withTopP.stdout, `the ${(await complete(run, 'the ', { ...o, topP: 0.5 })).text}\n`);
  const stop = plain.stdout.slice(30, 32);
  const stopped = engram([...args, '--stop', 'QQQQ', '--stop', stop, '--stream']);
  assert.equal(stopped.stdout, `${plain.stdout.slice(0, plain.stdout.indexOf(stop))}\n`);
  const task = engram(['generate', join(dir, 'task'), '--stream']);
  assert.equal(task.status, 2);
  assert.match(task.stderr, /--stream, --top-p and --stop are for language-model runs/);
});

test('engram score prints bits per character per --chunk and in all; reads standard input; --unknown error refuses', async () => {
  const runDir = join(dir, 'run');
  const file = join(dir, 'cli-score.txt');
  const sample = text.slice(0, 500);
  writeFileSync(file, sample);
  const r = engram(['score', runDir, file, '--chunk', '128']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 4 + 1);
  assert.match(lines[0]!, /^characters 0-128: \d+\.\d{4} bpc \(cumulative \d+\.\d{4}\)$/);
  const expected = evaluateLm(run.model, run.vocab.encode(sample), { batchSize: 1, segmentLength: 8 }).bpc;
  assert.equal(lines[4], `${file}: 500 characters, ${expected.toFixed(4)} bits per character over 499 predicted`);
  const stdin = engram(['score', runDir, '-', '--chunk', '128'], sample);
  assert.equal(stdin.stdout, r.stdout.replace(file, 'stdin'));
  const strange = engram(['score', runDir, '-', '--unknown', 'error'], 'the ζ');
  assert.equal(strange.status, 2);
  assert.match(strange.stderr, /^engram: score: character "ζ" \(U\+03B6\) is not in the model's vocabulary/);
  assert.match(engram(['score', runDir, '-'], 'the ζ').stdout, /1 outside the vocabulary/);
  assert.match(engram(['score', runDir, file, '--chunk', '0']).stderr, /--chunk/);
});
