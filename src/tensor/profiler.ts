// libtorch's profiler around a piece of work (profileAsync: asynchronous work): where the time goes, op by op.
//
//   const rows = profile(() => { for (let i = 0; i < 3; i++) bench.step(); });
//   console.log(formatProfile(rows, 20));
//
// Every ATen op and autograd node run on this thread (and tasks it launches) is recorded; the
// rows aggregate them by name as torch.profiler's key_averages() does. Recording costs a few µs
// per op, so small-op-heavy work looks slower than it is. To find where an op comes from, ask for
// its callers and input shapes: profile(fn, { callers: 2, shapes: true }) names rows like
// "AsStridedBackward0 > aten::zero_ > aten::fill_ [3266560] []" (a scalar input: []).
import { configError } from './errors.js';
import { native } from './native.js';

export interface ProfileRow {
  name: string;
  calls: number;
  /** µs inside the op itself, not in ops it called. */
  selfUs: number;
  /** µs from entry to exit, nested ops included. */
  totalUs: number;
}

/** How rows are keyed: by op name (default), or also by the ops that called it and its input shapes. */
export interface ProfileOptions {
  /** Prefix each row's name with this many enclosing ops, outermost first ("caller > op"; default 0). */
  callers?: number;
  /** Follow each row's name with its inputs' shapes ("aten::mm [2048,256] [256,768]"; default false). */
  shapes?: boolean;
}

/** Starts the profiler as `options` ask; returns the callers count its stop takes. */
function startProfiler({ callers = 0, shapes = false }: ProfileOptions): number {
  if (!Number.isInteger(callers) || callers < 0) throw configError('profile', `callers must be a whole number >= 0, got ${callers}`);
  native.profilerStart(shapes);
  return callers;
}

/** Runs fn under the profiler; returns fn's result and the ops by self time, largest first. */
export function profile<T>(fn: () => T, options: ProfileOptions = {}): { result: T; rows: ProfileRow[] } {
  const callers = startProfiler(options);
  let result: T;
  let raw: RawRows;
  try {
    result = fn();
  } finally {
    raw = native.profilerStop(callers);
  }
  return { result, rows: toRows(raw) };
}

/** profile() around asynchronous work (e.g. train()): the profiler stops when fn's promise settles. */
export async function profileAsync<T>(fn: () => Promise<T>, options: ProfileOptions = {}): Promise<{ result: T; rows: ProfileRow[] }> {
  const callers = startProfiler(options);
  let result: T;
  let raw: RawRows;
  try {
    result = await fn();
  } finally {
    raw = native.profilerStop(callers);
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
