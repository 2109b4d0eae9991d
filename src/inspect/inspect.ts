// Seeing the memory: runs a model over one stream, segment by segment with its state carried, and
// returns what it kept as plain data (numbers and arrays, ready for JSON, a plot or a web page):
//
//   attention   every attention module's weights for every segment, [K][Tq][Tk] (batch row 0);
//               keys are the memories the module attended to (oldest first) then the segment
//   memory      memories attended besides the segment, per segment (SegmentModel.memoryFootprint)
//   the model's diagnostics (SegmentModel.diagnostics), whatever its kind:
//     perLayer  per segment, e.g. Expire-Span's memories kept and live (mask > 0 at the next query)
//     perHead   after the stream, e.g. Adaptive-Span's span in tokens of every head of every layer
//     perToken  [layer][stream position], e.g. the span Expire-Span predicts for every token
//     scalars   after the stream, e.g. the Feedback Transformer's merge weights
import { configError, noGrad, tensor, tidy } from '../tensor/index.js';
import { MultiHeadAttention } from '../nn/attention.js';
import type { MemoryState, SegmentModel } from '../models/index.js';
import { disposeState } from '../train/evaluate.js';

export interface AttentionMap {
  /** The module's name in the model ('layers.0.attn'). */
  module: string;
  /** [K][Tq][Tk]: attention weights of batch row 0. */
  weights: number[][][];
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

/** Runs `tokens` (one stream) through the model in eval mode, without gradients, and reports what it kept. */
export function inspect(model: SegmentModel, tokens: readonly number[], o: InspectOptions): Inspection {
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
  const segments: SegmentInspection[] = [];
  const perToken: Record<string, number[][]> = {};
  let state: MemoryState | null = null;
  try {
    noGrad(() => {
      for (let start = 0; start < tokens.length; start += o.segmentLength) {
        const end = Math.min(tokens.length, start + o.segmentLength);
        const next: MemoryState = tidy(() => {
          const input = tensor(Int32Array.from(tokens.slice(start, end)), { dtype: 'int64', shape: [1, end - start] });
          const out = model.forward(input, state ?? model.initState(1));
          return model.detachState(out.state);
        });
        if (state) disposeState(state);
        state = next;
        const keepMaps = which === 'all' || (which === 'last' && end === tokens.length);
        const diagnostics = model.diagnostics();
        segments.push({
          start, end,
          attention: keepMaps ? modules.map(([name, m]) => ({ module: name, weights: m.lastAttention ? firstRow(m.lastAttention.toArray()) : [] })) : [],
          memory: model.memoryFootprint?.() ?? null,
          perLayer: diagnostics.perLayer,
        });
        for (const [name, layers] of Object.entries(diagnostics.perToken)) {
          const stream = (perToken[name] ??= []);
          layers.forEach((rows, l) => (stream[l] ??= []).push(...rows[0]!));
        }
      }
    });
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
  const { scalars, perHead } = model.diagnostics();
  return { kind: model.config.kind, tokens: [...tokens], segmentLength: o.segmentLength, segments, scalars, perHead, perToken };
}

function firstRow(x: unknown): number[][][] {
  return (x as number[][][][])[0]!;
}
