/**
 * Several networks applied to a model's weights as A1111's `network_apply_weights` does with
 * `lora_functional = False`: per layer, the networks in prompt order, each computing its update from the
 * weight as already patched by the ones before it (`W ← W + updown`, `b ← b + ex_bias`). A layer whose patch
 * fails keeps its weight for that network and counts an error against it. Pure: returns the changed tensors
 * only, under their checkpoint keys; the originals are never written.
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import type { BoundLora, LoraModule } from './bind.js';
import type { LoraModuleTable, LoraTarget } from './mapping.js';
import { addToFloat32, F64Scratch, LoraLayerError, moduleUpdown, type F64 } from './updown.js';

export interface LoraApplication {
  /** The name the prompt used (A1111's `net.name`): errors and hashes are reported under it. */
  readonly name: string;
  readonly network: BoundLora;
  readonly te: number;
  readonly unet: number;
  /** `dyn=`: only the first N rank components of LoRA modules; null for all. */
  readonly dyn: number | null;
}

export interface LoraMergeResult {
  /** Patched tensors by checkpoint key (only those some network changed). */
  readonly weights: ReadonlyMap<string, Float32Tensor>;
  /** Failed layer patches per network name, in first-failure order. */
  readonly errors: ReadonlyMap<string, number>;
  /** `Network <name> layer <module>: <message>` per failed patch. */
  readonly layerErrors: readonly string[];
}

/** `NetworkModule.multiplier()`: text-encoder modules have `transformer` within the first 20 characters of their key. */
export function moduleMultiplier(mod: LoraModule, app: Pick<LoraApplication, 'te' | 'unet'>): number {
  return mod.key.slice(0, 20).includes('transformer') ? app.te : app.unet;
}

/** Checkpoint keys a network set may change: what a graph needs as inputs to run with any of them. */
export function targetedKeys(table: LoraModuleTable, networks: readonly BoundLora[]): string[] {
  const keys = new Set<string>();
  for (const t of table.targets.values()) {
    if (!t.patched || !t.weightKey) continue;
    if (!networks.some((n) => modulesFor(t, n).length > 0)) continue;
    keys.add(t.weightKey);
    if (t.outWeightKey) keys.add(t.outWeightKey);
    if (t.biasKey) keys.add(t.biasKey);
  }
  return [...keys].sort();
}

function modulesFor(t: LoraTarget, n: BoundLora): LoraModule[] {
  const direct = n.modules.get(t.key);
  if (t.kind !== 'mha') return direct ? [direct] : [];
  const parts = ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((p) => n.modules.get(`${t.key}_${p}`)).filter((m): m is LoraModule => !!m);
  return direct ? [direct, ...parts] : parts;
}

function rows(t: Float32Tensor, start: number, end: number): Float32Tensor {
  const inner = t.data.length / t.shape[0]!;
  return float32([end - start, ...t.shape.slice(1)], t.data.slice(start * inner, end * inner));
}

function vstack(parts: readonly F64[]): F64 {
  const cols = parts.map((p) => (p.shape.length === 1 ? p.shape[0]! : p.data.length / p.shape[0]!));
  if (cols.some((c) => c !== cols[0])) throw new LoraLayerError('Sizes of tensors must match except in dimension 0');
  const data = new Float64Array(parts.reduce((s, p) => s + p.data.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { shape: [data.length / cols[0]!, cols[0]!], data };
}

/**
 * Applies `apps` in order to the weights of `table`'s patched layers. `weights` holds the original float32
 * tensors under their checkpoint keys (at least those of the targeted layers). `scratch` is working memory
 * only (a caller that merges often keeps one); the result never refers to it.
 */
export function mergeLoras(
  weights: ReadonlyMap<string, Float32Tensor>,
  table: LoraModuleTable,
  apps: readonly LoraApplication[],
  scratch: F64Scratch = new F64Scratch(),
): LoraMergeResult {
  const out = new Map<string, Float32Tensor>();
  const errors = new Map<string, number>();
  const layerErrors: string[] = [];
  const fail = (app: LoraApplication, layer: string, e: unknown): void => {
    if (!(e instanceof LoraLayerError)) throw e;
    errors.set(app.name, (errors.get(app.name) ?? 0) + 1);
    layerErrors.push(`Network ${app.name} layer ${layer}: ${e.message}`);
  };
  const get = (key: string): Float32Tensor => {
    const t = out.get(key) ?? weights.get(key);
    if (!t) throw new Error(`the weights given to mergeLoras lack ${key}`);
    return t;
  };
  for (const t of table.targets.values()) {
    if (!t.patched || !t.weightKey) continue;
    if (!apps.some((a) => modulesFor(t, a.network).length > 0)) continue;
    for (const app of apps) {
      const direct = app.network.modules.get(t.key);
      if (t.kind !== 'mha') {
        if (!direct) continue;
        try {
          const W = get(t.weightKey);
          const { updown, exBias } = moduleUpdown(direct, W, moduleMultiplier(direct, app), app.dyn, scratch);
          const newW = float32(W.shape, addToFloat32(W, updown));
          let newB: Float32Tensor | undefined;
          if (exBias) {
            if (!t.biasKey) throw new LoraLayerError('the layer has no bias for the network to change');
            const b = get(t.biasKey);
            newB = float32(b.shape, addToFloat32(b, exBias));
          }
          out.set(t.weightKey, newW);
          if (newB) out.set(t.biasKey!, newB);
        } catch (e) {
          fail(app, t.key, e);
        }
        continue;
      }
      // MultiheadAttention (open_clip): only with all four projections, each from its own block.
      const [q, k, v, o] = ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((p) => app.network.modules.get(`${t.key}_${p}`));
      if (q && k && v && o) {
        try {
          const inW = get(t.weightKey);
          const d = inW.shape[0]! / 3;
          const ups = [q, k, v].map((m, j) => moduleUpdown(m, rows(inW, j * d, (j + 1) * d), moduleMultiplier(m, app), app.dyn).updown);
          const qkv = vstack(ups);
          const outW = get(t.outWeightKey!);
          const ou = moduleUpdown(o, outW, moduleMultiplier(o, app), app.dyn);
          const newIn = float32(inW.shape, addToFloat32(inW, qkv));
          const newOut = float32(outW.shape, addToFloat32(outW, ou.updown));
          let newB: Float32Tensor | undefined;
          if (ou.exBias) {
            if (!t.biasKey) throw new LoraLayerError('the out projection has no bias for the network to change');
            const b = get(t.biasKey);
            newB = float32(b.shape, addToFloat32(b, ou.exBias));
          }
          out.set(t.weightKey, newIn);
          out.set(t.outWeightKey!, newOut);
          if (newB) out.set(t.biasKey!, newB);
        } catch (e) {
          fail(app, t.key, e);
        }
        continue;
      }
      if (direct) fail(app, t.key, new LoraLayerError("couldn't find supported operation"));
    }
  }
  return { weights: out, errors, layerErrors };
}
