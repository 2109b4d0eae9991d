// A step buffer: a tensor filled one step at a time (step t writes its row at t along `dim`) and
// read back as views, whose gradients equal those of growing it by concatenation
// (cat([old, row], dim) per step) without copying everything held so far at every step, nor
// autograd keeping one such copy per step for backward. The Feedback Transformer's per-step keys
// and values use it (the reference writes them into a preallocated buffer with a custom autograd
// function too). How autograd is kept right: native/src/step_buffer_ops.cpp.
//
//   const buffer = new StepBuffer(1, T);          // rows along dim 1, T of them
//   buffer.write(row, t);                         // row [B, 1, ...] at t
//   const seen = buffer.read(0, t + 1);           // [B, t + 1, ...], a view
//
// Rules: a position is written once per buffer, and read only after it is written (a read sees
// what its positions hold when it is made: later writes of other positions leave it unchanged).
// The buffer's own tensors live until dispose() (they outlive tidy scopes; autograd holds what
// backward needs after that).
import { native } from './native.js';
import { configError, shapeError } from './errors.js';
import { empty, zeros } from './creation.js';
import { fromId, type Tensor, type Device } from './tensor.js';

export class StepBuffer {
  #data: Tensor | null = null;
  #grad: Tensor | null = null;
  /** Orders the writes and reads in the autograd graph (see step_buffer_ops.cpp). */
  #token: Tensor | null = null;

  /** Rows along `dim`, `capacity` of them; shape, dtype and device follow the first row written. */
  constructor(readonly dim: number, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw configError('StepBuffer', `capacity must be a positive integer, got ${capacity}`);
  }

  /** The whole buffer [..., capacity, ...] (positions not written yet hold garbage), or null before the first write. */
  get data(): Tensor | null {
    return this.#data;
  }

  /** Writes row (size n along dim, the buffer's sizes elsewhere) at positions index .. index + n - 1. */
  write(row: Tensor, index: number): void {
    if (row.ndim <= this.dim) throw shapeError('StepBuffer.write', `row [${row.shape}] has no dim ${this.dim}`);
    if (!this.#data) {
      const shape = row.shape.map((s, d) => (d === this.dim ? this.capacity : s));
      const device = row.device as Device;
      this.#data = empty(shape, { dtype: row.dtype, device }).keep();
      // reduced-precision rows: the gradient is accumulated in float32
      const gradType = row.dtype === 'bfloat16' || row.dtype === 'float16' ? 'float32' : row.dtype;
      this.#grad = zeros(shape, { dtype: gradType, device }).keep();
    }
    const token = fromId(native.stepBufferWrite(this.#data.id, this.#grad!.id, row.id, this.#token?.id ?? null, this.dim, index)).keep();
    this.#token?.dispose(); // this handle only: autograd keeps the chain
    this.#token = token;
  }

  /** A view of positions start .. start + length - 1 along dim (written before this call). */
  read(start: number, length: number): Tensor {
    if (!this.#data) throw shapeError('StepBuffer.read', 'nothing has been written yet');
    return fromId(native.stepBufferRead(this.#data.id, this.#grad!.id, this.#token?.id ?? null, this.dim, start, length));
  }

  /** Frees the buffer's handles (autograd keeps what a pending backward needs). */
  dispose(): void {
    for (const t of [this.#data, this.#grad, this.#token]) t?.dispose();
    this.#data = this.#grad = this.#token = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
