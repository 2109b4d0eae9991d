// Where a worker stands in a data-parallel job, read from the environment as torchrun sets it, so
// that torchrun-style launchers and cluster schedulers start Engram workers unchanged:
//
//   MASTER_ADDR   host of rank 0, which serves the rendezvous store (default 127.0.0.1)
//   MASTER_PORT   its TCP port (default 29500)
//   WORLD_SIZE    number of ranks in the job
//   RANK          this worker's rank, 0 .. WORLD_SIZE - 1
//   LOCAL_RANK    its index on its machine (picks a CUDA device with the nccl backend)
//
// Without WORLD_SIZE (or with WORLD_SIZE=1) a run is a single process.
import { configError } from '../tensor/index.js';

export interface DistEnv {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  localRank: number;
}

export const DEFAULT_MASTER_PORT = 29500;

/** An environment as process.env holds it (spelled out so that the declarations need no Node types). */
export type Environment = Record<string, string | undefined>;

function intVar(env: Environment, name: string, fallback: number | null, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback === null) throw configError('distributed', `${name} is not set; a worker of a job with WORLD_SIZE=${env.WORLD_SIZE} needs MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK (as torchrun sets them)`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw configError('distributed', `${name}=${raw} is not an integer in [${min}, ${max}]`);
  return n;
}

/** The job this process belongs to, or null for a single-process run. */
export function distEnvFrom(env: Environment = process.env): DistEnv | null {
  const worldSize = intVar(env, 'WORLD_SIZE', 1, 1);
  if (worldSize === 1) return null;
  const rank = intVar(env, 'RANK', null, 0, worldSize - 1);
  return {
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: intVar(env, 'MASTER_PORT', DEFAULT_MASTER_PORT, 1, 65535),
    worldSize,
    rank,
    localRank: intVar(env, 'LOCAL_RANK', rank, 0),
  };
}

/** The variables a worker of rank `rank` is started with (what distEnvFrom reads back). */
export function workerEnv(e: DistEnv): Record<string, string> {
  return {
    MASTER_ADDR: e.masterAddr,
    MASTER_PORT: String(e.masterPort),
    WORLD_SIZE: String(e.worldSize),
    RANK: String(e.rank),
    LOCAL_RANK: String(e.localRank),
  };
}
