// The one error type of Engram. Every native failure arrives as an EngramError naming the op and
// carrying libtorch's own message; TS-side validation throws the same class.
export type ErrorKind =
  | 'torch' // any other libtorch error
  | 'shape' // sizes or dims that do not fit
  | 'dtype' // an op not defined for a dtype, or mixed dtypes
  | 'device' // tensors on different devices, CUDA unavailable
  | 'oom' // out of memory
  | 'disposed' // a tensor used after dispose()
  | 'io' // files and serialisation
  | 'numeric' // a non-finite loss or value where a finite one is needed
  | 'config'; // invalid options

export class EngramError extends Error {
  override name = 'EngramError';
  constructor(
    message: string,
    readonly kind: ErrorKind = 'torch',
    readonly op: string = '',
    /** libtorch's message, without the op prefix. */
    readonly torchMessage: string = message,
  ) {
    super(message);
  }
}

export function configError(message: string): EngramError {
  return new EngramError(message, 'config');
}
