/**
 * `networks.load_network` on one file for one model: every key is matched to a module (mapping.ts), the keys
 * of a module are grouped, and the group becomes the first module type whose required keys are present, in
 * A1111's order (Lora, Hada, Ia3, Lokr, Full, Norm, GLora, OFT). A group no type accepts, or a LoRA on a
 * module LoRA cannot patch, fails the whole file, as A1111's AssertionError does.
 */
import { DarkroomError } from '../../errors.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../../tensor.js';
import type { LoraFile } from './file.js';
import { matchModule, type LoraModuleTable, type LoraTarget } from './mapping.js';

export type LoraModuleType = 'lora' | 'hada' | 'ia3' | 'lokr' | 'full' | 'norm' | 'glora' | 'oft';

/** A1111's class names, for reports. */
export const MODULE_CLASS: Record<LoraModuleType, string> = {
  lora: 'NetworkModuleLora',
  hada: 'NetworkModuleHada',
  ia3: 'NetworkModuleIa3',
  lokr: 'NetworkModuleLokr',
  full: 'NetworkModuleFull',
  norm: 'NetworkModuleNorm',
  glora: 'NetworkModuleGLora',
  oft: 'NetworkModuleOFT',
};

export interface LoraModule {
  /** A1111's module key (may differ from `target.key`: `..._attn_q_proj` on a MultiheadAttention). */
  readonly key: string;
  /** The file's key prefix for this module (the first of its keys, without its last part). */
  readonly networkKey: string;
  readonly type: LoraModuleType;
  readonly target: LoraTarget;
  /** The module's tensors by their part name (`lora_up.weight`, `hada_w1_a`, `alpha`, ...). */
  readonly w: ReadonlyMap<string, HostTensor>;
  readonly dim: number | null;
  readonly alpha: number | null;
  /** `calc_scale()`: an explicit `scale` key, else alpha / dim when both exist, else 1. */
  readonly scale: number;
  readonly doraScale?: Float32Tensor;
}

export interface BoundLora {
  readonly modules: ReadonlyMap<string, LoraModule>;
  /** File key -> the module key A1111 tried last. */
  readonly unmatched: ReadonlyMap<string, string>;
}

function item(t: HostTensor | undefined): number | null {
  if (!t) return null;
  if (t.dtype === 'bool' || t.dtype === 'uint8' || t.dtype === 'int8' || t.dtype === 'int32') return Number((t.data as ArrayLike<number>)[0]);
  if (t.dtype === 'int64') return Number((t.data as BigInt64Array)[0]);
  return toFloat32(t).data[0] ?? null;
}

function typeOf(w: ReadonlyMap<string, HostTensor>): LoraModuleType | undefined {
  const all = (...ks: string[]): boolean => ks.every((k) => w.has(k));
  if (all('lora_up.weight', 'lora_down.weight') || all('lora_A.weight', 'lora_B.weight')) return 'lora';
  if (all('hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b')) return 'hada';
  if (all('weight')) return 'ia3';
  if ((w.has('lokr_w1') || all('lokr_w1_a', 'lokr_w1_b')) && (w.has('lokr_w2') || all('lokr_w2_a', 'lokr_w2_b'))) return 'lokr';
  if (all('diff')) return 'full';
  if (all('w_norm', 'b_norm')) return 'norm';
  if (all('a1.weight', 'a2.weight', 'b1.weight', 'b2.weight', 'alpha')) return 'glora';
  if (w.has('oft_blocks') || w.has('oft_diag')) return 'oft';
  return undefined;
}

function loadFailure(file: LoraFile, reason: string): never {
  throw new DarkroomError('LORA_LOAD_FAILED', `${file.filename}: ${reason}`, { file: file.filename });
}

function dimOf(type: LoraModuleType, w: ReadonlyMap<string, HostTensor>): number | null {
  switch (type) {
    case 'lora':
      return w.get('lora_down.weight')!.shape[0]!;
    case 'hada':
      return w.get('hada_w1_b')!.shape[0]!;
    case 'lokr': {
      let dim: number | null = null;
      if (w.has('lokr_w1_b')) dim = w.get('lokr_w1_b')!.shape[0]!;
      if (w.has('lokr_w2_b')) dim = w.get('lokr_w2_b')!.shape[0]!;
      return dim;
    }
    case 'oft':
      return w.has('oft_blocks') ? w.get('oft_blocks')!.shape[0]! : w.get('oft_diag')!.shape[1]!;
    default:
      return null;
  }
}

function createModule(file: LoraFile, key: string, networkKey: string, target: LoraTarget, parts: Map<string, HostTensor>): LoraModule {
  const type = typeOf(parts);
  if (!type) loadFailure(file, `no module type accepts the keys of ${key}: ${[...parts.keys()].join(', ')}`);
  let w = parts;
  if (type === 'lora') {
    if (!(target.kind === 'linear' || target.kind === 'conv' || target.kind === 'mha')) {
      loadFailure(file, `Lora layer ${networkKey} matched a layer with unsupported type: ${target.className}`);
    }
    if (!(w.has('lora_up.weight') && w.has('lora_down.weight'))) {
      // PEFT names: A1111 keeps only the two matrices (alpha and dora_scale are dropped with the rest).
      w = new Map([
        ['lora_up.weight', parts.get('lora_B.weight')!],
        ['lora_down.weight', parts.get('lora_A.weight')!],
      ]);
    }
  }
  if (type === 'ia3' && !w.has('on_input')) loadFailure(file, `${networkKey}: IA3 module without on_input`);
  if (type === 'oft') {
    const blocks = w.get('oft_blocks') ?? w.get('oft_diag')!;
    if (blocks.shape.length === 4) loadFailure(file, `${networkKey}: BOFT modules are not supported`);
    if (blocks.shape.length !== 3) loadFailure(file, `${networkKey}: OFT blocks must be (k, n, n)`);
    if (!(target.kind === 'linear' || target.kind === 'conv' || target.kind === 'mha')) {
      loadFailure(file, `${networkKey}: OFT on a ${target.className}`);
    }
  }
  const dim = dimOf(type, w);
  const alpha = item(w.get('alpha'));
  const explicit = item(w.get('scale'));
  // OFT sets scale = 1 and uses alpha as its constraint instead.
  const scale = type === 'oft' ? 1 : explicit !== null ? explicit : dim !== null && alpha !== null ? alpha / dim : 1;
  const dora = w.get('dora_scale');
  return { key, networkKey, type, target, w, dim, alpha, scale, ...(dora ? { doraScale: toFloat32(dora) } : {}) };
}

/** Binds a file to a model's module table. Throws LORA_LOAD_FAILED where A1111's load_network raises. */
export function bindLora(file: LoraFile, table: LoraModuleTable): BoundLora {
  const unmatched = new Map<string, string>();
  const groups = new Map<string, { target: LoraTarget; networkKey: string; parts: Map<string, HostTensor> }>();
  for (const [fileKey, tensor] of file.tensors) {
    const dot = fileKey.indexOf('.');
    const left = dot < 0 ? fileKey : fileKey.slice(0, dot);
    const part = dot < 0 ? '' : fileKey.slice(dot + 1);
    const { key, target } = matchModule(table, left);
    if (!target) {
      unmatched.set(fileKey, key);
      continue;
    }
    let g = groups.get(key);
    if (!g) {
      const lastDot = fileKey.lastIndexOf('.');
      g = { target, networkKey: lastDot < 0 ? fileKey : fileKey.slice(0, lastDot), parts: new Map() };
      groups.set(key, g);
    }
    g.parts.set(part, tensor);
  }
  const modules = new Map<string, LoraModule>();
  for (const [key, g] of groups) modules.set(key, createModule(file, key, g.networkKey, g.target, g.parts));
  return { modules, unmatched };
}
