// A process group of a data-parallel job: c10d's (through the addon) seen from TS. It knows its
// rank and world size, runs the collectives the trainer needs and keeps the seconds they took
// (the share of a step spent communicating).
//
//   ProcessGroup.init(env)       joins the job's rendezvous (rank 0 serves it) and forms the group
//   allReduce(ts, {average})     in place over the ranks
//   broadcast(ts, root)          root's values everywhere, in place
//   allGather(t)                 every rank's t, in rank order
//   averageGradients(params)     DDP's gradient averaging, in buckets of bucketBytes
//   sumNumbers(xs)               a few JS numbers summed over the ranks (float64)
import { allGather, allReduceGradients, createGradientReducer, destroyGradientReducer, reducerBegin, reducerFinish, allReduceInPlace, barrier, broadcastInPlace, collectiveBackends, createGroup, destroyGroup, resolveDevice, tensor, configError, type CollectiveBackend, type Device, type Tensor } from '../tensor/index.js';
import type { DistEnv } from './env.js';

export interface ProcessGroupOptions {
  /** 'gloo' (CPU tensors, the default) or 'nccl' (CUDA tensors, a libtorch with CUDA). */
  backend?: CollectiveBackend;
  /** Seconds a collective or the rendezvous may wait for the other ranks (default 60). */
  timeoutSeconds?: number;
  /** Size of a gradient bucket (default 25 MiB, DDP's). */
  bucketBytes?: number;
}

export const DEFAULT_TIMEOUT_SECONDS = 60;
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: CollectiveBackend;
  readonly timeoutSeconds: number;
  readonly bucketBytes: number;
  /** Where this rank's collectives run: cpu for gloo, cuda:<LOCAL_RANK> for nccl. */
  readonly device: Device;
  /** Seconds spent in collectives so far (gradient averaging and the rest). */
  commSeconds = 0;
  #id: number | null;

  private constructor(id: number, env: DistEnv, backend: CollectiveBackend, timeoutSeconds: number, bucketBytes: number) {
    this.#id = id;
    this.rank = env.rank;
    this.worldSize = env.worldSize;
    this.backend = backend;
    this.timeoutSeconds = timeoutSeconds;
    this.bucketBytes = bucketBytes;
    this.device = (backend === 'nccl' ? `cuda:${env.localRank}` : 'cpu') as Device;
  }

  /** Joins the job (blocks until every rank has, or the timeout). */
  static init(env: DistEnv, o: ProcessGroupOptions = {}): ProcessGroup {
    const backend = o.backend ?? 'gloo';
    const timeoutSeconds = o.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
    if (!(timeoutSeconds > 0)) throw configError('ProcessGroup', `timeoutSeconds must be positive, got ${timeoutSeconds}`);
    // Before joining: a rank whose GPU is missing fails here, in one line, not inside NCCL.
    if (backend === 'nccl' && collectiveBackends().includes('nccl')) resolveDevice(`cuda:${env.localRank}`, 'ProcessGroup (nccl, LOCAL_RANK)');
    const id = createGroup({ backend, masterAddr: env.masterAddr, masterPort: env.masterPort, rank: env.rank, worldSize: env.worldSize, timeoutMs: Math.round(timeoutSeconds * 1000) });
    return new ProcessGroup(id, env, backend, timeoutSeconds, o.bucketBytes ?? DEFAULT_BUCKET_BYTES);
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  #group(): number {
    if (this.#id === null) throw configError('ProcessGroup', 'the process group was destroyed');
    return this.#id;
  }

  #timed<T>(fn: (group: number) => T): T {
    const group = this.#group();
    const started = performance.now();
    try {
      return fn(group);
    } finally {
      this.commSeconds += (performance.now() - started) / 1000;
    }
  }

  allReduce(ts: readonly Tensor[], { average = false }: { average?: boolean } = {}): void {
    this.#timed((g) => allReduceInPlace(g, ts, average));
  }

  broadcast(ts: readonly Tensor[], root = 0): void {
    this.#timed((g) => broadcastInPlace(g, ts, root));
  }

  allGather(t: Tensor): Tensor[] {
    return this.#timed((g) => allGather(g, t));
  }

  barrier(): void {
    this.#timed((g) => barrier(g));
  }

  /** Averages the gradients of params over the ranks (params without a gradient are left out). */
  averageGradients(params: readonly Tensor[]): void {
    this.#timed((g) => allReduceGradients(g, params, this.bucketBytes));
  }

  /**
   * Averages the gradients of params over the ranks while backward runs (DDP's overlap): call
   * begin() before backward and finish() after it. Parameters are fixed at creation.
   */
  gradientReducer(params: readonly Tensor[]): { begin(): void; finish(): void; destroy(): void } {
    const reducer = createGradientReducer(this.#group(), params, this.bucketBytes);
    return {
      begin: () => reducerBegin(reducer),
      finish: () => this.#timed(() => reducerFinish(reducer)),
      destroy: () => destroyGradientReducer(reducer),
    };
  }

  /** Sums a few numbers over the ranks (in float64: exact for counts). */
  sumNumbers(xs: readonly number[]): number[] {
    const host = tensor(Float64Array.from(xs), { dtype: 'float64' });
    const t = this.device === 'cpu' ? host : host.to({ device: this.device });
    try {
      this.allReduce([t]);
      const back = t === host ? t : t.to({ device: 'cpu' });
      const values = Array.from(back.data() as Float64Array);
      if (back !== t) back.dispose();
      return values;
    } finally {
      host.dispose();
      if (t !== host) t.dispose();
    }
  }

  destroy(): void {
    if (this.#id !== null) destroyGroup(this.#id);
    this.#id = null;
  }
}
