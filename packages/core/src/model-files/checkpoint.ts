/**
 * A checkpoint opened for building graphs: the tensor index (names, dtypes, shapes) without reading data, and
 * reads that upcast floating tensors to float32 (the CPU reference graph computes in float32 whatever the file
 * stores). `.safetensors` is read tensor by tensor at its offsets; `.ckpt` / `.pt` go through the restricted
 * torch unpickler and are held in memory.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { extname } from 'node:path';
import { DarkroomError } from '../errors.js';
import { SafetensorsFile } from '../formats/safetensors.js';
import { dictGet, isDict, isTensor, readTorchFile, type PyValue } from '../formats/torch.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../tensor.js';
import { inferVae, type TensorIndex } from './config.js';
import { timePhase, timePhaseAsync, type LoadPhaseListener } from './load-phases.js';

export interface CheckpointSource {
  readonly path: string;
  readonly index: TensorIndex;
  /** The stored tensor, in its stored dtype. */
  read(key: string): Promise<HostTensor>;
  close(): Promise<void>;
}

/** Where the time of a read goes: the file read and the conversion to float32, reported apart. */
export interface ReadTiming {
  readonly onPhase: LoadPhaseListener;
  readonly component: string;
}

async function readTimed(source: CheckpointSource, key: string, timing: ReadTiming | undefined): Promise<Float32Tensor> {
  if (!timing) return toFloat32(await source.read(key));
  const stored = await timePhaseAsync(timing.onPhase, 'read', timing.component, () => source.read(key));
  return timePhase(timing.onPhase, 'convert', timing.component, () => toFloat32(stored));
}

/** Reads one tensor upcast to float32 (F16/BF16/F64 weights computed in float32). */
export async function readFloat32(source: CheckpointSource, key: string, timing?: ReadTiming): Promise<Float32Tensor> {
  if (!source.index.has(key)) {
    throw new DarkroomError('MODEL_MISSING_TENSOR', `${source.path}: no tensor "${key}"`, { key, file: source.path });
  }
  return readTimed(source, key, timing);
}

/** Reads every tensor under `prefix` as float32, keyed by the name with the prefix removed. */
export async function readComponent(source: CheckpointSource, prefix: string, timing?: ReadTiming): Promise<Map<string, Float32Tensor>> {
  const out = new Map<string, Float32Tensor>();
  for (const [key, info] of source.index) {
    if (!key.startsWith(prefix)) continue;
    if (info.dtype !== 'float32' && info.dtype !== 'float16' && info.dtype !== 'bfloat16' && info.dtype !== 'float64') {
      continue; // position_ids (I64) and similar buffers are not weights
    }
    out.set(key.slice(prefix.length), await readTimed(source, key, timing));
  }
  return out;
}

/** Every tensor of the checkpoint file at `path` whose key starts with `prefix`, as stored, under its full key. */
export async function readTensors(path: string, prefix = ''): Promise<Map<string, HostTensor>> {
  const source = await openCheckpoint(path);
  try {
    const out = new Map<string, HostTensor>();
    for (const key of source.index.keys()) if (key.startsWith(prefix)) out.set(key, await source.read(key));
    return out;
  } finally {
    await source.close();
  }
}

function fromMap(path: string, tensors: ReadonlyMap<string, HostTensor>): CheckpointSource {
  const index = new Map([...tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }] as const));
  return {
    path,
    index,
    read: async (key) => {
      const t = tensors.get(key);
      if (!t) throw new DarkroomError('MODEL_MISSING_TENSOR', `${path}: no tensor "${key}"`, { key, file: path });
      return t;
    },
    close: async () => {},
  };
}

/** An in-memory checkpoint (tests, benchmarks with random weights). */
export function checkpointFromTensors(name: string, tensors: ReadonlyMap<string, HostTensor>): CheckpointSource {
  return fromMap(name, tensors);
}

/** Picks the state dict out of a torch checkpoint: under 'state_dict', else the top level. */
export function stateDictFromTorch(path: string, value: PyValue): Map<string, HostTensor> {
  if (!isDict(value)) {
    throw new DarkroomError('MODEL_UNSUPPORTED', `${path}: the checkpoint is not a dict of tensors`, { file: path });
  }
  const inner = dictGet(value, 'state_dict');
  const dict = inner !== undefined && isDict(inner) ? inner : value;
  const out = new Map<string, HostTensor>();
  for (const [k, v] of dict) if (typeof k === 'string' && isTensor(v)) out.set(k, v);
  if (out.size === 0) {
    throw new DarkroomError('MODEL_UNSUPPORTED', `${path}: no tensors found in the checkpoint (state_dict)`, { file: path });
  }
  return out;
}

/** Old SD1 text encoder keys (transformers < 4.20 had no `text_model.` level), renamed as A1111 does. */
const SD1_REPLACEMENTS: ReadonlyArray<readonly [string, string]> = [
  ['cond_stage_model.transformer.embeddings.', 'cond_stage_model.transformer.text_model.embeddings.'],
  ['cond_stage_model.transformer.encoder.', 'cond_stage_model.transformer.text_model.encoder.'],
  ['cond_stage_model.transformer.final_layer_norm.', 'cond_stage_model.transformer.text_model.final_layer_norm.'],
];
/** SD 2.1 Turbo ships in the SGM layout; A1111 maps it back to ldm names. */
const SD2_TURBO_REPLACEMENTS: ReadonlyArray<readonly [string, string]> = [['conditioner.embedders.0.', 'cond_stage_model.']];

/**
 * A1111's `get_state_dict_from_checkpoint` key renames: the checkpoint as ldm names it, whatever the file's
 * vintage. Returns the source unchanged when nothing needs renaming.
 */
export function normalizeKeys(source: CheckpointSource): CheckpointSource {
  const turboLn = source.index.get('conditioner.embedders.0.model.ln_final.weight');
  const replacements = turboLn && turboLn.shape[0] === 1024 ? SD2_TURBO_REPLACEMENTS : SD1_REPLACEMENTS;
  const rename = (k: string): string => {
    for (const [from, to] of replacements) if (k.startsWith(from)) return to + k.slice(from.length);
    return k;
  };
  const original = new Map<string, string>();
  for (const k of source.index.keys()) {
    const n = rename(k);
    if (n !== k) original.set(n, k);
  }
  if (original.size === 0) return source;
  const index = new Map([...source.index].map(([k, v]) => [rename(k), v] as const));
  return {
    path: source.path,
    index,
    read: (key) => source.read(original.get(key) ?? key),
    close: () => source.close(),
  };
}

/**
 * The checkpoint with its VAE replaced by a separate VAE file (A1111's sd_vae: `.vae.pt`, `.vae.safetensors`,
 * keys relative to first_stage_model; `loss.*` and EMA counters ignored as `load_vae_dict` does).
 */
export function withVae(base: CheckpointSource, vae: CheckpointSource, vaePrefix = 'first_stage_model.'): CheckpointSource {
  const vaeKeys = vaeKeyMap(vae.path, vae.index, vaePrefix);
  const index = new Map([...base.index].filter(([k]) => !k.startsWith(vaePrefix)));
  for (const [k, original] of vaeKeys) index.set(k, vae.index.get(original)!);
  return {
    path: base.path,
    index,
    read: (key) => {
      const original = vaeKeys.get(key);
      return original !== undefined ? vae.read(original) : base.read(key);
    },
    close: async () => {
      await vae.close();
      await base.close();
    },
  };
}

/**
 * A VAE file's keys as the checkpoint names them (`first_stage_model.` + key; A1111's VAE files hold them without
 * the prefix) -> the file's own key, without the `loss.*` weights and EMA counters `load_vae_dict` drops. A file
 * with no decoder tensors is not a VAE.
 */
export function vaeKeyMap(path: string, index: TensorIndex, vaePrefix = 'first_stage_model.'): Map<string, string> {
  const ignored = (k: string): boolean => k.startsWith('loss') || k === 'model_ema.decay' || k === 'model_ema.num_updates';
  const vaeKeys = new Map<string, string>();
  for (const k of index.keys()) {
    if (ignored(k)) continue;
    vaeKeys.set(k.startsWith(vaePrefix) ? k : `${vaePrefix}${k}`, k);
  }
  if (![...vaeKeys.keys()].some((k) => k.startsWith(`${vaePrefix}decoder.`))) {
    throw new DarkroomError('MODEL_UNSUPPORTED', `${path}: not a VAE (no decoder.* tensors)`, { file: path });
  }
  return vaeKeys;
}

/**
 * Checks a VAE file as `withVae` will take it, from its tensor index only (no weights read): a VAE's keys, and an
 * autoencoder whose shape the loader can infer (encoder, decoder, quant convolutions).
 */
export async function checkVaeFile(path: string, format: string = extname(path)): Promise<void> {
  const index = await readCheckpointIndex(path, format);
  const keys = vaeKeyMap(path, index);
  const prefixed = new Map([...keys].map(([k, original]) => [k, index.get(original)!] as const));
  try {
    inferVae(prefixed);
  } catch (e) {
    if (e instanceof DarkroomError) throw new DarkroomError('MODEL_UNSUPPORTED', `${path}: not a complete VAE (${e.message})`, { file: path });
    throw e;
  }
}

export async function openCheckpoint(path: string): Promise<CheckpointSource> {
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors') {
    const f = await SafetensorsFile.open(path);
    const index = new Map(f.keys().map((k) => [k, { dtype: f.entry(k).dtype, shape: f.entry(k).shape }] as const));
    return normalizeKeys({ path, index, read: (k) => f.read(k), close: () => f.close() });
  }
  if (ext === '.ckpt' || ext === '.pt' || ext === '.pth') {
    return normalizeKeys(fromMap(path, stateDictFromTorch(path, (await readTorchFile(path)).value)));
  }
  throw new DarkroomError('MODEL_UNSUPPORTED', `${path}: unknown checkpoint type "${ext}" (.safetensors or .ckpt)`, {
    file: path,
  });
}

/**
 * The tensor index of a checkpoint file (names, dtypes, shapes, keys normalised as A1111 does) without reading
 * its weights: a safetensors header, or a torch pickle with each storage checked present and large enough.
 * Memory stays at the header's or pickle's size whatever the file's, so uploads are checked before acceptance.
 * `format` is the extension that says how to read it (a received upload's temp file has none of its own).
 */
export async function readCheckpointIndex(path: string, format: string = extname(path)): Promise<TensorIndex> {
  const ext = format.toLowerCase();
  if (ext === '.safetensors') {
    const f = await SafetensorsFile.open(path);
    try {
      const index = new Map(f.keys().map((k) => [k, { dtype: f.entry(k).dtype, shape: f.entry(k).shape }] as const));
      return normalizeKeys({ path, index, read: (k) => f.read(k), close: async () => {} }).index;
    } finally {
      await f.close();
    }
  }
  if (ext === '.ckpt' || ext === '.pt' || ext === '.pth') {
    return normalizeKeys(fromMap(path, stateDictFromTorch(path, (await readTorchFile(path, { storages: 'skip' })).value))).index;
  }
  throw new DarkroomError('MODEL_UNSUPPORTED', `${path}: unknown checkpoint type "${ext}" (.safetensors or .ckpt)`, { file: path });
}

/**
 * sha256 of a file (full hash, as A1111's `sha256` of a checkpoint), read through one reused 4 MiB buffer: a stream
 * hands out a fresh buffer per chunk, and faulting in 2 GB of new pages cost more than the hashing (8-10 s against
 * 3.5 s for a 2.1 GB file on the shared 2-core host).
 */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(4 << 20);
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}
