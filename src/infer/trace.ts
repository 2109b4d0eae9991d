// Tracing a text through a loaded model for the memory viewer: an async stream of typed records,
// one per segment (what the memory held: attention maps with labelled rows and columns, the
// per-layer diagnostics) followed by one per token of that segment (its next-token
// distribution's top k, the loss of the actual next token, its per-token diagnostics). Built on
// inspectSegments (src/inspect), so the viewer sees exactly what `engram inspect` reports; the
// state is carried across segments as in evaluation, boundaries every M tokens from the start.
//
// Usable without HTTP: for await (const r of trace(run, { text, segmentLength })) ...
import { configError } from '../tensor/index.js';
import { inspectSegments } from '../inspect/inspect.js';
import type { LoadedRun } from '../train/objective.js';
import type { TraceOptions, TraceRecord } from './trace-records.js';

export type * from './trace-records.js';

const round = (x: number): number => Math.round(x * 1e4) / 1e4;

/** The ids of a run's input: a language model encodes characters; a task reads numbers. */
export function encodeInput(run: LoadedRun, o: Pick<TraceOptions, 'text' | 'tokens'>): number[] {
  const op = 'trace';
  const V = run.model.config.vocabSize;
  if ((o.text === undefined) === (o.tokens === undefined)) throw configError(op, 'give the input as text or as tokens (one of the two)');
  let ids: number[];
  if (o.tokens !== undefined) ids = o.tokens;
  else if (run.kind === 'lm') ids = Array.from(run.vocab.encode(o.text!));
  else {
    const parts = o.text!.split(/[\s,]+/).filter((p) => p !== '');
    ids = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
    const bad = parts.findIndex((_, i) => Number.isNaN(ids[i]));
    if (bad >= 0) throw configError(op, `a task model reads token ids: "${parts[bad]}" is not a number; type ids in [0, ${V}) separated by spaces`);
  }
  const wrong = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= V);
  if (wrong >= 0) throw configError(op, `token ${ids[wrong]} at position ${wrong} is not an id in [0, ${V})`);
  return ids;
}

/** Each id's text: the language model's character ('?' for unknown), or the task's symbol. */
export function tokenLabels(run: LoadedRun): string[] {
  const V = run.model.config.vocabSize;
  return Array.from({ length: V }, (_, id) => (run.kind === 'lm' ? (id === 0 ? '?' : run.vocab.chars[id - 1] ?? '?') : run.task.decode([id]) || String(id)));
}

/**
 * Streams the input through the model. The caller holds the model exclusively until the
 * generator ends (ServedModel.exclusive): it runs in eval mode with its attention recorded.
 */
export async function* trace(run: LoadedRun, o: TraceOptions): AsyncGenerator<TraceRecord, void, undefined> {
  const tokens = encodeInput(run, o);
  const maxTokens = o.maxTokens ?? 4096;
  if (tokens.length === 0) throw configError('trace', 'the input is empty; give at least one token');
  if (tokens.length > maxTokens) throw configError('trace', `the input has ${tokens.length} tokens, more than the ${maxTokens} traced at once; shorten it`);
  const topK = o.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1) throw configError('trace', `topK must be a positive integer (got ${topK})`);
  const attention = o.attention ?? 'mean';
  const { model } = run;
  const config = model.config;
  const V = config.vocabSize;
  const labels = tokenLabels(run);
  yield {
    type: 'start', kind: config.kind, length: tokens.length, segmentLength: o.segmentLength,
    layers: config.layers, heads: config.heads, memLen: config.memLen, numMemTokens: config.numMemTokens, labels,
  };
  let lossSum = 0, predicted = 0, index = 0;
  for (const step of inspectSegments(model, tokens, { segmentLength: o.segmentLength, attention: attention === 'none' ? 'none' : 'all', logits: true })) {
    const { start, end } = step.segment;
    yield {
      type: 'segment', index, start, end, memory: step.segment.memory,
      perLayer: step.segment.perLayer, perHead: step.perHead, scalars: step.scalars,
      attention: step.segment.attention.map((a) => ({
        module: a.module,
        weights: attention === 'heads' ? a.weights.map((h) => h.map((row) => row.map(round))) : meanOfHeads(a.weights),
        queries: a.queries, keys: a.keys,
      })),
    };
    const logits = step.logits!;
    for (let i = 0; i < end - start; i++) {
      const position = start + i;
      const logProbs = logSoftmax(logits.subarray(i * V, (i + 1) * V));
      const order = Array.from({ length: V }, (_, t) => t).sort((a, b) => logProbs[b]! - logProbs[a]!).slice(0, topK);
      const next = tokens[position + 1];
      const loss = next === undefined ? null : -logProbs[next]!;
      if (loss !== null) { lossSum += loss; predicted++; }
      const values: Record<string, number[]> = {};
      for (const [name, layers] of Object.entries(step.perToken)) values[name] = layers.map((row) => round(row[i] ?? NaN));
      yield {
        type: 'token', position, segment: index, offset: i, token: tokens[position]!, label: labels[tokens[position]!]!,
        top: order.map((t) => ({ token: t, label: labels[t]!, p: round(Math.exp(logProbs[t]!)) })),
        loss: loss === null ? null : round(loss), values,
      };
    }
    index++;
    await new Promise((resolve) => setImmediate(resolve)); // let the consumer send what it has
  }
  const loss = predicted ? lossSum / predicted : null;
  yield { type: 'end', tokens: tokens.length, loss: loss === null ? null : round(loss), bitsPerToken: loss === null ? null : round(loss / Math.LN2) };
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const log = max + Math.log(sum);
  return Float64Array.from(x, (v) => v - log);
}

/** [K][Tq][Tk] -> [Tq][Tk]. */
function meanOfHeads(w: number[][][]): number[][] {
  const K = w.length;
  return w[0]?.map((row, i) => row.map((_, j) => round(w.reduce((s, head) => s + head[i]![j]!, 0) / K))) ?? [];
}
