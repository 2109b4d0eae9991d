// The memory viewer: POST /v1/inspect streams a text through a tiny model as NDJSON records
// (tokens, top-k, losses, Expire-Span's spans, labelled attention maps) and names the fields of a
// bad request; the page, driven in a real headless Chromium, renders the stream (token cells, a
// span value, a heatmap with labels) and is photographed into docs/viewer.png.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  CharVocab, createModel, loadRun, manualSeed, resolveTrainConfig, saveModel, taskOf, trace,
  type LoadedRun, type ModelConfigInput, type TaskDataSection, type TraceRecord, type TraceSegment, type TraceToken,
} from '../src/index.js';
import { registerViewer } from '../src/serve/viewer/routes.js';
import type { ServedModel } from '../src/serve/types.js';

const repo = fileURLToPath(new URL('../..', import.meta.url)); // this file is dist/test/viewer.test.js
const chromium = '/usr/bin/chromium';
const corpus = 'the quick brown fox jumps over the lazy dog. ';
const text = 'the quick brown fox jumps over the lazy dog';
const tiny = { layers: 2, dModel: 16, heads: 2, dInner: 32 };
const dir = mkdtempSync(join(tmpdir(), 'engram-viewer-'));
let app: FastifyInstance;
const runs: LoadedRun[] = [];

/** Saves an untrained model as a model folder and loads it back, as the server does. */
async function folder(name: string, model: ModelConfigInput, data: Record<string, unknown>, vocab: CharVocab | null): Promise<ServedModel> {
  const training = resolveTrainConfig({ model, data });
  const vocabSize = vocab ? vocab.size : taskOf(training.data as TaskDataSection).vocabSize;
  manualSeed(0);
  const m = createModel({ ...training.model, vocabSize } as ModelConfigInput & { vocabSize: number });
  await saveModel(m, join(dir, name), { training, vocab: vocab?.toString() ?? null });
  m.dispose();
  const run = await loadRun(join(dir, name));
  runs.push(run);
  return { name, run, segmentLength: run.objective.segmentLength, exclusive: (fn) => fn() };
}

before(async () => {
  const vocab = CharVocab.fromText(corpus);
  const models = [
    await folder('expire', { kind: 'expire-span', ...tiny, memLen: 16 } as ModelConfigInput, { kind: 'lm', corpus: 'corpus.txt', segmentLength: 16 }, vocab),
    await folder('rmt-copy', { kind: 'rmt', ...tiny, numMemTokens: 2 } as ModelConfigInput, { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } }, null),
  ];
  app = Fastify();
  await registerViewer(app, { models: new Map(models.map((m) => [m.name, m])) });
  await app.ready();
});

after(async () => {
  await app?.close();
  runs.forEach((r) => r.model.dispose());
  rmSync(dir, { recursive: true, force: true });
});

const records = (body: string): TraceRecord[] => body.trim().split('\n').map((line) => JSON.parse(line) as TraceRecord);
const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/inspect', payload: payload as object });

test('POST /v1/inspect streams a start, then each segment and its tokens, then the end', async () => {
  const res = await post({ model: 'expire', text, topK: 3 });
  assert.equal(res.statusCode, 200, res.body);
  assert.match(res.headers['content-type'] as string, /application\/x-ndjson/);
  const rs = records(res.body);
  assert.equal(rs[0]!.type, 'start');
  assert.equal(rs[rs.length - 1]!.type, 'end');
  const segments = rs.filter((r): r is TraceSegment => r.type === 'segment');
  const tokens = rs.filter((r): r is TraceToken => r.type === 'token');
  assert.deepEqual(segments.map((s) => [s.start, s.end]), [[0, 16], [16, 32], [32, 43]], 'a segment every M = 16 tokens');
  assert.equal(tokens.map((t) => t.label).join(''), text, 'one record per character, in order');
  assert.ok(rs.indexOf(segments[1]!) < rs.indexOf(tokens[16]!) && rs.indexOf(tokens[15]!) < rs.indexOf(segments[1]!), "a segment's record comes before its tokens");
  for (const t of tokens) {
    assert.equal(t.top.length, 3);
    assert.ok(t.top[0]!.p >= t.top[1]!.p && t.top[1]!.p >= t.top[2]!.p, 'most probable first');
    assert.deepEqual(t.values['predicted span'], [1.6, 1.6], 'the initial span p·L = 0.1 · 16 in each layer');
  }
  assert.ok(tokens.slice(0, -1).every((t) => t.loss !== null && t.loss > 0), 'every token but the last has the loss of the next one');
  assert.equal(tokens[tokens.length - 1]!.loss, null);
  const end = rs[rs.length - 1]! as Extract<TraceRecord, { type: 'end' }>;
  const mean = tokens.slice(0, -1).reduce((s, t) => s + t.loss!, 0) / (tokens.length - 1);
  assert.ok(Math.abs(end.loss! - mean) < 1e-3, 'the end reports the mean loss');
  // the last segment's map: 11 queries; keys: the memories Expire-Span kept (their stream positions), then the segment
  const map = segments[2]!.attention[0]!;
  assert.equal(map.module, 'layers.0.attn');
  assert.equal(map.queries.length, 11);
  assert.deepEqual(map.queries.map((q) => q.position), Array.from({ length: 11 }, (_, i) => 32 + i));
  const memories = map.keys.filter((k) => k.part === 'memory');
  assert.deepEqual(memories.map((k) => k.position), Array.from({ length: 32 }, (_, i) => i), 'every earlier token is still kept (spans do not expire this soon at p·L)');
  assert.equal((map.weights as number[][]).length, 11);
  assert.deepEqual(segments[2]!.perLayer['memories kept'], [43, 43]);
});

test("POST /v1/inspect: RMT's read and write slots are labelled; a task model reads token ids", async () => {
  const res = await post({ model: 'rmt-copy', text: '1 2 3 4 0 0 0 0 1 2', attention: 'heads' });
  assert.equal(res.statusCode, 200, res.body);
  const rs = records(res.body);
  const segment = rs.find((r): r is TraceSegment => r.type === 'segment')!;
  const map = segment.attention[0]!;
  assert.deepEqual(map.queries.map((q) => q.part), ['read', 'read', ...Array(segment.end - segment.start).fill('segment'), 'write', 'write']);
  assert.equal((map.weights as number[][][]).length, 2, "each head's map");
  assert.equal(rs.filter((r) => r.type === 'token').length, 10);
  const words = await post({ model: 'rmt-copy', text: 'one two' });
  assert.equal(words.statusCode, 400);
  assert.match(words.json().error.message, /^text: .*"one" is not a number/);
});

test('POST /v1/inspect names the field of a bad request', async () => {
  const cases: [unknown, number, RegExp][] = [
    [{ text }, 400, /model: /],
    [{ model: 'expire' }, 400, /text: give exactly one of text and tokens/],
    [{ model: 'expire', text, tokens: [1] }, 400, /text: give exactly one/],
    [{ model: 'expire', text, topK: 0 }, 400, /topK: /],
    [{ model: 'expire', text, attention: 'all' }, 400, /attention: /],
    [{ model: 'expire', text, colour: 'red' }, 400, /colour/],
    [{ model: 'expire', tokens: [1, 99] }, 400, /tokens: .*token 99 at position 1 is not an id/],
    [{ model: 'nope', text }, 404, /model: no served model "nope" \(served: expire, rmt-copy\)/],
  ];
  for (const [body, status, message] of cases) {
    const res = await post(body);
    assert.equal(res.statusCode, status, JSON.stringify(body));
    assert.match(res.json().error.message, message, JSON.stringify(body));
  }
});

test('trace() is usable without HTTP', async () => {
  const run = runs[0]!;
  const types: string[] = [];
  for await (const r of trace(run, { text: 'the fox', segmentLength: 4, attention: 'none' })) types.push(r.type);
  assert.deepEqual(types, ['start', 'segment', 'token', 'token', 'token', 'token', 'segment', 'token', 'token', 'token', 'end']);
  assert.equal(run.model.training, false, 'the loaded model stays in eval mode');
});

test('GET / serves the page and its bundled assets, nothing from elsewhere', async () => {
  ensurePageBuilt();
  const page = await app.inject({ method: 'GET', url: '/' });
  assert.equal(page.statusCode, 200);
  assert.match(page.headers['content-type'] as string, /text\/html/);
  assert.doesNotMatch(page.body, /(src|href)="(https?:)?\/\//, 'no script or style from another host');
  assert.match(page.body, /src="\/viewer\/app\.js"/);
  const js = await app.inject({ method: 'GET', url: '/viewer/app.js' });
  assert.equal(js.statusCode, 200);
  assert.match(js.headers['content-type'] as string, /javascript/);
  assert.equal((await app.inject({ method: 'GET', url: '/viewer/secret.txt' })).statusCode, 404);
  const models = (await app.inject({ method: 'GET', url: '/viewer/models' })).json();
  assert.deepEqual(models.models.map((m: { name: string; input: string }) => [m.name, m.input]), [['expire', 'text'], ['rmt-copy', 'ids']]);
});

function ensurePageBuilt(): void {
  if (existsSync(join(repo, 'dist/viewer/app.js'))) return;
  const r = spawnSync(process.execPath, [join(repo, 'scripts/build-viewer.mjs')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `node scripts/build-viewer.mjs failed: ${r.stderr}`);
}

test('the page in headless Chromium: type, stream, see tokens, a span value and a labelled heatmap', {
  skip: existsSync(chromium) ? false : `${chromium} is absent: install it (scripts/setup.sh --tests) to test the viewer in a browser`,
  timeout: 180_000,
}, async () => {
  ensurePageBuilt();
  const { chromium: launcher } = await import('playwright-core');
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const profile = mkdtempSync(join(tmpdir(), 'engram-viewer-chromium-'));
  const browser = await launcher.launchPersistentContext(profile, {
    executablePath: chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 1000 },
  });
  try {
    const page = browser.pages()[0] ?? await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    const foreign: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith(address)) foreign.push(r.url()); });

    await page.goto(`${address}/?model=expire`);
    await page.waitForSelector('#model option', { state: 'attached' });
    assert.equal(await page.inputValue('#model'), 'expire', 'the ?model= parameter picks the model');
    await page.fill('#text', '');
    await page.type('#text', text);
    await page.click('#run');
    await page.waitForSelector('body[data-state="done"]', { timeout: 60_000 });

    assert.equal(await page.locator('#tokens .tok').count(), text.length, 'a cell per character');
    assert.equal(await page.locator('#tokens .segment').count(), 3, 'a block per segment, its boundary drawn');
    assert.equal((await page.locator('#tokens .tok').allTextContents()).join('').replaceAll('␣', ' '), text);
    assert.match(await page.inputValue('#shade'), /predicted span · layer 0/, "Expire-Span's tokens are shaded by their span");
    const background = await page.locator('#tokens .tok').first().evaluate((e) => (e as unknown as { style: { background: string } }).style.background);
    assert.match(background, /^rgb/); assert.notEqual(background, 'rgb(255, 255, 255)', 'the cells are shaded');

    await page.locator('#tokens .tok').nth(4).click();
    const span = await page.locator('#detail .diag-value[data-name="predicted span"][data-layer="0"]').textContent();
    assert.equal(span, 'layer 0: 1.60', "the token's predicted span");
    assert.equal(await page.locator('#detail table.top tr').count(), 5, 'the top 5 next tokens');
    assert.match(await page.locator('#detail .detail-loss').textContent() ?? '', /^\d+\.\d+ nats$/);

    const heatmap = page.locator('#heatmap svg.heatmap');
    await heatmap.waitFor();
    assert.equal(await heatmap.locator('rect.cell').count(), 11 * (32 + 11), 'the last segment: 11 queries × 43 keys');
    const columns = await heatmap.locator('text.col-label').allTextContents();
    assert.ok(columns.includes('q') && columns.includes('k'), `the keys are labelled with their characters (${columns.join('')})`);
    assert.ok(await heatmap.locator('line.boundary').count() >= 1, 'the memory / segment boundary is marked');
    assert.deepEqual(await heatmap.locator('text.part').allTextContents(), ['memory', 'segment']);
    assert.ok(await heatmap.locator('.colour-legend').count() >= 1, 'a colour scale');
    assert.ok(await page.locator('#memory svg').count() >= 2, "charts of the memories kept and live over segments");

    assert.deepEqual(problems, [], 'the page runs without errors');
    assert.deepEqual(foreign, [], 'nothing is fetched from elsewhere');
    mkdirSync(join(repo, 'docs'), { recursive: true });
    await page.screenshot({ path: join(repo, 'docs/viewer.png'), fullPage: true });

    // a bad input is shown, not swallowed
    await page.fill('#text', '');
    await page.click('#run');
    await page.waitForSelector('body[data-state="error"]');
    assert.match(await page.locator('#status').textContent() ?? '', /text: /);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
