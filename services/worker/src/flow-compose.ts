/**
 * A flow's grids from its children's PNG bytes: pure, and run on the compose thread (flow-compose-host.ts), since
 * decoding the cells and encoding a large grid would otherwise hold the worker's event loop, which renews the locks.
 */
import { decodePng, encodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import { imageGrid } from '@darkroom/core/pipeline/image-grid.js';
import { composeScriptGrids, scriptGridInfotexts, type ScriptPlan } from '@darkroom/core/scripts/index.js';
import { encodeAnimation, type RgbFrame } from '@darkroom/farm/animation.js';
import type { FlowAnimation, FlowScriptPlan, GridCompose } from '@darkroom/farm/flows.js';

export type ComposeRequest =
  /** `compose: grid`: every image in order, the grid carrying the first image's infotext. */
  | { readonly kind: 'grid'; readonly compose: GridCompose; readonly images: readonly Uint8Array[]; readonly infotext: string }
  /** A script: each cell's first image (null: the cell made none), and each cell's first infotext. */
  | { readonly kind: 'script'; readonly script: FlowScriptPlan; readonly cells: readonly (Uint8Array | null)[]; readonly infotexts: readonly string[] };

/**
 * One animation: the PNG of each cell it shows, once per cell, and the frames as indices into them (a cell comes
 * back for lead in/out and for frames with the same noise).
 */
export interface AnimationRequest {
  readonly animation: FlowAnimation;
  readonly images: readonly Uint8Array[];
  readonly frames: readonly number[];
}

export interface ComposedGrid {
  readonly png: Uint8Array;
  readonly infotext: string;
}

/** Renders are RGB; anything else is flattened as PIL's convert('RGB') does (gray replicated, alpha dropped). */
function toRgb(img: RasterImage): RasterImage {
  if (img.channels === 3) return img;
  const data = new Uint8Array(img.width * img.height * 3);
  for (let p = 0; p < img.width * img.height; p++) {
    for (let c = 0; c < 3; c++) data[p * 3 + c] = img.data[p * img.channels + (img.channels < 3 ? 0 : c)]!;
  }
  return { width: img.width, height: img.height, channels: 3, data };
}

function png(grid: RasterImage, infotext: string): ComposedGrid {
  return { png: encodePng(grid, infotext ? [['parameters', infotext]] : []), infotext };
}

/** A1111's image_grid of the images, `rows` and `cols` as the request gave them (null: A1111's default rows). */
function composePlainGrid(compose: GridCompose, images: readonly Uint8Array[], infotext: string): ComposedGrid[] {
  const rasters = images.map((b) => toRgb(decodePng(b)));
  const { rows, cols } = compose;
  const grid = rows !== null ? imageGrid(rasters, rows, cols ?? undefined)
    : cols !== null ? imageGrid(rasters, Math.ceil(rasters.length / cols), cols)
      : imageGrid(rasters);
  return [png(grid, infotext)];
}

/** The script's grids with A1111's labels, each with its cell's infotext and the script's keys. */
function composeScript(script: FlowScriptPlan, cells: readonly (Uint8Array | null)[], infotexts: readonly string[]): ComposedGrid[] {
  // The plan as core's composer reads it: the parent kept the layout and each cell's size, not the cells' requests.
  const plan = {
    script: script.name, layout: script.layout, outputs: script.outputs, warnings: script.warnings,
    cells: script.cells.map((c) => ({ label: c.label, params: { width: c.width, height: c.height } })),
  } as unknown as ScriptPlan;
  const { grids } = composeScriptGrids(plan, cells.map((b) => (b ? decodePng(b) : null)));
  const texts = scriptGridInfotexts(plan, infotexts);
  return grids.map((g, n) => png(g, texts[n] ?? ''));
}

export function composeFlow(req: ComposeRequest): ComposedGrid[] {
  return req.kind === 'grid' ? composePlainGrid(req.compose, req.images, req.infotext) : composeScript(req.script, req.cells, req.infotexts);
}

/** The animation's bytes (sharp encodes on libvips' threads; the PNGs are decoded here, once per cell). */
export async function composeAnimation(req: AnimationRequest): Promise<Uint8Array> {
  const rasters = req.images.map((b): RgbFrame => {
    const rgb = toRgb(decodePng(b));
    return { width: rgb.width, height: rgb.height, channels: 3, data: rgb.data };
  });
  const frames = req.frames.map((i) => rasters[i]!);
  const { format, fps, lossless, delays } = req.animation;
  return encodeAnimation(frames, { format, fps, lossless, ...(delays ? { delays } : {}) });
}
