// Pictures of what a model keeps, as standalone SVG (see src/train/plot.ts for why SVG is written
// here): an attention heatmap, the spans of Adaptive-Span's heads, and a text with each character
// shaded by a value (the Expire-Span paper's figure: how long the model keeps each character).
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
  /** [rows][columns] in [0, 1] (attention weights). */
  values: number[][];
  xLabel: string;
  yLabel: string;
  /** Largest cell side in pixels (default 12; smaller when the matrix is large). */
  cell?: number;
}

/** A matrix as shaded cells, row 0 at the top. */
export function heatmap(o: HeatmapOptions): string {
  const rows = o.values.length, cols = Math.max(1, ...o.values.map((r) => r.length));
  const cell = Math.max(1, Math.min(o.cell ?? 12, Math.floor(720 / cols), Math.floor(720 / Math.max(1, rows))));
  const m = { top: 40, left: 48, right: 16, bottom: 40 };
  const w = m.left + cols * cell + m.right, h = m.top + rows * cell + m.bottom;
  const out = [header(Math.max(w, 240), h)];
  out.push(`<text x="${m.left}" y="24" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  o.values.forEach((row, i) => row.forEach((v, j) => {
    if (v > 1e-3) out.push(`<rect x="${m.left + j * cell}" y="${m.top + i * cell}" width="${cell}" height="${cell}" fill="${shade(v)}"/>`);
  }));
  out.push(`<rect x="${m.left}" y="${m.top}" width="${cols * cell}" height="${rows * cell}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${num(m.left + (cols * cell) / 2)}" y="${h - 14}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(20 ${num(m.top + (rows * cell) / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
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
  /** What the shade means, printed under the title. */
  legend: string;
}

/** Text with each position's background shaded by its value (the Expire-Span paper's figure). */
export function shadedText(o: ShadedTextOptions): string {
  const perLine = o.width ?? 64, cw = 11, lh = 20;
  const lines = Math.ceil(o.text.length / perLine);
  const m = { top: 64, left: 16 };
  const w = m.left * 2 + perLine * cw, h = m.top + lines * lh + 16;
  const out = [header(w, h)];
  out.push(`<text x="${m.left}" y="24" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  out.push(`<text x="${m.left}" y="44" fill="#555">${esc(o.legend)}</text>`);
  o.text.forEach((ch, i) => {
    const x = m.left + (i % perLine) * cw, y = m.top + Math.floor(i / perLine) * lh;
    const v = (o.values[i] ?? 0) / Math.max(o.maxValue, 1e-9);
    out.push(`<rect x="${x}" y="${y}" width="${cw}" height="${lh - 2}" fill="${shade(v)}"><title>${esc(`${i}: ${num(o.values[i] ?? 0)}`)}</title></rect>`);
    const shown = ch === '\n' ? '⏎' : ch === ' ' ? '' : ch;
    if (shown) out.push(`<text x="${x + cw / 2}" y="${y + 14}" text-anchor="middle" font-family="monospace" fill="${v > 0.55 ? '#ffffff' : '#000000'}">${esc(shown)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
