/**
 * What a script plan is made of: the cells (one generation each, in the order A1111 runs them), the grids to
 * compose from their images with A1111's labels, and the order of the images A1111's API returns. Plain data,
 * so a farm can fan the cells out as separate jobs and compose the grids when the last one is back.
 */
import type { InfotextValue } from '../formats/infotext.js';
import type { RasterImage } from '../formats/png.js';
import type { Img2ImgParams, Txt2ImgParams } from '../pipeline/params.js';
import type { FlowScriptName, ScriptName } from './names.js';

/** The engine's request types: a script plans cells of the same kind as its base request. */
export type GenerationParams = Txt2ImgParams | Img2ImgParams;

/** An 8-bit RGB image (channels 3). */
export type ImageRGB = RasterImage;

/** One label line of A1111's GridAnnotation: inactive ones (prompt matrix parts left out) are grey and struck through. */
export interface GridAnnotation {
  readonly text: string;
  readonly active: boolean;
}

/** draw_grid_annotations' arguments: one list of lines per column (top) and per row (left). */
export interface GridLegend {
  readonly columns: readonly (readonly GridAnnotation[])[];
  readonly rows: readonly (readonly GridAnnotation[])[];
  /** Grid margins (px) between cells. */
  readonly margin: number;
}

/** The images a grid is made of, in grid order (left to right, top to bottom). */
export type GridSource =
  /** Indices into plan.cells; null is a cell A1111 leaves black (none here, kept for failed cells). */
  | { readonly kind: 'cells'; readonly cells: readonly number[] }
  /** Indices into layout.grids: a grid of grids (X/Y/Z plot's Z grid). */
  | { readonly kind: 'grids'; readonly grids: readonly number[] };

export interface GridSpec {
  readonly source: GridSource;
  /** images.image_grid's rows; columns are ceil(n / rows). */
  readonly rows: number;
  /** Labels drawn around it, or null (X/Y/Z plot without "Draw legend"). */
  readonly legend: GridLegend | null;
  /**
   * Its infotext: that of one cell's first image, with `extra` pairs added at the end of its parameters (before
   * `Version`), as A1111 builds a grid's infotext from the cell it was started with.
   */
  readonly infotext: { readonly cell: number; readonly extra: ReadonlyArray<readonly [string, InfotextValue]> };
}

export interface GridLayout {
  /** In the order A1111 puts them at the front of its images: main grid first. */
  readonly grids: readonly GridSpec[];
}

/** One entry of the images A1111's API returns for the script, in order. */
export type ScriptOutput =
  | { readonly kind: 'grid'; readonly grid: number }
  /** The cell's first image (X/Y/Z plot's "Include Sub Images"). */
  | { readonly kind: 'cell-first'; readonly cell: number }
  /** Every image of the cell (n_iter x batch_size). */
  | { readonly kind: 'cell-all'; readonly cell: number };

export interface ScriptCell<P extends GenerationParams = GenerationParams> {
  /** A complete request for this cell, derived from the base request; seeds already fixed where A1111 fixes them. */
  readonly params: P;
  /** What the cell is in the script's terms (axis values, prompt line, ...), for progress and display. */
  readonly label: string;
}

/**
 * An animated image (WebP, GIF) a script makes of its cells' images: seed travel's video. Frames are cell indices
 * in frame order; a cell may come back (lead-in and lead-out frames, frames with the same noise).
 */
export interface AnimationSpec {
  readonly frames: readonly number[];
  /** Frames per second (the script's video frame rate). */
  readonly fps: number;
  /** What the animation shows (the seeds it travels through), for display. */
  readonly label: string;
  /**
   * Milliseconds each frame shows, one per entry of `frames`, in place of 1000 / fps (img2img video keeps its
   * input's timing); absent: every frame shows for 1000 / fps.
   */
  readonly delaysMs?: readonly number[];
}

export interface ScriptPlan<P extends GenerationParams = GenerationParams> {
  readonly script: ScriptName | FlowScriptName;
  /** In the order A1111 generates them. */
  readonly cells: readonly ScriptCell<P>[];
  readonly layout: GridLayout;
  readonly outputs: readonly ScriptOutput[];
  /** Things A1111 logs and carries on from (a prompt line read as plain text, an unknown VAE), for the job's log. */
  readonly warnings: readonly string[];
  /** Animations to assemble once the cells are rendered (seed travel); absent or empty for the others. */
  readonly animations?: readonly AnimationSpec[];
}

/** What a plan needs from outside to stay a pure function. */
export interface PlanContext {
  /**
   * The tab the request comes from (X/Y/Z axes shown on one tab only); by default img2img when the base request
   * has init_images.
   */
  readonly mode?: 'txt2img' | 'img2img';
  /**
   * A random seed as A1111's get_fixed_seed draws one (an integer in [0, 4294967294)), called wherever a script
   * fixes a -1 seed. Required only when a plan has such a seed to fix.
   */
  readonly randomSeed?: () => number;
  /** Checkpoint names the job may use; when given, X/Y/Z and prompts-from-file names are checked and matched as A1111 does. */
  readonly checkpoints?: readonly string[];
  /** VAE names (A1111's vae_dict keys); when given, the VAE axis resolves names as A1111's find_vae does. */
  readonly vaes?: readonly string[];
  /** Most cells a plan may have (default 4096); a guard for the farm, A1111 has none. */
  readonly maxCells?: number;
  /** A1111's img_max_size_mp (default 200): an X/Y/Z grid of that many megapixels or more is refused. */
  readonly maxGridMegapixels?: number;
}
