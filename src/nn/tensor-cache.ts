// Tensors that depend only on a few sizes (masks, position embeddings) are built once per key and
// kept, instead of being rebuilt by every forward pass. They are built on the CPU by plain code
// and moved once to the owner's device (a module's, Module.tensorCache), so the builders need not
// know about devices; Module.to empties the cache.
import { sameDevice, type Device, type Tensor } from '../tensor/index.js';

export class TensorCache {
  readonly #tensors = new Map<string, Tensor>();

  /** @param device where cached tensors live (asked at each build); default: where make() puts them. */
  constructor(readonly device: (() => Device) | null = null) {}

  get(key: string, make: () => Tensor): Tensor {
    let t = this.#tensors.get(key);
    if (!t) {
      t = make();
      const device = this.device?.();
      if (device !== undefined && !sameDevice(t.device, device)) {
        const moved = t.to({ device });
        t.dispose();
        t = moved;
      }
      t.keep();
      this.#tensors.set(key, t);
    }
    return t;
  }

  /** Frees the cached tensors; later gets rebuild them (Module.to: on the new device). */
  clear(): void {
    for (const t of this.#tensors.values()) t.dispose();
    this.#tensors.clear();
  }

  dispose(): void {
    this.clear();
  }
}
