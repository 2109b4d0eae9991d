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
    const all = cache ? cat([cache[l]!, h], 1) : h; // [B, C + M, H]
    const length = all.shape[1]!;
    return (length > memLen ? all.narrow(1, length - memLen, memLen) : all).detach();
  });
}
