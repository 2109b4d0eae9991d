// Collectives over c10d process groups: the tensor layer's side of src/distributed. A group is an
// id into the addon's table (native/src/dist_ops.cpp: a TCPStore rendezvous and c10d's
// ProcessGroupGloo, or ProcessGroupNCCL where the libtorch has CUDA). Every call blocks until the
// collective completed on every rank, or fails with an EngramError of kind 'distributed' (a rank
// died) or 'timeout' (a rank hangs) naming the rank it waited on.
import { native } from './native.js';
import { Tensor } from './tensor.js';

const ids = (ts: readonly Tensor[]): number[] => ts.map((t) => t.id);

export type CollectiveBackend = 'gloo' | 'nccl';

export interface GroupOptions {
  backend: CollectiveBackend;
  masterAddr: string;
  masterPort: number;
  rank: number;
  worldSize: number;
  /** How long a collective (and the rendezvous) may wait for the other ranks, in milliseconds. */
  timeoutMs: number;
}

/** Joins (rank 0: serves) the rendezvous and forms the group; returns its id. Blocks until every rank has joined. */
export function createGroup(o: GroupOptions): number {
  return native.distInit(o.backend, o.masterAddr, o.masterPort, o.rank, o.worldSize, o.timeoutMs);
}

export function destroyGroup(group: number): void {
  native.distDestroy(group);
}

/** Sums (or averages) each tensor over the ranks, in place. */
export function allReduceInPlace(group: number, ts: readonly Tensor[], average: boolean): void {
  native.distAllReduce(group, ids(ts), average);
}

/** Copies root's values of each tensor into every rank's, in place. */
export function broadcastInPlace(group: number, ts: readonly Tensor[], root: number): void {
  native.distBroadcast(group, ids(ts), root);
}

/** Every rank's copy of t (same shape and dtype on all ranks), in rank order. */
export function allGather(group: number, t: Tensor): Tensor[] {
  return native.distAllGather(group, t.id).map((id) => new Tensor(id));
}

export function barrier(group: number): void {
  native.distBarrier(group);
}

/** Averages the parameters' gradients over the ranks in flat buckets of about bucketBytes (as DDP). */
export function allReduceGradients(group: number, params: readonly Tensor[], bucketBytes: number): void {
  native.distAllReduceGrads(group, ids(params), bucketBytes);
}

/**
 * DDP's overlapped gradient averaging: hooks on the parameters' gradient accumulators start each
 * bucket's all-reduce during backward as soon as its gradients are ready. begin() before backward,
 * finish() after it (waits and writes the averages); returns the reducer's id.
 */
export function createGradientReducer(group: number, params: readonly Tensor[], bucketBytes: number): number {
  return native.distReducerCreate(group, ids(params), bucketBytes);
}
export const reducerBegin = (reducer: number): void => native.distReducerBegin(reducer);
export const reducerFinish = (reducer: number): void => native.distReducerFinish(reducer);
export const destroyGradientReducer = (reducer: number): void => native.distReducerDestroy(reducer);

/** The backends this addon was built with ('gloo', and 'nccl' with a CUDA libtorch). */
export function collectiveBackends(): CollectiveBackend[] {
  return native.distBackends() as CollectiveBackend[];
}
