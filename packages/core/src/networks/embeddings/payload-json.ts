/**
 * The JSON form A1111 gives an embedding inside images (`embedding_to_b64` / `EmbeddingEncoder`): the .pt dict
 * with every tensor replaced by `{"TORCHTENSOR": nested lists}`, written by Python's json.dumps (", " and ": "
 * separators, ASCII escapes, float reprs). Reading turns TORCHTENSOR objects back into float32 tensors.
 */
import { DarkroomError } from '../../errors.js';
import { PyDict, PyFloat, PyTuple, TorchTensor, type PyValue } from '../../formats/pickle/values.js';
import { pyFloatRepr, pyJsonString } from '../../text/python-compat.js';

function badJson(file: string, reason: string): never {
  throw new DarkroomError('EMBEDDING_BAD_JSON', `${file}: embedded embedding data is not valid JSON (${reason})`, { file });
}

/** Python's lenient base64.b64decode: characters outside the alphabet are dropped, then padding is checked. */
export function pythonBase64Decode(text: string, file: string): Uint8Array {
  const data = text.replace(/[^A-Za-z0-9+/=]/g, '');
  const firstPad = data.indexOf('=');
  const chars = firstPad < 0 ? data : data.slice(0, firstPad);
  const pads = firstPad < 0 ? 0 : data.length - firstPad;
  const rem = chars.length % 4;
  if (rem === 1) {
    throw new DarkroomError(
      'EMBEDDING_BAD_BASE64',
      `${file}: sd-ti-embedding is not valid base64 (${chars.length} data characters cannot be 1 more than a multiple of 4)`,
      { file },
    );
  }
  if (rem !== 0 && pads < 4 - rem) {
    throw new DarkroomError('EMBEDDING_BAD_BASE64', `${file}: sd-ti-embedding is not valid base64 (incorrect padding)`, { file });
  }
  return new Uint8Array(Buffer.from(chars, 'base64'));
}

function nestedShape(v: unknown, file: string): number[] {
  if (!Array.isArray(v)) {
    if (typeof v === 'number' || typeof v === 'boolean') return [];
    throw new DarkroomError('EMBEDDING_BAD_TENSOR', `${file}: TORCHTENSOR holds a non-number`, { file });
  }
  if (v.length === 0) return [0];
  const inner = nestedShape(v[0], file);
  for (const item of v) {
    const s = nestedShape(item, file);
    if (s.length !== inner.length || s.some((d, i) => d !== inner[i])) {
      throw new DarkroomError('EMBEDDING_BAD_TENSOR', `${file}: TORCHTENSOR has an inhomogeneous (ragged) shape`, { file });
    }
  }
  return [v.length, ...inner];
}

function toTensor(nested: unknown, file: string): TorchTensor {
  const shape = nestedShape(nested, file);
  const flat = (Array.isArray(nested) ? nested.flat(Infinity) : [nested]) as Array<number | boolean>;
  return new TorchTensor('float32', shape, Float32Array.from(flat, Number));
}

function fromJson(v: unknown, file: string): PyValue {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map((x) => fromJson(x, file));
  const obj = v as Record<string, unknown>;
  if ('TORCHTENSOR' in obj) return toTensor(obj.TORCHTENSOR, file);
  return new PyDict(Object.entries(obj).map(([k, x]) => [k, fromJson(x, file)]));
}

/** base64 text of the `sd-ti-embedding` chunk -> the payload dict. */
export function embeddingFromBase64(text: string, file: string): PyValue {
  return decodeEmbeddingJson(pythonBase64Decode(text, file), file);
}

export function decodeEmbeddingJson(bytes: Uint8Array, file: string): PyValue {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    badJson(file, 'not UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    badJson(file, e instanceof Error ? e.message : String(e));
  }
  return fromJson(parsed, file);
}

function tensorJson(t: TorchTensor): string {
  const data = t.data as ArrayLike<number>;
  const isFloat = t.dtype === 'float32' || t.dtype === 'float64';
  const num = (x: number): string => (isFloat ? pyFloatRepr(x) : String(x));
  const walk = (dim: number, offset: number): string => {
    if (dim === t.shape.length) return num(data[offset]!);
    let stride = 1;
    for (let d = dim + 1; d < t.shape.length; d++) stride *= t.shape[d]!;
    const parts: string[] = [];
    for (let i = 0; i < t.shape[dim]!; i++) parts.push(walk(dim + 1, offset + i * stride));
    return `[${parts.join(', ')}]`;
  };
  return `{"TORCHTENSOR": ${walk(0, 0)}}`;
}

/** Python `json.dumps(data, cls=EmbeddingEncoder)` for the values an embedding payload holds. */
export function embeddingToJson(v: PyValue): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return pyJsonString(v, { ensureAscii: true });
  if (v instanceof PyFloat) return pyFloatRepr(v.value);
  if (v instanceof TorchTensor) return tensorJson(v);
  if (Array.isArray(v)) return `[${v.map(embeddingToJson).join(', ')}]`;
  if (v instanceof PyTuple) return `[${v.items.map(embeddingToJson).join(', ')}]`;
  if (v instanceof PyDict) {
    const parts = [...v].map(([k, x]) => `${pyJsonString(String(k), { ensureAscii: true })}: ${embeddingToJson(x)}`);
    return `{${parts.join(', ')}}`;
  }
  throw new DarkroomError('EMBEDDING_UNSUPPORTED', 'embedding payload holds a value JSON cannot carry');
}

export function embeddingToBase64(v: PyValue): string {
  return Buffer.from(embeddingToJson(v), 'utf-8').toString('base64');
}
