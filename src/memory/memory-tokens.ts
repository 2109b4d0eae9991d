// Memory tokens: m learned vectors placed around a segment's tokens.
//
// - 'prepend' (Memory Transformer, Burtsev et al. 2020, SPEC §5): [mem; x] every segment, from
//   the same learned embeddings; nothing is carried between segments.
// - 'recurrent' (Recurrent Memory Transformer, Bulatov et al. 2022, SPEC §6): [mem; x; mem], the
//   same vectors as a read block and a write block; the write block's last-layer outputs become
//   the next segment's memory, so gradients can flow back through segments (BPTT).
// Shapes: B batch, m memory tokens, H hidden.
import type { Tensor } from '../tensor/index.js';
import { randn } from '../tensor/index.js';
import { Module } from '../nn/module.js';

export type MemoryTokenMode = 'prepend' | 'recurrent';

export class MemoryTokens extends Module {
  /** [m, H] the initial memory (a learned parameter). */
  readonly init: Tensor;
  constructor(readonly mode: MemoryTokenMode, readonly count: number, dModel: number) {
    super();
    this.init = this.param('init', randn([count, dModel]));
  }

  /** The memory before a batch's first segment: [B, m, H], still attached to the parameter. */
  initial(batch: number): Tensor {
    return this.init.unsqueeze(0).expand(batch, this.count, this.init.shape[1]!);
  }

  /** The read (and write) blocks for this segment from the carried memory [B, m, H]. */
  blocks(carried: Tensor | null, batch: number): { read: Tensor; write: Tensor | null } {
    const memory = this.mode === 'recurrent' && carried ? carried : this.initial(batch);
    return { read: memory, write: this.mode === 'recurrent' ? memory : null };
  }
}
