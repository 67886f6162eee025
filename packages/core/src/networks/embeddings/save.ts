/**
 * Writing embeddings in the layouts A1111 reads and writes: `.pt` exactly as `Embedding.save`, kohya-style
 * `.safetensors` (`emb_params`), and PNGs carrying the payload in an `sd-ti-embedding` text chunk and/or in
 * the pixels (as A1111's training previews do).
 */
import { PyDict, type PyValue } from '../../formats/pickle/values.js';
import { encodePng, type RasterImage } from '../../formats/png.js';
import { writeSafetensors } from '../../formats/safetensors.js';
import { torchTensor, writeTorchFile } from '../../formats/torch.js';
import type { Embedding } from './embedding.js';
import { EMBEDDING_TEXT_KEY } from './load.js';
import { embeddingToBase64, embeddingToJson } from './payload-json.js';
import { insertPixelPayload } from './pixel-codec.js';

/** CLIP's id of `*</w>`, the placeholder A1111 stores in `string_to_token`. */
const STAR_TOKEN = 265;

/** The dict `Embedding.save` pickles, in its key order. */
export function embeddingPayload(e: Embedding, opts: { requiresGrad?: boolean } = {}): PyDict {
  const d = new PyDict();
  d.set('string_to_token', new PyDict([['*', STAR_TOKEN]]));
  d.set('string_to_param', new PyDict([['*', torchTensor(e.vec, { requiresGrad: opts.requiresGrad ?? false })]]));
  d.set('name', e.name);
  d.set('step', e.step as PyValue);
  d.set('sd_checkpoint', e.sdCheckpoint);
  d.set('sd_checkpoint_name', e.sdCheckpointName);
  return d;
}

/** `.pt` bytes; the zip's root folder is the file stem, as torch.save names it. */
export function saveEmbeddingPt(e: Embedding, opts: { archiveName?: string; requiresGrad?: boolean } = {}): Uint8Array {
  return writeTorchFile(embeddingPayload(e, opts), { archiveName: opts.archiveName ?? e.name });
}

export function saveEmbeddingSafetensors(e: Embedding): Uint8Array {
  return writeSafetensors({ emb_params: e.vec });
}

/**
 * A PNG of `image` carrying the embedding: in the pixels (the image grows by two side blocks) unless
 * `pixels` is false, and in the `sd-ti-embedding` text chunk unless `textChunk` is false.
 */
export function saveEmbeddingPng(
  e: Embedding,
  image: RasterImage,
  opts: { pixels?: boolean; textChunk?: boolean } = {},
): Uint8Array {
  const payload = embeddingPayload(e);
  const width = e.vec.shape[1]!;
  const out = opts.pixels === false ? image : insertPixelPayload(image, embeddingToJson(payload), e.vec.data.subarray(0, width));
  const texts: Array<[string, string]> = opts.textChunk === false ? [] : [[EMBEDDING_TEXT_KEY, embeddingToBase64(payload)]];
  return encodePng(out, texts);
}
