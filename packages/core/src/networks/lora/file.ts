/**
 * A LoRA / LyCORIS file as A1111 lists and reads it (`network.NetworkOnDisk`, `sd_models.read_state_dict`):
 * its tensors by key, its safetensors metadata (JSON-looking strings parsed, as
 * `read_metadata_from_safetensors` does), the alias from `ss_output_name`, the SD version guess and the hash
 * the infotext carries. The tensors are not interpreted here: which module each key patches depends on the
 * model (see mapping.ts and bind.ts). `.pt`/`.ckpt` files go through the restricted torch reader, so a
 * hostile pickle is refused with the reader's TORCH_* code before anything runs.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { DarkroomError } from '../../errors.js';
import { PyDict, TorchTensor } from '../../formats/pickle/values.js';
import { parseSafetensors } from '../../formats/safetensors.js';
import { readTorch } from '../../formats/torch.js';
import type { HostTensor } from '../../tensor.js';

export type LoraSdVersion = 'SD1' | 'SD2' | 'SDXL' | 'Unknown';

export interface LoraFile {
  /** File name without extension: A1111's network name. */
  readonly name: string;
  /** `ss_output_name` from the metadata, else the name. Prompts may use either. */
  readonly alias: string;
  readonly filename: string;
  /** Keys in the order A1111 iterates them (sorted for safetensors, as `safe_open.keys()`; pickle order for .pt). */
  readonly tensors: ReadonlyMap<string, HostTensor>;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly sdVersion: LoraSdVersion;
  /** Full hash behind `Lora hashes`: `sshs_model_hash` when the header has one, else the addnet hash (safetensors) or the file's sha256. */
  readonly hash: string;
  /** First 12 characters of `hash`. */
  readonly shorthash: string;
  /** sha256 of the whole file (content address). */
  readonly sha256: string;
}

const TORCH_EXTS = new Set(['.pt', '.ckpt', '.bin']);

/** True for the files A1111's Lora folder lists (`.pt`, `.ckpt`, `.safetensors`). */
export function isLoraFileName(filename: string): boolean {
  const ext = extname(filename).toLowerCase();
  return ext === '.safetensors' || ext === '.pt' || ext === '.ckpt';
}

/** A1111 parses metadata values that look like JSON objects (`ss_network_args`, `ss_tag_frequency`, ...). */
export function parseLoraMetadata(raw: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v.length > 0 && v[0] === '{') {
      try {
        out[k] = JSON.parse(v);
        continue;
      } catch {
        // kept as the string, as A1111 does when json.loads fails
      }
    }
    out[k] = v;
  }
  return out;
}

/** `NetworkOnDisk.detect_version`. */
function detectVersion(metadata: Readonly<Record<string, unknown>>): LoraSdVersion {
  if (String(metadata.ss_base_model_version ?? '').startsWith('sdxl_')) return 'SDXL';
  if (String(metadata.ss_v2 ?? '') === 'True') return 'SD2';
  if (Object.keys(metadata).length) return 'SD1';
  return 'Unknown';
}

/** The addnet hash: sha256 of a safetensors file's bytes after the 8-byte length and the JSON header. */
export function addnetHash(bytes: Uint8Array): string {
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return createHash('sha256').update(bytes.subarray(8 + len)).digest('hex');
}

function badFile(file: string, reason: string): never {
  throw new DarkroomError('LORA_BAD_FILE', `${file}: ${reason}`, { file });
}

/**
 * Reads one network file from its bytes. Throws LORA_EMPTY_FILE, LORA_UNSUPPORTED_FORMAT, LORA_BAD_FILE (a
 * pickle that is not a flat dict of named tensors), and the readers' ST_* / TORCH_* codes.
 */
export async function loadLoraFile(bytes: Uint8Array, filename: string): Promise<LoraFile> {
  const file = basename(filename);
  const ext = extname(file).toLowerCase();
  const name = file.slice(0, file.length - extname(file).length);
  if (bytes.length === 0) throw new DarkroomError('LORA_EMPTY_FILE', `${filename}: the file is empty`, { file: filename });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  let tensors: Map<string, HostTensor>;
  let metadata: Record<string, unknown> = {};
  let hash = sha256;
  if (ext === '.safetensors') {
    const st = parseSafetensors(bytes, filename);
    const keys = [...st.tensors.keys()].sort(pythonOrder);
    tensors = new Map(keys.map((k) => [k, st.tensors.get(k)!]));
    metadata = parseLoraMetadata(st.metadata);
    hash = addnetHash(bytes);
  } else if (TORCH_EXTS.has(ext)) {
    const { value } = await readTorch(bytes, filename);
    let dict = value;
    // A1111's read_state_dict unwraps a top-level "state_dict" entry.
    if (dict instanceof PyDict && dict.get('state_dict') instanceof PyDict) dict = dict.get('state_dict')!;
    if (!(dict instanceof PyDict)) badFile(filename, 'the file holds no dict of tensors');
    tensors = new Map();
    for (const [k, v] of dict) {
      if (typeof k !== 'string') badFile(filename, 'a key of the state dict is not a string');
      if (!(v instanceof TorchTensor)) badFile(filename, `"${k}" is not a tensor`);
      tensors.set(k, v);
    }
  } else {
    throw new DarkroomError('LORA_UNSUPPORTED_FORMAT', `${filename}: not a LoRA file type (${ext || 'no extension'})`, { file: filename });
  }
  const sshs = metadata.sshs_model_hash;
  if (typeof sshs === 'string' && sshs) hash = sshs;
  const alias = loraAlias(metadata, name);
  return { name, alias, filename: file, tensors, metadata, sdVersion: detectVersion(metadata), hash, shorthash: hash.slice(0, 12), sha256 };
}

/** `NetworkOnDisk.alias`: the metadata's `ss_output_name` when it has one, else the file's name. */
export function loraAlias(metadata: Readonly<Record<string, unknown>>, name: string): string {
  return typeof metadata.ss_output_name === 'string' && metadata.ss_output_name ? metadata.ss_output_name : name;
}

export async function loadLoraFilePath(path: string): Promise<LoraFile> {
  return loadLoraFile(new Uint8Array(await readFile(path)), path);
}

/** Python's str ordering (code points), which differs from JS's UTF-16 order only outside the BMP. */
function pythonOrder(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d) return d;
  }
  return x.length - y.length;
}
