// engram serve over real HTTP on 127.0.0.1 (port 0): every route, server-sent events, sessions
// that carry a model's memory across requests (equal to one long request), LRU eviction and
// expiry, 429 when a model's queue is full, 4xx JSON errors naming the field, the body limit, the
// time limit, graceful close; and the CLI (engram serve / view) stopped by SIGTERM with exit 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { train, loadRun, exportRun, complete, score, type LoadedRun } from '../src/index.js';
import { startServer, type EngramServer } from '../src/serve/server.js';
import { SessionStore } from '../src/serve/sessions.js';

const cli = fileURLToPath(new URL('../cli/engram.js', import.meta.url));
let dir: string, lmDir: string, taskDir: string, lm: LoadedRun;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'engram-serve-'));
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, 'the quick brown fox jumps over the lazy dog. '.repeat(60));
  const tiny = { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32 } as const;
  await train({ model: tiny, data: { kind: 'lm', corpus, segmentLength: 8 }, train: { steps: 3, batchSize: 2, bpttDepth: 1 } }, { runDir: join(dir, 'lm-run') });
  const run = await loadRun(join(dir, 'lm-run'));
  lmDir = join(dir, 'tiny-lm');
  await exportRun(run, lmDir);
  run.model.dispose();
  taskDir = join(dir, 'copy-task');
  await train({ model: tiny, data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } }, train: { steps: 1, batchSize: 2, evalBatches: 1 } }, { runDir: taskDir });
  lm = await loadRun(lmDir);
});

after(() => {
  lm.model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** A server on 127.0.0.1, any port, closed after fn. */
async function withServer(options: Partial<Parameters<typeof startServer>[0]>, fn: (s: EngramServer, url: string) => Promise<void>): Promise<void> {
  const server = await startServer({ models: [lmDir, taskDir], port: 0, ...options });
  try {
    await fn(server, server.url);
  } finally {
    await server.close();
  }
}

interface Answer {
  status: number;
  body: Record<string, any>;
}

async function post(url: string, body: unknown, init: RequestInit = {}): Promise<Answer> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : {} };
}

interface SseEvent {
  event: string;
  data: any;
}

/** The server-sent events of a response, as they arrive. */
async function* events(r: Response): AsyncGenerator<SseEvent> {
  const reader = r.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      yield { event, data: data === undefined ? null : JSON.parse(data) };
    }
  }
}

function stream(url: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body as object, stream: true }), ...(signal ? { signal } : {}) });
}

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500 && !(await check()); i++) await new Promise((r) => setTimeout(r, 10));
}

test('GET /v1/models lists the models and limits; unknown routes are 404 naming the url', async () => {
  await withServer({ maxTokens: 99 }, async (_s, url) => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await fetch(`${url}/v1/models`);
    assert.equal(r.status, 200);
    const body = await r.json() as { models: Record<string, unknown>[]; limits: Record<string, number> };
    assert.deepEqual(body.models.map((m) => [m.name, m.kind, m.model, m.segmentLength]), [['tiny-lm', 'language-model', 'xl', 8], ['copy-task', 'task', 'xl', 6]]);
    assert.equal(body.models[0]!.step, 3);
    assert.equal(body.limits.maxTokens, 99);
    const missing = await fetch(`${url}/v2/nothing`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json() as { error: { field: string } }).error.field, 'url');
  });
});

test('POST /v1/generate: the tokens of the library for the same options; SSE streams them one event each, then a summary', async () => {
  await withServer({}, async (_s, url) => {
    const o = { maxTokens: 24, temperature: 0.9, topK: 5, topP: 0.95, seed: 3 };
    const expected = await complete(lm, 'the ', o);
    const r = await post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: 'the ', ...o });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { model: 'tiny-lm', ...expected });
    const res = await stream(url, { model: 'tiny-lm', prompt: 'the ', ...o });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const all = [];
    for await (const e of events(res)) all.push(e);
    const tokens = all.filter((e) => e.event === 'token');
    assert.equal(tokens.length, 24);
    assert.deepEqual(tokens.map((e) => e.data.index), [...Array(24).keys()]);
    assert.equal(tokens.map((e) => e.data.text).join(''), expected.text);
    assert.deepEqual(all[all.length - 1], { event: 'done', data: { model: 'tiny-lm', ...expected } });
    // stop strings and the single-model default
    const stop = expected.text.slice(5, 7);
    const stopped = await post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: 'the ', ...o, stop });
    assert.equal(stopped.body.finishReason, 'stop');
    assert.equal(stopped.body.text, expected.text.slice(0, expected.text.indexOf(stop)));
  });
});

test('POST /v1/score: the bits of the library; a session fed piece by piece equals one long request', async () => {
  await withServer({}, async (_s, url) => {
    const text = 'the quick brown fox jumps over the lazy dog. the lazy fox. '.repeat(3);
    const whole = await post(`${url}/v1/score`, { model: 'tiny-lm', text, chunkSize: 16 });
    assert.equal(whole.status, 200);
    const library = [];
    for await (const c of score(lm, text, { chunkSize: 16 })) library.push(c);
    assert.equal(whole.body.characters, text.length);
    assert.equal(whole.body.tokens, text.length - 1);
    assert.equal(whole.body.chunks.length, library.length);
    assert.ok(Math.abs(whole.body.bitsPerToken - library[library.length - 1]!.cumulativeBitsPerToken) < 1e-9);

    let bits = 0, tokens = 0, last: Answer | undefined;
    for (const piece of [text.slice(0, 50), text.slice(50, 51), text.slice(51, 130), text.slice(130)]) {
      last = await post(`${url}/v1/score`, { model: 'tiny-lm', text: piece, session: 'doc-1' });
      assert.equal(last.status, 200);
      bits += last.body.bits;
      tokens += last.body.tokens;
    }
    assert.equal(tokens, whole.body.tokens);
    assert.ok(Math.abs(bits - whole.body.bits) < 1e-3, `${bits} vs ${whole.body.bits}`);
    assert.equal(last!.body.session.position, text.length);
    assert.ok(Math.abs(last!.body.session.bitsPerToken - whole.body.bitsPerToken) < 1e-5);

    // generation on the session continues the document
    const continued = await post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: ' a', maxTokens: 10, temperature: 0, session: 'doc-1' });
    assert.equal(continued.body.text, (await complete(lm, `${text} a`, { maxTokens: 10, temperature: 0 })).text);
    assert.equal(continued.body.session.position, text.length + 12);

    const sessions = await (await fetch(`${url}/v1/sessions`)).json() as { sessions: { id: string; model: string }[] };
    assert.deepEqual(sessions.sessions.map((s) => [s.id, s.model]), [['doc-1', 'tiny-lm']]);
    const wrongModel = await post(`${url}/v1/score`, { model: 'copy-task', text: 'x', session: 'doc-1' });
    assert.equal(wrongModel.status, 400);
    assert.equal((await fetch(`${url}/v1/sessions/doc-1`, { method: 'DELETE' })).status, 204);
    const gone = await fetch(`${url}/v1/sessions/doc-1`, { method: 'DELETE' });
    assert.equal(gone.status, 404);
    assert.equal((await gone.json() as { error: { field: string } }).error.field, 'session');
  });
});

test('sessions: at the cap the least recently used one is evicted', async () => {
  await withServer({ maxSessions: 2 }, async (_s, url) => {
    const feed = (id: string) => post(`${url}/v1/score`, { model: 'tiny-lm', text: 'the fox', session: id });
    await feed('a');
    await feed('b');
    await feed('a'); // b is now the least recently used
    await feed('c');
    const list = await (await fetch(`${url}/v1/sessions`)).json() as { sessions: { id: string; position: number }[] };
    assert.deepEqual(list.sessions.map((s) => [s.id, s.position]), [['a', 14], ['c', 7]]);
  });
});

test('sessions expire after their time-to-live unused (SessionStore, on a test clock)', () => {
  let now = 0;
  const store = new SessionStore(4, 1000, () => now);
  const text = { model: lm.model, vocab: (lm as LoadedRun & { kind: 'lm' }).vocab, segmentLength: 8 };
  store.release(store.open('x', 'tiny-lm', text));
  const busy = store.open('y', 'tiny-lm', text);
  now = 999;
  store.expire();
  assert.deepEqual(store.list().map((s) => s.id), ['x', 'y']);
  now = 2500;
  assert.deepEqual(store.list().map((s) => s.id), ['y'], 'x expired; y is in use');
  store.release(busy);
  now = 4000;
  assert.equal(store.list().length, 0);
  store.dispose();
});

test('a model runs one request at a time: the queue holds --queue requests, more get 429; a wait past the time limit is 408', async () => {
  await withServer({ queue: 1, timeoutMs: 30_000 }, async (server, url) => {
    const model = server.context.models.get('tiny-lm')!;
    let release!: () => void;
    const held = model.exclusive(() => new Promise<void>((r) => { release = r; }));
    const waiting = post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: 'the', maxTokens: 3 });
    await until(async () => (await (await fetch(`${url}/v1/models`)).json() as { models: { waiting: number }[] }).models[0]!.waiting === 1);
    const refused = await post(`${url}/v1/score`, { model: 'tiny-lm', text: 'the' });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.field, 'model');
    assert.match(refused.body.error.message, /busy/);
    const other = await post(`${url}/v1/generate`, { model: 'copy-task', prompt: 'x' });
    assert.equal(other.status, 400, 'another model has its own queue (and a task model cannot generate text)');
    release();
    await held;
    assert.equal((await waiting).status, 200);
  });
  await withServer({ timeoutMs: 300 }, async (server, url) => {
    let release!: () => void;
    const held = server.context.models.get('tiny-lm')!.exclusive(() => new Promise<void>((r) => { release = r; }));
    const late = await post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: 'the' });
    assert.equal(late.status, 408);
    assert.match(late.body.error.message, /time limit/);
    release();
    await held;
  });
});

test('a generation past the time limit ends early with finishReason timeout', async () => {
  await withServer({ timeoutMs: 200, maxTokens: 1_000_000 }, async (_s, url) => {
    const r = await post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: 'the', maxTokens: 1_000_000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.finishReason, 'timeout');
    assert.ok(r.body.tokens > 0 && r.body.tokens < 1_000_000);
  });
});

test('every bad request is a 4xx JSON error naming the field; the body limit is 413', async () => {
  await withServer({ maxPromptChars: 20, bodyLimit: 2000 }, async (_s, url) => {
    const cases: [string, unknown, number, string][] = [
      ['generate', { model: 'tiny-lm', prompt: 5 }, 400, 'prompt'],
      ['generate', { model: 'tiny-lm', prompt: 'x'.repeat(21) }, 400, 'prompt'],
      ['generate', { model: 'tiny-lm', maxTokens: 5000 }, 400, 'maxTokens'],
      ['generate', { model: 'tiny-lm', maxTokens: -1 }, 400, 'maxTokens'],
      ['generate', { model: 'tiny-lm', temperature: -1 }, 400, 'temperature'],
      ['generate', { model: 'tiny-lm', topK: 1.5 }, 400, 'topK'],
      ['generate', { model: 'tiny-lm', topP: 0 }, 400, 'topP'],
      ['generate', { model: 'tiny-lm', stop: [''] }, 400, 'stop.0'],
      ['generate', { model: 'tiny-lm', seed: 'x' }, 400, 'seed'],
      ['generate', { model: 'tiny-lm', stream: 'yes' }, 400, 'stream'],
      ['generate', { model: 'tiny-lm', session: 'not an id!' }, 400, 'session'],
      ['generate', { model: 'tiny-lm', topQ: 1 }, 400, 'topQ'],
      ['generate', { model: 'nope' }, 404, 'model'],
      ['generate', { prompt: 'x' }, 400, 'model'],
      ['generate', { model: 'copy-task' }, 400, 'model'],
      ['generate', [1, 2], 400, 'body'],
      ['generate', '{"model": ', 400, 'body'],
      ['score', { model: 'tiny-lm' }, 400, 'text'],
      ['score', { model: 'tiny-lm', text: 'x', chunkSize: 0 }, 400, 'chunkSize'],
      ['score', { model: 'tiny-lm', text: 'x'.repeat(3000) }, 413, 'body'],
    ];
    for (const [route, body, status, field] of cases) {
      const r = await post(`${url}/v1/${route}`, body);
      assert.equal(r.status, status, `${route} ${JSON.stringify(body).slice(0, 60)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.field, field, JSON.stringify(r.body));
      assert.equal(typeof r.body.error.message, 'string');
    }
    const form = await fetch(`${url}/v1/generate`, { method: 'POST', body: 'prompt=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 415);
    assert.equal((await form.json() as { error: { field: string } }).error.field, 'content-type');
  });
});

test('close() stops accepting and cuts in-flight streams short after the grace period, with a final event', async () => {
  const server = await startServer({ models: [lmDir], port: 0, graceMs: 50, maxTokens: 1_000_000 });
  const res = await stream(server.url, { prompt: 'the', maxTokens: 1_000_000 });
  const it = events(res);
  assert.equal((await it.next()).value.event, 'token');
  const closed = server.close();
  let last: SseEvent | undefined;
  for await (const e of it) last = e;
  await closed;
  assert.equal(last!.event, 'done');
  assert.equal(last!.data.finishReason, 'shutdown');
  await assert.rejects(fetch(`${server.url}/v1/models`));
});

/** Spawns the CLI; resolves with the process and its first stdout line. */
function spawnCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; line: string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, line: out.split('\n')[0]!, exit });
    });
    exit.then((code) => reject(new Error(`engram ${args[0]} exited (${code}) before printing: ${stderr}`)));
  });
}

test('engram serve: every flag reaches the server; SIGTERM during a stream ends it and exits 0', async () => {
  const { child, line, exit } = await spawnCli(['serve', lmDir, taskDir, '--host', '127.0.0.1', '--port', '0', '--max-sessions', '3', '--session-ttl', '120',
    '--queue', '2', '--timeout', '30', '--max-tokens', '1000000', '--max-prompt', '50', '--body-limit', '4096', '--grace', '0.2']);
  try {
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+) \(models: tiny-lm, copy-task\)/.exec(line)?.[1];
    assert.ok(url, line);
    const { limits } = await (await fetch(`${url}/v1/models`)).json() as { limits: Record<string, number> };
    assert.deepEqual(limits, { queue: 2, maxSessions: 3, sessionTtlMs: 120_000, timeoutMs: 30_000, maxTokens: 1_000_000, maxPromptChars: 50, bodyLimit: 4096, graceMs: 200 });
    assert.equal((await post(`${url}/v1/generate`, { model: 'tiny-lm', prompt: 'x'.repeat(51) })).body.error.field, 'prompt');
    assert.equal((await post(`${url}/v1/score`, { model: 'tiny-lm', text: 'x'.repeat(5000) })).status, 413);

    const it = events(await stream(url!, { model: 'tiny-lm', prompt: 'the', maxTokens: 1_000_000 }));
    assert.equal((await it.next()).value.event, 'token');
    child.kill('SIGTERM');
    let last: SseEvent | undefined;
    for await (const e of it) last = e;
    assert.equal(last!.event, 'done');
    assert.equal(last!.data.finishReason, 'shutdown');
    assert.equal(await exit, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('engram view: serves one model, prints the viewer address and opens it where a desktop opener exists (--no-open: not)', async () => {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const opened = join(dir, 'opened.txt');
  writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\necho "$1" > ${opened}\n`);
  chmodSync(join(bin, 'xdg-open'), 0o755);
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, DISPLAY: ':0' };
  for (const noOpen of [true, false]) {
    rmSync(opened, { force: true });
    const { child, line, exit } = await spawnCli(['view', lmDir, '--port', '0', ...(noOpen ? ['--no-open'] : [])], env);
    try {
      const url = /is at (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)?.[1];
      assert.ok(url, line);
      const models = await (await fetch(`${url}v1/models`)).json() as { models: { name: string }[] };
      assert.deepEqual(models.models.map((m) => m.name), ['tiny-lm']);
      if (!noOpen) await until(async () => existsSync(opened) && readFileSync(opened, 'utf8').length > 0);
      assert.equal(existsSync(opened) ? readFileSync(opened, 'utf8').trim() : null, noOpen ? null : url);
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
    } finally {
      child.kill('SIGKILL');
    }
  }
});

test('a copy of a model folder under the same name is served as name-2', async () => {
  const copy = join(dir, 'copy', 'tiny-lm');
  cpSync(lmDir, copy, { recursive: true });
  await withServer({ models: [lmDir, copy] }, async (_s, url) => {
    const { models } = await (await fetch(`${url}/v1/models`)).json() as { models: { name: string }[] };
    assert.deepEqual(models.map((m) => m.name), ['tiny-lm', 'tiny-lm-2']);
  });
});

test('engram serve / view refuse a bad flag value or a missing model with one engram: line and exit 2', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  for (const [args, pattern] of [
    [['serve', lmDir, '--port', '70000'], /^engram: serve: invalid option value:\n {2}- --port: /],
    [['view', lmDir, '--queue', '-1'], /^engram: view: invalid option value:\n {2}- --queue: /],
    [['serve', lmDir, '--session-ttl', 'soon'], /--session-ttl/],
    [['serve', join(dir, 'no-such-model')], /^engram: loadCheckpoint: no readable checkpoint/],
  ] as [string[], RegExp][]) {
    const r = run(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, pattern);
  }
});
