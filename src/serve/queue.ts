// One model's queue: requests run one at a time on a model (its state is exclusive), the next
// ones wait in order, and a request arriving when `limit` already wait is refused with a 429.
// A waiting request whose signal aborts (time limit, shutdown, client gone) leaves the queue.
import { HttpError, stoppedError, type StopReason } from './http-error.js';

interface Waiter {
  start: () => void;
  fail: (e: unknown) => void;
}

export class ModelQueue {
  #running = false;
  readonly #waiting: Waiter[] = [];

  /** limit: requests that may wait behind the running one. */
  constructor(readonly name: string, readonly limit: number) {}

  /** Requests waiting (not counting the running one). */
  get waiting(): number {
    return this.#waiting.length;
  }

  get busy(): boolean {
    return this.#running;
  }

  /** Runs fn when the model is free; rejects with 429 when the queue is full, or the stop error if signal aborts first. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#running) await this.#wait(signal);
    else this.#running = true;
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next.start(); // the model passes straight to the next request
      else this.#running = false;
    }
  }

  #wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.#waiting.length >= this.limit) {
      return Promise.reject(new HttpError(429, 'model', `model ${this.name} is busy: ${this.#waiting.length} request(s) already wait for it (the server's --queue limit); retry later`));
    }
    if (signal?.aborted) return Promise.reject(stoppedError(signal.reason as StopReason, 'the request'));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(stoppedError(signal!.reason as StopReason, 'the request, still waiting for the model,'));
      };
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        fail: reject,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }
}
