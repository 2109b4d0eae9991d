// Adaptive attention span (Sukhbaatar et al. 2019, "Adaptive Attention Span in Transformers";
// SPEC §2): each head learns how far back it looks, and keys no head can see are not computed.
//
//   span       z ∈ [0, L] per head, stored as the ratio z/L and clamped to [0, 1] after every
//              optimiser step; or, dynamic (the paper's variant, in no public code),
//              z_t = L·σ(v·x_t + b) per head and query token, x_t the layer input at the query
//   soft mask  m_z(x) = clamp((R + z - x) / R, 0, 1) on the distance x of a key from its query:
//              1 up to distance z, then a linear ramp of R tokens down to 0 at z + R. It multiplies
//              the attention weights after the softmax, which are then renormalised (in
//              MultiHeadAttention: a' = m·a / (Σ m·a + 1e-8))
//   loss       λ · mean(z) per layer, z in tokens (the reference: λ · L · mean(z/L)); dynamic:
//              the mean over heads, batch and query tokens
//   trimming   m_z(x) = 0 for x >= z + R in every head, so the model cuts those keys (from the
//              cache and the key position table) before the attention: a window of
//              ceil(max z) + R distances, rounded up to a multiple of trimStep (a few distinct
//              sizes, so a few cached mask tables), at most L. Masking alone saves nothing.
//
// Shapes: B batch, M block (the queries), C cached positions, Tk = C + M keys, L maximum span,
// H hidden, K heads.
import { z } from 'zod';
import { cat, F, noGrad, tidy, widenReduced, zeros, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';

/** The options of kind 'adaptive-span' (config key `adaptiveSpan`): the one place their defaults are written. */
export const adaptiveSpanSchema = z.strictObject({
  ramp: z.number().int().positive().default(32).describe('ramp R of the soft mask m_z, in tokens'),
  init: z.number().min(0).max(1).default(0).describe('initial z / L of every head'),
  lossCoef: z.number().min(0).default(2e-6).describe('λ of the span loss λ · mean_heads(z), per layer'),
  dynamic: z.boolean().default(false).describe('dynamic span: z_t = L·σ(v·x_t + b) per query token instead of a learned z per head'),
  trimStep: z.number().int().positive().default(64).describe('the trimmed window (max z + R) is rounded up to a multiple of this'),
});
/** Adaptive-Span's options with their defaults filled in. */
export type AdaptiveSpanOptions = z.output<typeof adaptiveSpanSchema>;
/** Adaptive-Span's options as a user writes them (any may be left out). */
export type AdaptiveSpanOptionsInput = z.input<typeof adaptiveSpanSchema>;

/**
 * Dynamic spans start at L·σ(b) = init·L, so b = logit(init); init 0 (the default) or 1 would make
 * b infinite, so the initial ratio is kept in [FLOOR, 1 - FLOOR]. With FLOOR = 1e-3 the initial
 * span is 0.001·L tokens (well inside the first ramp step for L <= 1000; 8 tokens for L = 8192),
 * and since dz/db = z·(1 - z/L) a span that small still grows (multiplicatively) when the task
 * gradient asks for it.
 */
export const DYNAMIC_INIT_FLOOR = 1e-3;

/**
 * m_z(x) = clamp((R + z - x) / R, 0, 1). z [B|1, K, M|1]: spans in tokens, per head and
 * (dynamic) per query; distance [M, Tk]: the distance of each key from each query, as floats.
 * Returns [B|1, K, M, Tk].
 */
export function rampMask(z: Tensor, distance: Tensor, ramp: number): Tensor {
  return z.unsqueeze(-1).sub(distance).add(ramp).div(ramp).clamp(0, 1); // [B|1, K, M, Tk]
}

/**
 * How many distances [0, w) a query must still see when the largest span is maxSpan:
 * m_z(x) > 0 exactly when x < z + R, i.e. for the ceil(z) + R distances 0 .. ceil(z) + R - 1.
 * Rounded up to a multiple of `step`, at most `maxWindow` (L), at least 1 (the query itself).
 */
export function trimmedWindow(maxSpan: number, ramp: number, step: number, maxWindow: number): number {
  const visible = Math.max(1, Math.ceil(maxSpan) + ramp);
  return Math.min(maxWindow, Math.ceil(visible / step) * step);
}

/**
 * The reference code's trimmed window (with window 'before-query': ranks 0 … w − 1 are distances
 * 1 … w): w = L − trim, trim = ⌊min(L − 1, L − min(L, ⌈maxSpan + R⌉)) / step⌋ · step, at least 1.
 * Equal to trimmedWindow whenever step divides L; else it can be larger by less than step. It
 * changes outputs only through the 1e-8 of the renormalisation, but an exact reproduction needs it.
 */
export function referenceTrimmedWindow(maxSpan: number, ramp: number, step: number, maxWindow: number): number {
  const L = maxWindow;
  const trim = Math.floor(Math.min(L - 1, L - Math.min(L, Math.ceil(maxSpan + ramp))) / step) * step;
  return L - trim;
}

/** One layer's adaptive span: its parameters, its mask, its loss, its clamp and its trim length. */
export class AdaptiveSpan extends Module {
  /** Static spans: z/L per head [K]; null when dynamic. */
  readonly spanRatio: Tensor | null;
  /** Dynamic spans: v [K, H] and b [K] of z_t = L·σ(v·x_t + b); null when static. */
  readonly spanWeight: Tensor | null;
  readonly spanBias: Tensor | null;
  /** Dynamic: the mean z_t per head over the last forward's batch and queries (tokens). */
  #lastMeanSpans: number[] | null = null;

  /**
   * maxSpan L, K heads, H the layer's hidden size (the dynamic spans' input); `referenceTrim`: trim
   * as the reference code (referenceTrimmedWindow; with window 'before-query').
   */
  constructor(readonly options: AdaptiveSpanOptions, readonly maxSpan: number, readonly heads: number, dModel: number, readonly referenceTrim = false) {
    super();
    const { init, dynamic } = options;
    if (dynamic) {
      const ratio = Math.min(1 - DYNAMIC_INIT_FLOOR, Math.max(DYNAMIC_INIT_FLOOR, init));
      this.spanRatio = null;
      // v = 0: every query starts at the same span init·L, as the static spans do.
      this.spanWeight = this.param('spanWeight', () => zeros([heads, dModel]));
      this.spanBias = this.param('spanBias', () => zeros([heads]).fill_(Math.log(ratio / (1 - ratio))));
    } else {
      this.spanRatio = this.param('spanRatio', () => zeros([heads]).fill_(init)); // zeros: the default float dtype, whatever init
      this.spanWeight = null;
      this.spanBias = null;
    }
  }

  /** Spans in tokens: static [1, K, 1]; dynamic [B, K, M] from the layer input x [B, M, H] at the queries. */
  span(x: Tensor): Tensor {
    if (this.spanRatio) return this.spanRatio.mul(this.maxSpan).view(1, this.heads, 1); // [1, K, 1]
    // widened: under bf16 the product is bfloat16, whose spans of hundreds of tokens would move in steps of several
    const logits = widenReduced(F.linear(x, this.spanWeight!, this.spanBias!)); // [B, M, K]
    return logits.sigmoid().mul(this.maxSpan).transpose(1, 2); // [B, K, M]
  }

  /** The soft mask [B|1, K, M, Tk] of spans z (from span()) over float distances [M, Tk]. */
  mask(z: Tensor, distance: Tensor): Tensor {
    return rampMask(z, distance, this.options.ramp);
  }

  /** λ · mean(z), z in tokens (0-d). */
  loss(z: Tensor): Tensor {
    return z.mean().mul(this.options.lossCoef);
  }

  /**
   * The window after trimming for spans z (from span()): the distances any head and query can
   * still see. Reads the largest span back from the device (one small copy per layer and block,
   * as the reference's .item()); for dynamic spans it also records each head's mean for spans().
   */
  windowFor(z: Tensor): number {
    const stats = tidy(() => {
      const values = z.detach();
      // dynamic spans also report each head's mean (for spans()); static ones need only the max
      const summary = this.spanRatio ? values.max().view(1) : cat([values.max().view(1), values.mean([0, 2])]); // [1] or [1 + K]
      return Array.from(summary.cpu().data() as Float32Array | Float64Array, Number);
    });
    if (!this.spanRatio) this.#lastMeanSpans = stats.slice(1);
    const { ramp, trimStep } = this.options;
    return (this.referenceTrim ? referenceTrimmedWindow : trimmedWindow)(stats[0]!, ramp, trimStep, this.maxSpan);
  }

  /** Keeps z/L in [0, 1] (after each optimiser step); nothing to do for dynamic spans (σ bounds them). */
  clamp(): void {
    const ratio = this.spanRatio;
    if (ratio) noGrad(() => ratio.clamp_(0, 1));
  }

  /**
   * Each head's span in tokens: static, z = L·(z/L) now; dynamic, the mean z_t of the last
   * forward (before any, L·σ(b): the span of a zero input).
   */
  spans(): number[] {
    if (this.spanRatio) return tidy(() => Array.from(this.spanRatio!.detach().mul(this.maxSpan).cpu().data() as Float32Array | Float64Array, Number));
    return this.#lastMeanSpans ?? tidy(() => Array.from(this.spanBias!.detach().sigmoid().mul(this.maxSpan).cpu().data() as Float32Array | Float64Array, Number));
  }
}
