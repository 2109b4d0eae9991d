// Pictures of what a model keeps, as standalone SVG (see src/train/plot.ts for why SVG is written
// here): an attention heatmap (its rows and columns labelled with their tokens, the memory /
// segment boundaries marked, a colour scale), the spans of Adaptive-Span's heads, and a text with
// each character shaded by a value (the Expire-Span paper's figure: how long the model keeps each
// character), the segment boundaries marked.
import { COLORS, esc } from '../train/plot.js';

const num = (x: number): string => (Math.round(x * 100) / 100).toString();
const header = (w: number, h: number): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="Helvetica, Arial, sans-serif" font-size="12">\n<rect width="${w}" height="${h}" fill="#ffffff"/>`;
/** White (0) to dark blue (1). */
const shade = (v: number): string => {
  const t = Math.min(1, Math.max(0, v));
  const c = (from: number, to: number) => Math.round(from + (to - from) * t);
  return `rgb(${c(255, 8)},${c(255, 48)},${c(255, 107)})`;
};

export interface HeatmapOptions {
  title: string;
  /** [rows][columns], shaded from 0 (white) to max (dark): attention weights. */
  values: number[][];
  xLabel: string;
  yLabel: string;
  /** Largest cell side in pixels (default 12; smaller when the matrix is large). */
  cell?: number;
  /** The colour scale's upper end (default 1). */
  max?: number;
  /** Each row's and column's label (a token's text, 'r0' for a memory slot), drawn when the cells are large enough. */
  rowLabels?: string[];
  colLabels?: string[];
  /** What each row and column is ('memory', 'segment', 'read'...): a red line marks where it changes, each part named. */
  rowParts?: string[];
  colParts?: string[];
  /** Columns before which a dashed line marks where an earlier segment began (among the memories). */
  colSegmentStarts?: number[];
}

/** Consecutive runs of equal parts: [part, first index, end index). */
function partRuns(parts: readonly string[]): [string, number, number][] {
  const runs: [string, number, number][] = [];
  parts.forEach((p, i) => {
    const last = runs[runs.length - 1];
    if (last && last[0] === p) last[2] = i + 1;
    else runs.push([p, i, i + 1]);
  });
  return runs;
}

/** The colour scale: a bar shaded from 0 to max with its ticks, at (x, y). */
function colourScale(x: number, y: number, max: number, title: string): string {
  const w = 160;
  const stops = Array.from({ length: 11 }, (_, i) => `<stop offset="${i * 10}%" stop-color="${shade(i / 10)}"/>`).join('');
  const ticks = [0, 0.5, 1].map((f) => `<line x1="${num(x + f * w)}" y1="${y + 10}" x2="${num(x + f * w)}" y2="${y + 14}" stroke="#333"/><text x="${num(x + f * w)}" y="${y + 25}" text-anchor="middle" font-size="10">${num(f * max)}</text>`).join('');
  return `<defs><linearGradient id="colour-scale">${stops}</linearGradient></defs>`
    + `<rect class="scale" x="${x}" y="${y}" width="${w}" height="10" fill="url(#colour-scale)" stroke="#888"/>${ticks}<text x="${x + w + 8}" y="${y + 9}" font-size="11">${esc(title)}</text>`;
}

/** A matrix as shaded cells, row 0 at the top, with its labels, part boundaries and colour scale. */
export function heatmap(o: HeatmapOptions): string {
  const rows = o.values.length, cols = Math.max(1, ...o.values.map((r) => r.length));
  const cell = Math.max(1, Math.min(o.cell ?? 12, Math.floor(720 / cols), Math.floor(720 / Math.max(1, rows))));
  const max = o.max ?? 1;
  const labelled = (labels?: string[]) => (labels && cell >= 3 ? labels : null);
  const rowLabels = labelled(o.rowLabels), colLabels = labelled(o.colLabels);
  const step = Math.ceil(9 / cell); // a label every `step` rows / columns, so that they do not overlap
  const m = { top: colLabels ? 72 : 40, left: rowLabels ? 72 : 48, right: 16, bottom: 76 };
  const pw = cols * cell, ph = rows * cell;
  const w = Math.max(m.left + pw + m.right, 360, 32 + o.title.length * 8), h = m.top + ph + m.bottom;
  const out = [header(w, h)];
  out.push(`<text x="16" y="24" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  o.values.forEach((row, i) => row.forEach((v, j) => {
    if (v > 1e-3 * max) out.push(`<rect class="cell" x="${m.left + j * cell}" y="${m.top + i * cell}" width="${cell}" height="${cell}" fill="${shade(v / max)}"/>`);
  }));
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  rowLabels?.forEach((l, i) => {
    if (i % step === 0) out.push(`<text class="label" x="${m.left - 4}" y="${num(m.top + i * cell + cell / 2 + 3)}" text-anchor="end" font-family="monospace" font-size="9">${esc(l)}</text>`);
  });
  colLabels?.forEach((l, j) => {
    if (j % step === 0) out.push(`<text class="label" transform="translate(${num(m.left + j * cell + cell / 2 + 3)} ${m.top - 4}) rotate(-90)" font-family="monospace" font-size="9">${esc(l)}</text>`);
  });
  for (const j of o.colSegmentStarts ?? []) {
    out.push(`<line class="segment-boundary" x1="${m.left + j * cell}" y1="${m.top}" x2="${m.left + j * cell}" y2="${m.top + ph}" stroke="#98a2b3" stroke-dasharray="3 2"/>`);
  }
  const colRuns = partRuns(o.colParts ?? []), rowRuns = partRuns(o.rowParts ?? []);
  for (const [, from] of colRuns.slice(1)) out.push(`<line class="boundary" x1="${m.left + from * cell}" y1="${m.top - 8}" x2="${m.left + from * cell}" y2="${m.top + ph + 8}" stroke="#d92d20" stroke-width="2"/>`);
  for (const [, from] of rowRuns.slice(1)) out.push(`<line class="boundary" x1="${m.left - 8}" y1="${m.top + from * cell}" x2="${m.left + pw + 8}" y2="${m.top + from * cell}" stroke="#d92d20" stroke-width="2"/>`);
  if (colRuns.length > 1) {
    for (const [part, from, to] of colRuns) out.push(`<text x="${num(m.left + ((from + to) / 2) * cell)}" y="${m.top + ph + 18}" text-anchor="middle" font-size="11" fill="#d92d20">${esc(part)}</text>`);
  }
  out.push(`<text x="${num(m.left + pw / 2)}" y="${m.top + ph + 34}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${num(m.top + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  out.push(colourScale(m.left, m.top + ph + 44, max, 'attention weight'));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface GroupedBarsOptions {
  title: string;
  /** [group][bar]: e.g. [layer][head] spans. */
  values: number[][];
  groupLabel: (g: number) => string;
  barLabel: (b: number) => string;
  yLabel: string;
  /** Upper end of the y axis (default: the largest value). */
  yMax?: number;
}

/** One group of bars per row of values (Adaptive-Span: a group per layer, a bar per head). */
export function groupedBars(o: GroupedBarsOptions): string {
  const groups = o.values.length, bars = Math.max(1, ...o.values.map((g) => g.length));
  const yMax = o.yMax ?? Math.max(1, ...o.values.flat());
  const barW = 14, gap = 18;
  const m = { top: 44, left: 64, right: 140, bottom: 48 };
  const plotW = groups * (bars * barW + gap) + gap, plotH = 260;
  const w = m.left + plotW + m.right, h = m.top + plotH + m.bottom;
  const sy = (v: number) => m.top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  const out = [header(w, h)];
  out.push(`<text x="${m.left}" y="24" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  for (const t of [0, 0.25, 0.5, 0.75, 1].map((f) => f * yMax)) {
    out.push(`<line x1="${m.left}" y1="${num(sy(t))}" x2="${m.left + plotW}" y2="${num(sy(t))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 6}" y="${num(sy(t) + 4)}" text-anchor="end">${num(t)}</text>`);
  }
  o.values.forEach((group, g) => {
    const x0 = m.left + gap + g * (bars * barW + gap);
    group.forEach((v, b) => {
      out.push(`<rect x="${x0 + b * barW}" y="${num(sy(v))}" width="${barW - 2}" height="${num(m.top + plotH - sy(v))}" fill="${COLORS[b % COLORS.length]}"><title>${esc(`${o.groupLabel(g)}, ${o.barLabel(b)}: ${num(v)}`)}</title></rect>`);
    });
    out.push(`<text x="${num(x0 + (bars * barW) / 2)}" y="${m.top + plotH + 18}" text-anchor="middle">${esc(o.groupLabel(g))}</text>`);
  });
  out.push(`<line x1="${m.left}" y1="${m.top + plotH}" x2="${m.left + plotW}" y2="${m.top + plotH}" stroke="#333"/>`);
  out.push(`<text transform="translate(18 ${num(m.top + plotH / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  for (let b = 0; b < bars; b++) {
    const ly = m.top + 8 + b * 18, lx = m.left + plotW + 16;
    out.push(`<rect x="${lx}" y="${ly - 8}" width="12" height="12" fill="${COLORS[b % COLORS.length]}"/><text x="${lx + 18}" y="${ly + 2}">${esc(o.barLabel(b))}</text>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface ShadedTextOptions {
  title: string;
  /** One string per position (characters, or decoded tokens). */
  text: string[];
  /** One value per position; shaded from 0 (white) to maxValue (dark). */
  values: number[];
  maxValue: number;
  /** Positions per line (default 64). */
  width?: number;
  /** What the shade means, printed under the title and beside the colour scale. */
  legend: string;
  /** Tokens per segment: a red mark where each segment begins (none when absent). */
  segmentLength?: number;
}

/** Text with each position's background shaded by its value (the Expire-Span paper's figure). */
export function shadedText(o: ShadedTextOptions): string {
  const perLine = o.width ?? 64, cw = 11, lh = 20;
  const lines = Math.ceil(o.text.length / perLine);
  const m = { top: 64, left: 16 };
  const w = Math.max(m.left * 2 + perLine * cw, 420), h = m.top + lines * lh + 48;
  const out = [header(w, h)];
  out.push(`<text x="${m.left}" y="24" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  out.push(`<text x="${m.left}" y="44" fill="#555">${esc(o.legend)}</text>`);
  o.text.forEach((ch, i) => {
    const x = m.left + (i % perLine) * cw, y = m.top + Math.floor(i / perLine) * lh;
    const v = (o.values[i] ?? 0) / Math.max(o.maxValue, 1e-9);
    out.push(`<rect class="cell" x="${x}" y="${y}" width="${cw}" height="${lh - 2}" fill="${shade(v)}"><title>${esc(`${i}: ${num(o.values[i] ?? 0)}`)}</title></rect>`);
    const shown = ch === '\n' ? '⏎' : ch === ' ' ? '' : ch;
    if (shown) out.push(`<text x="${x + cw / 2}" y="${y + 14}" text-anchor="middle" font-family="monospace" fill="${v > 0.55 ? '#ffffff' : '#000000'}">${esc(shown)}</text>`);
    if (o.segmentLength && i % o.segmentLength === 0) {
      out.push(`<line class="boundary" x1="${x}" y1="${y - 2}" x2="${x}" y2="${y + lh}" stroke="#d92d20" stroke-width="2"><title>segment ${i / o.segmentLength + 1}</title></line>`);
    }
  });
  out.push(colourScale(m.left, m.top + lines * lh + 10, o.maxValue, o.segmentLength ? 'red marks: segment boundaries' : ''));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
