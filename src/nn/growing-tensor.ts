// A tensor that grows along one axis as rows are appended (incremental decoding: a layer's keys
// and values, an open segment's layer inputs). Rows go into a buffer whose capacity doubles when
// full, so appending n rows copies n rows (amortised) where cat([old, new]) would copy all T held
// so far: O(T) per decoded token and layer becomes O(1). `tensor` is a view of the filled rows,
// made when read (an open segment's layer inputs are read only at its end).
//
// Shapes: rows along `dim`; every other axis as the first rows appended.
import { empty, shapeError, type Device, type Tensor } from '../tensor/index.js';

export class GrowingTensor {
  #buffer: Tensor | null = null;
  /** The filled rows of the buffer (a view), kept out of scopes; made when first read after an append. */
  #view: Tensor | null = null;
  #length = 0;

  constructor(readonly dim: number) {}

  /** The rows appended so far (a view of the buffer, owned by this object), or null before the first. */
  get tensor(): Tensor | null {
    if (!this.#view && this.#length > 0) this.#view = this.#buffer!.narrow(this.dim, 0, this.#length).keep();
    return this.#view;
  }

  /** Rows held along dim. */
  get length(): number {
    return this.#length;
  }

  /**
   * Appends x (every axis but dim as the rows before). `rows`: x's size along dim when the caller
   * knows it (decoding), which spares reading x's shape; the native copy checks that x fits.
   */
  append(x: Tensor, rows?: number): void {
    const dim = this.dim, n = rows ?? x.shape[dim]!;
    const old = this.#buffer;
    if (old && rows === undefined && old.shape.some((s, i) => i !== dim && s !== x.shape[i])) {
      throw shapeError('GrowingTensor.append', `rows [${x.shape}] do not continue [${old.shape}] along axis ${dim}`);
    }
    this.#grow(n, x);
    this.#buffer!.copyRows_(dim, this.#length, x);
    this.advance(n);
  }

  /**
   * The buffer with room for `rows` more rows after the filled ones (grown as append grows it),
   * for a caller that writes them itself and then calls advance(rows); null before the first
   * append (the buffer's shape and dtype come from the first rows).
   */
  reserve(rows: number): Tensor | null {
    if (!this.#buffer) return null;
    this.#grow(rows, this.#buffer);
    return this.#buffer;
  }

  /** Counts `rows` rows written into the buffer after the filled ones (after reserve). */
  advance(rows: number): void {
    this.#length += rows;
    this.#view?.dispose(); // the next read makes the longer view
    this.#view = null;
  }

  /** Makes room for n more rows; a new buffer has like's shape (but along dim), dtype and device. */
  #grow(n: number, like: Tensor): void {
    const dim = this.dim, need = this.#length + n, old = this.#buffer;
    if (old && need <= old.shape[dim]!) return;
    const shape = [...like.shape];
    shape[dim] = Math.max(need, 2 * (old?.shape[dim] ?? 0));
    const next = empty(shape, { dtype: like.dtype, device: like.device as Device }).keep();
    if (old && this.#length > 0) next.copyRows_(dim, 0, this.tensor!);
    this.#view?.dispose();
    this.#view = null;
    old?.dispose();
    this.#buffer = next;
  }

  dispose(): void {
    this.#view?.dispose();
    this.#buffer?.dispose();
    this.#view = this.#buffer = null;
    this.#length = 0;
  }
}
