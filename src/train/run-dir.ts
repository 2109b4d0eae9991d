// Run directories: one writer at a time, and a run never replaced by accident.
//
//   <run>/.engram.lock   {"pid", "host", "started"} of the process training into <run>, created
//                        with O_EXCL ('wx') so that of two processes exactly one gets it. Released
//                        by its holder (Trainer.dispose), and by an exit hook for whatever a
//                        process still holds when it exits (errors, signals, process.exit).
//
// A lock is stale when its pid is dead on this host (a SIGKILLed run): the next run takes it over.
// A lock from another host (a shared file system) cannot be checked from here and is never taken
// over; its message says how to remove it by hand.
//
// Engram's own files of a run (what `--overwrite` removes; everything else in the directory is
// kept, so that `--out .` or a mistyped path never deletes a user's files):
//   checkpoint.json, checkpoint-<step>.safetensors, log.jsonl, result.json, config.json, inspect/
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { configError, ioError } from '../tensor/index.js';

export const LOCK_FILE = '.engram.lock';

/** Names of the files and folders a run writes into its directory. */
const RUN_FILE = /^(checkpoint\.json|checkpoint-\d+\.safetensors|log\.jsonl|result\.json|config\.json|inspect)$/;
/** Left by interrupted atomic writes (serialize.ts writeFileAtomic); never a user's file. */
const TEMP_FILE = /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/;

export interface LockHolder {
  pid: number;
  host: string;
  started: string;
}

export interface RunLock {
  readonly dir: string;
  /** Removes the lock file (once; later calls do nothing). */
  release(): void;
}

const held = new Set<string>();
let exitHook = false;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

function readRaw(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function readHolder(path: string, raw = readRaw(path)): LockHolder | null {
  try {
    const h = JSON.parse(raw ?? '') as Partial<LockHolder>;
    if (typeof h.pid === 'number' && Number.isInteger(h.pid) && h.pid > 0 && typeof h.host === 'string') return { pid: h.pid, host: h.host, started: String(h.started ?? '?') };
  } catch {
    // unreadable or half written: decided below
  }
  return null;
}

/**
 * Takes the lock of a run directory (created if needed). Throws EngramError 'config' naming the
 * holder when another live process has it; takes over a stale lock.
 */
export function lockRunDir(dir: string): RunLock {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw ioError('lockRunDir', `cannot create the run directory ${dir}: ${(e as Error).message}`, e);
  }
  const path = join(dir, LOCK_FILE);
  const me: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(me)}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('lockRunDir', `cannot lock the run directory ${dir}: ${(e as Error).message}`, e);
    }
    const raw = readRaw(path);
    const holder = readHolder(path, raw);
    let stale: boolean;
    if (holder) stale = holder.host === me.host && !isAlive(holder.pid);
    else stale = Date.now() - (statSafe(path) ?? 0) > 10_000; // a lock cut while being written
    if (!stale || attempt >= 3) {
      const who = holder ? `process ${holder.pid} on ${holder.host}, since ${holder.started}` : 'a process that is starting';
      const self = holder && holder.pid === process.pid && holder.host === me.host ? ' (this process: dispose the other Trainer first)' : '';
      throw configError('lockRunDir', `${dir} is in use by ${who}${self}: wait for it to finish or use another run directory (if no such run is going on, delete ${path})`);
    }
    // Remove the stale lock only if it is still the one judged (another process may have taken
    // it over meanwhile; the window left is the gap between this read and the unlink).
    if (readRaw(path) !== raw) continue;
    try {
      unlinkSync(path);
    } catch {
      // another process removed it first: try again
    }
  }
  held.add(path);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const p of held) removeLock(p);
    });
  }
  let released = false;
  return {
    dir,
    release() {
      if (released) return;
      released = true;
      held.delete(path);
      removeLock(path);
    },
  };
}

function statSafe(path: string): number | null {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

/** Removes a lock file if it is still this process's. */
function removeLock(path: string): void {
  const holder = readHolder(path);
  if (holder && holder.pid === process.pid && holder.host === hostname()) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

/** What a directory holds besides the lock and temporary files (what a fresh run would clash with). */
export function runDirEntries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== LOCK_FILE && !TEMP_FILE.test(f)).sort();
}

/** Removes Engram's own files of a run (see the header); keeps anything else. Returns what it removed. */
export function removeRunFiles(dir: string): string[] {
  const removed = runDirEntries(dir).filter((f) => RUN_FILE.test(f));
  for (const f of removed) rmSync(join(dir, f), { recursive: true, force: true });
  return removed;
}

/** 'log.jsonl, checkpoint-300.safetensors and 3 more' */
export function describeEntries(entries: string[]): string {
  return entries.length <= 4 ? entries.join(', ') : `${entries.slice(0, 4).join(', ')} and ${entries.length - 4} more`;
}
