/**
 * Reading an embedding file of any format A1111 accepts, with A1111's rules for names and payloads
 * (`EmbeddingDatabase.load_from_file`): `.pt`/`.bin` through the restricted torch reader, `.safetensors`,
 * and `.png` images carrying the payload in an `sd-ti-embedding` text chunk or in their pixels.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { DarkroomError } from '../../errors.js';
import { PyDict, TorchTensor, type PyValue } from '../../formats/pickle/values.js';
import { decodePng, readPngText } from '../../formats/png.js';
import { parseSafetensors } from '../../formats/safetensors.js';
import { readTorch } from '../../formats/torch.js';
import { embeddingFromData, type Embedding } from './embedding.js';
import { decodeEmbeddingJson, embeddingFromBase64 } from './payload-json.js';
import { extractPixelPayload } from './pixel-codec.js';

export const EMBEDDING_TEXT_KEY = 'sd-ti-embedding';

const TORCH_EXTS = new Set(['.pt', '.bin']);
const IMAGE_EXTS = new Set(['.png', '.webp', '.jxl', '.avif']);

/** True for files A1111 would look at in an embeddings folder. */
export function isEmbeddingFileName(filename: string): boolean {
  const ext = extname(filename).toLowerCase();
  return TORCH_EXTS.has(ext) || IMAGE_EXTS.has(ext) || ext === '.safetensors';
}

function noData(file: string, reason: string): never {
  throw new DarkroomError('EMBEDDING_NO_DATA', `${file}: ${reason}`, { file });
}

async function imagePayload(bytes: Uint8Array, file: string, stem: string): Promise<{ data: PyValue; name: string }> {
  const ext = extname(file).toLowerCase();
  if (extname(stem).toLowerCase() === '.preview') noData(file, 'a preview image, not an embedding');
  if (ext !== '.png') {
    throw new DarkroomError('EMBEDDING_UNSUPPORTED_FORMAT', `${file}: only PNG image embeddings are supported`, { file });
  }
  // PIL refuses images over 2 x 89478485 pixels (DecompressionBombError); so do we, before decoding.
  if (bytes.length >= 24) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint32(16) * dv.getUint32(20) > 2 * 89_478_485) {
      throw new DarkroomError('EMBEDDING_IMAGE_TOO_LARGE', `${file}: the image is too large to check for an embedding`, { file });
    }
  }
  const text = readPngText(bytes);
  let data: PyValue;
  if (EMBEDDING_TEXT_KEY in text) data = embeddingFromBase64(text[EMBEDDING_TEXT_KEY]!, file);
  else {
    const payload = extractPixelPayload(decodePng(bytes), file);
    if (!payload) noData(file, 'the image carries no embedded embedding data');
    data = decodeEmbeddingJson(payload, file);
  }
  const inner = data instanceof PyDict ? data.get('name') : undefined;
  return { data, name: inner === undefined || inner === null ? stem : String(inner) };
}

/**
 * Loads one embedding from its bytes. `filename` decides the format (by extension) and the name (its stem,
 * or the payload's `name` for images). Throws a DarkroomError for anything that is not a usable embedding:
 * EMBEDDING_EMPTY_FILE, EMBEDDING_NO_DATA (plain/preview images), EMBEDDING_MULTIPLE_TERMS,
 * EMBEDDING_UNRECOGNIZED, EMBEDDING_BAD_BASE64/_JSON/_TENSOR/_PIXEL_DATA, TORCH_* and ST_* from the readers.
 */
export async function loadEmbedding(bytes: Uint8Array, filename: string): Promise<Embedding> {
  const file = basename(filename);
  const ext = extname(file).toLowerCase();
  const stem = file.slice(0, file.length - extname(file).length);
  if (bytes.length === 0) throw new DarkroomError('EMBEDDING_EMPTY_FILE', `${filename}: the file is empty`, { file: filename });
  const hash = createHash('sha256').update(bytes).digest('hex');
  let data: PyValue;
  let name = stem;
  if (TORCH_EXTS.has(ext)) data = (await readTorch(bytes, filename)).value;
  else if (ext === '.safetensors') {
    const { tensors } = parseSafetensors(bytes, filename);
    data = new PyDict([...tensors].map(([k, t]) => [k, new TorchTensor(t.dtype, t.shape, t.data)]));
  } else if (IMAGE_EXTS.has(ext)) ({ data, name } = await imagePayload(bytes, filename, stem));
  else {
    throw new DarkroomError('EMBEDDING_UNSUPPORTED_FORMAT', `${filename}: not an embedding file type (${ext || 'no extension'})`, {
      file: filename,
    });
  }
  return embeddingFromData(data, { name, filename: file, hash, source: filename });
}

export async function loadEmbeddingFile(path: string): Promise<Embedding> {
  return loadEmbedding(new Uint8Array(await readFile(path)), path);
}
