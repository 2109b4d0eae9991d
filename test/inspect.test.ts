// Seeing the memory: the inspection API's plain data, the report files, the cost numbers a run
// reports (peak heap, time per step, memories attended), and `engram inspect`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  createModel, heapBytes, inspect, liveTensors, manualSeed, train, writeInspection, shadedText, heatmap, groupedBars,
  type AdaptiveSpanTransformer,
} from '../src/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'engram-inspect-'));
const tiny = { vocabSize: 7, layers: 2, dModel: 16, heads: 2, dInner: 32 };
const stream = Array.from({ length: 20 }, (_, i) => (i * 3) % 7);

test('inspect returns attention maps, memories per segment and Expire-Span spans of every token', () => {
  manualSeed(0);
  const model = createModel({ ...tiny, kind: 'expire-span', memLen: 16, expireSpan: { ramp: 4 } });
  inspect(model, stream, { segmentLength: 8 }); // builds the model's mask tables, which it keeps
  const before = liveTensors();
  const r = inspect(model, stream, { segmentLength: 8, attention: 'all' });
  assert.equal(liveTensors(), before, 'nothing is left alive');
  assert.equal(r.kind, 'expire-span');
  assert.deepEqual(r.segments.map((s) => [s.start, s.end]), [[0, 8], [8, 16], [16, 20]]);
  // keys: the memories kept before the segment, then the segment (2 heads, queries = segment length)
  const last = r.segments[2]!;
  assert.equal(last.attention.length, 2, 'one map per attention module');
  assert.equal(last.attention[0]!.module, 'layers.0.attn');
  assert.equal(last.attention[0]!.weights.length, 2);
  assert.equal(last.attention[0]!.weights[0]!.length, 4);
  for (const row of last.attention[1]!.weights[1]!) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'rows sum to 1');
  const spans = r.perToken['predicted span']!;
  assert.equal(spans.length, 2);
  assert.equal(spans[0]!.length, stream.length, 'a span for every token of the stream');
  assert.ok(spans[0]!.every((e) => Math.abs(e - 1.6) < 1e-4), 'the initial span is p·L = 0.1 · 16');
  assert.equal(r.segments[0]!.memory, 0, 'the first segment has no memory');
  assert.ok(r.segments.every((s) => s.perLayer['live memories']?.length === 2 && s.perLayer['memories kept']?.length === 2));
  assert.equal(model.training, true, 'the model goes back to training mode');
  model.dispose();
});

test("inspect keeps only the last segment's maps by default, and reports Adaptive-Span's spans", () => {
  manualSeed(0);
  const model = createModel({ ...tiny, kind: 'adaptive-span', memLen: 12, adaptiveSpan: { init: 0.5, ramp: 2 } }) as AdaptiveSpanTransformer;
  const r = inspect(model, stream, { segmentLength: 8 });
  assert.deepEqual(r.segments.map((s) => s.attention.length), [0, 0, 2]);
  assert.deepEqual(r.perHead['spans'], [[6, 6], [6, 6]], 'z = init · L for every head of every layer');
  assert.throws(() => inspect(model, [], { segmentLength: 8 }), /the input is empty/);
  model.dispose();
});

test('writeInspection writes the data and the pictures that apply', async () => {
  manualSeed(0);
  const model = createModel({ ...tiny, kind: 'expire-span', memLen: 16, expireSpan: { ramp: 4 } });
  const r = inspect(model, stream, { segmentLength: 8 });
  const dir = tmp();
  const files = await writeInspection(r, { dir, decode: (id) => 'abcdefg'[id]!, maxSpan: 16 });
  const names = files.map((f) => f.slice(dir.length + 1)).sort();
  assert.deepEqual(names, ['attention-layers-0-attn.svg', 'attention-layers-1-attn.svg', 'inspection.json', 'memory.svg', 'predicted-span-layer0.svg', 'predicted-span-layer1.svg']);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'inspection.json'), 'utf8')).tokens, stream);
  const text = readFileSync(join(dir, 'predicted-span-layer0.svg'), 'utf8');
  assert.equal((text.match(/<rect class="cell"/g) ?? []).length, stream.length, 'one shaded cell per character');
  assert.equal((text.match(/class="boundary"/g) ?? []).length, 3, 'a mark where each of the 3 segments begins');
  assert.match(text, /url\(#colour-scale\)/, 'a colour scale');
  const map = readFileSync(join(dir, 'attention-layers-0-attn.svg'), 'utf8');
  // the last segment (4 queries) over the 8 memories still kept (positions 8-15) and itself: each labelled with its character
  const labels = [...map.matchAll(/<text class="label"[^>]*>([^<]*)<\/text>/g)].map((x) => x[1]);
  assert.deepEqual(labels, [...stream.slice(16), ...stream.slice(8)].map((id) => 'abcdefg'[id]), 'row labels, then column labels');
  assert.equal((map.match(/class="boundary"/g) ?? []).length, 1, 'the memory / segment boundary');
  assert.match(map, />memory<\/text>[\s\S]*>segment<\/text>/);
  model.dispose();
});

test('the pictures: cells, bars and shades follow the values', () => {
  const map = heatmap({ title: 't', values: [[1, 0], [0.5, 0.5]], xLabel: 'x', yLabel: 'y' });
  assert.equal((map.match(/<rect class="cell"/g) ?? []).length, 3, 'zero cells are not drawn');
  const marked = heatmap({ title: 't', values: [[0.2, 0.4, 0.4]], xLabel: 'x', yLabel: 'y', colParts: ['memory', 'memory', 'segment'], colSegmentStarts: [1], max: 0.4 });
  assert.equal((marked.match(/class="boundary"/g) ?? []).length, 1, 'a line where the memories end');
  assert.equal((marked.match(/class="segment-boundary"/g) ?? []).length, 1, 'a dashed line where an earlier segment began');
  assert.match(marked, /fill="rgb\(8,48,107\)"/, 'the scale reaches its darkest at max');
  const bars = groupedBars({ title: 't', values: [[1, 2, 3], [4, 5, 6]], groupLabel: String, barLabel: String, yLabel: 'y' });
  assert.equal((bars.match(/<title>/g) ?? []).length, 6);
  const shaded = shadedText({ title: 't', legend: 'l', text: ['a', 'b'], values: [0, 10], maxValue: 10 });
  assert.match(shaded, /fill="rgb\(255,255,255\)"/, 'value 0 is white');
  assert.match(shaded, /fill="rgb\(8,48,107\)"/, 'the maximum is the darkest');
});

test('a run reports its peak heap, time per step and memories attended', async () => {
  assert.ok((heapBytes() ?? 1) > 0);
  const r = await train({
    model: { kind: 'xl', layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 6 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } },
    train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1 },
  });
  assert.ok(r.secondsPerStep > 0);
  if (r.peakHeapBytes !== null) assert.ok(r.peakHeapBytes > 1e6, 'the heap holds at least libtorch itself');
  // two segments of 7 (copy of 4: 13 tokens): nothing cached for the first, the cache (memLen 6) for the second
  assert.equal(r.finalEval!.memory, 3);
});

test('engram inspect writes its files for a task run and refuses --text there', async () => {
  const dir = tmp();
  await train({
    model: { kind: 'expire-span', layers: 1, dModel: 16, heads: 2, dInner: 32, memLen: 16 },
    data: { kind: 'task', name: 'corridor', options: { length: 10, segmentLength: 4 } },
    train: { steps: 2, batchSize: 4, evalEvery: 0, evalBatches: 1 },
  }, { runDir: dir });
  const cli = join(import.meta.dirname, '..', 'cli', 'engram.js');
  const ok = spawnSync(process.execPath, [cli, 'inspect', dir, '--seed', '1'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /expire-span, 12 tokens in 3 segment\(s\) of 4/);
  assert.match(ok.stdout, /layer 0: mean predicted span 1\.6/);
  assert.ok(existsSync(join(dir, 'inspect', 'predicted-span-layer0.svg')));
  const bad = spawnSync(process.execPath, [cli, 'inspect', dir, '--text', 'abc'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--text is for language-model runs/);
});

test('the Feedback Transformer records its attention too: one row per step, over the window of past memories', () => {
  manualSeed(0);
  const L = 3;
  const model = createModel({ ...tiny, kind: 'feedback', memLen: L });
  const r = inspect(model, stream.slice(0, 12), { segmentLength: 6, attention: 'all' });
  for (const [s, seg] of r.segments.entries()) {
    const C = s === 0 ? 0 : L; // memories carried in: none, then the last L
    assert.equal(seg.attention.length, 2);
    for (const map of seg.attention) {
      assert.equal(map.weights.length, 2, `${map.module}: a map per head`);
      for (const head of map.weights) {
        assert.equal(head.length, 6);
        head.forEach((row, t) => {
          assert.equal(row.length, C + 6);
          const n = Math.min(L, C + t); // memories in step t's window: keys C + t - n .. C + t - 1
          row.forEach((w, j) => { if (j < C + t - n || j >= C + t) assert.equal(w, 0, `step ${t}, key ${j} is outside the window`); });
          const sum = row.reduce((a, b) => a + b, 0);
          assert.ok(n === 0 ? sum === 0 : Math.abs(sum - 1) < 1e-5, `step ${t}: weights sum to ${sum}`);
        });
      }
    }
  }
  model.dispose();
});
