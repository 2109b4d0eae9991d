// The Compressive Transformer's memories (Rae et al. 2019, SPEC §4): per layer a FIFO of raw
// memories and a FIFO of compressed ones. Memories that fall out of the raw FIFO are compressed
// with rate c by f_c (mean pool, max pool, or a 1-D convolution of kernel and stride c) and
// appended to the compressed FIFO. A learned f_c is trained by the attention-reconstruction loss
//   ‖ attn(h, mem_old) − attn(h, f_c(mem_old)) ‖²
// with the layer's own attention weights held fixed (stop-gradient into the rest of the model).
//
// Scheme 'overlap' (option compressive.scheme; the transformer-sequential reference code,
// docs/deviations.md H): per layer X = cat(raw [L], block [M]); the M oldest rows of X are pooled
// by groups of c into M/c new slots, Z = cat(compressed [C], new); query i (group g = ⌊i/c⌋) attends,
// in one softmax, to the raw rows X[i … i + L − 1] (distances L … 1) and to the C + 1 slots
// Z[g … g + C]; key positions: raw key at distance d ← keyPe[:, d − 1], slot Z[g + C − r] ←
// keyPe[:, L + r] for r < C and none for r = C; after the block raw ← the last L rows of X and
// compressed ← the last C slots of Z. A row is raw and compressed at once for a while (overlap).
// Both memories start as zeros (initialMemory 'zeros' is required), so their sizes never change.
//
// Shapes: B batch, M block length, R raw memories held (L = memLen of them, plus a remainder of
// fewer than c, see advanceRawMemory), S compressed slots held (at most C), c compression rate,
// n memories being compressed (a multiple of c), H hidden, K heads, D = H/K head size.
import { z } from 'zod';
import { cat, configError, eye, F, shapeError, tensor, widenReduced, zeros, type Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import type { DecoderLayer } from '../nn/decoder-layer.js';

/** The options of kind 'compressive' (config key `compressive`): the one place their defaults are written. */
export const compressiveSchema = z.strictObject({
  compressedLen: z.number().int().positive().optional().describe('compressed memory slots per layer C (default: memLen)'),
  rate: z.number().int().positive().default(3).describe('compression rate c'),
  fn: z.enum(['mean', 'max', 'conv']).default('conv').describe('compression function f_c'),
  reconstruction: z.boolean().default(true).describe("train f_c with the attention-reconstruction loss (no effect for 'mean'/'max')"),
  scheme: z.enum(['fifo', 'overlap']).default('fifo')
    .describe("'fifo': a row is raw or compressed, never both (Engram); 'overlap': the reference code's scheme (needs initialMemory 'zeros', fn 'mean' or 'max')"),
});
/**
 * The Compressive Transformer's options with their defaults filled in (compressedLen from memLen;
 * scheme, added later, may be missing from a configuration saved before it existed: read it as 'fifo').
 */
export type CompressiveOptions = Omit<z.output<typeof compressiveSchema>, 'compressedLen' | 'scheme'> & {
  compressedLen: number;
  scheme?: z.output<typeof compressiveSchema>['scheme'];
};
/** The Compressive Transformer's options as a user writes them (any may be left out). */
export type CompressiveOptionsInput = z.input<typeof compressiveSchema>;
/** Fills the default that depends on the rest of the model: C = memLen. */
export const completeCompressiveOptions = (parsed: z.output<typeof compressiveSchema>, memLen: number): CompressiveOptions =>
  ({ ...parsed, compressedLen: parsed.compressedLen ?? memLen });

export type CompressionFn = CompressiveOptions['fn'];

/** The combination check of kind 'compressive': a one-line message, or null. */
export function checkCompressiveScheme(o: CompressiveOptions, initialMemory: 'empty' | 'zeros'): string | null {
  if (o.scheme !== 'overlap') return null;
  if (initialMemory !== 'zeros') return "compressive.scheme 'overlap' needs initialMemory 'zeros' (its first queries attend to L zero raw rows and C zero slots, as the reference code's)";
  if (o.fn === 'conv') return "compressive.scheme 'overlap' pools with fn 'mean' (the reference code's) or 'max'; 'conv' is trained by the reconstruction loss of the 'fifo' scheme";
  return null;
}

/**
 * Scheme 'overlap': who attends to whom among the keys [slots Z (C + M/c) | raw X_raw (L) | block
 * (M)] of M queries, and each key's keyPe column (see the header): the mask bool [M, Tk] (true: not
 * allowed) or the columns int64 [M, Tk] (L + C: a zero column, for slot r = C and for masked keys),
 * Tk = C + M/c + L + M.
 */
export function overlapWindow(compressedLen: number, block: number, rate: number, memLen: number, table: 'mask' | 'column'): Tensor {
  const C = compressedLen, M = block, L = memLen, slots = C + M / rate;
  const Tk = slots + L + M;
  const blocked = new Uint8Array(M * Tk).fill(1);
  const column: number[][] = [];
  for (let i = 0; i < M; i++) {
    const row = new Array<number>(Tk).fill(L + C);
    const g = Math.floor(i / rate);
    for (let s = g; s <= g + C; s++) { // slots Z[g … g + C]; r = g + C − s, 0 the newest
      blocked[i * Tk + s] = 0;
      row[s] = s === g ? L + C : L + (g + C - s);
    }
    for (let j = i; j < i + L; j++) { // X[i … i + L − 1], X = cat(raw, block): distance L + i − j
      blocked[i * Tk + slots + j] = 0;
      row[slots + j] = L + i - j - 1;
    }
    column.push(row);
  }
  return table === 'mask' ? tensor(blocked, { dtype: 'bool', shape: [M, Tk] }) : tensor(column, { dtype: 'int64' });
}

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
      return widenReduced(convolved).transpose(1, 2); // [B, k, H]; float32 under bf16 too (carried memories stay float32)
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
