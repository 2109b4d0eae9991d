// An inspection as files: inspection.json (the plain data) and the SVG pictures that apply to the
// model, drawn from its diagnostics whatever its kind: attention of the last segment (queries and
// keys labelled with their tokens, the memory / segment boundaries marked); every
// per-head entry as bars per layer and head (Adaptive-Span's spans: spans.svg); every per-token
// entry as the text shaded by it, per layer (Expire-Span's predicted span:
// predicted-span-layer<l>.svg); the per-layer entries per segment, else the memories attended
// (memory.svg). Files are written atomically.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../tensor/serialize.js';
import { lineChart } from '../train/plot.js';
import { groupedBars, heatmap, shadedText } from './plots.js';
import type { AxisLabel, Inspection } from './inspect.js';

export interface ReportOptions {
  dir: string;
  /** Each token as text (a character, a symbol). */
  decode: (id: number) => string;
  /** The model's maximum span (the upper end of the bars' axis and of the text's shade). */
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
  // a row or column is labelled with its token's text, or its slot ('r0': the first read slot)
  const label = (a: AxisLabel, i: number, axis: AxisLabel[]): string =>
    a.position !== null ? o.decode(ins.tokens[a.position]!).replace(' ', '␣').replace('\n', '⏎') : `${a.part[0]}${axis.slice(0, i).filter((b) => b.part === a.part).length}`;
  for (const map of last?.attention ?? []) {
    if (map.weights.length === 0) continue;
    const K = map.weights.length;
    const mean = map.weights[0]!.map((row, i) => row.map((_, j) => map.weights.reduce((s, head) => s + head[i]![j]!, 0) / K));
    await write(`attention-${map.module.replace(/[^\w]+/g, '-')}.svg`, heatmap({
      title: `${ins.kind}: ${map.module}, last segment (mean of ${K} heads)`,
      values: mean,
      max: Math.max(1e-9, ...mean.flat()),
      xLabel: 'keys: memories (oldest first), then the segment',
      yLabel: 'queries',
      rowLabels: map.queries.map((q, i) => label(q, i, map.queries)),
      colLabels: map.keys.map((k, i) => label(k, i, map.keys)),
      rowParts: map.queries.map((q) => q.part),
      colParts: map.keys.map((k) => k.part),
      colSegmentStarts: map.keys.flatMap((k, j) =>
        (j > 0 && k.part === map.keys[j - 1]!.part && k.position !== null && k.position % ins.segmentLength === 0 ? [j] : [])),
    }));
  }
  const fileName = (name: string) => name.replace(/[^\w]+/g, '-');
  for (const [name, values] of Object.entries(ins.perHead)) {
    await write(`${fileName(name)}.svg`, groupedBars({
      title: `${ins.kind}: ${name} per layer and head`,
      values,
      groupLabel: (l) => `layer ${l}`,
      barLabel: (h) => `head ${h}`,
      yLabel: `${name} (tokens)`,
      yMax: o.maxSpan,
    }));
  }
  const text = ins.tokens.map(o.decode);
  for (const [name, layers] of Object.entries(ins.perToken)) {
    for (const [l, values] of layers.entries()) {
      await write(`${fileName(name)}-layer${l}.svg`, shadedText({
        title: `${ins.kind}: ${name} of each token, layer ${l}`,
        legend: `darker = larger (white 0, darkest ${o.maxSpan} = the maximum span)`,
        text, values, maxValue: o.maxSpan, segmentLength: ins.segmentLength,
      }));
    }
  }
  const names = [...new Set(ins.segments.flatMap((s) => Object.keys(s.perLayer)))];
  const series = names.length
    ? names.flatMap((name) => (ins.segments.find((s) => s.perLayer[name])!.perLayer[name]!).map((_, l) => ({
      name: `layer ${l}: ${name}`,
      points: ins.segments.map((s, i) => ({ x: i + 1, y: s.perLayer[name]?.[l] ?? null })),
    })))
    : [{ name: 'memories attended', points: ins.segments.map((s, i) => ({ x: i + 1, y: s.memory })) }];
  if (series.some((s) => s.points.some((p) => p.y !== null))) {
    await write('memory.svg', lineChart({
      title: `${ins.kind}: memories per segment`,
      xLabel: 'segment', yLabel: names.length ? `${names.join(', ')} per layer` : 'memories attended (mean over layers)',
      series,
      xTicks: ins.segments.length <= 20 ? ins.segments.map((_, i) => ({ x: i + 1, label: String(i + 1) })) : undefined,
    }));
  }
  return files;
}
