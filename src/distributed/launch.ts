// Starts the workers of a data-parallel job on this machine, as torchrun does: nproc processes,
// each with MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK and LOCAL_RANK in its environment (env.ts).
// With several machines, each runs the launcher with the same --nnodes, --master-addr and
// --master-port and its own --node-rank; rank 0 (node 0's first worker) serves the rendezvous.
//
// Faults: when a worker exits with an error or a signal, the launcher says which rank it was and
// how it ended, gives the others graceSeconds to stop on their own (their next collective fails at
// once or times out), then sends them SIGTERM, and SIGKILL after as long again. The job's exit
// code is the first failed worker's (1 for a signal). A run's checkpoint is written atomically by
// rank 0, so the one on disk is the last good one whatever happens.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { configError } from '../tensor/index.js';
import { DEFAULT_MASTER_PORT, workerEnv } from './env.js';
import { DEFAULT_TIMEOUT_SECONDS } from './process-group.js';

export interface LaunchOptions {
  /** Workers on this machine. */
  nproc: number;
  /** Machines in the job (default 1). */
  nnodes?: number;
  /** This machine's index, 0 .. nnodes - 1 (default 0). */
  nodeRank?: number;
  /** Host of rank 0 (default 127.0.0.1; required with several machines). */
  masterAddr?: string;
  /** Port of rank 0's rendezvous store (default: a free port on one machine, 29500 on several). */
  masterPort?: number;
  /** The worker's command and arguments (the same for every worker). */
  command: string;
  args: string[];
  /** Base environment of the workers (default process.env). */
  env?: Record<string, string | undefined>;
  /** Seconds the other workers get to stop by themselves after one failed (default 60, the collectives' default timeout). */
  graceSeconds?: number;
  /** Where the launcher's own lines go (default stderr). */
  log?: (line: string) => void;
}

export interface WorkerExit {
  rank: number;
  pid: number;
  code: number | null;
  /** The signal that ended it ('SIGTERM', …), null when it exited by itself. */
  signal: string | null;
}

export interface LaunchResult {
  exitCode: number;
  /** The first worker that failed (null: all finished cleanly). */
  failed: WorkerExit | null;
  workers: WorkerExit[];
}

/** A TCP port free on this machine now (the kernel's choice). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const describeExit = (w: WorkerExit): string => (w.signal ? `was killed by ${w.signal}` : `exited with code ${w.code}`);

/** Runs the job's workers on this machine until all have ended; see the header for faults. */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const nnodes = o.nnodes ?? 1, nodeRank = o.nodeRank ?? 0;
  const check = (ok: boolean, what: string) => { if (!ok) throw configError('launch', what); };
  check(Number.isInteger(o.nproc) && o.nproc >= 1, `--nproc must be a positive integer, got ${o.nproc}`);
  check(Number.isInteger(nnodes) && nnodes >= 1, `--nnodes must be a positive integer, got ${nnodes}`);
  check(Number.isInteger(nodeRank) && nodeRank >= 0 && nodeRank < nnodes, `--node-rank must be in [0, ${nnodes - 1}], got ${nodeRank}`);
  check(nnodes === 1 || o.masterAddr !== undefined, 'a job on several machines needs --master-addr (the host of node 0) on every machine');
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  const masterPort = o.masterPort ?? (nnodes === 1 ? await freePort() : DEFAULT_MASTER_PORT);
  const worldSize = nnodes * o.nproc;
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const graceMs = (o.graceSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;

  const children: ChildProcess[] = [];
  const exits: WorkerExit[] = [];
  let failed: WorkerExit | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const stopOthers = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  const forward = () => stopOthers('SIGTERM');
  process.on('SIGTERM', forward);
  try {
    await new Promise<void>((resolve) => {
      let running = o.nproc;
      for (let local = 0; local < o.nproc; local++) {
        const rank = nodeRank * o.nproc + local;
        const env = { ...(o.env ?? process.env), ...workerEnv({ masterAddr, masterPort, worldSize, rank, localRank: local }) };
        const child = spawn(o.command, o.args, { env, stdio: 'inherit' });
        children.push(child);
        child.on('exit', (code, signal) => {
          const w: WorkerExit = { rank, pid: child.pid ?? -1, code, signal };
          exits.push(w);
          if ((code !== 0 || signal) && !failed) {
            failed = w;
            log(`engram launch: rank ${rank} (pid ${w.pid}) ${describeExit(w)}; stopping the job (the other ranks get ${graceMs / 1000} s to stop, then SIGTERM)`);
            killTimer = setTimeout(() => {
              stopOthers('SIGTERM');
              killTimer = setTimeout(() => stopOthers('SIGKILL'), graceMs);
            }, graceMs);
          }
          if (--running === 0) resolve();
        });
      }
    });
  } finally {
    process.off('SIGTERM', forward);
    if (killTimer) clearTimeout(killTimer);
  }
  const first = failed as WorkerExit | null;
  return { exitCode: first ? (first.code && first.code > 0 ? first.code : 1) : 0, failed: first, workers: exits.sort((a, b) => a.rank - b.rank) };
}
