/**
 * img2img video: every frame of an input video through img2img with the request's parameters, and the results
 * assembled back into an animation with the input's frame timing. Frames do not depend on each other, so each is a
 * cell of its own and a farm renders them all at once. The seed is the request's for every frame ("fixed", which
 * keeps the noise still and the video steady) or the request's plus the frame index ("travel", as A1111 numbers
 * the images of a batch, subseed likewise), which makes the grain move with the frames.
 */
import type { Img2ImgParams, InitImage } from '../pipeline/params.js';
import { checkCellCount, fixSeed, scriptArgError } from './script-errors.js';
import type { AnimationSpec, PlanContext, ScriptCell, ScriptPlan } from './types.js';

export const VIDEO_SEED_MODES = ['fixed', 'travel'] as const;
export type VideoSeedMode = (typeof VIDEO_SEED_MODES)[number];

export interface Img2ImgVideoOptions {
  readonly seed: VideoSeedMode;
  /** Milliseconds each input frame shows (one per frame), or null: every frame for 1000 / fps. */
  readonly delaysMs: readonly number[] | null;
  /** The frame rate when the input carries no timing (a zip of frames). */
  readonly fps: number;
}

export const IMG2IMG_VIDEO_DEFAULTS: Img2ImgVideoOptions = { seed: 'fixed', delaysMs: null, fps: 10 };

/** Seeds above 2^32 - 1 wrap as A1111's do when it adds the batch index to a seed. */
const SEED_SPACE = 4294967296;

export function planImg2ImgVideo(frames: readonly InitImage[], o: Img2ImgVideoOptions, base: Img2ImgParams, ctx: PlanContext = {}): ScriptPlan<Img2ImgParams> {
  if (frames.length === 0) scriptArgError('input', 'the video has no frames', 0);
  checkCellCount(frames.length, ctx, 'the video');
  if (!(VIDEO_SEED_MODES as readonly string[]).includes(o.seed)) scriptArgError('seed', `must be one of ${VIDEO_SEED_MODES.join(', ')}`, o.seed);
  if (!Number.isFinite(o.fps) || o.fps <= 0 || o.fps > 240) scriptArgError('fps', 'frames per second must be above 0 and at most 240', o.fps);
  if (o.delaysMs !== null && o.delaysMs.length !== frames.length) scriptArgError('input', `${o.delaysMs.length} frame delays for ${frames.length} frames`, o.delaysMs.length);
  if (base.mask) scriptArgError('mask', 'img2img video takes no mask (every frame is repainted whole)', 'mask');
  const seed = fixSeed(base.seed, ctx, 'seed');
  const subseed = (base.subseed_strength ?? 0) !== 0 ? fixSeed(base.subseed, ctx, 'subseed') : (base.subseed ?? -1);
  const step = o.seed === 'travel' ? 1 : 0;
  const cells: ScriptCell<Img2ImgParams>[] = frames.map((frame, k) => ({
    params: {
      ...base,
      init_images: [frame],
      seed: (seed + k * step) % SEED_SPACE,
      subseed: subseed === -1 ? -1 : (subseed + k * step) % SEED_SPACE,
      batch_size: 1,
      n_iter: 1,
    },
    label: `frame ${k}`,
  }));
  const animation: AnimationSpec = {
    frames: cells.map((_, k) => k),
    fps: o.fps,
    label: `${frames.length} frames`,
    ...(o.delaysMs ? { delaysMs: [...o.delaysMs] } : {}),
  };
  return {
    script: 'img2img video',
    cells,
    layout: { grids: [] },
    outputs: cells.map((_, cell) => ({ kind: 'cell-first', cell })),
    warnings: [],
    animations: [animation],
  };
}
