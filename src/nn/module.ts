// Modules: parameters and sub-modules registered under stable dotted names
// ('layers.0.attn.qkv.weight'), a state dict over those names, train/eval mode.
//
// Parameters are kept out of tidy() scopes (they live as long as the module); dispose() frees them.
//
// Devices: a module is built on the CPU (so a seed gives the same weights on every device) and
// moved with to(device), in place: each parameter's handle gets the moved data, so the fields and
// optimisers that hold it follow. Everything a module makes while running takes its device from
// an input or a parameter (docs/architecture.md, "Devices").
import { configError, noGrad, sameDevice, shapeError, tidy, type Device, type Tensor } from '../tensor/index.js';
import { TensorCache } from './tensor-cache.js';

export abstract class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();
  readonly #caches: TensorCache[] = [];

  /**
   * Registers a trainable parameter (sets requiresGrad, keeps it out of scopes). Pass the
   * initialiser as a function so that its temporaries are freed at once.
   */
  protected param(name: string, init: Tensor | (() => Tensor)): Tensor {
    this.#checkName(name);
    const value = typeof init === 'function' ? tidy(init) : init;
    value.requiresGrad_(true).keep();
    this.#params.set(name, value);
    return value;
  }

  /** Registers a tensor that is state but not trained (saved in the state dict). */
  protected buffer(name: string, value: Tensor): Tensor {
    this.#checkName(name);
    value.keep();
    this.#buffers.set(name, value);
    return value;
  }

  /**
   * A cache of tensors that depend on sizes only (masks, position tables), built on the module's
   * device: to() empties it, so they are rebuilt on the new device.
   */
  protected tensorCache(): TensorCache {
    const cache = new TensorCache(() => this.device);
    this.#caches.push(cache);
    return cache;
  }

  /** Registers a sub-module; a list registers its items as name.0, name.1, ... */
  protected child<M extends Module>(name: string, module: M): M;
  protected child<M extends Module>(name: string, modules: M[]): M[];
  protected child<M extends Module>(name: string, m: M | M[]): M | M[] {
    if (Array.isArray(m)) {
      m.forEach((item, i) => this.child(`${name}.${i}`, item));
      return m;
    }
    this.#checkName(name);
    this.#children.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw configError(this.constructor.name, `'${name}' is registered twice; give each parameter, buffer and sub-module its own name`);
    }
  }

  /** [name, module] pairs of this module ('') and every sub-module, depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, c] of this.#children) out.push(...c.namedModules(`${prefix}${n}.`));
    return out;
  }

  /** [name, parameter] pairs in registration order, depth first. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.#params) out.push([prefix + n, p]);
    for (const [n, c] of this.#children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.numel, 0);
  }

  /** Parameters and buffers by name: the module's own tensors, not copies. */
  stateDict(prefix = ''): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, p] of this.#params) out[prefix + n] = p;
    for (const [n, b] of this.#buffers) out[prefix + n] = b;
    for (const [n, c] of this.#children) Object.assign(out, c.stateDict(`${prefix}${n}.`));
    return out;
  }

  /** Copies values in by name; shapes must match; with strict, names must match exactly. */
  loadStateDict(state: Record<string, Tensor>, { strict = true } = {}): void {
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in state));
    const unexpected = Object.keys(state).filter((k) => !(k in own));
    if (strict && (missing.length || unexpected.length)) {
      const names = [missing.length ? `missing ${missing.join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''].filter(Boolean).join('; ');
      throw configError('Module.loadStateDict', `${names}; load a state dict saved from a model of the same configuration, or pass strict: false`);
    }
    for (const [name, target] of Object.entries(own)) {
      const source = state[name];
      if (!source) continue;
      if (source.shape.join(',') !== target.shape.join(',')) {
        throw shapeError('Module.loadStateDict', `${name} has shape [${source.shape}], the model needs [${target.shape}]; load a state dict saved from a model of the same configuration`);
      }
      noGrad(() => target.copy_(source));
    }
  }

  /** The device of the parameters (of the first one; to() keeps them together); 'cpu' without any. */
  get device(): Device {
    const first = this.#params.values().next().value ?? this.#children.values().next().value?.parameters()[0];
    return (first?.device ?? 'cpu') as Device;
  }

  /**
   * Moves every parameter and buffer to `device`, in place (the same Tensor objects: fields and
   * optimisers holding them follow; gradients are dropped). Cached tables are emptied.
   */
  to(device: Device): this {
    for (const [, m] of this.namedModules()) {
      for (const t of [...m.#params.values(), ...m.#buffers.values()]) {
        if (sameDevice(t.device, device)) continue;
        const moved = noGrad(() => t.to({ device }));
        t.setData_(moved);
        moved.dispose();
      }
      for (const c of m.#caches) c.clear();
    }
    return this;
  }

  train(on = true): this {
    this.training = on;
    for (const c of this.#children.values()) c.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  dispose(): void {
    for (const p of this.#params.values()) p.dispose();
    for (const b of this.#buffers.values()) b.dispose();
    for (const c of this.#children.values()) c.dispose();
  }
}
