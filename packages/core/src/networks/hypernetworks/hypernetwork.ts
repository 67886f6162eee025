/**
 * A1111 hypernetworks (`modules/hypernetworks/hypernetwork.py`): per context width, two MLPs (one for k, one
 * for v) built from `layer_structure`, the activation, optional LayerNorm and Dropout, with the Sequential
 * indices A1111's state dicts use. Loading follows `Hypernetwork.load`, defaults included.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { DarkroomError } from '../../errors.js';
import { PyDict, PyTuple, TorchTensor, type PyValue } from '../../formats/pickle/values.js';
import { readTorch } from '../../formats/torch.js';
import { toFloat32, type Float32Tensor } from '../../tensor.js';

/** Activations A1111 offers (`HypernetworkModule.activation_dict`) that build with default arguments. */
export const HYPERNETWORK_ACTIVATIONS = [
  'relu', 'leakyrelu', 'elu', 'swish', 'tanh', 'sigmoid',
  'celu', 'gelu', 'glu', 'hardshrink', 'hardsigmoid', 'hardswish', 'hardtanh', 'logsigmoid', 'logsoftmax', 'mish',
  'prelu', 'relu6', 'rrelu', 'selu', 'silu', 'softmax', 'softmax2d', 'softmin', 'softplus', 'softshrink',
  'softsign', 'tanhshrink',
] as const;
export type HypernetworkActivation = (typeof HYPERNETWORK_ACTIVATIONS)[number];

/** One entry of a module's torch.nn.Sequential, with its index (the `linear.<i>` of the state dict). */
export type HypernetworkLayer =
  | { readonly kind: 'linear'; readonly index: number; readonly inFeatures: number; readonly outFeatures: number }
  | { readonly kind: 'activation'; readonly index: number; readonly fn: HypernetworkActivation }
  | { readonly kind: 'layernorm'; readonly index: number; readonly width: number }
  | { readonly kind: 'dropout'; readonly index: number; readonly p: number };

/** What fixes the shape of the computation; two hypernetworks with equal architectures share compiled graphs. */
export interface HypernetworkArchitecture {
  readonly layerStructure: readonly number[];
  readonly activationFunc: string | null;
  readonly addLayerNorm: boolean;
  readonly activateOutput: boolean;
  readonly dropoutStructure: readonly number[];
  /** Context widths with a module pair, ascending. */
  readonly sizes: readonly number[];
}

/** The parameters of one MLP, by Sequential index: `weight` and `bias` (LayerNorm: gamma/beta; PReLU: weight). */
export type ModuleParams = ReadonlyMap<number, { readonly weight: Float32Tensor; readonly bias?: Float32Tensor }>;

export interface HypernetworkModule {
  readonly layers: readonly HypernetworkLayer[];
  readonly params: ModuleParams;
}

export interface Hypernetwork extends HypernetworkArchitecture {
  readonly name: string;
  readonly step: number;
  readonly weightInit: string;
  readonly useDropout: boolean;
  readonly lastLayerDropout: boolean;
  readonly optionalInfo: string | null;
  readonly sdCheckpoint: string | null;
  readonly sdCheckpointName: string | null;
  /** k and v modules per context width. */
  readonly layers: ReadonlyMap<number, readonly [HypernetworkModule, HypernetworkModule]>;
  readonly filename: string;
  /** sha256 of the file; A1111's shorthash is the first 10 hex digits. */
  readonly hash: string;
  readonly shorthash: string;
}

/** A1111 `parse_dropout_structure` for files that do not store one. */
export function parseDropoutStructure(layerStructure: readonly number[], useDropout: boolean, lastLayerDropout: boolean): number[] {
  if (layerStructure.length < 2) return [];
  if (!useDropout) return layerStructure.map(() => 0);
  return [0, ...Array(Math.max(0, layerStructure.length - 3)).fill(0.3), lastLayerDropout ? 0.3 : 0, 0];
}

/** The Sequential A1111's HypernetworkModule builds for one width (`int()` truncates the widths). */
export function moduleLayers(dim: number, arch: Omit<HypernetworkArchitecture, 'sizes'>, source = 'hypernetwork'): HypernetworkLayer[] {
  const ls = arch.layerStructure;
  const act = arch.activationFunc;
  const layers: HypernetworkLayer[] = [];
  for (let i = 0; i < ls.length - 1; i++) {
    const inF = Math.trunc(dim * ls[i]!);
    const outF = Math.trunc(dim * ls[i + 1]!);
    layers.push({ kind: 'linear', index: layers.length, inFeatures: inF, outFeatures: outF });
    const last = i >= ls.length - 2;
    if (!(act === null || act === 'linear' || (last && !arch.activateOutput))) {
      if (!(HYPERNETWORK_ACTIVATIONS as readonly string[]).includes(act)) {
        throw new DarkroomError('HYPERNETWORK_BAD_ACTIVATION', `${source}: activation "${act}" cannot be built (A1111 fails on it too)`, {
          file: source,
          activation: act,
        });
      }
      layers.push({ kind: 'activation', index: layers.length, fn: act as HypernetworkActivation });
    }
    if (arch.addLayerNorm) layers.push({ kind: 'layernorm', index: layers.length, width: outF });
    const p = arch.dropoutStructure[i + 1] ?? 0;
    if (p > 0) {
      if (!(p < 1)) throw new DarkroomError('HYPERNETWORK_BAD_STRUCTURE', `${source}: dropout ${p} is not in (0, 1)`, { file: source });
      layers.push({ kind: 'dropout', index: layers.length, p });
    }
  }
  return layers;
}

const LEGACY_KEYS: Record<string, string> = {
  'linear1.bias': 'linear.0.bias',
  'linear1.weight': 'linear.0.weight',
  'linear2.bias': 'linear.1.bias',
  'linear2.weight': 'linear.1.weight',
};

function badState(source: string, reason: string): never {
  throw new DarkroomError('HYPERNETWORK_BAD_STATE_DICT', `${source}: ${reason}`, { file: source });
}

/** Checks a state dict against the Sequential exactly as torch's strict load_state_dict does. */
function moduleFromStateDict(layers: HypernetworkLayer[], sd: PyValue, source: string, what: string): HypernetworkModule {
  if (!(sd instanceof PyDict)) badState(source, `${what} is not a state dict`);
  const tensors = new Map<string, Float32Tensor>();
  for (const [k, v] of sd) {
    if (typeof k !== 'string' || !(v instanceof TorchTensor)) badState(source, `${what} holds a non-tensor entry`);
    tensors.set(LEGACY_KEYS[k] ?? k, toFloat32(v));
  }
  const params = new Map<number, { weight: Float32Tensor; bias?: Float32Tensor }>();
  const take = (key: string, shape: number[]): Float32Tensor => {
    const t = tensors.get(key);
    if (!t) badState(source, `${what} is missing ${key}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      badState(source, `${what}: ${key} has shape [${t.shape.join(', ')}], the module needs [${shape.join(', ')}]`);
    }
    tensors.delete(key);
    return t;
  };
  for (const l of layers) {
    const p = `linear.${l.index}`;
    if (l.kind === 'linear') {
      params.set(l.index, { weight: take(`${p}.weight`, [l.outFeatures, l.inFeatures]), bias: take(`${p}.bias`, [l.outFeatures]) });
    } else if (l.kind === 'layernorm') {
      params.set(l.index, { weight: take(`${p}.weight`, [l.width]), bias: take(`${p}.bias`, [l.width]) });
    } else if (l.kind === 'activation' && l.fn === 'prelu') {
      params.set(l.index, { weight: take(`${p}.weight`, [1]) });
    }
  }
  if (tensors.size) badState(source, `${what} has unexpected keys ${[...tensors.keys()].join(', ')}`);
  return { layers, params };
}

function num(v: PyValue | undefined): number | undefined {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
}

function numList(v: PyValue | undefined, source: string, what: string): number[] | undefined {
  if (v === undefined || v === null) return undefined;
  const items = Array.isArray(v) ? v : v instanceof PyTuple ? v.items : badState(source, `${what} is not a list`);
  return items.map((x) => num(x) ?? badState(source, `${what} holds a non-number`));
}

function str(v: PyValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/** `Hypernetwork.load` on a dict read from a torch file. */
export function hypernetworkFromData(data: PyValue, meta: { filename: string; hash: string; source?: string }): Hypernetwork {
  const source = meta.source ?? meta.filename;
  if (!(data instanceof PyDict)) {
    throw new DarkroomError('HYPERNETWORK_UNRECOGNIZED', `${source}: not a hypernetwork (the file holds no dict)`, { file: source });
  }
  const layerStructure = numList(data.get('layer_structure'), source, 'layer_structure') ?? [1, 2, 1];
  if (layerStructure.length < 2 || layerStructure[0] !== 1 || layerStructure[layerStructure.length - 1] !== 1) {
    throw new DarkroomError('HYPERNETWORK_BAD_STRUCTURE', `${source}: layer_structure must start and end with 1`, { file: source });
  }
  const stored = numList(data.get('dropout_structure'), source, 'dropout_structure');
  const useDropout = stored?.some((x) => x !== 0) ? true : data.get('use_dropout') === true;
  const lastLayerDropout = data.get('last_layer_dropout') === true;
  const dropoutStructure = stored ?? parseDropoutStructure(layerStructure, useDropout, lastLayerDropout);
  const activationFunc = str(data.get('activation_func'));
  const activateOutput = data.has('activate_output') ? data.get('activate_output') === true : true;
  const arch = { layerStructure, activationFunc, addLayerNorm: data.get('is_layer_norm') === true, activateOutput, dropoutStructure };
  const layers = new Map<number, readonly [HypernetworkModule, HypernetworkModule]>();
  for (const [size, pair] of data) {
    if (typeof size !== 'number') continue;
    const items = pair instanceof PyTuple || Array.isArray(pair) ? (pair instanceof PyTuple ? pair.items : pair) : [];
    if (items.length !== 2) badState(source, `entry ${size} is not a (k, v) pair of state dicts`);
    const seq = moduleLayers(size, arch, source);
    layers.set(size, [moduleFromStateDict(seq, items[0]!, source, `${size}/k`), moduleFromStateDict(seq, items[1]!, source, `${size}/v`)]);
  }
  const stem = basename(meta.filename, extname(meta.filename));
  return {
    ...arch,
    sizes: [...layers.keys()].sort((a, b) => a - b),
    name: typeof data.get('name') === 'string' ? (data.get('name') as string) : stem,
    step: num(data.get('step')) ?? 0,
    weightInit: str(data.get('weight_initialization')) ?? 'Normal',
    useDropout,
    lastLayerDropout,
    optionalInfo: str(data.get('optional_info')),
    sdCheckpoint: str(data.get('sd_checkpoint')),
    sdCheckpointName: str(data.get('sd_checkpoint_name')),
    layers,
    filename: basename(meta.filename),
    hash: meta.hash,
    shorthash: meta.hash.slice(0, 10),
  };
}

export async function loadHypernetwork(bytes: Uint8Array, filename: string): Promise<Hypernetwork> {
  if (bytes.length === 0) throw new DarkroomError('TORCH_EMPTY', `${filename}: the file is empty`, { file: filename });
  const hash = createHash('sha256').update(bytes).digest('hex');
  const { value } = await readTorch(bytes, filename);
  return hypernetworkFromData(value, { filename: basename(filename), hash, source: filename });
}

export async function loadHypernetworkFile(path: string): Promise<Hypernetwork> {
  return loadHypernetwork(new Uint8Array(await readFile(path)), path);
}

/** The architecture part of a hypernetwork (what the graph depends on; see hypernetworkGraphKey). */
export function architectureOf(hn: HypernetworkArchitecture): HypernetworkArchitecture {
  return {
    layerStructure: [...hn.layerStructure],
    activationFunc: hn.activationFunc,
    addLayerNorm: hn.addLayerNorm,
    activateOutput: hn.activateOutput,
    dropoutStructure: [...hn.dropoutStructure],
    sizes: [...hn.sizes],
  };
}
