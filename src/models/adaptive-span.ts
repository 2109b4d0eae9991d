// Adaptive attention span (Sukhbaatar et al. 2019; SPEC §2) on the sequential base of the
// Expire-Span code base (SequentialTransformer): every layer has an AdaptiveSpan
// (src/memory/adaptive-span.ts) that gives each head a learned span z (or, dynamic, a span z_t per
// query token), softly masks the attention beyond it, and adds λ·mean(z) to the loss.
//
//   per layer l   z from AdaptiveSpan (static [1, K, 1] or dynamic [B, K, M]);
//                 the window w = ceil(max z) + R rounded up to trimStep, at most L: the cache is
//                 cut to its last w - 1 positions and the key position table keyPe [D, L] to its
//                 first w columns before the attention, so a short span really costs less
//                 (the cut keys have m_z = 0 in every head: outputs are unchanged);
//                 soft mask m_z(x) [1|B, K, M, C + M] over the window's ranks (the distances,
//                 less 1 with window 'before-query', as the reference), after softmax
//   cache         kept L long between blocks, untrimmed: a span can grow after the block (an
//                 optimiser step moves static spans; dynamic spans depend on the next block's
//                 input), and with the full cache every span still finds its keys, so trimming
//                 stays exact at any time. Storing L positions costs memory, not compute.
//   after a step  afterOptimizerStep() clamps every z/L to [0, 1]
//   diagnostics   'spans' per layer and head, in tokens
//   registry      adaptiveSpanKind: options `adaptiveSpan` (schema and defaults in
//                 src/memory/adaptive-span.ts), memLen > 0 required (the maximum span L)
//
// Shapes: B batch, M block (segment) length, C cached positions, L maximum span, H hidden,
// K heads, D = H/K head size, V vocabulary, w the trimmed window (<= L).
import { configError, type Tensor } from '../tensor/index.js';
import { AdaptiveSpan, adaptiveSpanSchema } from '../memory/adaptive-span.js';
import { checkSequentialWindow } from '../memory/sequential-window.js';
import { SequentialTransformer, sequentialWindowOptions, type LayerContext, type SequentialState } from './sequential.js';
import type { Diagnostics, ModelConfig, ModelKindSpec } from './types.js';

export class AdaptiveSpanTransformer extends SequentialTransformer {
  /** One per layer. */
  readonly adaptiveSpans: AdaptiveSpan[];
  /**
   * Cut keys no head can see before the attention (default true). Off, every layer attends over
   * its whole cache (the baseline's window of L) with the same soft masks: the same outputs at
   * more cost; for tests and measurements.
   */
  trimming = true;

  constructor(config: ModelConfig) {
    if (!config.adaptiveSpan) throw configError('AdaptiveSpanTransformer', "kind 'adaptive-span' needs config.adaptiveSpan; build the model with createModel, which fills the defaults");
    super(config);
    const options = config.adaptiveSpan;
    const { layers, heads, dModel } = config;
    this.adaptiveSpans = this.child('adaptiveSpans', Array.from({ length: layers }, () =>
      new AdaptiveSpan(options, this.span, heads, dModel, this.windowOffset === 1)));
  }

  protected override layerContext(l: number, h: Tensor, state: SequentialState): LayerContext {
    const spans = this.adaptiveSpans[l]!;
    const z = spans.span(h); // [1, K, 1] or [B, K, M], tokens
    const visible = spans.windowFor(z); // distances any head can see (also records dynamic means)
    const cache = state.cache?.[l] ?? null; // [B, C, H]
    const cached = cache?.shape[1] ?? 0;
    const M = h.shape[1]!;
    // The oldest key a window of w ranks reaches is w - 1 + f positions before the first query
    // (f the window's offset: ranks 0 … w - 1 are distances f … w - 1 + f).
    const w = this.trimming ? visible : this.span;
    const kept = this.trimming ? Math.min(cached, w - 1 + this.windowOffset) : cached;
    const memory = cache && kept > 0 ? cache.narrow(1, cached - kept, kept) : null; // [B, kept, H]
    const { mask, distance, rankShift } = this.window(kept, M, w); // [M, kept + M]
    const x = this.tables.get(`adaptive-distance:${kept},${M},${w},${z.dtype}`, () => distance.to(z.dtype)); // x of m_z(x), floats [M, kept + M]
    return {
      memory,
      mask,
      distance,
      rankShift,
      softMask: spans.mask(z, x), // [1|B, K, M, kept + M]
      auxLoss: spans.loss(z),
      keyPe: w < this.keyPe.shape[1]! ? this.keyPe.narrow(1, 0, w) : this.keyPe, // [D, w]
    };
  }

  /** Clamps every static z/L to [0, 1] (SPEC §2), called by the trainer after each optimiser step. */
  afterOptimizerStep(): void {
    for (const s of this.adaptiveSpans) s.clamp();
  }

  /** Per layer, per head, the span in tokens (dynamic: the mean z_t of the last forward). */
  spans(): number[][] {
    return this.adaptiveSpans.map((s) => s.spans());
  }

  override diagnostics(): Diagnostics {
    const d = super.diagnostics();
    d.perHead['spans'] = this.spans();
    return d;
  }
}

export const adaptiveSpanKind: ModelKindSpec<'adaptive-span'> = {
  kind: 'adaptive-span',
  build: (config) => new AdaptiveSpanTransformer(config),
  options: [{ key: 'adaptiveSpan', schema: adaptiveSpanSchema.prefault({}) }, ...sequentialWindowOptions],
  memLen: { use: 'required', reason: 'its maximum span L' },
  numMemTokens: { use: 'none' },
  check: (c) => checkSequentialWindow(c.window, c.initialMemory),
};
