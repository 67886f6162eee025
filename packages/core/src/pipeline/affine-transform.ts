/**
 * The animator's per-frame move: zoom, rotate and translate an 8-bit image about its centre, same size out as in.
 * Each output pixel centre is mapped back through the inverse transform and read with bilinear interpolation;
 * samples outside the image take the nearest edge pixel (replicate), so a zoom out or a shift never brings in black
 * borders that img2img would then paint as content. The identity, and whole-pixel shifts and quarter turns, land on
 * pixel centres exactly and copy pixels unchanged.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';

export interface AffineMove {
  /** Scale about the centre: above 1 zooms in (the content grows), below 1 zooms out. */
  readonly zoom: number;
  /** Degrees, counter-clockwise as the image is seen (y runs down the rows). */
  readonly rotate: number;
  /** Pixels the content moves right (negative: left). */
  readonly translateX: number;
  /** Pixels the content moves down (negative: up). */
  readonly translateY: number;
}

export const IDENTITY_MOVE: AffineMove = { zoom: 1, rotate: 0, translateX: 0, translateY: 0 };

export function isIdentityMove(m: AffineMove): boolean {
  return m.zoom === 1 && m.rotate === 0 && m.translateX === 0 && m.translateY === 0;
}

function checkMove(m: AffineMove): void {
  if (!Number.isFinite(m.zoom) || m.zoom <= 0) throw new DarkroomError('TRANSFORM_INVALID', `zoom must be a number above 0, not ${m.zoom}`, { field: 'zoom' });
  for (const [k, v] of [['rotate', m.rotate], ['translate_x', m.translateX], ['translate_y', m.translateY]] as const) {
    if (!Number.isFinite(v)) throw new DarkroomError('TRANSFORM_INVALID', `${k} must be a finite number, not ${v}`, { field: k });
  }
}

/** Snaps values within float noise of an integer (cos 90° is 6e-17), so quarter turns read pixel centres exactly. */
function snap(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - r) < 1e-9 ? r : v;
}

/**
 * The image moved by `m` (any channel count; every channel resampled alike). Output (x, y) reads the source at
 * the inverse of: translate by (tx, ty) after rotating by `rotate` and scaling by `zoom` about the image centre.
 */
export function affineTransform(img: RasterImage, m: AffineMove): RasterImage {
  checkMove(m);
  const { width: w, height: h, channels: ch } = img;
  if (isIdentityMove(m)) return { width: w, height: h, channels: ch, data: img.data.slice() };
  const out = new Uint8Array(w * h * ch);
  const rad = (m.rotate * Math.PI) / 180;
  // Counter-clockwise on screen is clockwise in (x right, y down) maths, so the inverse turns by +rad here.
  const cos = snap(Math.cos(rad));
  const sin = snap(Math.sin(rad));
  const cx = w / 2;
  const cy = h / 2;
  const inv = 1 / m.zoom;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Pixel centre relative to the image centre, the translation undone, then the zoom and rotation undone.
      const u = (x + 0.5 - cx - m.translateX) * inv;
      const v = (y + 0.5 - cy - m.translateY) * inv;
      const sx = snap(cos * u - sin * v + cx - 0.5);
      const sy = snap(sin * u + cos * v + cy - 0.5);
      const x0f = Math.floor(sx);
      const y0f = Math.floor(sy);
      const fx = sx - x0f;
      const fy = sy - y0f;
      const x0 = Math.min(w - 1, Math.max(0, x0f));
      const x1 = Math.min(w - 1, Math.max(0, x0f + 1));
      const y0 = Math.min(h - 1, Math.max(0, y0f));
      const y1 = Math.min(h - 1, Math.max(0, y0f + 1));
      const o = (y * w + x) * ch;
      const a = (y0 * w + x0) * ch;
      const b = (y0 * w + x1) * ch;
      const c = (y1 * w + x0) * ch;
      const d = (y1 * w + x1) * ch;
      for (let k = 0; k < ch; k++) {
        const top = img.data[a + k]! + (img.data[b + k]! - img.data[a + k]!) * fx;
        const bottom = img.data[c + k]! + (img.data[d + k]! - img.data[c + k]!) * fx;
        out[o + k] = Math.min(255, Math.max(0, Math.round(top + (bottom - top) * fy)));
      }
    }
  }
  return { width: w, height: h, channels: ch, data: out };
}
