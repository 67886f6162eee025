/**
 * txt2img2img: a txt2img, then an img2img of its image with a prompt and strength of its own (A1111's wiki lists
 * an extension of that name; its character templates are not taken over, the arguments are Darkroom's:
 * img2img prompt and negative prompt (empty = the txt2img's), denoising strength, steps and CFG scale (0 = the
 * txt2img's)). Stage 2 needs stage 1's image, so it cannot fan out beside it: the plan is a StagedScriptPlan
 * whose `cells` are stage 1 (what a fan-out runs first), and whose `stages` say what runs after: stage 1 is a
 * `cells` stage, stage 2 an `img2img` stage naming the image it starts from. A farm runs stage 2 as a child that
 * depends on stage 1's (BullMQ flow: stage 1 a child of stage 2), building its request with img2imgStageParams
 * once the image is there. The script's images are the last stage's. Both stages use the same fixed seed.
 */
import type { AffineMove } from '../pipeline/affine-transform.js';
import type { Img2ImgParams, InitImage, Txt2ImgParams } from '../pipeline/params.js';
import { fixSeed, scriptArgError } from './script-errors.js';
import type { GenerationParams, PlanContext, ScriptPlan } from './types.js';

export interface Txt2Img2ImgOptions {
  /** The img2img prompt; empty: the txt2img prompt. */
  readonly prompt: string;
  /** The img2img negative prompt; empty: the txt2img one. */
  readonly negativePrompt: string;
  readonly denoisingStrength: number;
  /** img2img steps; 0: the txt2img's. */
  readonly steps: number;
  /** img2img CFG scale; 0: the txt2img's. */
  readonly cfgScale: number;
}

export const TXT2IMG2IMG_DEFAULTS: Txt2Img2ImgOptions = { prompt: '', negativePrompt: '', denoisingStrength: 0.75, steps: 0, cfgScale: 0 };

/** A stage that renders plan cells (stage 1: every cell of plan.cells). */
export interface CellsStage {
  readonly kind: 'cells';
  readonly cells: readonly number[];
}

/** A stage that runs once an earlier stage completed: an img2img of one of its images. */
export interface Img2ImgStage {
  readonly kind: 'img2img';
  /** The request without its init image, which is `from`'s image (img2imgStageParams adds it). */
  readonly params: Omit<Img2ImgParams, 'init_images'>;
  /** The image it starts from: image `image` of cell `cell` of stage `stage`. */
  readonly from: { readonly stage: number; readonly cell: number; readonly image: number };
  readonly label: string;
  /** A move applied to the source image before the img2img (the animator's zoom, rotate, translate); absent: none. */
  readonly transform?: AffineMove;
}

export type ScriptStage = CellsStage | Img2ImgStage;

/**
 * A plan whose stages depend on each other. `cells`, `layout` and `outputs` describe stage 1, so a runner that
 * knows only ScriptPlan renders the first stage; `stages` is the whole run, in order, and the script's images are
 * those of the last stage.
 */
export interface StagedScriptPlan<P extends GenerationParams = GenerationParams> extends ScriptPlan<P> {
  readonly stages: readonly ScriptStage[];
  /**
   * The stages whose images are the script's, in order (the animator: every frame); absent: the last stage's.
   * In a staged plan an animation's `frames` are stage indices, each showing its stage's first image.
   */
  readonly imageStages?: readonly number[];
}

/** The request of an img2img stage once its source image is known. */
export function img2imgStageParams(stage: Img2ImgStage, image: InitImage): Img2ImgParams {
  return { ...stage.params, init_images: [image] };
}

export function validateTxt2Img2ImgOptions(o: Txt2Img2ImgOptions): void {
  if (!Number.isFinite(o.denoisingStrength) || o.denoisingStrength < 0 || o.denoisingStrength > 1) scriptArgError('script_args[2]', 'denoising strength must be from 0 to 1', o.denoisingStrength);
  if (!Number.isInteger(o.steps) || o.steps < 0 || o.steps > 1000) scriptArgError('script_args[3]', 'steps must be an integer from 0 (the txt2img\'s) to 1000', o.steps);
  if (!Number.isFinite(o.cfgScale) || o.cfgScale < 0 || o.cfgScale > 100) scriptArgError('script_args[4]', 'CFG scale must be from 0 (the txt2img\'s) to 100', o.cfgScale);
}

/** The txt2img-only fields a txt2img request carries that an img2img request does not take. */
const TXT2IMG_ONLY = ['enable_hr', 'hr_scale', 'hr_upscaler', 'hr_second_pass_steps', 'hr_resize_x', 'hr_resize_y', 'hr_sampler_name', 'hr_scheduler', 'hr_prompt', 'hr_negative_prompt'] as const;

/** A request as an img2img stage's: the txt2img-only fields and any init images of its own left out. */
export function img2imgStageBase(params: GenerationParams): Omit<Img2ImgParams, 'init_images'> {
  const rest: Record<string, unknown> = { ...(params as Txt2ImgParams) };
  for (const key of [...TXT2IMG_ONLY, 'init_images']) delete rest[key];
  return rest as Omit<Img2ImgParams, 'init_images'>;
}

export function planTxt2Img2Img<P extends GenerationParams>(o: Txt2Img2ImgOptions, base: P, ctx: PlanContext = {}): StagedScriptPlan<P> {
  validateTxt2Img2ImgOptions(o);
  if ('init_images' in base && Array.isArray(base.init_images) && base.init_images.length > 0) {
    scriptArgError('init_images', 'txt2img2img starts from a txt2img: the request must have no init images', base.init_images.length);
  }
  const seed = fixSeed(base.seed, ctx, 'seed');
  const subseed = (base.subseed_strength ?? 0) !== 0 ? fixSeed(base.subseed, ctx, 'subseed') : (base.subseed ?? -1);
  const first = { ...base, seed, subseed, batch_size: 1, n_iter: 1 };
  const second: Omit<Img2ImgParams, 'init_images'> = {
    ...img2imgStageBase(first),
    prompt: o.prompt !== '' ? o.prompt : (base.prompt ?? ''),
    negative_prompt: o.negativePrompt !== '' ? o.negativePrompt : (base.negative_prompt ?? ''),
    denoising_strength: o.denoisingStrength,
    ...(o.steps > 0 ? { steps: o.steps } : {}),
    ...(o.cfgScale > 0 ? { cfg_scale: o.cfgScale } : {}),
  };
  return {
    script: 'txt2img2img',
    cells: [{ params: first, label: 'txt2img' }],
    layout: { grids: [] },
    outputs: [{ kind: 'cell-all', cell: 0 }],
    warnings: [],
    stages: [
      { kind: 'cells', cells: [0] },
      { kind: 'img2img', params: second, from: { stage: 0, cell: 0, image: 0 }, label: 'img2img of the txt2img' },
    ],
  };
}
