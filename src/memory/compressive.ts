// The Compressive Transformer's memories (Rae et al. 2019, SPEC §4): per layer a FIFO of raw
// memories and a FIFO of compressed ones. Memories that fall out of the raw FIFO are compressed
// with rate c by f_c (mean pool, max pool, or a 1-D convolution of kernel and stride c) and
// appended to the compressed FIFO. A learned f_c is trained by the attention-reconstruction loss
//   ‖ attn(h, mem_old) − attn(h, f_c(mem_old)) ‖²
// with the layer's own attention weights held fixed (stop-gradient into the rest of the model).
//
// Shapes: B batch, M block length, R raw memories held (L = memLen of them, plus a remainder of
// fewer than c, see advanceRawMemory), S compressed slots held (at most C), c compression rate,
// n memories being compressed (a multiple of c), H hidden, K heads, D = H/K head size.
import { z } from 'zod';
import { cat, configError, eye, F, shapeError, zeros, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import type { DecoderLayer } from '../nn/decoder-layer.js';

/** The options of kind 'compressive' (config key `compressive`): the one place their defaults are written. */
export const compressiveSchema = z.strictObject({
  compressedLen: z.number().int().positive().optional().describe('compressed memory slots per layer C (default: memLen)'),
  rate: z.number().int().positive().default(3).describe('compression rate c'),
  fn: z.enum(['mean', 'max', 'conv']).default('conv').describe('compression function f_c'),
  reconstruction: z.boolean().default(true).describe("train f_c with the attention-reconstruction loss (no effect for 'mean'/'max')"),
});
/** The Compressive Transformer's options with their defaults filled in (compressedLen from memLen). */
export type CompressiveOptions = Omit<z.output<typeof compressiveSchema>, 'compressedLen'> & { compressedLen: number };
/** The Compressive Transformer's options as a user writes them (any may be left out). */
export type CompressiveOptionsInput = z.input<typeof compressiveSchema>;
/** Fills the default that depends on the rest of the model: C = memLen. */
export const completeCompressiveOptions = (parsed: z.output<typeof compressiveSchema>, memLen: number): CompressiveOptions =>
  ({ ...parsed, compressedLen: parsed.compressedLen ?? memLen });

export type CompressionFn = CompressiveOptions['fn'];

/**
 * f_c over n = k·c memories, oldest first: [B, n, H] -> [B, k, H], slot s summarising memories
 * s·c ... s·c + c − 1. weight [H, H, c] and bias [H] are the convolution's (fn 'conv' only).
 */
export function compress(old: Tensor, fn: CompressionFn, rate: number, weight: Tensor | null = null, bias: Tensor | null = null): Tensor {
  const [B, n, H] = old.shape as [number, number, number];
  if (n % rate !== 0) throw shapeError('compress', `${n} memories are not a multiple of the compression rate ${rate}; pass whole groups of ${rate}`);
  const slots = n / rate;
  switch (fn) {
    case 'mean':
      return old.reshape(B, slots, rate, H).mean(2); // [B, k, H]
    case 'max':
      return old.reshape(B, slots, rate, H).max(2); // [B, k, H]
    case 'conv': {
      if (!weight) throw configError('compress', "fn 'conv' needs the convolution's weight [H, H, c]; pass it (a Compressor holds one)");
      const convolved = F.conv1d(old.transpose(1, 2), weight, bias, { stride: rate }); // [B, H, k]
      return convolved.transpose(1, 2); // [B, k, H]
    }
    default:
      throw configError('compress', `unknown compression function '${fn as string}'; use 'mean', 'max' or 'conv'`);
  }
}

/** One layer's f_c: its convolution weights for 'conv' (learned, per layer), nothing for the pools. */
export class Compressor extends Module {
  /** [H, H, c] for 'conv', else null. */
  readonly weight: Tensor | null;
  /** [H] for 'conv', else null. */
  readonly bias: Tensor | null;

  constructor(readonly fn: CompressionFn, readonly rate: number, dModel: number) {
    super();
    if (!Number.isInteger(rate) || rate < 1) throw configError('Compressor', `the rate must be a positive integer, got ${rate}`);
    if (fn === 'conv') {
      // Starts as the mean pool (weight[o, i, t] = δ_oi / c), not PyTorch's random init: the
      // compressed memory is then useful from the first step and the reconstruction loss only has
      // to improve on mean pooling, which the transformer-sequential version uses as it is.
      this.weight = this.param('weight', () => eye(dModel).unsqueeze(2).expand(dModel, dModel, rate).div(rate).contiguous());
      this.bias = this.param('bias', () => zeros([dModel]));
    } else {
      this.weight = null;
      this.bias = null;
    }
  }

  /** Whether f_c has parameters for the reconstruction loss to train. */
  get learned(): boolean {
    return this.fn === 'conv';
  }

  /** [B, n, H] -> [B, n/c, H]. */
  forward(old: Tensor): Tensor {
    return compress(old, this.fn, this.rate, this.weight, this.bias);
  }
}

/**
 * The raw FIFO after a block: cat(raw, block) [B, R + M, H] keeps its newest L entries, and the
 * n = R + M − L oldest fall out. Of those, the oldest floor(n/c)·c are returned as `old` for f_c;
 * the remainder (n mod c < c memories) stays at the front of the raw memory until the next block
 * completes its group of c, so that every slot summarises c consecutive positions and nothing is
 * lost. The raw memory therefore holds L to L + c − 1 entries once full (exactly L when c divides
 * the overflow, e.g. when c divides M and L). Before the FIFO first fills, nothing falls out.
 * Everything returned is detached (the memories are constants for later blocks; SPEC §0).
 */
export function advanceRawMemory(raw: Tensor | null, block: Tensor, memLen: number, rate: number): { raw: Tensor; old: Tensor | null } {
  const all = (raw ? cat([raw, block], 1) : block).detach(); // [B, R + M, H]
  const length = all.shape[1]!;
  const overflow = length - memLen;
  const compressed = overflow > 0 ? Math.floor(overflow / rate) * rate : 0;
  if (compressed === 0) return { raw: all, old: null };
  return {
    raw: all.narrow(1, compressed, length - compressed), // [B, L + (n mod c), H]
    old: all.narrow(1, 0, compressed), // [B, floor(n/c)·c, H], oldest first
  };
}

/** The compressed FIFO after appending new slots [B, k, H]: its newest C slots, detached. */
export function appendCompressed(compressed: Tensor | null, slots: Tensor, compressedLen: number): Tensor {
  const all = compressed ? cat([compressed, slots.detach()], 1) : slots.detach(); // [B, S + k, H]
  const length = all.shape[1]!;
  return length > compressedLen ? all.narrow(1, length - compressedLen, compressedLen) : all; // [B, min(S + k, C), H]
}

/**
 * The attention-reconstruction loss of one layer: the mean over B·M·H elements of
 * (attn(h, old) − attn(h, f_c(old)))², with the current queries h [B, M, H] and the old memories
 * [B, n, H] detached, so that only f_c (through `compressed` [B, n/c, H]) receives a gradient. attn
 * is the layer's own content attention with its weights held fixed (DecoderLayer.frozenAttention:
 * no positions, as the paper describes the loss; no mask, as every old memory lies before every
 * query; no dropout).
 */
export function attentionReconstructionLoss(layer: DecoderLayer, queries: Tensor, old: Tensor, compressed: Tensor): Tensor {
  const h = queries.detach();
  const target = layer.frozenAttention(h, old.detach()); // [B, M, H], a constant
  return F.mseLoss(layer.frozenAttention(h, compressed), target);
}
