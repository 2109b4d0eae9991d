// libtorch's profiler around a piece of work (profileAsync: asynchronous work): where the time goes, op by op.
//
//   const rows = profile(() => { for (let i = 0; i < 3; i++) bench.step(); });
//   console.log(formatProfile(rows, 20));
//
// Every ATen op and autograd node run on this thread (and tasks it launches) is recorded; the
// rows aggregate them by name as torch.profiler's key_averages() does. Recording costs a few µs
// per op, so small-op-heavy work looks slower than it is.
import { native } from './native.js';

export interface ProfileRow {
  name: string;
  calls: number;
  /** µs inside the op itself, not in ops it called. */
  selfUs: number;
  /** µs from entry to exit, nested ops included. */
  totalUs: number;
}

/** Runs fn under the profiler; returns fn's result and the ops by self time, largest first. */
export function profile<T>(fn: () => T): { result: T; rows: ProfileRow[] } {
  native.profilerStart();
  let result: T;
  let raw: RawRows;
  try {
    result = fn();
  } finally {
    raw = native.profilerStop();
  }
  return { result, rows: toRows(raw) };
}

/** profile() around asynchronous work (e.g. train()): the profiler stops when fn's promise settles. */
export async function profileAsync<T>(fn: () => Promise<T>): Promise<{ result: T; rows: ProfileRow[] }> {
  native.profilerStart();
  let result: T;
  let raw: RawRows;
  try {
    result = await fn();
  } finally {
    raw = native.profilerStop();
  }
  return { result, rows: toRows(raw) };
}

type RawRows = [string, number, number, number][];
const toRows = (raw: RawRows): ProfileRow[] => raw.map(([name, calls, selfUs, totalUs]) => ({ name, calls, selfUs, totalUs }));

/** The first `top` rows as a table: self ms, share of all self time, calls, total ms, name. */
export function formatProfile(rows: ProfileRow[], top = 20): string {
  const all = rows.reduce((s, r) => s + r.selfUs, 0) || 1;
  const lines = [`${'self ms'.padStart(9)} ${'self %'.padStart(6)} ${'calls'.padStart(7)} ${'total ms'.padStart(9)}  op`];
  for (const r of rows.slice(0, top)) {
    lines.push(`${(r.selfUs / 1000).toFixed(1).padStart(9)} ${((100 * r.selfUs) / all).toFixed(1).padStart(6)} ${String(r.calls).padStart(7)} ${(r.totalUs / 1000).toFixed(1).padStart(9)}  ${r.name}`);
  }
  return lines.join('\n');
}
