// The memory viewer's page: posts the text to /v1/inspect and renders its NDJSON stream as it
// arrives: the tokens (a block per segment, each shaded by its loss or a per-token diagnostic
// such as Expire-Span's predicted span), the chosen token's next-token probabilities, loss and
// diagnostics, the memory over time (per-layer diagnostics per segment, Adaptive-Span's span per
// head, RMT's read and write attention over its slots), and attention heatmaps with labelled
// queries and keys, a colour scale and the memory / segment boundaries marked.
// Bundled with d3 by scripts/build-viewer.mjs; nothing is fetched but the server's own routes.
import * as d3 from 'd3';
import type { AxisLabel } from '../../../inspect/axis-label.js';
import type { TraceAttention, TraceEnd, TraceRecord, TraceSegment, TraceStart, TraceToken } from '../../../infer/trace-records.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const modelSelect = $<HTMLSelectElement>('model');
const textInput = $<HTMLTextAreaElement>('text');
const shadeSelect = $<HTMLSelectElement>('shade');
const status = $<HTMLSpanElement>('status');
const tokensBox = $<HTMLDivElement>('tokens');
const segmentSelect = $<HTMLSelectElement>('att-segment');
const moduleSelect = $<HTMLSelectElement>('att-module');

interface ModelInfo { name: string; kind: string; segmentLength: number; input: 'text' | 'ids'; vocabSize: number }

/** What the stream has brought so far. */
let run: { start: TraceStart | null; segments: TraceSegment[]; tokens: TraceToken[]; end: TraceEnd | null } = { start: null, segments: [], tokens: [], end: null };
let selected: number | null = null;
let controller: AbortController | null = null;
let models: ModelInfo[] = [];
let chosenShade: string | null = null;

const shown = (label: string): string => (label === ' ' ? '␣' : label === '\n' ? '⏎' : label === '\t' ? '⇥' : label);
const fmt = (x: number): string => (Number.isInteger(x) || Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

async function loadModels(): Promise<void> {
  const res = await fetch('/viewer/models');
  models = ((await res.json()) as { models: ModelInfo[] }).models;
  const wanted = new URLSearchParams(location.search).get('model');
  for (const m of models) modelSelect.add(new Option(`${m.name} (${m.kind})`, m.name, false, m.name === wanted));
  describeModel();
}

function describeModel(): void {
  const m = models.find((x) => x.name === modelSelect.value);
  $('model-info').textContent = m ? `${m.kind}, segments of ${m.segmentLength} tokens, input: ${m.input === 'text' ? 'characters' : `token ids in [0, ${m.vocabSize})`}` : 'no model is served';
  if (m && textInput.value === '') textInput.placeholder = m.input === 'text' ? 'Type or paste text: it runs when you pause (or press Run, Ctrl+Enter)' : 'Type token ids separated by spaces: it runs when you pause (or press Run)';
}

/** Posts the text and renders the records as they stream in. */
async function start(): Promise<void> {
  controller?.abort();
  const ours = (controller = new AbortController());
  run = { start: null, segments: [], tokens: [], end: null };
  selected = null;
  tokensBox.replaceChildren();
  segmentSelect.replaceChildren();
  setStatus('streaming…');
  try {
    const res = await fetch('/v1/inspect', {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: ours.signal,
      body: JSON.stringify({ model: modelSelect.value, text: textInput.value }),
    });
    if (!res.ok || !res.body) {
      const body = (await res.json().catch(() => null)) as { error?: { message?: string }; message?: string } | null;
      throw new Error(body?.error?.message ?? body?.message ?? `the server answered ${res.status}`);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line.trim()) receive(JSON.parse(line) as TraceRecord | { type: 'error'; message: string });
    }
  } catch (e) {
    if (ours.signal.aborted) return;
    setStatus((e as Error).message, true);
  }
}

function receive(r: TraceRecord | { type: 'error'; message: string }): void {
  switch (r.type) {
    case 'start':
      run.start = r;
      break;
    case 'segment':
      run.segments.push(r);
      addSegmentBlock(r);
      segmentSelect.add(new Option(`${r.index + 1}: tokens ${r.start}–${r.end - 1}`, String(r.index), false, true));
      break;
    case 'token':
      run.tokens.push(r);
      addToken(r);
      break;
    case 'end':
      run.end = r;
      setStatus(`${r.tokens} tokens, ${run.segments.length} segment${run.segments.length === 1 ? '' : 's'}${r.loss === null ? '' : `, loss ${fmt(r.loss)} nats (${fmt(r.bitsPerToken!)} bits) per token`}`);
      document.body.dataset.state = 'done';
      if (selected === null && run.tokens.length) select(run.tokens.length - 1);
      break;
    case 'error':
      setStatus(r.message, true);
      break;
  }
  scheduleRender();
}

function setStatus(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
  status.setAttribute('role', error ? 'alert' : 'status');
  if (error) document.body.dataset.state = 'error';
  else if (text === 'streaming…') document.body.dataset.state = 'streaming';
}

// ---- tokens ---------------------------------------------------------------------------------

interface Shade { name: string; value: (t: TraceToken) => number | null; domain: [number, number]; colours: (t: number) => string }

function shades(): Shade[] {
  const s = run.start;
  if (!s) return [];
  const list: Shade[] = [];
  const perToken = run.tokens[0] ? Object.keys(run.tokens[0].values) : [];
  for (const name of perToken) {
    const layers = run.tokens[0]!.values[name]!.length;
    for (let l = 0; l < layers; l++) {
      const max = name.includes('span') && s.memLen > 0 ? s.memLen : Math.max(1e-9, ...run.tokens.map((t) => t.values[name]?.[l] ?? 0));
      list.push({ name: `${name} · layer ${l}`, value: (t) => t.values[name]?.[l] ?? null, domain: [0, max], colours: d3.interpolateBlues });
    }
  }
  list.push({ name: 'loss of the next token', value: (t) => t.loss, domain: [0, Math.log(s.labels.length)], colours: d3.interpolateOrRd });
  list.push({ name: 'probability of the next token', value: (t) => (t.loss === null ? null : Math.exp(-t.loss)), domain: [0, 1], colours: d3.interpolateGreens });
  return list;
}

/** The shade the user picked, else the first that applies (a per-token diagnostic, else the loss). */
function currentShade(): Shade | null {
  const all = shades();
  const wanted = all.find((sh) => sh.name === chosenShade) ?? all[0] ?? null;
  if ([...shadeSelect.options].map((o) => o.value).join('\n') !== all.map((sh) => sh.name).join('\n')) {
    shadeSelect.replaceChildren(...all.map((sh) => new Option(sh.name, sh.name, false, sh === wanted)));
  }
  return wanted;
}

function addSegmentBlock(seg: TraceSegment): void {
  const block = document.createElement('div');
  block.className = 'segment';
  block.dataset.segment = String(seg.index);
  const label = document.createElement('span');
  label.className = 'seg-label';
  label.textContent = `segment ${seg.index + 1}${seg.memory === null ? '' : ` · ${fmt(seg.memory)} memories`}`;
  block.append(label);
  tokensBox.append(block);
}

function addToken(t: TraceToken): void {
  const block = tokensBox.querySelector<HTMLDivElement>(`.segment[data-segment="${t.segment}"]`) ?? tokensBox;
  const cell = document.createElement('span');
  cell.className = 'tok';
  cell.dataset.position = String(t.position);
  cell.textContent = shown(t.label);
  cell.addEventListener('click', () => select(t.position));
  block.append(cell);
  paintToken(cell, t, currentShade());
}

function paintToken(cell: HTMLElement, t: TraceToken, shade: Shade | null): void {
  const v = shade?.value(t) ?? null;
  const x = v === null || !shade ? 0 : Math.min(1, Math.max(0, (v - shade.domain[0]) / (shade.domain[1] - shade.domain[0] || 1)));
  cell.style.background = v === null || !shade ? '#ffffff' : shade.colours(x);
  cell.style.color = x > 0.55 ? '#ffffff' : '#000000';
  const values = Object.entries(t.values).map(([name, layers]) => `${name}: ${layers.map(fmt).join(', ')}`);
  cell.title = [`#${t.position} ${JSON.stringify(t.label)} (segment ${t.segment + 1})`, `loss ${t.loss === null ? '—' : fmt(t.loss)}`, ...values].join('\n');
}

function paintTokens(): void {
  const shade = currentShade();
  tokensBox.querySelectorAll<HTMLElement>('.tok').forEach((cell) => paintToken(cell, run.tokens[Number(cell.dataset.position)]!, shade));
  const legend = $('token-legend');
  legend.replaceChildren();
  if (shade) legend.append(colourLegend(shade.domain, shade.colours, shade.name, 320));
}

function select(position: number): void {
  selected = position;
  tokensBox.querySelectorAll('.tok.selected').forEach((c) => c.classList.remove('selected'));
  tokensBox.querySelector(`.tok[data-position="${position}"]`)?.classList.add('selected');
  renderDetail();
}

function renderDetail(): void {
  const box = $('detail');
  const t = selected === null ? undefined : run.tokens[selected];
  if (!t) return;
  box.classList.remove('muted');
  const rows = t.top.map((c) => `<tr><td>${escape(shown(c.label))}</td><td>${c.p.toFixed(3)}</td><td><span class="bar" style="width:${Math.round(c.p * 120)}px"></span></td></tr>`).join('');
  const next = run.tokens[t.position + 1];
  const values = Object.entries(t.values).map(([name, layers]) =>
    `<tr><td>${escape(name)}</td>${layers.map((v, l) => `<td class="diag-value" data-name="${escape(name)}" data-layer="${l}">layer ${l}: ${fmt(v)}</td>`).join('')}</tr>`).join('');
  box.innerHTML = `<p><b class="detail-token">${escape(shown(t.label))}</b> at position ${t.position}, segment ${t.segment + 1} (offset ${t.offset})</p>`
    + `<p>next token ${next ? `<b>${escape(shown(next.label))}</b>` : '(end of text)'}; loss <b class="detail-loss">${t.loss === null ? '—' : `${fmt(t.loss)} nats`}</b></p>`
    + `<h3>Next-token probabilities (top ${t.top.length})</h3><table class="top">${rows}</table>`
    + (values ? `<h3>Per-token diagnostics</h3><table class="diagnostics">${values}</table>` : '');
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

// ---- memory over time -------------------------------------------------------------------------

function renderMemory(): void {
  const box = $('memory');
  const segs = run.segments;
  if (!segs.length) return;
  box.classList.remove('muted');
  box.replaceChildren();
  const charts = document.createElement('div');
  charts.className = 'charts';
  const names = [...new Set(segs.flatMap((s) => Object.keys(s.perLayer)))];
  for (const name of names) {
    const layers = Math.max(...segs.map((s) => s.perLayer[name]?.length ?? 0));
    charts.append(lineChart(name, Array.from({ length: layers }, (_, l) => ({ name: `layer ${l}`, values: segs.map((s) => s.perLayer[name]?.[l] ?? null) }))));
  }
  if (names.includes('memories kept')) {
    // dropped after segment s: what was kept before it, plus its tokens, less what is kept now
    const kept = (s: number, l: number) => segs[s]?.perLayer['memories kept']?.[l] ?? 0;
    const layers = segs[0]!.perLayer['memories kept']!.length;
    charts.append(lineChart('memories dropped', Array.from({ length: layers }, (_, l) => ({
      name: `layer ${l}`, values: segs.map((s, i) => Math.max(0, (i ? kept(i - 1, l) : 0) + (s.end - s.start) - kept(i, l))),
    }))));
  }
  if (!names.length && segs.some((s) => s.memory !== null)) charts.append(lineChart('memories attended', [{ name: 'layer mean', values: segs.map((s) => s.memory) }]));
  box.append(charts);

  const last = segs[segs.length - 1]!;
  for (const [name, values] of Object.entries(last.perHead)) {
    const max = Math.max(1e-9, run.start?.memLen ?? 0, ...values.flat());
    box.insertAdjacentHTML('beforeend', `<h3>${escape(name)} per head (after segment ${last.index + 1})</h3><table class="perhead"><tr><th></th>${values[0]!.map((_, h) => `<th>head ${h}</th>`).join('')}</tr>`
      + values.map((row, l) => `<tr><td>layer ${l}</td>${row.map((v) => `<td><span class="bar" style="width:${Math.round((v / max) * 60)}px"></span> <span class="perhead-value">${fmt(v)}</span></td>`).join('')}</tr>`).join('') + '</table>');
  }
  const scalars = Object.entries(last.scalars);
  if (scalars.length) box.insertAdjacentHTML('beforeend', `<h3>After segment ${last.index + 1}</h3><table class="scalars">${scalars.map(([k, v]) => `<tr><td>${escape(k)}</td><td>${fmt(v)}</td></tr>`).join('')}</table>`);
  renderSlots(box);
  if (!box.childElementCount || (!charts.childElementCount && box.childElementCount === 1)) {
    box.insertAdjacentHTML('beforeend', `<p class="muted">A ${escape(run.start?.kind ?? '')} model reports no memory diagnostics: its attention is below.</p>`);
  }
}

/** RMT and the Memory Transformer: attention between the memory slots and the segment, per segment. */
function renderSlots(box: HTMLElement): void {
  const segs = run.segments.filter((s) => s.attention.some((a) => a.queries.some((q) => q.part === 'read')));
  if (!segs.length) return;
  const modules = segs[0]!.attention.map((a) => a.module);
  const slotsOf = (a: TraceAttention, part: 'read' | 'write') => a.keys.map((k, j) => (k.part === part ? j : -1)).filter((j) => j >= 0);
  for (const module of modules) {
    const maps = segs.map((s) => s.attention.find((a) => a.module === module)!);
    const reads = slotsOf(maps[0]!, 'read');
    // read: how much the segment's tokens attend to each read slot (mean over the tokens)
    const read = reads.map((_, r) => maps.map((a) => {
      const rows = mean2(a).filter((_, i) => a.queries[i]!.part === 'segment');
      return rows.reduce((s, row) => s + row[slotsOf(a, 'read')[r]!]!, 0) / Math.max(1, rows.length);
    }));
    const labels = reads.map((_, i) => `slot ${i}`);
    const columns = segs.map((s) => `seg ${s.index + 1}`);
    const parts = segs.map(() => 'segment');
    const pair = document.createElement('div');
    pair.className = 'charts';
    box.append(pair);
    pair.append(heatmap({ title: `${module} read: the segment's tokens → each memory slot`, values: read, rowLabels: labels, colLabels: columns, rowParts: labels.map(() => 'read'), colParts: parts, className: 'slots-read' }));
    const writes = slotsOf(maps[0]!, 'write');
    if (writes.length) {
      // write: how much each write slot attends to the segment's tokens (the rest goes to the slots)
      const write = writes.map((_, w) => maps.map((a) => {
        const q = a.queries.findIndex((x) => x.part === 'write') + w;
        return mean2(a)[q]!.reduce((s, v, j) => s + (a.keys[j]!.part === 'segment' ? v : 0), 0);
      }));
      pair.append(heatmap({ title: `${module} write: each write slot → the segment's tokens`, values: write, rowLabels: labels, colLabels: columns, rowParts: labels.map(() => 'write'), colParts: parts, className: 'slots-write' }));
    }
  }
}

/** A map's [Tq][Tk] (the mean of the heads when they were sent one by one). */
function mean2(a: TraceAttention): number[][] {
  const w = a.weights;
  if (!Array.isArray(w[0]?.[0])) return w as number[][];
  const heads = w as number[][][];
  return heads[0]!.map((row, i) => row.map((_, j) => heads.reduce((s, h) => s + h[i]![j]!, 0) / heads.length));
}

function lineChart(title: string, series: { name: string; values: (number | null)[] }[]): HTMLElement {
  const W = 320, H = 170, m = { top: 22, right: 90, bottom: 30, left: 36 };
  const n = Math.max(...series.map((s) => s.values.length));
  const x = d3.scaleLinear().domain([1, Math.max(2, n)]).range([m.left, W - m.right]);
  const y = d3.scaleLinear().domain([0, Math.max(1, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)))]).nice().range([H - m.bottom, m.top]);
  const colour = d3.scaleOrdinal(d3.schemeTableau10);
  const svg = d3.create('svg').attr('width', W).attr('height', H).attr('class', 'chart-svg');
  svg.append('text').attr('x', m.left).attr('y', 13).style('font-weight', '600').text(title);
  svg.append('g').attr('transform', `translate(0,${H - m.bottom})`).call(d3.axisBottom(x).ticks(Math.min(n, 8)).tickFormat(d3.format('d')));
  svg.append('text').attr('x', (W - m.right + m.left) / 2).attr('y', H - 2).attr('text-anchor', 'middle').text('segment');
  svg.append('g').attr('transform', `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(4));
  series.forEach((s, i) => {
    const line = d3.line<number | null>().defined((v) => v !== null).x((_, k) => x(k + 1)).y((v) => y(v!));
    svg.append('path').attr('d', line(s.values)).attr('fill', 'none').attr('stroke', colour(String(i))).attr('stroke-width', 2);
    svg.selectAll(null).data(s.values.map((v, k) => [k, v] as const).filter(([, v]) => v !== null)).join('circle')
      .attr('cx', ([k]) => x(k + 1)).attr('cy', ([, v]) => y(v!)).attr('r', 2.5).attr('fill', colour(String(i)))
      .append('title').text(([k, v]) => `${s.name}, segment ${k + 1}: ${v}`);
    svg.append('text').attr('x', W - m.right + 6).attr('y', m.top + 10 + i * 13).style('fill', colour(String(i))).text(s.name);
  });
  const div = document.createElement('div');
  div.className = 'chart';
  div.append(svg.node()!);
  return div;
}

// ---- attention heatmaps -------------------------------------------------------------------------

function axisLabel(a: AxisLabel, i: number, parts: AxisLabel[]): string {
  if (a.position !== null) {
    const t = run.tokens[a.position];
    return t ? shown(t.label) : `#${a.position}`;
  }
  const index = parts.slice(0, i).filter((p) => p.part === a.part).length;
  return `${a.part[0]}${index}`;
}

function renderAttention(): void {
  const box = $('heatmap');
  const seg = run.segments[Number(segmentSelect.value)] ?? run.segments[run.segments.length - 1];
  if (!seg) return;
  const modules = seg.attention.map((a) => a.module);
  if ([...moduleSelect.options].map((o) => o.value).join() !== modules.join()) {
    const before = moduleSelect.value;
    moduleSelect.replaceChildren(...modules.map((m) => new Option(m, m, false, m === before)));
  }
  const map = seg.attention.find((a) => a.module === moduleSelect.value) ?? seg.attention[0];
  box.replaceChildren();
  if (!map) {
    box.textContent = 'No attention maps were recorded for this model.';
    return;
  }
  box.append(heatmap({
    title: `${map.module}, segment ${seg.index + 1} (tokens ${seg.start}–${seg.end - 1}), mean of the heads: queries (rows) attend to keys (columns)`,
    values: mean2(map),
    rowLabels: map.queries.map((q, i) => axisLabel(q, i, map.queries)),
    colLabels: map.keys.map((k, i) => axisLabel(k, i, map.keys)),
    rowParts: map.queries.map((q) => q.part), colParts: map.keys.map((k) => k.part),
    rowTitles: map.queries.map((q) => (q.position === null ? q.part : `${q.part} #${q.position}`)),
    colTitles: map.keys.map((k) => (k.position === null ? k.part : `${k.part} #${k.position}`)),
    colPositions: map.keys.map((k) => k.position),
    className: 'attention',
  }));
}

interface HeatmapOptions {
  title: string;
  values: number[][];
  rowLabels: string[];
  colLabels: string[];
  /** What each row / column is ('memory', 'segment', 'read'...): a line is drawn where it changes. */
  rowParts: string[];
  colParts: string[];
  rowTitles?: string[];
  colTitles?: string[];
  /** Each column's stream position (or null): a dashed line marks where an earlier segment began. */
  colPositions?: (number | null)[];
  className: string;
}

/** Shaded cells with labelled rows and columns, the part boundaries marked, and a colour scale. */
function heatmap(o: HeatmapOptions): HTMLElement {
  const rows = o.values.length, cols = Math.max(1, ...o.values.map((r) => r.length));
  const cell = Math.max(4, Math.min(18, Math.floor(900 / cols)));
  const m = { top: 48, left: 52, right: 20, bottom: 56 };
  const W = Math.max(m.left + cols * cell + m.right, m.left + 400), H = m.top + rows * cell + m.bottom;
  const max = Math.max(1e-9, ...o.values.flat());
  const colour = (v: number) => d3.interpolateBlues(v / max);
  const svg = d3.create('svg').attr('width', W).attr('height', H).attr('class', `heatmap ${o.className}`);
  const g = svg.append('g').attr('transform', `translate(${m.left},${m.top})`);
  g.selectAll('rect.cell').data(o.values.flatMap((row, i) => row.map((v, j) => ({ i, j, v })))).join('rect')
    .attr('class', 'cell').attr('x', (d) => d.j * cell).attr('y', (d) => d.i * cell).attr('width', cell).attr('height', cell)
    .attr('fill', (d) => colour(d.v))
    .append('title').text((d) => `${o.rowTitles?.[d.i] ?? o.rowLabels[d.i]} → ${o.colTitles?.[d.j] ?? o.colLabels[d.j]}: ${d.v.toFixed(4)}`);
  g.append('rect').attr('width', cols * cell).attr('height', rows * cell).attr('fill', 'none').attr('stroke', '#444');
  const step = Math.ceil(9 / cell); // label every row and column when the cells are large enough
  g.selectAll('text.row-label').data(o.rowLabels.map((l, i) => ({ l, i })).filter((d) => d.i % step === 0)).join('text')
    .attr('class', 'label row-label').attr('x', -4).attr('y', (d) => d.i * cell + cell / 2 + 3).attr('text-anchor', 'end').text((d) => d.l);
  g.selectAll('text.col-label').data(o.colLabels.map((l, j) => ({ l, j })).filter((d) => d.j % step === 0)).join('text')
    .attr('class', 'label col-label').attr('transform', (d) => `translate(${d.j * cell + cell / 2 + 3},-4) rotate(-90)`).text((d) => d.l);
  // part boundaries (memory | segment, read | segment | write), with each part named
  const runs = (parts: string[]) => parts.reduce<{ part: string; from: number; to: number }[]>((acc, p, i) => {
    const last = acc[acc.length - 1];
    if (last && last.part === p) last.to = i + 1;
    else acc.push({ part: p, from: i, to: i + 1 });
    return acc;
  }, []);
  const colRuns = runs(o.colParts), rowRuns = runs(o.rowParts);
  // earlier segments' boundaries among the memories (every M stream positions)
  const M = run.start?.segmentLength ?? 0;
  o.colPositions?.forEach((p, j) => {
    if (M && j > 0 && p !== null && p % M === 0 && o.colParts[j] === o.colParts[j - 1]) {
      g.append('line').attr('class', 'segment-boundary').attr('x1', j * cell).attr('x2', j * cell).attr('y1', -40).attr('y2', rows * cell)
        .attr('stroke', '#98a2b3').attr('stroke-dasharray', '3 2');
    }
  });
  for (const r of colRuns.slice(1)) g.append('line').attr('class', 'boundary').attr('x1', r.from * cell).attr('x2', r.from * cell).attr('y1', -40).attr('y2', rows * cell + 6).attr('stroke', '#d92d20').attr('stroke-width', 2);
  for (const r of rowRuns.slice(1)) g.append('line').attr('class', 'boundary').attr('y1', r.from * cell).attr('y2', r.from * cell).attr('x1', -40).attr('x2', cols * cell + 6).attr('stroke', '#d92d20').attr('stroke-width', 2);
  if (colRuns.length > 1 || colRuns[0]?.part !== 'segment') {
    for (const r of colRuns) g.append('text').attr('class', 'part').attr('x', ((r.from + r.to) / 2) * cell).attr('y', rows * cell + 16).attr('text-anchor', 'middle').style('fill', '#d92d20').text(r.part);
  }
  svg.append(() => colourLegend([0, max], (t) => d3.interpolateBlues(t), 'attention weight', 220, true))
    .attr('x', m.left).attr('y', m.top + rows * cell + 22);
  const div = document.createElement('figure');
  div.className = 'map';
  const caption = document.createElement('figcaption');
  caption.textContent = o.title;
  div.append(caption, svg.node()!);
  return div;
}

/** A colour bar with its axis: the scale every shade on the page is read against. */
function colourLegend(domain: [number, number], colours: (t: number) => string, title: string, width: number, nested = false): SVGSVGElement {
  const H = 34, left = 8;
  const svg = d3.create('svg').attr('width', left + width + 16 + title.length * 7).attr('height', H).attr('class', 'colour-legend');
  const bar = svg.append('g').attr('transform', `translate(${left},0)`);
  const id = `grad-${Math.random().toString(36).slice(2)}`;
  const gradient = svg.append('defs').append('linearGradient').attr('id', id);
  for (let i = 0; i <= 10; i++) gradient.append('stop').attr('offset', `${i * 10}%`).attr('stop-color', colours(i / 10));
  bar.append('rect').attr('x', 0).attr('y', 2).attr('width', width).attr('height', 10).attr('fill', `url(#${id})`).attr('stroke', '#888');
  const x = d3.scaleLinear().domain(domain).range([0, width]);
  bar.append('g').attr('transform', 'translate(0,12)').call(d3.axisBottom(x).ticks(5).tickSize(4));
  bar.append('text').attr('x', width + 8).attr('y', 11).text(title);
  if (nested) svg.attr('overflow', 'visible');
  return svg.node()!;
}

// ---- wiring ---------------------------------------------------------------------------------------

let frame = 0;
function scheduleRender(): void {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    paintTokens();
    renderMemory();
    renderAttention();
    if (selected !== null) renderDetail();
  });
}

// Run on demand, and again whenever the text rests for a moment after an edit.
let typing = 0;
const runNow = () => { clearTimeout(typing); void start(); };
$('run').addEventListener('click', runNow);
textInput.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) runNow(); });
textInput.addEventListener('input', () => {
  clearTimeout(typing);
  if (textInput.value.trim() !== '') typing = window.setTimeout(runNow, 800);
});
modelSelect.addEventListener('change', describeModel);
shadeSelect.addEventListener('change', () => { chosenShade = shadeSelect.value; scheduleRender(); });
segmentSelect.addEventListener('change', scheduleRender);
moduleSelect.addEventListener('change', scheduleRender);
loadModels().catch((e: unknown) => setStatus(`cannot list the models: ${(e as Error).message}`, true));
