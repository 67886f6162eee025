/**
 * Model upscalers as A1111 runs them (modules/upscaler.py, upscaler_utils.py, esrgan_model.py): an ESRGAN-family
 * file read through the safe readers, run tile by tile over A1111's image grid (ESRGAN_tile 192, overlap 8),
 * repeated until the requested scale is reached and finished with a Lanczos resize to the size A1111 computes.
 */
import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';
import type { RrdbConfig, RrdbWeights } from '../model-files/rrdbnet.js';
import { buildRrdbGraph } from '../models/rrdbnet-graph.js';
import { readUpscalerStateDict, rrdbWeightsFrom } from '../model-files/upscaler-file.js';
import { createSession, type EngineSession, type SessionOptions } from '../runtime/session.js';
import { float32 } from '../tensor.js';
import { combineGrid, splitGrid } from './image-grid.js';
import { resizeImage } from './image.js';

/** A1111's ESRGAN_tile and ESRGAN_tile_overlap defaults; tile 0 runs the whole image at once. */
export interface UpscaleTiling {
  readonly tile: number;
  readonly overlap: number;
}
export const DEFAULT_UPSCALE_TILING: UpscaleTiling = { tile: 192, overlap: 8 };

const f = Math.fround;

// The file reader lives apart from the sessions, so a process that only checks files (the API's upload checker)
// never loads onnxruntime.
export { readUpscalerStateDict, rrdbWeightsFrom };

/** One loaded upscaler model: its graph compiled once per input size, sessions kept for reuse. */
export class ModelUpscaler {
  private readonly sessions = new Map<string, Promise<EngineSession>>();

  constructor(
    /** A1111 names an upscaler model by its file stem. */
    readonly name: string,
    readonly weights: RrdbWeights,
    private readonly sessionOptions: SessionOptions = {},
  ) {}

  get config(): RrdbConfig {
    return this.weights.config;
  }

  private session(height: number, width: number): Promise<EngineSession> {
    const key = `${height}x${width}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = createSession(buildRrdbGraph(this.weights, height, width), this.sessionOptions);
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * upscaler_utils.upscale_without_tiling: RGB bytes flipped to BGR, / 255, through the network, clamped to
   * [0, 1], * 255 truncated to bytes (astype(uint8)), flipped back to RGB.
   */
  async run(img: RasterImage): Promise<RasterImage> {
    if (img.channels !== 3) throw new DarkroomError('IMAGE_SHAPE', 'an upscaler takes RGB images');
    const { width, height } = img;
    const plane = width * height;
    const x = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) x[c * plane + i] = f(img.data[i * 3 + (2 - c)]! / 255);
    const session = await this.session(height, width);
    const out = (await session.run({ image: float32([1, 3, height, width], x) })).upscaled!;
    const [, , oh, ow] = out.shape as [number, number, number, number];
    const y = out.data as Float32Array;
    const op = oh * ow;
    const data = new Uint8Array(op * 3);
    for (let i = 0; i < op; i++) {
      for (let c = 0; c < 3; c++) {
        const v = y[c * op + i]!;
        data[i * 3 + (2 - c)] = Math.trunc(f(255 * (v < 0 ? 0 : v > 1 ? 1 : v)));
      }
    }
    return { width: ow, height: oh, channels: 3, data };
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}

const loaded = new Map<string, Promise<ModelUpscaler>>();

/** Loads (once per file version and session options) the upscaler model in `path`. */
export async function loadModelUpscaler(path: string, sessionOptions: SessionOptions = {}): Promise<ModelUpscaler> {
  const st = await stat(path);
  const key = `${path}|${st.size}|${st.mtimeMs}|${JSON.stringify(sessionOptions)}`;
  let p = loaded.get(key);
  if (!p) {
    const name = basename(path, extname(path));
    p = readUpscalerStateDict(path).then((sd) => new ModelUpscaler(name, rrdbWeightsFrom(sd, path), sessionOptions));
    p.catch(() => loaded.delete(key));
    loaded.set(key, p);
  }
  return p;
}

/** upscaler_utils.upscale_with_model: the image cut into A1111's grid, each tile upscaled, the grid recombined. */
export async function upscaleWithModel(model: ModelUpscaler, img: RasterImage, tiling: UpscaleTiling = DEFAULT_UPSCALE_TILING): Promise<RasterImage> {
  if (tiling.tile <= 0) return model.run(img);
  const grid = splitGrid(img, tiling.tile, tiling.tile, tiling.overlap);
  let scale = 1;
  const rows = [];
  for (const row of grid.rows) {
    const tiles = [];
    for (const t of row.tiles) {
      const out = await model.run(t.image);
      scale = Math.trunc(out.width / t.image.width);
      tiles.push({ x: t.x * scale, width: t.width * scale, image: out });
    }
    rows.push({ y: row.y * scale, height: row.height * scale, tiles });
  }
  return combineGrid({
    rows,
    tileWidth: grid.tileWidth * scale,
    tileHeight: grid.tileHeight * scale,
    imageWidth: grid.imageWidth * scale,
    imageHeight: grid.imageHeight * scale,
    overlap: grid.overlap * scale,
  });
}

/**
 * Upscaler.upscale: the model applied up to three times until the image reaches the target size
 * (int(side * scale) // 8 * 8), then a Lanczos resize to exactly that size when it differs.
 */
export async function upscaleBy(model: ModelUpscaler, img: RasterImage, scale: number, tiling: UpscaleTiling = DEFAULT_UPSCALE_TILING): Promise<RasterImage> {
  return upscaleSteps((cur) => upscaleWithModel(model, cur, tiling), img, scale);
}

/**
 * Upscaler.upscale around any upscaler's do_upscale (`step`): applied up to three times until the image reaches
 * int(side * scale) // 8 * 8 (at least once when the scale is 1), then Lanczos to exactly that size when it differs.
 */
export async function upscaleSteps(step: (img: RasterImage) => Promise<RasterImage> | RasterImage, img: RasterImage, scale: number): Promise<RasterImage> {
  const destW = Math.floor((img.width * scale) / 8) * 8;
  const destH = Math.floor((img.height * scale) / 8) * 8;
  let cur = img;
  for (let i = 0; i < 3; i++) {
    if (cur.width >= destW && cur.height >= destH && (i > 0 || scale !== 1)) break;
    const before = [cur.width, cur.height];
    cur = await step(cur);
    if (cur.width === before[0] && cur.height === before[1]) break;
  }
  return cur.width !== destW || cur.height !== destH ? resizeImage(cur, destW, destH) : cur;
}

/**
 * images.resize_image's resize(im, w, h) with a model upscaler: upscaled by max(w / width, h / height) when
 * that is above 1, then Lanczos to exactly w x h (hires fix's resize mode 0).
 */
export async function resizeWithUpscaler(model: ModelUpscaler, img: RasterImage, width: number, height: number, tiling: UpscaleTiling = DEFAULT_UPSCALE_TILING): Promise<RasterImage> {
  const scale = Math.max(width / img.width, height / img.height);
  let cur = img;
  if (scale > 1) cur = await upscaleBy(model, cur, scale, tiling);
  return cur.width !== width || cur.height !== height ? resizeImage(cur, width, height) : cur;
}
