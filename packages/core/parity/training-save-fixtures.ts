/**
 * What the save/ group reads besides save.json: the step fixtures that name the saved files of each run, their
 * recorded tensors, and the parameters and AdamW state of a run at a given step.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { moduleLayers, type Hypernetwork, type HypernetworkModule } from '../src/networks/hypernetworks/hypernetwork.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../src/tensor.js';
import type { AdamWParamState, AdamWState } from '../src/training/adamw-state.js';
import type { SaveKind } from '../src/training/saved-files.js';

export interface SavedFileEntry {
  readonly label: string;
  readonly pt: string;
  readonly optim?: string | null;
}

export interface HypernetworkFields {
  readonly name: string;
  readonly sizes: readonly number[];
  readonly layer_structure: readonly number[];
  readonly activation_func: string | null;
  readonly add_layer_norm: boolean;
  readonly weight_init: string;
  readonly use_dropout: boolean;
  readonly dropout_structure: readonly number[];
  readonly activate_output: boolean;
}

export interface StepsFixture {
  readonly id: string;
  readonly kind: 'textual_inversion' | 'hypernetwork';
  readonly model: { readonly name: string; readonly checkpoint_sha256: string };
  readonly train_args: { readonly name: string; readonly save_every?: number };
  readonly embedding?: { readonly name: string; readonly initial_step: number; readonly shape: readonly number[] };
  readonly hypernetwork?: HypernetworkFields;
  readonly resume?: {
    readonly of: string;
    readonly initial_step: number;
    readonly optim_hash_in_file: string;
    readonly embedding_checksum: string;
    readonly optimizer_state_loaded: boolean;
  } | null;
  readonly optimizer: { readonly lr: number; readonly betas: readonly [number, number]; readonly eps: number; readonly weight_decay: number };
  readonly param_order: readonly string[];
  readonly steps: ReadonlyArray<{ readonly step: number; readonly lr: number }>;
  readonly saved_files?: readonly SavedFileEntry[];
}

/** A run's fixture with its tensors, loaded on first use. */
export interface Run {
  readonly fx: StepsFixture;
  tensors(): Promise<ReadonlyMap<string, HostTensor>>;
}

/** Every JSON beside save/ (in the training folder's sub-folders) that lists `saved_files`. */
export async function loadRuns(trainingFolder: string): Promise<Run[]> {
  const runs: Run[] = [];
  for (const dir of readdirSync(trainingFolder, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(trainingFolder, dir.name)).sort()) {
      if (!f.endsWith('.json')) continue;
      const path = join(trainingFolder, dir.name, f);
      const fx = JSON.parse(await readFile(path, 'utf8')) as Partial<StepsFixture>;
      if (!Array.isArray(fx.saved_files) || typeof fx.id !== 'string') continue;
      const st = path.replace(/\.json$/, '.safetensors');
      let cache: Promise<ReadonlyMap<string, HostTensor>> | undefined;
      runs.push({
        fx: fx as StepsFixture,
        tensors: () => (cache ??= existsSync(st) ? readSafetensorsFile(st).then((r) => r.tensors) : Promise.resolve(new Map())),
      });
    }
  }
  return runs;
}

export function f32(tensors: ReadonlyMap<string, HostTensor>, name: string): Float32Tensor {
  const t = tensors.get(name);
  if (!t) throw new Error(`the fixture has no tensor ${name}`);
  return toFloat32(t);
}

/** The suffix of a trained tensor's name: none for an embedding's `vec`, `.<param>` for a hypernetwork. */
export function paramSuffix(fx: StepsFixture, name: string): string {
  return fx.kind === 'textual_inversion' ? '' : `.${name}`;
}

/** Which save a `saved_files` entry is: the final one, or an intermediate one with its `steps_done` in the name. */
export function saveOf(fx: StepsFixture, entry: SavedFileEntry): { kind: SaveKind; step: number } {
  if (entry.label === 'final') {
    const last = fx.steps[fx.steps.length - 1];
    return { kind: 'final', step: last ? last.step + 1 : (fx.embedding?.initial_step ?? 0) };
  }
  const m = /-(\d+)\.pt$/.exec(entry.label);
  if (!m) throw new Error(`cannot tell the step of saved file "${entry.label}"`);
  return { kind: 'intermediate', step: Number(m[1]) - 1 };
}

/**
 * The trained tensors after `step` optimizer steps, in `param_order`. Step tensors are numbered by the step count
 * before them (`s12.*` is the first step of a run resumed at 12).
 */
export function paramsAt(run: Run, tensors: ReadonlyMap<string, HostTensor>, step: number): Float32Tensor[] {
  const { fx } = run;
  const last = fx.steps.find((s) => s.step + 1 === step);
  return fx.param_order.map((n) => (last ? f32(tensors, `s${last.step}.param${paramSuffix(fx, n)}`) : f32(tensors, `init.${n}`)));
}

const BETA_MOMENTS = (b: number): [number, number] => [Math.fround(b), Math.fround(1 - b)];

/**
 * The AdamW state after `step` steps. Final: the recorded `final.*`. Intermediate saves: only the final state is
 * recorded, so the moments are rebuilt from the recorded gradients in float32 (torch 1.13's
 * `exp_avg.mul_(b1).add_(g, alpha=1-b1)`, `exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)`); `replayed` says so,
 * and such values are compared with a tolerance.
 */
export function stateAt(run: Run, tensors: ReadonlyMap<string, HostTensor>, step: number, kind: SaveKind): { state: AdamWState; replayed: boolean } {
  const { fx } = run;
  const o = fx.optimizer;
  const group = { betas: [o.betas[0], o.betas[1]] as const, eps: o.eps, weightDecay: o.weight_decay };
  if (kind === 'final') {
    const params = fx.param_order.map((n): AdamWParamState => {
      const p = paramSuffix(fx, n);
      return { step: f32(tensors, `final.step${p}`).data[0]!, expAvg: f32(tensors, `final.exp_avg${p}`).data.slice(), expAvgSq: f32(tensors, `final.exp_avg_sq${p}`).data.slice() };
    });
    return { state: { lr: o.lr, ...group, params }, replayed: false };
  }
  const [b1, c1] = BETA_MOMENTS(o.betas[0]);
  const [b2, c2] = BETA_MOMENTS(o.betas[1]);
  const f = Math.fround;
  const params = fx.param_order.map((n): AdamWParamState => {
    const p = paramSuffix(fx, n);
    const size = f32(tensors, `init.${n}`).data.length;
    const resumed = tensors.has(`init.exp_avg${p}`);
    return {
      step: resumed ? f32(tensors, `init.optim_step${p}`).data[0]! : 0,
      expAvg: resumed ? f32(tensors, `init.exp_avg${p}`).data.slice() : new Float32Array(size),
      expAvgSq: resumed ? f32(tensors, `init.exp_avg_sq${p}`).data.slice() : new Float32Array(size),
    };
  });
  let lr = o.lr;
  fx.steps.forEach((s) => {
    if (s.step >= step) return;
    lr = s.lr;
    fx.param_order.forEach((n, j) => {
      const g = f32(tensors, `s${s.step}.grad${paramSuffix(fx, n)}`).data;
      const st = params[j]!;
      st.step += 1;
      for (let i = 0; i < g.length; i++) {
        st.expAvg[i] = f(f(st.expAvg[i]! * b1) + f(c1 * g[i]!));
        st.expAvgSq[i] = f(f(st.expAvgSq[i]! * b2) + f(f(c2 * g[i]!) * g[i]!));
      }
    });
  });
  return { state: { lr, ...group, params }, replayed: true };
}

/** The hypernetwork a run trains, from the fixture's creation fields, with `values` in `param_order`. */
export function fixtureHypernetwork(fx: StepsFixture, values: readonly Float32Tensor[]): Hypernetwork {
  const h = fx.hypernetwork;
  if (!h) throw new Error(`${fx.id} has no hypernetwork fields`);
  const byName = new Map(fx.param_order.map((n, i) => [n, values[i]!]));
  const arch = {
    layerStructure: [...h.layer_structure],
    activationFunc: h.activation_func,
    addLayerNorm: h.add_layer_norm,
    activateOutput: h.activate_output,
    dropoutStructure: [...h.dropout_structure],
  };
  const take = (name: string): Float32Tensor => {
    const t = byName.get(name);
    if (!t) throw new Error(`${fx.id}: param_order has no ${name}`);
    return t;
  };
  const layers = new Map<number, readonly [HypernetworkModule, HypernetworkModule]>();
  for (const width of h.sizes) {
    const seq = moduleLayers(width, arch, fx.id);
    const module = (side: 'k' | 'v'): HypernetworkModule => {
      const params = new Map<number, { weight: Float32Tensor; bias?: Float32Tensor }>();
      for (const l of seq) {
        const at = `${width}.${side}.linear.${l.index}`;
        if (l.kind === 'linear' || l.kind === 'layernorm') params.set(l.index, { weight: take(`${at}.weight`), bias: take(`${at}.bias`) });
        else if (l.kind === 'activation' && l.fn === 'prelu') params.set(l.index, { weight: take(`${at}.weight`) });
      }
      return { layers: seq, params };
    };
    layers.set(width, [module('k'), module('v')]);
  }
  const ds = h.dropout_structure;
  return {
    ...arch,
    sizes: [...h.sizes].sort((a, b) => a - b),
    name: h.name,
    step: 0,
    weightInit: h.weight_init,
    useDropout: h.use_dropout,
    lastLayerDropout: ds.length >= 2 && ds[ds.length - 2] !== 0,
    optionalInfo: null,
    sdCheckpoint: null,
    sdCheckpointName: null,
    layers,
    filename: `${h.name}.pt`,
    hash: '',
    shorthash: '',
  };
}
