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
    const dim = this.dim, n = rows ?? x.shape[dim]!, need = this.#length + n;
    const old = this.#buffer;
    if (old && rows === undefined && old.shape.some((s, i) => i !== dim && s !== x.shape[i])) {
      throw shapeError('GrowingTensor.append', `rows [${x.shape}] do not continue [${old.shape}] along axis ${dim}`);
    }
    if (!old || need > old.shape[dim]!) {
      const shape = [...x.shape];
      shape[dim] = Math.max(need, 2 * (old?.shape[dim] ?? 0));
      const next = empty(shape, { dtype: x.dtype, device: x.device as Device }).keep();
      if (old && this.#length > 0) next.copyRows_(dim, 0, this.tensor!);
      this.#view?.dispose();
      this.#view = null;
      old?.dispose();
      this.#buffer = next;
    }
    this.#buffer!.copyRows_(dim, this.#length, x);
    this.#length = need;
    this.#view?.dispose(); // the next read makes the longer view
    this.#view = null;
  }

  dispose(): void {
    this.#view?.dispose();
    this.#buffer?.dispose();
    this.#view = this.#buffer = null;
    this.#length = 0;
  }
}
