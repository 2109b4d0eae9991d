// Lifetime of native tensors. A training loop must not leak, and V8's garbage collector alone is a
// poor judge of native memory, so tensors are freed deterministically:
//   - tidy(fn): every tensor made inside is freed when fn returns, except the tensors it returns
//     (they move to the enclosing scope) and those passed to keep();
//   - t.dispose() frees one tensor at once;
//   - a tensor alive outside any scope is registered with a FinalizationRegistry, so forgetting
//     to dispose it costs memory only until the next GC. Only such tensors have their bytes
//     reported to V8 (to make it collect in time): inside scopes, reporting would only trigger
//     useless collections, so it is off there and turned on for tensors that escape or are kept.
// Scopes are synchronous, like PyTorch's compute: do not await inside tidy().
import { native } from './native.js';
import { configError } from './errors.js';

/** What the scope machinery needs from a tensor (implemented by Tensor). */
export interface Tracked {
  id: number;
  /** 0: in a scope, 1: registered with the finalizer, 2: kept out of scopes (also registered). */
  tracking: number;
}

const scopes: Tracked[][] = [];
const finalizer = new FinalizationRegistry<number>((id) => native.free(id));

export function track(t: Tracked): void {
  const scope = scopes[scopes.length - 1];
  if (scope) {
    scope.push(t);
    t.tracking = 0;
  } else {
    finalizer.register(t, t.id, t);
    t.tracking = 1;
  }
}

export function untrack(t: Tracked): void {
  if (t.tracking !== 0) finalizer.unregister(t);
}

/** Marks a tensor to survive the end of the scope it was made in (you now own it). */
export function keep<T extends Tracked>(t: T): T {
  if (t.tracking === 0) {
    t.tracking = 2;
    finalizer.register(t, t.id, t);
    native.reportTensors([t.id]);
  }
  return t;
}

// Tensors reachable from a scope's result (a tensor, or arrays / plain objects holding tensors).
function collectResult(value: unknown, into: Set<Tracked>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if ('tracking' in value && 'id' in value) {
    into.add(value as Tracked);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectResult(v, into, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    for (const v of value instanceof Map ? value.values() : Object.values(value)) collectResult(v, into, depth + 1);
  }
}

/**
 * Runs fn and frees every tensor it made, except those it returns and those kept.
 * Returned tensors belong to the enclosing scope (or to the finalizer when there is none).
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  scopes.push(scope);
  if (scopes.length === 1) native.setReporting(false);
  const leave = () => {
    scopes.pop();
    if (scopes.length === 0) native.setReporting(true);
  };
  let result: T;
  try {
    result = fn();
  } catch (e) {
    leave();
    release(scope, new Set());
    throw e;
  }
  leave();
  if (result instanceof Promise) {
    throw configError('tidy', 'tidy() is synchronous; do not pass an async function');
  }
  const survivors = new Set<Tracked>();
  collectResult(result, survivors);
  release(scope, survivors);
  const parent = scopes[scopes.length - 1];
  const escaped: number[] = [];
  for (const t of survivors) {
    if (t.id < 0 || t.tracking !== 0) continue;
    if (parent) parent.push(t);
    else {
      t.tracking = 1;
      finalizer.register(t, t.id, t);
      escaped.push(t.id);
    }
  }
  if (escaped.length) native.reportTensors(escaped);
  return result;
}

function release(scope: Tracked[], survivors: Set<Tracked>): void {
  const ids: number[] = [];
  for (const t of scope) {
    if (t.id >= 0 && t.tracking === 0 && !survivors.has(t)) {
      ids.push(t.id);
      t.id = -1;
    }
  }
  if (ids.length) native.freeMany(ids);
}

/** Number of native tensors alive (for leak checks). */
export function liveTensors(): number {
  return native.liveTensors();
}
