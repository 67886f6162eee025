/**
 * A plan's grids from its cells' images: each grid is images.image_grid of its source images (cells, or for
 * the X/Y/Z main grid the sub-grids) with its legend drawn around it, sized by the largest source image as
 * A1111 v1.10 does; and each grid's infotext, the chosen cell's with the script's keys added.
 */
import { DarkroomError } from '../errors.js';
import { formatGenerationParams } from '../formats/infotext.js';
import type { RasterImage } from '../formats/png.js';
import { imageGrid } from '../pipeline/image-grid.js';
import { drawGridAnnotations } from './grid-annotations.js';
import type { GenerationParams, GridSpec, ImageRGB, ScriptPlan } from './types.js';

/** PIL's convert('RGB'): gray replicated, alpha dropped. */
function toRgb(img: RasterImage): ImageRGB {
  if (img.channels === 3) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const s = i * img.channels;
    const gray = img.channels <= 2;
    out[i * 3] = img.data[s]!;
    out[i * 3 + 1] = gray ? img.data[s]! : img.data[s + 1]!;
    out[i * 3 + 2] = gray ? img.data[s]! : img.data[s + 2]!;
  }
  return { width: img.width, height: img.height, channels: 3, data: out };
}

/**
 * The grid images of a plan, in layout order (main grid first). `cellImages` holds each cell's first image in
 * plan.cells order; a null is a cell that produced nothing, drawn black at the first image's size as A1111 does.
 */
export function composeScriptGrids<P extends GenerationParams>(plan: ScriptPlan<P>, cellImages: readonly (RasterImage | null)[]): { grids: ImageRGB[] } {
  if (cellImages.length !== plan.cells.length) {
    throw new DarkroomError('IMAGE_GRID_INVALID', `the plan has ${plan.cells.length} cells, ${cellImages.length} images were given`);
  }
  const first = cellImages.find((i) => i !== null);
  const blankSize = first ? [first.width, first.height] : [plan.cells[0]?.params.width ?? 512, plan.cells[0]?.params.height ?? 512];
  const blank = (): ImageRGB => ({ width: blankSize[0]!, height: blankSize[1]!, channels: 3, data: new Uint8Array(blankSize[0]! * blankSize[1]! * 3) });
  const cells = cellImages.map((img) => (img === null ? blank() : toRgb(img)));
  const done = new Map<number, ImageRGB>();
  const grids = plan.layout.grids;
  const compose = (index: number, depth: number): ImageRGB => {
    const ready = done.get(index);
    if (ready) return ready;
    const spec: GridSpec | undefined = grids[index];
    if (!spec || depth > grids.length) throw new DarkroomError('IMAGE_GRID_INVALID', `grid ${index} is not in the plan's layout`);
    const images = spec.source.kind === 'cells' ? spec.source.cells.map((c) => cells[c]!) : spec.source.grids.map((g) => compose(g, depth + 1));
    let grid = imageGrid(images, Math.min(spec.rows, images.length));
    if (spec.legend) {
      const w = Math.max(...images.map((i) => i.width));
      const h = Math.max(...images.map((i) => i.height));
      grid = drawGridAnnotations(grid, w, h, spec.legend);
    }
    done.set(index, grid);
    return grid;
  };
  return { grids: grids.map((_, i) => compose(i, 0)) };
}

/**
 * A grid's infotext: the cell's, with `extra` written as create_infotext writes extra_generation_params, after
 * the cell's own parameters and before Version / User.
 */
export function withExtraParams(infotext: string, extra: GridSpec['infotext']['extra']): string {
  if (extra.length === 0) return infotext;
  const added = formatGenerationParams(extra);
  const cut = infotext.lastIndexOf('\n');
  const head = cut === -1 ? '' : infotext.slice(0, cut + 1);
  const params = infotext.slice(cut + 1);
  for (const key of ['Version', 'User']) {
    if (params.startsWith(`${key}: `)) return `${head}${added}, ${params}`;
    const at = params.lastIndexOf(`, ${key}: `);
    if (at !== -1) return `${head}${params.slice(0, at)}, ${added}${params.slice(at)}`;
  }
  return `${head}${params}${params ? ', ' : ''}${added}`;
}

/** Every grid's infotext from the cells' (first image) infotexts, in layout order. */
export function scriptGridInfotexts<P extends GenerationParams>(plan: ScriptPlan<P>, cellInfotexts: readonly string[]): string[] {
  if (cellInfotexts.length !== plan.cells.length) {
    throw new DarkroomError('IMAGE_GRID_INVALID', `the plan has ${plan.cells.length} cells, ${cellInfotexts.length} infotexts were given`);
  }
  return plan.layout.grids.map((g) => withExtraParams(cellInfotexts[g.infotext.cell]!, g.infotext.extra));
}
