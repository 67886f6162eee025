/**
 * Tiled VAE decode and encode for images whose full-size activations would not fit in memory: the latent
 * (decode) or the image (encode) is cut into overlapping tiles of one static shape, each tile runs through
 * the ordinary graph, and the results are blended with weights that ramp linearly across the overlaps, so
 * no seam shows. A tile sees only its own neighbourhood (its GroupNorm statistics and mid-block attention are
 * local), so the result differs slightly from the untiled pass; the ramps spread that difference smoothly.
 *
 * Everything here is in latent pixels ("units"); an image pixel is 1/factor of a unit (factor 8 for SD).
 */
import { DarkroomError } from '../errors.js';
import type { Float32Tensor } from '../tensor.js';

export type VaeTilingMode = 'auto' | 'always' | 'never';

export interface VaeTiling {
  /** `auto` tiles images larger than `abovePixels`; `always` tiles whenever the latent exceeds one tile. */
  readonly mode: VaeTilingMode;
  /** Tile side in latent pixels (64 = 512 image pixels for SD). */
  readonly tile: number;
  /** Latent pixels shared by neighbouring tiles, blended across. */
  readonly overlap: number;
  /** With `auto`: images of more pixels than this (width x height) are tiled. */
  readonly abovePixels: number;
}

export const DEFAULT_VAE_TILING: VaeTiling = { mode: 'auto', tile: 64, overlap: 16, abovePixels: 1024 * 1024 };

export type VaeTilingOption = VaeTilingMode | Partial<VaeTiling>;

export function vaeTiling(option: VaeTilingOption | undefined): VaeTiling {
  const t: VaeTiling = typeof option === 'string' ? { ...DEFAULT_VAE_TILING, mode: option } : { ...DEFAULT_VAE_TILING, ...option };
  if (!['auto', 'always', 'never'].includes(t.mode)) {
    throw new DarkroomError('VAE_TILING_INVALID', `VAE tiling mode must be auto, always or never, got "${String(t.mode)}"`);
  }
  if (!Number.isInteger(t.tile) || !Number.isInteger(t.overlap) || t.tile < 2 || t.overlap < 0 || 2 * t.overlap >= t.tile) {
    throw new DarkroomError('VAE_TILING_INVALID', `VAE tiles need an integer size >= 2 and an overlap below half of it, got ${t.tile} and ${t.overlap}`, {
      tile: t.tile,
      overlap: t.overlap,
    });
  }
  return t;
}

/** Whether a latent of (h, w) units is processed in tiles. */
export function tilesNeeded(t: VaeTiling, h: number, w: number, factor: number): boolean {
  if (t.mode === 'never' || (h <= t.tile && w <= t.tile)) return false;
  return t.mode === 'always' || h * factor * w * factor > t.abovePixels;
}

export interface Span {
  readonly start: number;
  readonly size: number;
}

/**
 * Tiles along one axis of `length` units: the whole axis when it fits in one tile, else tiles of `tile` units
 * stepping by `tile - overlap`, the last one aligned to the end (it may overlap its neighbour by more).
 */
export function tileSpans(length: number, tile: number, overlap: number): Span[] {
  if (length <= tile) return [{ start: 0, size: length }];
  const step = tile - overlap;
  const spans: Span[] = [];
  for (let start = 0; ; start += step) {
    if (start + tile >= length) {
      spans.push({ start: length - tile, size: tile });
      return spans;
    }
    spans.push({ start, size: tile });
  }
}

/**
 * Blend weights of one tile along one axis, in output pixels. At an edge shared with a neighbour the first
 * quarter of the overlap gets no weight (those pixels saw the convolutions' zero padding), the middle half
 * rises linearly and the neighbour's falls to match, so the two always sum to one; elsewhere the weight is 1.
 */
export function rampWeights(span: Span, length: number, overlap: number, unit: number): Float32Array {
  const n = span.size * unit;
  const margin = Math.floor((overlap * unit) / 4);
  const rise = overlap * unit - 2 * margin;
  const w = new Float32Array(n).fill(1);
  const lead = span.start > 0;
  const trail = span.start + span.size < length;
  const ramp = (i: number): number => Math.min(1, Math.max(0, (i + 0.5 - margin) / rise));
  for (let i = 0; i < n; i++) {
    if (lead) w[i] = Math.min(w[i]!, ramp(i));
    if (trail) w[i] = Math.min(w[i]!, ramp(n - 1 - i));
  }
  return w;
}

function crop(x: Float32Tensor, y0: number, h: number, x0: number, w: number): Float32Tensor {
  const [b, c, hh, ww] = x.shape as [number, number, number, number];
  const out = new Float32Array(b * c * h * w);
  for (let p = 0; p < b * c; p++) {
    for (let y = 0; y < h; y++) {
      const from = (p * hh + y0 + y) * ww + x0;
      out.set(x.data.subarray(from, from + w), (p * h + y) * w);
    }
  }
  return { dtype: 'float32', shape: [b, c, h, w], data: out };
}

export interface TiledRun {
  readonly tile: number;
  readonly overlap: number;
  /** Input pixels per unit (1 for a latent, the VAE factor for an image). */
  readonly inUnit: number;
  /** Output pixels per unit. */
  readonly outUnit: number;
}

/**
 * Runs `run` over overlapping tiles of `input` (B,C,H,W) and blends each of its named outputs (B,C',h,w) into a
 * full-size tensor. Tiles are visited one at a time, so only one tile's activations exist at once.
 */
export async function runTiled(
  input: Float32Tensor,
  plan: TiledRun,
  run: (tile: Float32Tensor) => Promise<Record<string, Float32Tensor>>,
): Promise<Record<string, Float32Tensor>> {
  const [, , h, w] = input.shape as [number, number, number, number];
  if (h % plan.inUnit || w % plan.inUnit) {
    throw new DarkroomError('MODEL_BAD_INPUT', `a tiled input of ${w}x${h} must be a multiple of ${plan.inUnit}`);
  }
  const uh = h / plan.inUnit;
  const uw = w / plan.inUnit;
  const oh = uh * plan.outUnit;
  const ow = uw * plan.outUnit;
  const weightSum = new Float32Array(oh * ow);
  const sums = new Map<string, Float32Tensor>();
  for (const ys of tileSpans(uh, plan.tile, plan.overlap)) {
    const wy = rampWeights(ys, uh, plan.overlap, plan.outUnit);
    for (const xs of tileSpans(uw, plan.tile, plan.overlap)) {
      const wx = rampWeights(xs, uw, plan.overlap, plan.outUnit);
      const outs = await run(crop(input, ys.start * plan.inUnit, ys.size * plan.inUnit, xs.start * plan.inUnit, xs.size * plan.inUnit));
      const th = wy.length;
      const tw = wx.length;
      const oy = ys.start * plan.outUnit;
      const ox = xs.start * plan.outUnit;
      for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) weightSum[(oy + y) * ow + ox + x]! += wy[y]! * wx[x]!;
      for (const [name, t] of Object.entries(outs)) {
        const [b, c, rh, rw] = t.shape as [number, number, number, number];
        if (rh !== th || rw !== tw) {
          throw new DarkroomError('MODEL_BAD_OUTPUT', `a tile of ${tw}x${th} output pixels came back as ${rw}x${rh} for "${name}"`);
        }
        let acc = sums.get(name);
        if (!acc) {
          acc = { dtype: 'float32', shape: [b, c, oh, ow], data: new Float32Array(b * c * oh * ow) };
          sums.set(name, acc);
        }
        for (let p = 0; p < b * c; p++) {
          for (let y = 0; y < th; y++) {
            const weightY = wy[y]!;
            const src = (p * th + y) * tw;
            const dst = (p * oh + oy + y) * ow + ox;
            for (let x = 0; x < tw; x++) acc.data[dst + x]! += t.data[src + x]! * weightY * wx[x]!;
          }
        }
      }
    }
  }
  for (const acc of sums.values()) {
    const plane = oh * ow;
    for (let i = 0; i < acc.data.length; i++) acc.data[i] = acc.data[i]! / weightSum[i % plane]!;
  }
  return Object.fromEntries(sums);
}
