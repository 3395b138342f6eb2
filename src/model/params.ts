/**
 * Flat per-unit buffers following a ModelLayout: used for parameters, gradients and AdamW moments
 * alike (they mirror each other), with views by Hugging Face name.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import { Rng } from '../util/rng.js';
import type { ModelLayout, ParamView } from './layout.js';

export class UnitBuffers {
  readonly units: Tensor[];

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly dtype: 'f32' | 'f64' = 'f32',
    /** Elements per unit when not the whole unit (a shard); views by name need whole units. */
    sizes?: readonly number[],
  ) {
    this.units = layout.units.map((u, i) => backend.alloc([sizes?.[i] ?? u.size], dtype));
  }

  unit(u: number): Tensor {
    return this.units[u]!;
  }

  /** A view of one parameter by Hugging Face name. */
  view(name: string): Tensor {
    const v = this.layout.byName.get(name);
    if (!v) throw new Error(`no parameter named '${name}'`);
    return viewOf(this.backend, this.units[v.unit]!, v);
  }

  zero(): void {
    for (const t of this.units) this.backend.fill(t, 0);
  }

  free(): void {
    for (const t of this.units) this.backend.free(t);
    this.units.length = 0;
  }

  /** Downloads every parameter as a host array, keyed by Hugging Face name. */
  toHost(): Map<string, Float32Array | Float64Array> {
    const out = new Map<string, Float32Array | Float64Array>();
    for (const u of this.layout.units) {
      const flat = this.backend.download(this.units[u.index]!) as Float32Array | Float64Array;
      for (const v of u.views) out.set(v.name, flat.slice(v.offset, v.offset + v.size));
    }
    return out;
  }

  /** Uploads parameters by name; every parameter of the layout (or of `units`) must be present with the right size. */
  fromHost(tensors: ReadonlyMap<string, ArrayLike<number>>, units?: readonly number[]): void {
    for (const u of units ? units.map((i) => this.layout.units[i]!) : this.layout.units) {
      const flat = this.dtype === 'f32' ? new Float32Array(u.size) : new Float64Array(u.size);
      for (const v of u.views) {
        const data = tensors.get(v.name);
        if (!data) throw new Error(`missing tensor '${v.name}'`);
        if (data.length !== v.size) throw new Error(`tensor '${v.name}' has ${data.length} elements, expected ${v.size} (shape ${v.shape.join('×')})`);
        flat.set(data, v.offset);
      }
      this.backend.upload(this.units[u.index]!, flat);
    }
  }
}

export function viewOf(backend: Backend, unit: Tensor, v: ParamView): Tensor {
  return backend.view(unit, v.offset, v.shape);
}

/**
 * Deterministic initialisation: N(0, init_std²) for matrices and embeddings, 1 for norm weights.
 * Each parameter draws from its own stream derived from (seed, name), so the values do not depend
 * on unit order, sharding or which rank initialises.
 */
export function initialParameters(layout: ModelLayout, seed: number, units?: readonly number[]): Map<string, Float32Array> {
  const std = layout.config.init_std;
  const out = new Map<string, Float32Array>();
  for (const u of units ? units.map((i) => layout.units[i]!) : layout.units) {
    for (const v of u.views) {
      const a = new Float32Array(v.size);
      if (v.shape.length === 1) a.fill(1);
      else {
        const rng = Rng.derive(seed, 'init', v.name);
        for (let i = 0; i < a.length; i++) a[i] = rng.normal() * std;
      }
      out.set(v.name, a);
    }
  }
  return out;
}
