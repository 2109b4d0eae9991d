// Sessions: a model's memory kept between requests under an id the client picks, so that a long
// document can be fed piece by piece (POST /v1/score, /v1/generate with "session"). A session is
// made on its first use, belongs to the model it was made for, expires after ttl ms unused and,
// when `capacity` are open, the least recently used one that no request is using makes room.
import { TextSession, type TextModel } from '../infer/stream.js';
import { HttpError } from './http-error.js';

export interface Session {
  readonly id: string;
  readonly model: string;
  readonly text: TextSession;
  lastUsed: number;
  /** Requests using it now (at most one: they run on the model's queue). */
  users: number;
  /** Tokens scored on it and their bits (POST /v1/score), for its cumulative bits per token. */
  tokens: number;
  bits: number;
  /** Closed (expired, evicted, deleted) while a request used it: disposed on release. */
  closed: boolean;
}

export class SessionStore {
  /** In order of last use, oldest first (a Map keeps insertion order: a use re-inserts). */
  readonly #sessions = new Map<string, Session>();
  readonly #timer: NodeJS.Timeout;

  constructor(readonly capacity: number, readonly ttlMs: number, readonly now: () => number = Date.now) {
    this.#timer = setInterval(() => this.expire(), Math.max(1000, Math.min(ttlMs, 60_000)));
    this.#timer.unref();
  }

  get size(): number {
    return this.#sessions.size;
  }

  list(): Session[] {
    this.expire();
    return [...this.#sessions.values()];
  }

  /** The session id of model (made if new), marked in use until release(). */
  open(id: string, model: string, text: TextModel): Session {
    this.expire();
    let s = this.#sessions.get(id);
    if (s && s.model !== model) throw new HttpError(400, 'session', `session ${id} belongs to model ${s.model}, not ${model}; use another id for this model`);
    if (s) {
      this.#sessions.delete(id);
    } else {
      if (this.#sessions.size >= this.capacity) this.#evictOne();
      s = { id, model, text: new TextSession(text), lastUsed: this.now(), users: 0, tokens: 0, bits: 0, closed: false };
    }
    s.users++;
    s.lastUsed = this.now();
    this.#sessions.set(id, s);
    return s;
  }

  release(s: Session): void {
    s.users--;
    s.lastUsed = this.now();
    if (s.closed && s.users === 0) s.text.dispose();
  }

  /** Closes a session (false: no such session). One in use is closed when its request ends. */
  close(id: string): boolean {
    const s = this.#sessions.get(id);
    if (!s) return false;
    this.#sessions.delete(id);
    s.closed = true;
    if (s.users === 0) s.text.dispose(); // else once its request lets go
    return true;
  }

  /** Closes the sessions unused for longer than the time-to-live. */
  expire(): void {
    const now = this.now();
    for (const s of [...this.#sessions.values()]) if (s.users === 0 && now - s.lastUsed > this.ttlMs) this.close(s.id);
  }

  #evictOne(): void {
    for (const s of this.#sessions.values()) {
      if (s.users === 0) {
        this.close(s.id);
        return;
      }
    }
    throw new HttpError(429, 'session', `all ${this.capacity} sessions (the server's --max-sessions) are in use; retry later`);
  }

  dispose(): void {
    clearInterval(this.#timer);
    for (const id of [...this.#sessions.keys()]) this.close(id);
  }
}
