// Argument checks shared by the tensor API: shapes and sizes are validated here, on the TS side,
// because the addon reads a JS number as an integer by truncation (NaN -> 0, 1.5 -> 1) and a
// string where a number belongs is a bare TypeError from Node-API.
import { shapeError } from './errors.js';

/**
 * The most elements a tensor may have: counts, offsets and toArray() lengths must stay exact as JS
 * numbers (2^53 - 1). Far beyond any memory; what does not fit in memory is libtorch's 'oom'.
 */
export const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : String(v));

/**
 * Throws a 'shape' EngramError naming op unless shape is an array of non-negative safe integers
 * whose product is at most MAX_ELEMENTS. Up to minusOnes sizes may be -1: one for reshape and view
 * ("the rest"), any number for expand ("keep this dim"). Returns the shape, for use inline. One
 * pass over the sizes, nothing else.
 */
export function checkShape(op: string, shape: readonly unknown[], minusOnes = 0): number[] {
  if (!Array.isArray(shape)) throw shapeError(op, `the shape must be an array of sizes, got ${show(shape)}`);
  let elements = 1;
  let inferred = 0;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) {
      elements *= d;
      continue;
    }
    if (d === -1 && inferred < minusOnes) {
      inferred++;
      continue;
    }
    const what = minusOnes === 0 ? 'a non-negative integer' : minusOnes === 1 ? 'a non-negative integer (or a single -1)' : 'a non-negative integer or -1';
    throw shapeError(op, `size ${show(d)} at dim ${i} of shape [${shape.map(show).join(', ')}] is not ${what}`);
  }
  if (elements > MAX_ELEMENTS) {
    throw shapeError(op, `shape [${shape.join(', ')}] has ${elements} elements, more than the limit of 2^53 - 1`);
  }
  return shape as number[];
}

/** checkShape for one size argument (eye's n, linspace's steps, randperm's n). */
export function checkSize(op: string, name: string, n: unknown): number {
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return n;
  throw shapeError(op, `${name} must be a non-negative integer, got ${show(n)}`);
}
