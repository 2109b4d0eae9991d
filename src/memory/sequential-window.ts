// The sequential family's window and initial memory (SPEC §1, last paragraph): two choices where
// Engram's default and the transformer-sequential reference code differ by design
// (docs/deviations.md, E and F). Both are options of the kinds whose code path they change.
//
//   window          'with-query' (default): query t sees the L positions t − L + 1 … t, its own
//                   included; the key at distance d takes key position keyPe[:, d] (d = 0 … L − 1).
//                   'before-query' (the reference): query t sees t − L … t − 1, distances d = 1 … L,
//                   never itself; the key at distance d takes keyPe[:, d − 1]. Either way keyPe's
//                   column r embeds the r-th nearest key the window allows: its rank
//                   r = d − first, first = 0 or 1 (windowOffset), and Adaptive-Span's ramp reads
//                   the same rank. Expire-Span has no rank shift: it only blocks d = 0 (its spans,
//                   ramp and key positions read the true distance, as the reference's).
//   initialMemory   'empty' (default): a stream starts with no memory; the first block's query i
//                   sees only the block up to i (Feedback: the first step's attention adds
//                   nothing). 'zeros' (the reference): a stream starts with memories that hold zero
//                   vectors, ordinary keys and values that take attention weight (pre-LN: LN(0) =
//                   the ln1 bias): per layer L of them (sequential, adaptive-span), M at ages
//                   M … 1 with spans predicted from them (expire-span, M the block length), L raw
//                   and C compressed (compressive), L merged memories (feedback).
//
// 'before-query' needs 'zeros': with an empty memory the first query of a stream would have no key.
import { z } from 'zod';

/** Option `window` of kinds sequential, adaptive-span and expire-span. */
export const sequentialWindowSchema = z.enum(['with-query', 'before-query']).default('with-query')
  .describe("'with-query': query t sees t − L + 1 … t (Engram); 'before-query': t − L … t − 1, as the reference code");
export type SequentialWindow = z.output<typeof sequentialWindowSchema>;

/** Option `initialMemory` of the sequential family (sequential, adaptive-span, expire-span, compressive, feedback). */
export const initialMemorySchema = z.enum(['empty', 'zeros']).default('empty')
  .describe("'empty': a stream starts with no memory (Engram); 'zeros': with zero-filled memories, as the reference code");
export type InitialMemory = z.output<typeof initialMemorySchema>;

/** The nearest distance a window lets a query see: 0 (itself) or 1. */
export const windowOffset = (window: SequentialWindow): number => (window === 'before-query' ? 1 : 0);

/** The combination check of a kind with a window: a one-line message, or null. */
export function checkSequentialWindow(window: SequentialWindow, initialMemory: InitialMemory): string | null {
  return window === 'before-query' && initialMemory !== 'zeros'
    ? "window 'before-query' needs initialMemory 'zeros' (with an empty memory the first query of a stream has no key); set both, as the reference code does"
    : null;
}
