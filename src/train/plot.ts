// A small line chart as SVG text: axes with ticks, one line with markers per series, a legend.
// Written here rather than taken from a plotting library: the charts are one kind (a metric
// against a setting, a few series), a standalone SVG needs no browser or canvas to render, and
// the libraries that write SVG in Node (d3 with jsdom, vega with its renderer) would bring
// megabytes of dependencies for 150 lines.
export interface ChartSeries {
  name: string;
  /** Points in x order; y null (or NaN) for a missing value (the line is broken there). */
  points: { x: number; y: number | null }[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** Tick positions and labels on the x axis (default: the distinct x values). */
  xTicks?: { x: number; label: string }[];
  /** Fixed y range (default: the data's, widened to nice numbers). */
  yDomain?: [number, number];
  width?: number;
  height?: number;
}

// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
export const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];
const MARKERS = ['circle', 'square', 'triangle', 'diamond'] as const;

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (x: number): string => (Math.round(x * 100) / 100).toString();

/** About `count` round tick values covering [lo, hi] (1, 2, 5 times a power of ten apart). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function tickLabel(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function marker(kind: (typeof MARKERS)[number], x: number, y: number, color: string): string {
  const r = 4;
  switch (kind) {
    case 'circle':
      return `<circle cx="${num(x)}" cy="${num(y)}" r="${r}" fill="${color}"/>`;
    case 'square':
      return `<rect x="${num(x - r)}" y="${num(y - r)}" width="${2 * r}" height="${2 * r}" fill="${color}"/>`;
    case 'triangle':
      return `<path d="M${num(x)},${num(y - r - 1)} L${num(x + r + 1)},${num(y + r)} L${num(x - r - 1)},${num(y + r)} Z" fill="${color}"/>`;
    case 'diamond':
      return `<path d="M${num(x)},${num(y - r - 1)} L${num(x + r + 1)},${num(y)} L${num(x)},${num(y + r + 1)} L${num(x - r - 1)},${num(y)} Z" fill="${color}"/>`;
  }
}

/** The chart as a standalone SVG document. */
export function lineChart(o: LineChartOptions): string {
  // The legend takes what its longest name needs (~7 px a character at 12 px); the chart grows
  // wider rather than cutting names or squeezing the plot below 420 px.
  const legendWidth = 40 + 7 * Math.max(8, ...o.series.map((s) => s.name.length));
  const width = Math.max(o.width ?? 640, 64 + 420 + legendWidth + 16), height = o.height ?? 400;
  const m = { top: 44, right: legendWidth + 16, bottom: 56, left: 64 };
  const plotW = width - m.left - m.right, plotH = height - m.top - m.bottom;

  const xs = [...new Set(o.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const xTicks = o.xTicks ?? xs.map((x) => ({ x, label: String(x) }));
  const xLo = Math.min(...xTicks.map((t) => t.x), ...xs), xHi = Math.max(...xTicks.map((t) => t.x), ...xs);
  const ys = o.series.flatMap((s) => s.points.map((p) => p.y)).filter((y): y is number => y !== null && Number.isFinite(y));
  let [yLo, yHi] = o.yDomain ?? [Math.min(...ys, Infinity), Math.max(...ys, -Infinity)];
  if (!Number.isFinite(yLo) || !Number.isFinite(yHi)) [yLo, yHi] = [0, 1];
  if (yHi - yLo < 1e-12) [yLo, yHi] = [yLo - 0.5, yHi + 0.5];
  const yTicks = niceTicks(yLo, yHi, 5);
  if (!o.yDomain) [yLo, yHi] = [Math.min(yLo, yTicks[0]!), Math.max(yHi, yTicks[yTicks.length - 1]!)];

  const pad = xHi > xLo ? 0.06 * (xHi - xLo) : 1;
  const sx = (x: number) => m.left + ((x - (xLo - pad)) / (xHi - xLo + 2 * pad)) * plotW;
  const sy = (y: number) => m.top + plotH - ((y - yLo) / (yHi - yLo)) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${num(m.left + plotW / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`);
  // grid and y ticks
  for (const t of yTicks) {
    const y = sy(t);
    out.push(`<line x1="${m.left}" y1="${num(y)}" x2="${m.left + plotW}" y2="${num(y)}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${m.left - 5}" y1="${num(y)}" x2="${m.left}" y2="${num(y)}" stroke="#333"/>`);
    out.push(`<text x="${m.left - 8}" y="${num(y + 4)}" text-anchor="end">${tickLabel(t, yTicks)}</text>`);
  }
  // x ticks
  for (const t of xTicks) {
    const x = sx(t.x);
    out.push(`<line x1="${num(x)}" y1="${m.top + plotH}" x2="${num(x)}" y2="${m.top + plotH + 5}" stroke="#333"/>`);
    out.push(`<text x="${num(x)}" y="${m.top + plotH + 19}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  // axes
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top + plotH}" x2="${m.left + plotW}" y2="${m.top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${num(m.left + plotW / 2)}" y="${height - 14}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${num(m.top + plotH / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  // series
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const kind = MARKERS[i % MARKERS.length]!;
    let path = '';
    let pen = false;
    for (const p of s.points) {
      if (p.y === null || !Number.isFinite(p.y)) {
        pen = false;
        continue;
      }
      path += `${pen ? 'L' : 'M'}${num(sx(p.x))},${num(sy(p.y))} `;
      pen = true;
    }
    if (path) out.push(`<path d="${path.trim()}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of s.points) if (p.y !== null && Number.isFinite(p.y)) out.push(marker(kind, sx(p.x), sy(p.y), color));
    // legend entry
    const lx = width - m.right + 16, ly = m.top + 8 + i * 20;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(marker(kind, lx + 11, ly, color));
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
