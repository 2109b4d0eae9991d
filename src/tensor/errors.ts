// The one error type of Engram. Every native failure arrives as an EngramError naming the op and
// carrying libtorch's own message; TS-side validation throws the same class, made by the
// factories below, which always name the op: the message reads `${op}: ${problem}`.
export type ErrorKind =
  | 'torch' // any other libtorch error
  | 'shape' // sizes or dims that do not fit
  | 'dtype' // an op not defined for a dtype, or mixed dtypes
  | 'device' // tensors on different devices, CUDA unavailable
  | 'oom' // out of memory
  | 'numeric' // a computation that failed numerically (non-finite values, singular matrices)
  | 'disposed' // a tensor used after dispose()
  | 'io' // files and serialisation
  | 'config' // invalid options and arguments
  | 'distributed' // a collective failed: another rank died or closed its connection
  | 'timeout'; // a collective or the rendezvous did not complete within the process group's timeout

export class EngramError extends Error {
  override name = 'EngramError';
  /**
   * The native addon calls this with all four arguments. Elsewhere use engramError() or the
   * factories, which prefix the op to the message.
   */
  constructor(
    message: string,
    readonly kind: ErrorKind,
    readonly op: string,
    /** The message without the op prefix: libtorch's own for native errors. */
    readonly torchMessage: string = message,
  ) {
    super(message);
  }
}

/** An EngramError of this kind from this op: `${op}: ${problem}`. cause is kept, not enumerable. */
export function engramError(kind: ErrorKind, op: string, problem: string, cause?: unknown): EngramError {
  const e = new EngramError(`${op}: ${problem}`, kind, op, problem);
  if (cause !== undefined) Object.defineProperty(e, 'cause', { value: cause, enumerable: false, configurable: true });
  return e;
}

/** Invalid options or arguments. */
export const configError = (op: string, problem: string): EngramError => engramError('config', op, problem);
/** Sizes, dims or indices that do not fit. */
export const shapeError = (op: string, problem: string): EngramError => engramError('shape', op, problem);
/** A dtype the op does not take. */
export const dtypeError = (op: string, problem: string): EngramError => engramError('dtype', op, problem);
/** Files and serialisation; cause is the underlying error, if any. */
export const ioError = (op: string, problem: string, cause?: unknown): EngramError => engramError('io', op, problem, cause);
/** Non-finite values or another numerical failure. */
export const numericError = (op: string, problem: string): EngramError => engramError('numeric', op, problem);
/** An object used after dispose(). */
export const disposedError = (op: string, problem: string): EngramError => engramError('disposed', op, problem);
