// The PyTorch side of the benchmarks: a Python child process (bench/*_torch.py --serve) that
// answers one JSON command per line, so that Engram and PyTorch are measured in the same run,
// alternating, never concurrently.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HEAP_BLOCK_MAX, buildInfo, heapRetention, heapRetentionEnv } from '../src/index.js';

function canImportTorch(py: string): boolean {
  if (py.startsWith('/') && !existsSync(py)) return false;
  return spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
}

/** A Python 3 that can import torch; with mayInstall (and root + apt), tries to install python3-torch. */
export function findPythonWithTorch(mayInstall: boolean): string | null {
  const candidates = ['/usr/bin/python3', 'python3'];
  for (const py of candidates) if (canImportTorch(py)) return py;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (mayInstall && isRoot && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0) {
    console.log('PyTorch not importable: trying apt-get install -y python3-torch ...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', '-qq', 'python3-torch'], { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 900_000 });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 300_000 });
      r = spawnSync('apt-get', ['install', '-y', '-qq', 'python3-torch'], { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 900_000 });
    }
    if (r.status === 0 && canImportTorch('/usr/bin/python3')) return '/usr/bin/python3';
    console.log('apt-get could not provide PyTorch; continuing without it.');
  }
  return null;
}

/** Path of a benchmark's Python script (bench/<name>), from dist/bench or bench. */
export function findScript(name: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'bench', name);
    if (existsSync(p)) return p;
    const q = join(dir, name);
    if (existsSync(q)) return q;
    dir = dirname(dir);
  }
  return null;
}

/** A Python process that answers one JSON command per line; idle (blocked on stdin) in between. */
export class TorchWorker {
  #child: ChildProcessWithoutNullStreams;
  #lines: AsyncIterator<string>;
  constructor(py: string, script: string, threads: number, env: NodeJS.ProcessEnv) {
    this.#child = spawn(py, [script, '--serve', '--threads', String(threads)], { env });
    this.#child.on('error', (e) => console.error(`PyTorch worker: ${e.message}`));
    this.#child.stdin.on('error', () => {}); // a worker that died shows up in read() instead
    this.#child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }
  async read(): Promise<Record<string, unknown>> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error('the PyTorch worker exited');
    return JSON.parse(value) as Record<string, unknown>;
  }
  async ask(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.#child.stdin.write(JSON.stringify(cmd) + '\n');
    const out = await this.read();
    if ('error' in out) throw new Error(String(out.error));
    return out;
  }
  /** The worker's process id (to read its GPU memory from nvidia-smi). */
  get pid(): number | undefined {
    return this.#child.pid;
  }
  close(): void {
    if (this.#child.exitCode === null) this.#child.stdin.end(JSON.stringify({ op: 'quit' }) + '\n');
  }
}

/**
 * Starts the PyTorch side of a benchmark (bench/<script> --serve) with the same ATen thread count
 * and OMP_WAIT_POLICY as this process, or explains in `note` why there is none.
 */
/**
 * worker.ask(cmd), or null without a worker. A failure is printed, closes the worker and calls
 * `dropped` (the caller forgets it), so PyTorch's columns are dropped for the rest of the run.
 */
export async function askOrDrop(worker: TorchWorker | null, cmd: Record<string, unknown>, dropped: () => void): Promise<Record<string, unknown> | null> {
  if (!worker) return null;
  try {
    return await worker.ask(cmd);
  } catch (e) {
    console.log(`PyTorch worker failed (${(e as Error).message}): torch columns dropped`);
    worker.close();
    dropped();
    return null;
  }
}

export async function startTorchWorker(script: string, o: { wantTorch: boolean; mayInstall: boolean; threads: number }): Promise<{ worker: TorchWorker | null; note: string }> {
  if (!o.wantTorch) return { worker: null, note: '--no-torch: torch columns skipped' };
  const py = findPythonWithTorch(o.mayInstall);
  const path = findScript(script);
  if (!py) return { worker: null, note: 'PyTorch is not importable by /usr/bin/python3 (or python3): torch columns skipped' };
  if (!path) return { worker: null, note: `bench/${script} not found: torch columns skipped` };
  // native.ts set OMP_WAIT_POLICY (default PASSIVE) and OPENBLAS_THREAD_TIMEOUT (default 20) before
  // loading libtorch: the child gets the same (both in process.env), and the heap settings Engram
  // gave malloc (setHeapRetention) through glibc's environment variables.
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY, ...heapRetentionEnv() };
  let worker: TorchWorker | null = null;
  try {
    worker = new TorchWorker(py, path, o.threads, env);
    const hello = await worker.read();
    let note = `PyTorch ${String(hello.torch)} via ${py}, ATen threads ${String(hello.threads)}`;
    if (hello.threads !== o.threads) note += ` (MISMATCH: ours ${o.threads})`;
    return { worker, note };
  } catch (e) {
    worker?.close();
    return { worker: null, note: `PyTorch worker failed to start (${(e as Error).message}): torch columns skipped` };
  }
}

/**
 * Which OpenBLAS kernels the products run on (both sides load the same library with the same
 * environment), and which library Engram's linear layers use.
 */
function productLibraries(): string {
  const { openblas, denseProducts } = buildInfo();
  const linear = `Engram's linear products on ${denseProducts === 'onednn' ? "oneDNN's sgemm" : "ATen's mm"}`;
  if (openblas === null) return `BLAS: not OpenBLAS; ${linear}`;
  const chosen = process.env.OPENBLAS_CORETYPE ? `OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE}` : "OpenBLAS's choice for this CPU";
  return `OpenBLAS kernels ${openblas.core} (${chosen}); ${linear}`;
}

/** The thread and heap settings both sides run with, as one line. */
export function threadSettings(threads: number): string {
  const kept = heapRetention();
  return `threads and heap (both sides): ATen intra-op ${threads}; OpenBLAS OPENBLAS_NUM_THREADS=${process.env.OPENBLAS_NUM_THREADS ?? '(unset: all cores)'}; ` +
    `OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? '(unset)'}; OPENBLAS_THREAD_TIMEOUT=${process.env.OPENBLAS_THREAD_TIMEOUT ?? '(unset)'}; OMP_NUM_THREADS=${process.env.OMP_NUM_THREADS ?? '(unset)'}; ` +
    `${productLibraries()}; ` +
    `heap: ${kept === null ? "glibc's defaults" : `${kept / 2 ** 20} MiB kept freed, blocks up to ${HEAP_BLOCK_MAX / 2 ** 20} MiB from the heap`}`;
}
