// Transformer-XL's cache (Dai et al. 2019, SPEC §1): per layer, the last memLen *inputs* of that
// layer, detached, so the next segment's keys and values reach back without gradients.
// Shapes: B batch, C cached positions (<= memLen), M new positions, H hidden.
import { cat, type Tensor } from '../tensor/index.js';

/**
 * The cache after a segment: per layer, the last memLen rows of cat(cache, inputs), detached.
 * inputs[l] [B, M, H] are layer l's inputs at the sequence positions; null when memLen is 0.
 */
export function nextCache(cache: Tensor[] | null, inputs: Tensor[], memLen: number): Tensor[] | null {
  if (memLen <= 0) return null;
  return inputs.map((h, l) => {
    const M = h.shape[1]!, old = cache?.[l];
    const kept = old ? Math.min(old.shape[1]!, memLen - M) : 0; // cached rows that stay
    if (!old || kept <= 0) return (M > memLen ? h.narrow(1, M - memLen, memLen) : h).detach(); // the inputs' last rows: no copy
    return cat([old.narrow(1, old.shape[1]! - kept, kept), h], 1).detach(); // [B, kept + M, H]: only the rows kept are copied
  });
}
