// What the HTTP server (./server.ts) and the memory viewer (./viewer/) share: the models being
// served. The server loads them, owns their queues and mounts the viewer's routes.
import type { FastifyInstance } from 'fastify';
import type { LoadedRun } from '../train/objective.js';

export interface ServedModel {
  /** The model's id in the API (`GET /v1/models`), from its folder's name, unique among served models. */
  readonly name: string;
  /** The loaded model folder or run directory (model, training config, vocabulary or task). */
  readonly run: LoadedRun;
  /** Tokens per segment M, as in training. */
  readonly segmentLength: number;
  /**
   * Runs fn with exclusive use of the model (its per-model queue): requests never interleave on
   * one model's state. Rejects with the server's 429 error when the queue is full.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

export interface ServeContext {
  /** By name. */
  readonly models: ReadonlyMap<string, ServedModel>;
}

/** Mounts the viewer: its page and assets, and the routes it streams from. */
export type RegisterViewer = (app: FastifyInstance, context: ServeContext) => void | Promise<void>;
