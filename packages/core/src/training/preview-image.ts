/**
 * The captioned preview A1111 writes beside an intermediate embedding save when "save images with embedding"
 * is on (`caption_image_overlay` + `insert_image_data_embed` in modules/textual_inversion): a vertical black
 * gradient composited over the preview, the embedding's name at the top, model, hash and "<n>v <steps>s" at the
 * bottom, then the embedding carried in the pixels and in an `sd-ti-embedding` text chunk.
 *
 * The gradient follows Pillow's integer alpha compositing exactly; the text does not and cannot: A1111 draws it
 * with a TrueType font, this module with the bitmap font of caption-font.ts, sized by A1111's rules applied to
 * that font's metrics.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';
import type { Embedding } from '../networks/embeddings/embedding.js';
import { saveEmbeddingPng } from '../networks/embeddings/save.js';
import { fontScale, FONT_ASCENT, rasterizeText, textWidth } from './caption-font.js';
import type { CheckpointInfo } from './saved-files.js';

/** A1111's text fill, (255, 255, 255, 230); ImageDraw on an RGBA image writes it as is, alpha included. */
const INK = [255, 255, 255, 230] as const;
const PADDING = 10;
const START_SIZE = 32;
const MAX_SIZE = 72;

/** PIL's convert('RGBA'): gray is replicated, missing alpha is opaque. */
function toRgba(img: RasterImage): Uint8Array {
  const n = img.width * img.height;
  if (img.data.length !== n * img.channels) {
    throw new DarkroomError('PNG_BAD_IMAGE', `image data has ${img.data.length} bytes, expected ${n * img.channels}`);
  }
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const s = i * img.channels;
    const gray = img.channels <= 2;
    out[i * 4] = img.data[s]!;
    out[i * 4 + 1] = gray ? img.data[s]! : img.data[s + 1]!;
    out[i * 4 + 2] = gray ? img.data[s]! : img.data[s + 2]!;
    out[i * 4 + 3] = img.channels === 2 ? img.data[s + 1]! : img.channels === 4 ? img.data[s + 3]! : 255;
  }
  return out;
}

/**
 * The gradient's alpha for row y: `int(mag * 255)`, evaluated in A1111's operation order. Near the top `mag`
 * exceeds 1 (1 - cos(1.65) = 1.079); Pillow's putpixel clips the value to 255.
 */
export function gradientAlpha(y: number, height: number): number {
  const factor = 1.5;
  const top = 1 - Math.cos((y / height) * factor);
  const bottom = 1 - Math.cos(((height - y) / height) * factor * 1.1);
  return Math.min(255, Math.trunc(Math.max(top, bottom) * 255));
}

const shiftDiv255 = (a: number): number => (((a >>> 8) + a) >>> 8) >>> 0;

/** Pillow's ImagingAlphaComposite (7-bit precision) of black at alpha `a` over one RGBA pixel, in place. */
function compositeBlack(px: Uint8Array, at: number, a: number): void {
  if (a === 0) return;
  const blend = px[at + 3]! * (255 - a);
  const outa255 = a * 255 + blend;
  const coef1 = Math.floor((a * 255 * 255 * 128) / outa255);
  const coef2 = 255 * 128 - coef1;
  for (let c = 0; c < 3; c++) px[at + c] = shiftDiv255(px[at + c]! * coef2 + (0x80 << 7)) >>> 7;
  px[at + 3] = shiftDiv255(outa255 + 0x80);
}

/** A1111's font-size rule: the size that makes `text` span `target` pixels, from a measurement at `size`. */
function fitSize(size: number, text: string, target: number): number {
  const w = textWidth(text, fontScale(size));
  if (w === 0) return MAX_SIZE;
  return Math.min(Math.trunc(size * (target / w)), MAX_SIZE);
}

function drawText(px: Uint8Array, width: number, height: number, text: string, x: number, top: number, scale: number): void {
  rasterizeText(text, x, top, scale, (u, v) => {
    if (u < 0 || v < 0 || u >= width || v >= height) return;
    px.set(INK, (v * width + u) * 4);
  });
}

/** The first half of `caption_image_overlay`: the image as RGBA with the black gradient composited over it. */
export function darkenEdges(image: RasterImage): RasterImage {
  const { width: w, height: h } = image;
  const px = toRgba(image);
  for (let y = 0; y < h; y++) {
    const a = gradientAlpha(y, h);
    for (let x = 0; x < w; x++) compositeBlack(px, (y * w + x) * 4, a);
  }
  return { width: w, height: h, channels: 4, data: px };
}

/** A1111 `caption_image_overlay`; returns an RGBA image of the same size. */
export function captionImageOverlay(image: RasterImage, title: string, footerLeft: string, footerMid: string, footerRight: string): RasterImage {
  const { width: w, height: h } = image;
  const px = darkenEdges(image).data;
  const titleSize = fitSize(START_SIZE, title, w * 0.75 - PADDING * 4);
  drawText(px, w, h, title, PADDING, PADDING, fontScale(titleSize));

  const third = w / 3 - PADDING;
  const footerSize = Math.min(fitSize(titleSize, footerLeft, third), fitSize(titleSize, footerMid, third), fitSize(titleSize, footerRight, third));
  const scale = fontScale(footerSize);
  const top = h - PADDING - FONT_ASCENT * scale;
  drawText(px, w, h, footerLeft, PADDING, top, scale);
  drawText(px, w, h, footerMid, Math.round(w / 2 - textWidth(footerMid, scale) / 2), top, scale);
  drawText(px, w, h, footerRight, w - PADDING - textWidth(footerRight, scale), top, scale);
  return { width: w, height: h, channels: 4, data: px };
}

export interface EmbeddingPreviewOptions {
  readonly checkpoint: CheckpointInfo;
  /** A1111's `steps_done`: the step count plus one, the number in the intermediate file's name. */
  readonly stepsDone: number;
}

/** The four caption strings A1111 passes for an embedding (`e` as loaded back from the just-saved `.pt`). */
export function embeddingPreviewCaption(e: Embedding, opts: EmbeddingPreviewOptions): [string, string, string, string] {
  return [`<${e.name}>`, opts.checkpoint.modelName, `[${opts.checkpoint.shorthash}]`, `${e.vectors}v ${opts.stepsDone}s`];
}

/** The PNG A1111 writes to `image_embeddings/<name>-<steps_done>.png`. */
export function embeddingPreviewPng(e: Embedding, preview: RasterImage, opts: EmbeddingPreviewOptions): Uint8Array {
  const [title, left, mid, right] = embeddingPreviewCaption(e, opts);
  return saveEmbeddingPng(e, captionImageOverlay(preview, title, left, mid, right));
}
