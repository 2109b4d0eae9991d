// The records of a trace (./trace.ts), as /v1/inspect streams them: a file free of imports but
// the axis labels', so that the viewer's page (src/serve/viewer/page) types the stream it reads
// with these same declarations.
import type { AxisLabel } from '../inspect/axis-label.js';

export interface TraceOptions {
  /** Tokens per segment M (as in training). */
  segmentLength: number;
  /** The input: text (a language model's characters; a task's ids as numbers separated by spaces or commas) ... */
  text?: string;
  /** ... or token ids. */
  tokens?: number[];
  /** Most probable next tokens reported per token (default 5). */
  topK?: number;
  /** Attention maps per segment: each head's, their mean, or none (default 'mean'). */
  attention?: 'heads' | 'mean' | 'none';
  /** Longest input accepted, in tokens (default 4096). */
  maxTokens?: number;
}

export interface TraceStart {
  type: 'start';
  kind: string;
  /** Tokens in the input, and per segment. */
  length: number;
  segmentLength: number;
  layers: number;
  heads: number;
  /** The model's memory sizes (memLen, memory tokens) and its largest span where it has one. */
  memLen: number;
  numMemTokens: number;
  /** Each token id's text, for the ids of the input (the page labels keys and queries with it). */
  labels: string[];
}

export interface TraceAttention {
  module: string;
  /** [Tq][Tk] mean of the heads ('mean'), or [K][Tq][Tk] ('heads'): probabilities rounded to 1e-4. */
  weights: number[][] | number[][][];
  queries: AxisLabel[];
  keys: AxisLabel[];
}

export interface TraceSegment {
  type: 'segment';
  index: number;
  /** Stream positions [start, end). */
  start: number;
  end: number;
  /** Memories attended besides the segment (mean over layers), when the model reports it. */
  memory: number | null;
  /** Diagnostics.perLayer after the segment, e.g. Expire-Span's 'memories kept' and 'live memories'. */
  perLayer: Record<string, number[]>;
  /** Diagnostics.perHead after the segment, e.g. Adaptive-Span's 'spans' [layer][head]. */
  perHead: Record<string, number[][]>;
  /** Diagnostics.scalars after the segment. */
  scalars: Record<string, number>;
  attention: TraceAttention[];
}

export interface TraceToken {
  type: 'token';
  /** Stream position, the segment it belongs to and its place there. */
  position: number;
  segment: number;
  offset: number;
  token: number;
  label: string;
  /** The k most probable next tokens, most probable first. */
  top: { token: number; label: string; p: number }[];
  /** −ln p(the actual next token), in nats; null for the last token. */
  loss: number | null;
  /** Per-token diagnostics [layer], e.g. { 'predicted span': [e_layer0, e_layer1] }. */
  values: Record<string, number[]>;
}

export interface TraceEnd {
  type: 'end';
  tokens: number;
  /** Mean loss over the predicted tokens (nats), and in bits per token. */
  loss: number | null;
  bitsPerToken: number | null;
}

export type TraceRecord = TraceStart | TraceSegment | TraceToken | TraceEnd;
