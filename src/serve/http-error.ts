// The server's errors: an HTTP status and the request field at fault, sent as
// `{ "error": { "field": "maxTokens", "message": "..." } }` (field null when no one field is).
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly status: number, readonly field: string | null, message: string) {
    super(message);
  }

  toJSON(): { error: { field: string | null; message: string } } {
    return { error: { field: this.field, message: this.message } };
  }
}

/** Why a request's work was cut short: its time limit, the server shutting down, or the client leaving. */
export type StopReason = 'timeout' | 'shutdown' | 'disconnect';

/** The error of a request stopped for reason while waiting or working. */
export function stoppedError(reason: StopReason, what: string): HttpError {
  if (reason === 'timeout') return new HttpError(408, null, `${what} took longer than the server's time limit (--timeout); send less, or ask for fewer tokens`);
  if (reason === 'shutdown') return new HttpError(503, null, `the server is shutting down; ${what} was cancelled`);
  return new HttpError(499, null, `the client closed the connection; ${what} was cancelled`);
}
