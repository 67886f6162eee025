/**
 * A textual-inversion embedding as A1111's EmbeddingDatabase holds it, and the rules by which A1111 turns a
 * loaded payload (torch dict, safetensors tensors, PNG JSON) into one (`create_embedding_from_data`).
 */
import { DarkroomError } from '../../errors.js';
import { PyDict, PyObject, TorchTensor, type PyValue } from '../../formats/pickle/values.js';
import { float32, toFloat32, type Float32Tensor, type HostTensor } from '../../tensor.js';

export interface Embedding {
  /** Lookup name: the file stem (or the `name` inside a PNG payload, as A1111 does). */
  readonly name: string;
  /** A1111's `vec`: (vectors, width) float32. For SDXL payloads: clip_g and clip_l side by side, see `parts`. */
  readonly vec: Float32Tensor;
  /** Number of vectors (token slots) it takes in a prompt. */
  readonly vectors: number;
  /** A1111's `shape`: the width of one vector (768 SD1, 1024 SD2, 2048 SDXL as 1280 + 768). */
  readonly width: number;
  readonly step: number | null;
  readonly sdCheckpoint: string | null;
  readonly sdCheckpointName: string | null;
  /** SDXL embeddings: `clip_g` (n, 1280) and `clip_l` (n, 768). */
  readonly parts?: Readonly<Record<string, Float32Tensor>>;
  /** File name it came from, and the sha256 of its bytes (A1111's `hash`; `shorthash` = first 12 hex). */
  readonly filename: string;
  readonly hash: string;
  readonly shorthash: string;
}

export interface EmbeddingPayloadMeta {
  readonly name: string;
  /** The file's base name, kept on the embedding. */
  readonly filename: string;
  readonly hash: string;
  /** How errors name the file (its path); defaults to `filename`. */
  readonly source?: string;
}

function unrecognized(filename: string): never {
  throw new DarkroomError(
    'EMBEDDING_UNRECOGNIZED',
    `${filename}: not a textual inversion embedding or diffusers concept (no string_to_param, clip_g/clip_l or single tensor)`,
    { file: filename },
  );
}

function multipleTerms(filename: string, count: number): never {
  throw new DarkroomError('EMBEDDING_MULTIPLE_TERMS', `${filename}: the embedding file has ${count} terms in it, expected one`, {
    file: filename,
  });
}

function asFloat32(t: HostTensor, filename: string): Float32Tensor {
  try {
    if (t.dtype === 'int64' || t.dtype === 'int32' || t.dtype === 'uint8' || t.dtype === 'int8') {
      const src = t.data as ArrayLike<number | bigint>;
      return float32(t.shape, Float32Array.from({ length: src.length }, (_, i) => Number(src[i]!)));
    }
    return toFloat32(t);
  } catch {
    throw new DarkroomError('EMBEDDING_BAD_TENSOR', `${filename}: embedding tensor has dtype ${t.dtype}`, { file: filename });
  }
}

function metaNumber(v: PyValue | undefined): number | null {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null;
}

function metaString(v: PyValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/** The 2-D (n, width) view A1111 uses: 1-D vectors become one row; higher ranks keep rows = shape[0]. */
function rows(t: Float32Tensor): Float32Tensor {
  if (t.shape.length === 1) return float32([1, t.shape[0]!], t.data);
  if (t.shape.length === 2) return t;
  const n = t.shape[0]!;
  return float32([n, t.data.length / Math.max(n, 1)], t.data);
}

/** A1111 `create_embedding_from_data`, plus the file facts the database keeps. */
export function embeddingFromData(data: PyValue, meta: EmbeddingPayloadMeta): Embedding {
  const filename = meta.source ?? meta.filename;
  if (!(data instanceof PyDict)) unrecognized(filename);
  const common = {
    name: meta.name,
    step: metaNumber(data.get('step')),
    sdCheckpoint: metaString(data.get('sd_checkpoint')),
    sdCheckpointName: metaString(data.get('sd_checkpoint_name')),
    filename: meta.filename,
    hash: meta.hash,
    shorthash: meta.hash.slice(0, 12),
  };
  if (data.has('string_to_param')) {
    let params = data.get('string_to_param');
    // Old textual_inversion files pickle a ParameterDict; its entries live in `_parameters`.
    if (params instanceof PyObject && params.state instanceof PyDict) params = params.state.get('_parameters');
    if (!(params instanceof PyDict)) unrecognized(filename);
    if (params.size !== 1) multipleTerms(filename, params.size);
    const t = params.values().next().value;
    if (!(t instanceof TorchTensor)) unrecognized(filename);
    const vec = asFloat32(t, filename);
    const width = vec.shape[vec.shape.length - 1] ?? 0;
    return { ...common, vec: rows(vec), vectors: vec.shape[0] ?? 0, width };
  }
  const g = data.get('clip_g');
  const l = data.get('clip_l');
  if (data.has('clip_g') && data.has('clip_l') && g instanceof TorchTensor && l instanceof TorchTensor) {
    const parts = { clip_g: asFloat32(g, filename), clip_l: asFloat32(l, filename) };
    const n = g.shape[0] ?? 0;
    const wg = g.shape[g.shape.length - 1] ?? 0;
    const wl = l.shape[l.shape.length - 1] ?? 0;
    const both = new Float32Array(n * (wg + wl));
    for (let i = 0; i < n; i++) {
      both.set(parts.clip_g.data.subarray(i * wg, (i + 1) * wg), i * (wg + wl));
      both.set(parts.clip_l.data.subarray(i * wl, (i + 1) * wl), i * (wg + wl) + wg);
    }
    return { ...common, vec: float32([n, wg + wl], both), vectors: n, width: wg + wl, parts };
  }
  const first = data.values().next().value;
  // A1111 tests `type(v) == torch.Tensor`, so a Parameter here is not a diffusers concept.
  if (first instanceof TorchTensor && !first.isParameter) {
    if (data.size !== 1) multipleTerms(filename, data.size);
    const vec = rows(asFloat32(first, filename));
    return { ...common, vec, vectors: vec.shape[0]!, width: vec.shape[1]! };
  }
  return unrecognized(filename);
}

/** A1111 `Embedding.checksum()`: a 16-bit hash of the vectors, used to match `.optim` sidecars. */
export function embeddingChecksum(vectors: Float32Tensor): string {
  let r = 0n;
  const scaled = new Float32Array(1);
  for (const v of vectors.data) {
    scaled[0] = v * 100; // torch multiplies in float32
    const i = BigInt(Math.trunc(scaled[0]!));
    r = ((r * 281n) ^ (i * 997n)) & 0xffffffffn;
  }
  return (r & 0xffffn).toString(16).padStart(4, '0');
}
