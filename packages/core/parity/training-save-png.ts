/**
 * save.json `png_cases`: A1111's `insert_image_data_embed` on plain images, and the `sd-ti-embedding` text chunk.
 *
 * Two results per case. `png/<id>`: the JSON payload built from the embedding, the text chunk, the edge shades,
 * the pixel layout given A1111's own zlib stream (exact), and round trips through our readers (A1111's output
 * and PNG file, and ours). `png/<id>/deflate`: our zlib stream and the pixels of our whole insert path, which can
 * only match A1111's when our deflate emits CPython zlib's bytes.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { decodePng, readPngText, type RasterImage } from '../src/formats/png.js';
import { readTorch } from '../src/formats/torch.js';
import { PyDict } from '../src/formats/pickle/values.js';
import { embeddingFromData, type Embedding } from '../src/networks/embeddings/embedding.js';
import { EMBEDDING_TEXT_KEY, loadEmbedding } from '../src/networks/embeddings/load.js';
import { embeddingToBase64, embeddingToJson } from '../src/networks/embeddings/payload-json.js';
import { compressPayload, edgeStyle, extractPixelPayload, insertCompressedPayload, insertPixelPayload } from '../src/networks/embeddings/pixel-codec.js';
import { embeddingPayload, saveEmbeddingPng } from '../src/networks/embeddings/save.js';
import { float32, toFloat32, type HostTensor } from '../src/tensor.js';
import type { CaseResult } from './report.js';

export interface PngCase {
  readonly id: string;
  readonly png?: string;
  readonly embedding_from: string | null;
  readonly json_payload: string;
  readonly block_bytes?: number;
  readonly block_columns?: number;
  readonly output_size?: readonly [number, number];
  readonly text_chunk_key: string;
  readonly text_chunk_value: string;
}

type Tensors = ReadonlyMap<string, HostTensor>;

function image(t: HostTensor): RasterImage {
  const [height, width, channels] = t.shape;
  if (t.dtype !== 'uint8' || height === undefined || width === undefined || (channels !== 3 && channels !== 4)) {
    throw new Error(`expected an (H, W, 3|4) uint8 image, got ${t.dtype} [${t.shape.join(', ')}]`);
  }
  return { width, height, channels, data: t.data as Uint8Array };
}

function countDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function firstDiff(a: string | Uint8Array, b: string | Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * The embedding a case encodes: the saved `.pt` it names, read as A1111's `torch.load` gives it (stored name
 * included), or the synthetic `png.<id>.vec` with the metadata its recorded payload states.
 */
async function caseEmbedding(c: PngCase, folder: string, tensors: Tensors): Promise<Embedding> {
  if (c.embedding_from) {
    const path = join(folder, c.embedding_from);
    const data = (await readTorch(new Uint8Array(await readFile(path)), path)).value;
    const stored = data instanceof PyDict ? data.get('name') : undefined;
    return embeddingFromData(data, { name: typeof stored === 'string' ? stored : basename(path), filename: basename(path), hash: '' });
  }
  const vec = tensors.get(`png.${c.id}.vec`);
  if (!vec) throw new Error(`save.safetensors has no png.${c.id}.vec`);
  const meta = JSON.parse(c.json_payload) as Record<string, unknown>;
  const str = (k: string): string | null => (typeof meta[k] === 'string' ? (meta[k] as string) : null);
  const v = toFloat32(vec);
  return {
    name: str('name') ?? c.id,
    vec: float32(v.shape, v.data),
    vectors: v.shape[0]!,
    width: v.shape[1]!,
    step: typeof meta.step === 'number' ? meta.step : null,
    sdCheckpoint: str('sd_checkpoint'),
    sdCheckpointName: str('sd_checkpoint_name'),
    filename: `${c.id}.pt`,
    hash: '',
    shorthash: '',
  };
}

const decoder = new TextDecoder();

async function layoutCase(c: PngCase, folder: string, tensors: Tensors, e: Embedding): Promise<CaseResult> {
  const name = `png/${c.id}`;
  const input = tensors.get(`png.${c.id}.input_u8`);
  const output = tensors.get(`png.${c.id}.output_u8`);
  const zlib = tensors.get(`png.${c.id}.zlib`);
  if (!input || !output || !zlib) return { name, status: 'skip', detail: `save.safetensors lacks png.${c.id}.input_u8/output_u8/zlib` };
  const problems: string[] = [];
  const facts: string[] = [];
  const payload = embeddingPayload(e);
  const json = embeddingToJson(payload);
  const at = firstDiff(json, c.json_payload);
  if (at >= 0) problems.push(`json_payload differs at char ${at}: ours …${json.slice(at, at + 30)}…, A1111 …${c.json_payload.slice(at, at + 30)}…`);
  if (EMBEDDING_TEXT_KEY !== c.text_chunk_key) problems.push(`text chunk key ${EMBEDDING_TEXT_KEY}, A1111 ${c.text_chunk_key}`);
  if (embeddingToBase64(payload) !== c.text_chunk_value) problems.push('text chunk value differs');

  const firstRow = e.vec.data.subarray(0, e.vec.shape[1]);
  const shades = tensors.get(`png.${c.id}.edge_style`);
  if (shades && countDiff(edgeStyle(firstRow), shades.data as Uint8Array)) problems.push('edge_style shades differ');

  const img = image(input);
  const laid = insertCompressedPayload(img, zlib.data as Uint8Array, firstRow);
  const ref = output.data as Uint8Array;
  const off = countDiff(laid.data, ref);
  if (laid.width !== output.shape[1] || laid.height !== output.shape[0]) problems.push(`layout ${laid.width}x${laid.height}, A1111 ${output.shape[1]}x${output.shape[0]}`);
  else if (off) problems.push(`${off} of ${ref.length} bytes differ with A1111's zlib stream`);
  const columns = (laid.width - img.width - 2) / 2;
  if (c.block_columns !== undefined && columns !== c.block_columns) problems.push(`block columns ${columns}, A1111 ${c.block_columns}`);
  if (c.block_bytes !== undefined && columns * img.height * 3 !== c.block_bytes) problems.push(`block bytes ${columns * img.height * 3}, A1111 ${c.block_bytes}`);
  if (c.output_size && (c.output_size[0] !== laid.width || c.output_size[1] !== laid.height)) problems.push(`output size ${laid.width}x${laid.height}, A1111 ${c.output_size.join('x')}`);

  const fromTheirs = extractPixelPayload(image(output), `${c.id} output_u8`);
  if (!fromTheirs || decoder.decode(fromTheirs) !== c.json_payload) problems.push('extracting A1111\'s pixels does not give its JSON back');
  const fromOurs = extractPixelPayload(insertPixelPayload(img, json, firstRow), `${c.id} ours`);
  if (!fromOurs || decoder.decode(fromOurs) !== json) problems.push('extracting our pixels does not give our JSON back');

  const same = (loaded: Embedding, what: string): void => {
    if (loaded.name !== e.name) problems.push(`${what} loads as "${loaded.name}", expected "${e.name}"`);
    const a = loaded.vec.data;
    const b = e.vec.data;
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) problems.push(`${what} loads other vectors`);
  };
  if (c.png && existsSync(join(folder, c.png))) {
    const bytes = new Uint8Array(await readFile(join(folder, c.png)));
    if (readPngText(bytes)[c.text_chunk_key] !== c.text_chunk_value) problems.push(`${c.png}: text chunk is not the recorded one`);
    if (countDiff(decodePng(bytes).data, ref)) problems.push(`${c.png}: pixels are not output_u8`);
    same(await loadEmbedding(bytes, join(folder, c.png)), c.png);
  } else facts.push('no PNG file to load');
  const ourPng = saveEmbeddingPng(e, img);
  same(await loadEmbedding(ourPng, `${c.id}.png`), 'our PNG');
  if (readPngText(ourPng)[EMBEDDING_TEXT_KEY] !== c.text_chunk_value) problems.push('our PNG\'s text chunk differs');
  return {
    name,
    status: problems.length ? 'fail' : 'pass',
    maxAbs: 0,
    maxRel: 0,
    detail: [problems.join('; '), `layout of ${laid.width}x${laid.height} from A1111's ${zlib.data.length}-byte stream`, ...facts].filter(Boolean).join('; '),
  };
}

function deflateCase(c: PngCase, tensors: Tensors, e: Embedding): CaseResult {
  const name = `png/${c.id}/deflate`;
  const input = tensors.get(`png.${c.id}.input_u8`);
  const output = tensors.get(`png.${c.id}.output_u8`);
  const zlib = tensors.get(`png.${c.id}.zlib`);
  if (!input || !output || !zlib) return { name, status: 'skip', detail: `save.safetensors lacks png.${c.id}.input_u8/output_u8/zlib` };
  const json = embeddingToJson(embeddingPayload(e));
  const ours = compressPayload(json);
  const ref = zlib.data as Uint8Array;
  const firstRow = e.vec.data.subarray(0, e.vec.shape[1]);
  const pixels = insertPixelPayload(image(input), json, firstRow);
  const sameSize = pixels.width === output.shape[1] && pixels.height === output.shape[0];
  const off = sameSize ? countDiff(pixels.data, output.data as Uint8Array) : -1;
  if (ours.length === ref.length && countDiff(ours, ref) === 0 && off === 0) {
    return { name, status: 'pass', maxAbs: 0, maxRel: 0, detail: `zlib stream (${ours.length} bytes) and pixels equal A1111's` };
  }
  const where = firstDiff(ours, ref);
  return {
    name,
    status: 'fail',
    detail:
      `our deflate gives ${ours.length} bytes, CPython's zlib ${ref.length}, first difference at byte ${where}; ` +
      `so the output ${sameSize ? `has ${off} of ${output.data.length} bytes different` : `is ${pixels.width}x${pixels.height}, A1111's ${output.shape[1]}x${output.shape[0]}`}` +
      ` (the layout given CPython's stream is exact, see png/${c.id})`,
  };
}

export async function* runPngCases(cases: readonly PngCase[], folder: string, tensors: Tensors): AsyncIterable<CaseResult> {
  for (const c of cases) {
    let e: Embedding;
    try {
      e = await caseEmbedding(c, folder, tensors);
    } catch (err) {
      yield { name: `png/${c.id}`, status: 'skip', detail: `no embedding for this case: ${err instanceof Error ? err.message : String(err)}` };
      continue;
    }
    yield await layoutCase(c, folder, tensors, e);
    yield deflateCase(c, tensors, e);
  }
}
