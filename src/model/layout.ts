/**
 * Where every parameter lives. The model is cut into units, each one contiguous flat buffer:
 *   unit 0            embed   model.embed_tokens.weight
 *   unit 1 … L        block i input/post-attention norms, q k v o, gate up down
 *   unit L+1          head    model.norm.weight, lm_head.weight (absent when tied to the embedding)
 * A unit is the DDP all-reduce bucket and the FSDP shard unit; gradients and AdamW moments mirror it.
 *
 * Inside a block, q/k/v are adjacent so the three projections are one GEMM against a
 * ((H + 2·Hkv)·hd) × d matrix, and gate/up likewise one (2F × d) matrix. Groups start on 16-element
 * (64-byte) boundaries.
 */
import { headDim, type ModelConfig } from './config.js';

export const ALIGN_ELEMS = 16;

export interface ParamView {
  /** Hugging Face Llama tensor name. */
  name: string;
  unit: number;
  /** Offset inside the unit's flat buffer, in elements. */
  offset: number;
  shape: number[];
  size: number;
  /** Receives weight decay (matrices yes, norm weights no). */
  decay: boolean;
}

export type UnitKind = 'embed' | 'block' | 'head';

export interface UnitLayout {
  index: number;
  kind: UnitKind;
  /** Block number for kind 'block'. */
  layer: number;
  /** Elements in the flat buffer, including alignment padding. */
  size: number;
  views: ParamView[];
  /** Fused views used by the kernels (qkv, gate_up) and the per-parameter views by short name. */
  fused: Record<string, ParamView>;
  /** Contiguous [start, end) element ranges that take weight decay, and that do not. */
  decayRanges: Array<[number, number]>;
  noDecayRanges: Array<[number, number]>;
}

export interface ModelLayout {
  config: ModelConfig;
  units: UnitLayout[];
  byName: Map<string, ParamView>;
  /** Parameters (not counting padding). */
  paramCount: number;
  embedUnit: number;
  headUnit: number;
  blockUnit(layer: number): number;
}

const align = (n: number): number => Math.ceil(n / ALIGN_ELEMS) * ALIGN_ELEMS;

class UnitBuilder {
  size = 0;
  views: ParamView[] = [];
  fused: Record<string, ParamView> = {};
  constructor(readonly index: number) {}

  /** Appends a group of views that must be contiguous (no padding between them). */
  group(fusedName: string | null, items: Array<[short: string, name: string, shape: number[], decay: boolean]>): void {
    this.size = align(this.size);
    const start = this.size;
    for (const [short, name, shape, decay] of items) {
      const size = shape.reduce((a, b) => a * b, 1);
      const v: ParamView = { name, unit: this.index, offset: this.size, shape, size, decay };
      this.views.push(v);
      this.fused[short] = v;
      this.size += size;
    }
    if (fusedName) {
      const cols = items[0]![2][1]!;
      const total = this.size - start;
      this.fused[fusedName] = { name: fusedName, unit: this.index, offset: start, shape: [total / cols, cols], size: total, decay: items[0]![3] };
    }
  }

  build(kind: UnitKind, layer: number): UnitLayout {
    const size = align(this.size);
    const decayRanges: Array<[number, number]> = [];
    const noDecayRanges: Array<[number, number]> = [];
    // Ranges cover padding too (padding is zero and its gradient is zero, so it never changes).
    let cursor = 0;
    for (let i = 0; i < this.views.length; i++) {
      const v = this.views[i]!;
      const end = i + 1 < this.views.length ? this.views[i + 1]!.offset : size;
      const ranges = v.decay ? decayRanges : noDecayRanges;
      const last = ranges[ranges.length - 1];
      if (last && last[1] === cursor) last[1] = end;
      else ranges.push([cursor, end]);
      cursor = end;
    }
    return { index: this.index, kind, layer, size, views: this.views, fused: this.fused, decayRanges, noDecayRanges };
  }
}

export function buildLayout(config: ModelConfig): ModelLayout {
  const { vocab, d_model: d, n_layers: L, n_heads: H, n_kv_heads: Hkv, ffn_dim: F } = config;
  const hd = headDim(config);
  const units: UnitLayout[] = [];

  const embed = new UnitBuilder(0);
  embed.group(null, [['embed', 'model.embed_tokens.weight', [vocab, d], true]]);
  units.push(embed.build('embed', -1));

  for (let l = 0; l < L; l++) {
    const b = new UnitBuilder(1 + l);
    const p = `model.layers.${l}.`;
    b.group(null, [
      ['attn_norm', p + 'input_layernorm.weight', [d], false],
      ['ffn_norm', p + 'post_attention_layernorm.weight', [d], false],
    ]);
    b.group('qkv', [
      ['q', p + 'self_attn.q_proj.weight', [H * hd, d], true],
      ['k', p + 'self_attn.k_proj.weight', [Hkv * hd, d], true],
      ['v', p + 'self_attn.v_proj.weight', [Hkv * hd, d], true],
    ]);
    b.group(null, [['o', p + 'self_attn.o_proj.weight', [d, H * hd], true]]);
    b.group('gate_up', [
      ['gate', p + 'mlp.gate_proj.weight', [F, d], true],
      ['up', p + 'mlp.up_proj.weight', [F, d], true],
    ]);
    b.group(null, [['down', p + 'mlp.down_proj.weight', [d, F], true]]);
    units.push(b.build('block', l));
  }

  const head = new UnitBuilder(L + 1);
  head.group(null, [['norm', 'model.norm.weight', [d], false]]);
  if (!config.tie_embeddings) head.group(null, [['lm_head', 'lm_head.weight', [vocab, d], true]]);
  units.push(head.build('head', -1));

  const byName = new Map<string, ParamView>();
  let paramCount = 0;
  for (const u of units) {
    for (const v of u.views) {
      byName.set(v.name, v);
      paramCount += v.size;
    }
  }
  return { config, units, byName, paramCount, embedUnit: 0, headUnit: L + 1, blockUnit: (l) => 1 + l };
}
