// Tensors that depend only on a few sizes (masks, position embeddings) are built once per key and
// kept, instead of being rebuilt by every forward pass.
import type { Tensor } from '../tensor/index.js';

export class TensorCache {
  readonly #tensors = new Map<string, Tensor>();

  get(key: string, make: () => Tensor): Tensor {
    let t = this.#tensors.get(key);
    if (!t) {
      t = make().keep();
      this.#tensors.set(key, t);
    }
    return t;
  }

  dispose(): void {
    for (const t of this.#tensors.values()) t.dispose();
    this.#tensors.clear();
  }
}
