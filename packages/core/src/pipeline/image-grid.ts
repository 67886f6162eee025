/**
 * A1111's image grid (modules/images.py split_grid / combine_grid): an 8-bit image cut into overlapping tiles
 * spread evenly across it, and put back together by pasting each tile over its left / upper neighbour through
 * a linear 8-bit mask across the overlap. The upscalers tile with it (upscaler_utils.upscale_with_model), so
 * their seams fall where A1111's do and blend with the same 8-bit rounding. This is not the VAE's tiling
 * (planning/vae-tiles.ts), which works on float tensors with its own spans and ramps.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';

export interface GridTile {
  readonly x: number;
  readonly width: number;
  readonly image: RasterImage;
}

export interface GridRow {
  readonly y: number;
  readonly height: number;
  readonly tiles: readonly GridTile[];
}

export interface Grid {
  readonly rows: readonly GridRow[];
  readonly tileWidth: number;
  readonly tileHeight: number;
  readonly imageWidth: number;
  readonly imageHeight: number;
  readonly overlap: number;
}

/** PIL Image.crop: the box may reach outside the image, whose outside reads as black. */
export function cropImage(img: RasterImage, x0: number, y0: number, width: number, height: number): RasterImage {
  const ch = img.channels;
  const data = new Uint8Array(width * height * ch);
  for (let y = 0; y < height; y++) {
    const sy = y0 + y;
    if (sy < 0 || sy >= img.height) continue;
    const from = Math.max(0, -x0);
    const to = Math.min(width, img.width - x0);
    if (to <= from) continue;
    data.set(img.data.subarray((sy * img.width + x0 + from) * ch, (sy * img.width + x0 + to) * ch), (y * width + from) * ch);
  }
  return { width, height, channels: ch, data };
}

/** PIL's (a + 128 + ((a + 128) >> 8)) >> 8: a / 255 rounded, as its paste-with-mask blends. */
function div255(a: number): number {
  const t = a + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * PIL Image.paste(src, (x, y), mask): the part of `src` that lands inside `dst` is written; with an 8-bit
 * mask (same size as src) each byte becomes (dst * (255 - m) + src * m) / 255, rounded.
 */
function paste(dst: RasterImage, src: RasterImage, x: number, y: number, mask?: Uint8Array): void {
  const ch = dst.channels;
  const sx0 = Math.max(0, -x);
  const sx1 = Math.min(src.width, dst.width - x);
  for (let sy = Math.max(0, -y); sy < src.height && y + sy < dst.height; sy++) {
    if (!mask) {
      // A straight copy is one row span at a time: a 4x4 grid of 512x512 images is 4 MPixels.
      if (sx1 > sx0) dst.data.set(src.data.subarray((sy * src.width + sx0) * ch, (sy * src.width + sx1) * ch), ((y + sy) * dst.width + x + sx0) * ch);
      continue;
    }
    for (let sx = sx0; sx < sx1; sx++) {
      const d = ((y + sy) * dst.width + x + sx) * ch;
      const s = (sy * src.width + sx) * ch;
      const m = mask[sy * src.width + sx]!;
      for (let c = 0; c < ch; c++) dst.data[d + c] = div255(dst.data[d + c]! * (255 - m) + src.data[s + c]! * m);
    }
  }
}

/** images.split_grid: tiles of tileWidth x tileHeight spread evenly so neighbours share at least `overlap`. */
export function splitGrid(img: RasterImage, tileWidth: number, tileHeight: number, overlap: number): Grid {
  if (!Number.isInteger(tileWidth) || !Number.isInteger(tileHeight) || !Number.isInteger(overlap) || overlap < 0 || overlap >= Math.min(tileWidth, tileHeight)) {
    throw new DarkroomError('IMAGE_GRID_INVALID', `grid tiles need integer sizes above the overlap, got ${tileWidth}x${tileHeight} overlap ${overlap}`);
  }
  const w = img.width;
  const h = img.height;
  const cols = Math.ceil((w - overlap) / (tileWidth - overlap));
  const rowsN = Math.ceil((h - overlap) / (tileHeight - overlap));
  const dx = cols > 1 ? (w - tileWidth) / (cols - 1) : 0;
  const dy = rowsN > 1 ? (h - tileHeight) / (rowsN - 1) : 0;
  const rows: GridRow[] = [];
  for (let row = 0; row < rowsN; row++) {
    let y = Math.trunc(row * dy);
    if (y + tileHeight >= h) y = h - tileHeight;
    const tiles: GridTile[] = [];
    for (let col = 0; col < cols; col++) {
      let x = Math.trunc(col * dx);
      if (x + tileWidth >= w) x = w - tileWidth;
      tiles.push({ x, width: tileWidth, image: cropImage(img, x, y, tileWidth, tileHeight) });
    }
    rows.push({ y, height: tileHeight, tiles });
  }
  return { rows, tileWidth, tileHeight, imageWidth: w, imageHeight: h, overlap };
}

/** The mask ramp: arange(overlap) * 255 / overlap in float32, truncated to uint8. */
function rampMask(overlap: number): Uint8Array {
  return Uint8Array.from({ length: overlap }, (_, i) => Math.trunc(Math.fround(Math.fround(i * 255) / overlap)));
}

/** images.combine_grid: rows built left to right, then stacked top to bottom, each seam blended by the ramp. */
export function combineGrid(grid: Grid): RasterImage {
  const ov = grid.overlap;
  const ramp = rampMask(ov);
  const out: RasterImage = { width: grid.imageWidth, height: grid.imageHeight, channels: 3, data: new Uint8Array(grid.imageWidth * grid.imageHeight * 3) };
  for (const row of grid.rows) {
    const h = row.height;
    const line: RasterImage = { width: grid.imageWidth, height: h, channels: 3, data: new Uint8Array(grid.imageWidth * h * 3) };
    for (const t of row.tiles) {
      if (t.image.channels !== 3) throw new DarkroomError('IMAGE_GRID_INVALID', 'grid tiles must be RGB');
      if (t.x === 0) {
        paste(line, t.image, 0, 0);
        continue;
      }
      const maskW = new Uint8Array(ov * grid.tileHeight);
      for (let y = 0; y < grid.tileHeight; y++) maskW.set(ramp, y * ov);
      paste(line, cropImage(t.image, 0, 0, ov, h), t.x, 0, maskW);
      paste(line, cropImage(t.image, ov, 0, t.width - ov, h), t.x + ov, 0);
    }
    if (row.y === 0) {
      paste(out, line, 0, 0);
      continue;
    }
    const maskH = new Uint8Array(ov * grid.imageWidth);
    for (let y = 0; y < ov; y++) maskH.fill(ramp[y]!, y * grid.imageWidth, (y + 1) * grid.imageWidth);
    paste(out, cropImage(line, 0, 0, line.width, ov), 0, row.y, maskH);
    paste(out, cropImage(line, 0, ov, line.width, h - ov), 0, row.y + ov);
  }
  return out;
}

/**
 * A1111's default row count for a grid of `count` images (images.image_grid with n_rows -1): the rounded square
 * root, at most `count`.
 */
export function defaultGridRows(count: number): number {
  return Math.max(1, Math.min(count, Math.round(Math.sqrt(count))));
}

/**
 * images.image_grid: `rows` rows of ceil(n / rows) cells, each cell the size of the largest image, images pasted
 * in order left to right, top to bottom, a smaller one centred in its cell, on the background colour (A1111's
 * grid_background_color, white by default). `cols` may widen the grid beyond what the images fill.
 */
export function imageGrid(
  images: readonly RasterImage[], rows = defaultGridRows(images.length), cols = Math.ceil(images.length / rows),
  background: readonly [number, number, number] = [255, 255, 255],
): RasterImage {
  if (images.length === 0) throw new DarkroomError('IMAGE_GRID_INVALID', 'a grid needs at least one image');
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || rows * cols < images.length) {
    throw new DarkroomError('IMAGE_GRID_INVALID', `a ${rows}x${cols} grid cannot hold ${images.length} images`);
  }
  const w = Math.max(...images.map((i) => i.width));
  const h = Math.max(...images.map((i) => i.height));
  const out: RasterImage = { width: cols * w, height: rows * h, channels: 3, data: new Uint8Array(cols * w * rows * h * 3) };
  // The background: one pixel, then doubled with copyWithin (a per-pixel set is most of a big grid's time).
  if (out.data.length > 0) {
    out.data.set(background, 0);
    for (let n = 3; n < out.data.length; n *= 2) out.data.copyWithin(n, 0, Math.min(n, out.data.length - n));
  }
  for (const [i, img] of images.entries()) {
    if (img.channels !== 3) throw new DarkroomError('IMAGE_GRID_INVALID', 'grid images must be RGB');
    const dx = img.width === w ? 0 : Math.floor((w - img.width) / 2);
    const dy = img.height === h ? 0 : Math.floor((h - img.height) / 2);
    paste(out, img, (i % cols) * w + dx, Math.floor(i / cols) * h + dy);
  }
  return out;
}
