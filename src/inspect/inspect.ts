// Seeing the memory: runs a model over one stream, segment by segment with its state carried, and
// returns what it kept as plain data (numbers and arrays, ready for JSON, a plot or a web page):
//
//   attention   every attention module's weights for every segment, [K][Tq][Tk] (batch row 0);
//               keys are the memories the module attended to (oldest first) then the segment;
//               each row and column labelled (memory, read/write slot, segment token) with its
//               stream position where it has one (attentionAxes)
//   memory      memories attended besides the segment, per segment (SegmentModel.memoryFootprint)
//   the model's diagnostics (SegmentModel.diagnostics), whatever its kind:
//     perLayer  per segment, e.g. Expire-Span's memories kept and live (mask > 0 at the next query)
//     perHead   after the stream, e.g. Adaptive-Span's span in tokens of every head of every layer
//     perToken  [layer][stream position], e.g. the span Expire-Span predicts for every token
//     scalars   after the stream, e.g. the Feedback Transformer's merge weights
import { configError, noGrad, tensor, tidy, type Tensor } from '../tensor/index.js';
import { MultiHeadAttention } from '../nn/attention.js';
import type { MemoryState, ModelConfig, SegmentModel } from '../models/index.js';
import { disposeState } from '../train/evaluate.js';
import type { AxisLabel } from './axis-label.js';

export type { AxisLabel };

export interface AttentionMap {
  /** The module's name in the model ('layers.0.attn'). */
  module: string;
  /** [K][Tq][Tk]: attention weights of batch row 0. */
  weights: number[][][];
  /** [Tq] and [Tk]: what each query and key is (memories oldest first, then the segment's block). */
  queries: AxisLabel[];
  keys: AxisLabel[];
}

export interface SegmentInspection {
  /** Stream positions [start, end) of the segment. */
  start: number;
  end: number;
  attention: AttentionMap[];
  /** Memories attended besides the segment (mean over layers), when the model reports it. */
  memory: number | null;
  /** The model's per-layer diagnostics after the segment (Diagnostics.perLayer). */
  perLayer: Record<string, number[]>;
}

export interface Inspection {
  kind: string;
  tokens: number[];
  segmentLength: number;
  segments: SegmentInspection[];
  /** The model's scalars after the stream (Diagnostics.scalars). */
  scalars: Record<string, number>;
  /** [layer][head] after the stream (Diagnostics.perHead), e.g. 'spans'. */
  perHead: Record<string, number[][]>;
  /** [layer][stream position]: Diagnostics.perToken of every segment (batch row 0), e.g. 'predicted span'. */
  perToken: Record<string, number[][]>;
}

export interface InspectOptions {
  segmentLength: number;
  /** Attention maps of every segment, of the last one only, or none (default 'last': they are the bulk of the result). */
  attention?: 'all' | 'last' | 'none';
}

/** One segment as inspectSegments yields it. */
export interface SegmentStep {
  segment: SegmentInspection;
  /** [layer][segment position]: the segment's Diagnostics.perToken (batch row 0). */
  perToken: Record<string, number[][]>;
  /** Float32 logits [n, V] of the segment's n positions (row i predicts the token after position i), when asked for. */
  logits: Float32Array | null;
  /** The model's diagnostics after the segment. */
  scalars: Record<string, number>;
  perHead: Record<string, number[][]>;
}

/** Runs `tokens` (one stream) through the model in eval mode, without gradients, and reports what it kept. */
export function inspect(model: SegmentModel, tokens: readonly number[], o: InspectOptions): Inspection {
  const segments: SegmentInspection[] = [];
  const perToken: Record<string, number[][]> = {};
  let last: SegmentStep | null = null;
  for (const step of inspectSegments(model, tokens, o)) {
    segments.push(step.segment);
    for (const [name, layers] of Object.entries(step.perToken)) {
      const stream = (perToken[name] ??= []);
      layers.forEach((values, l) => (stream[l] ??= []).push(...values));
    }
    last = step;
  }
  return { kind: model.config.kind, tokens: [...tokens], segmentLength: o.segmentLength, segments, scalars: last!.scalars, perHead: last!.perHead, perToken };
}

/**
 * The stream segment by segment, the state carried as in evaluation: what inspect() reports, one
 * segment at a time (for a consumer that streams it), with the logits when `logits` is set. The
 * model is in eval mode with its attention recorded until the generator finishes or is returned.
 */
export function* inspectSegments(model: SegmentModel, tokens: readonly number[], o: InspectOptions & { logits?: boolean }): Generator<SegmentStep, void, undefined> {
  if (tokens.length === 0) throw configError('inspect', 'the input is empty; give at least one token');
  if (!Number.isInteger(o.segmentLength) || o.segmentLength <= 0) throw configError('inspect', `segmentLength must be a positive integer, got ${o.segmentLength}`);
  const which = o.attention ?? 'last';
  const attention = which !== 'none';
  const modules = model.namedModules().filter((e): e is [string, MultiHeadAttention] => e[1] instanceof MultiHeadAttention);
  const was = model.training;
  const recordingDiagnostics = model.recordDiagnostics;
  const recording = modules.map(([, m]) => m.recordAttention);
  model.eval();
  for (const [, m] of modules) m.recordAttention = attention;
  model.recordDiagnostics = true;
  let state: MemoryState | null = null;
  let previous: Record<string, number[]> = {};
  try {
    for (let start = 0; start < tokens.length; start += o.segmentLength) {
      const end = Math.min(tokens.length, start + o.segmentLength);
      const keepMaps = which === 'all' || (which === 'last' && end === tokens.length);
      // Expire-Span's state says how old each kept memory is: [layer][memory] stream positions.
      const ages = (state as { age?: Tensor[] | null } | null)?.age;
      const memoryPositions = keepMaps && ages ? ages.map((a) => (a.toArray() as number[][])[0]!.map((age) => start - age)) : null;
      const [next, logits] = noGrad(() => tidy(() => {
        const input = tensor(Int32Array.from(tokens.slice(start, end)), { dtype: 'int64', shape: [1, end - start], device: model.device });
        const out = model.forward(input, state ?? model.initState(1));
        return [model.detachState(out.state), o.logits ? out.logits.float().contiguous().data() as Float32Array : null] as const;
      }));
      if (state) disposeState(state);
      state = next;
      const diagnostics = model.diagnostics();
      const segment: SegmentInspection = {
        start, end,
        attention: keepMaps ? modules.flatMap(([name, m]) => {
          if (!m.lastAttention) return [];
          const weights = firstRow(m.lastAttention.toArray());
          const layer = Number(/(\d+)/.exec(name)?.[1] ?? 0);
          const axes = attentionAxes(model.config, name, weights[0]?.length ?? 0, weights[0]?.[0]?.length ?? 0, start, end,
            memoryPositions?.[layer] ?? null, previous['compressed slots']?.[layer] ?? 0);
          return [{ module: name, weights, ...axes }];
        }) : [],
        memory: model.memoryFootprint?.() ?? null,
        perLayer: diagnostics.perLayer,
      };
      const perToken: Record<string, number[][]> = {};
      for (const [name, layers] of Object.entries(diagnostics.perToken)) perToken[name] = layers.map((rows) => rows[0]!);
      previous = diagnostics.perLayer;
      yield { segment, perToken, logits, scalars: diagnostics.scalars, perHead: diagnostics.perHead };
    }
  } finally {
    if (state) disposeState(state);
    modules.forEach(([, m], i) => {
      m.recordAttention = recording[i]!;
      m.lastAttention?.dispose();
      m.lastAttention = null;
    });
    model.recordDiagnostics = recordingDiagnostics;
    model.train(was);
  }
}

/**
 * What the rows (Tq) and columns (Tk) of a segment's attention map are, from their counts and the
 * model's configuration. Queries: the segment's n tokens, with the memory tokens around them
 * (RMT: m read before and m write after; Memory Transformer: m before), or bottleneck slots.
 * Keys: the memories first (oldest first: compressed slots, then kept positions, the most recent
 * last unless the state says otherwise, as Expire-Span's ages do), then the queries' own block;
 * MemBottleneck's slots read [slots; cached past] and its tokens read the slots only.
 */
export function attentionAxes(
  config: ModelConfig, module: string, Tq: number, Tk: number, start: number, end: number,
  memoryPositions: number[] | null, compressed: number,
): { queries: AxisLabel[]; keys: AxisLabel[] } {
  const n = end - start, m = config.numMemTokens;
  const run = (part: AxisLabel['part'], count: number, first: number | null = null): AxisLabel[] =>
    Array.from({ length: Math.max(0, count) }, (_, i) => ({ part, position: first === null ? null : first + i }));
  let queries: AxisLabel[];
  if (Tq === n) queries = run('segment', n, start);
  else if (config.kind === 'rmt' && Tq === n + 2 * m) queries = [...run('read', m), ...run('segment', n, start), ...run('write', m)];
  else if (Tq === n + m) queries = [...run('read', m), ...run('segment', n, start)];
  else queries = run('slot', Tq);
  let keys: AxisLabel[];
  if (Tk < Tq) keys = run('slot', Tk); // the sequence reads the bottleneck's slots
  else if (queries[0]?.part === 'slot') keys = [...queries, ...run('memory', Tk - Tq, start - (Tk - Tq))]; // [slots; cached past]
  else {
    const C = Tk - Tq;
    const c = Math.min(C, compressed);
    const kept = memoryPositions && memoryPositions.length === C
      ? memoryPositions.map((position) => ({ part: 'memory' as const, position }))
      : [...run('compressed', c), ...run('memory', C - c, start - (C - c))];
    keys = [...kept, ...queries];
  }
  return { queries, keys };
}

function firstRow(x: unknown): number[][][] {
  return (x as number[][][][])[0]!;
}
