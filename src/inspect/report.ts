// An inspection as files: inspection.json (the plain data) and the SVG pictures that apply to the
// model — attention of the last segment, Adaptive-Span's spans per layer and head, Expire-Span's
// text shaded by predicted span and its live memories per segment. Files are written atomically.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../tensor/serialize.js';
import { lineChart } from '../train/plot.js';
import { groupedBars, heatmap, shadedText } from './plots.js';
import type { Inspection } from './inspect.js';

export interface ReportOptions {
  dir: string;
  /** Each token as text (a character, a symbol). */
  decode: (id: number) => string;
  /** The model's maximum span (the shade's upper end for Expire-Span). */
  maxSpan: number;
}

export async function writeInspection(ins: Inspection, o: ReportOptions): Promise<string[]> {
  mkdirSync(o.dir, { recursive: true });
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    const path = join(o.dir, name);
    await writeFileAtomic(path, async (fh) => { await fh.writeFile(text); }, 'inspect');
    files.push(path);
  };
  await write('inspection.json', `${JSON.stringify(ins)}\n`);

  const last = ins.segments[ins.segments.length - 1];
  for (const map of last?.attention ?? []) {
    if (map.weights.length === 0) continue;
    const K = map.weights.length;
    const mean = map.weights[0]!.map((row, i) => row.map((_, j) => map.weights.reduce((s, head) => s + head[i]![j]!, 0) / K));
    await write(`attention-${map.module.replace(/[^\w]+/g, '-')}.svg`, heatmap({
      title: `${ins.kind}: ${map.module}, last segment (mean of ${K} heads)`,
      values: mean,
      xLabel: 'keys: memories (oldest first), then the segment',
      yLabel: 'queries',
    }));
  }
  if (ins.spans) {
    await write('spans.svg', groupedBars({
      title: `${ins.kind}: attention span per layer and head`,
      values: ins.spans,
      groupLabel: (l) => `layer ${l}`,
      barLabel: (h) => `head ${h}`,
      yLabel: 'span (tokens)',
      yMax: o.maxSpan,
    }));
  }
  if (ins.expireSpans) {
    const text = ins.tokens.map(o.decode);
    for (const [l, spans] of ins.expireSpans.entries()) {
      await write(`expire-spans-layer${l}.svg`, shadedText({
        title: `${ins.kind}: predicted span of each token, layer ${l}`,
        legend: `darker = kept longer (white 0, darkest ${o.maxSpan} = the maximum span)`,
        text, values: spans, maxValue: o.maxSpan,
      }));
    }
  }
  const live = ins.segments.filter((s) => s.expireLive);
  const series = live.length
    ? live[0]!.expireLive!.map((_, l) => ({ name: `layer ${l}: live`, points: live.map((s, i) => ({ x: i + 1, y: s.expireLive![l]! })) }))
    : [{ name: 'memories attended', points: ins.segments.map((s, i) => ({ x: i + 1, y: s.memory })) }];
  if (series.some((s) => s.points.some((p) => p.y !== null))) {
    await write('memory.svg', lineChart({
      title: `${ins.kind}: memories per segment`,
      xLabel: 'segment', yLabel: live.length ? 'live memories (mask > 0 at the next query)' : 'memories attended (mean over layers)',
      series,
      xTicks: ins.segments.length <= 20 ? ins.segments.map((_, i) => ({ x: i + 1, label: String(i + 1) })) : undefined,
    }));
  }
  return files;
}
