/**
 * Generation requests in A1111's field names (the body of `/sdapi/v1/txt2img` and `/img2img`), their defaults,
 * and validation with typed errors. Values are normalized once here so that every later stage reads plain,
 * complete data.
 */
import { DarkroomError } from '../errors.js';
import { boundViolation, REQUEST_BOUNDS, SEED_MAX, TXT2IMG_DENOISING_DEFAULT, type BoundedField, type NumberBound } from '../catalog/request-bounds.js';
import { checkSeedBlend, type SeedBlendEntry } from '../catalog/seed-blend.js';

export type RandnSource = 'GPU' | 'CPU' | 'NV';
export type EmphasisMode = 'Original' | 'No norm' | 'Ignore' | 'None';

/** The A1111 settings a request may override for itself (`override_settings`). */
export interface OverrideSettings {
  /** Noise source: 'GPU' (A1111's default; Darkroom draws it with the NV philox source that reproduces CUDA), 'CPU' or 'NV'. */
  randn_source?: RandnSource;
  /** ENSD: per-image generators are re-seeded with seed + ENSD after the initial noise. */
  eta_noise_seed_delta?: number;
  /** Clip skip (1 = last layer). */
  CLIP_stop_at_last_layers?: number;
  pad_cond_uncond?: boolean;
  /**
   * A1111's batch_cond_uncond (default true). False runs the cond rows and the uncond rows through the UNet in
   * separate calls of `batch_size` rows, which halves the UNet's activations; A1111 only separates them when
   * their token counts differ, Darkroom always does under false (per-row results are the same up to float
   * rounding), as a memory option.
   */
  batch_cond_uncond?: boolean;
  emphasis?: EmphasisMode;
  /** Comma backtracking window of the 75-token chunker (0 = off). */
  comma_padding_backtrack?: number;
  eta_ancestral?: number;
  eta_ddim?: number;
  s_churn?: number;
  s_tmin?: number;
  s_tmax?: number;
  s_noise?: number;
  sigma_min?: number;
  sigma_max?: number;
  rho?: number;
  always_discard_next_to_last_sigma?: boolean;
  img2img_fix_steps?: boolean;
  initial_noise_multiplier?: number;
  /** Inpainting checkpoints: how much of the masked image the conditioning keeps out (1 = all of it). */
  inpainting_mask_weight?: number;
  /** Circular padding in every convolution when the request's `tiling` is null. */
  tiling?: boolean;
  /** Latent upscale mode used when `hr_upscaler` is not given. */
  latent_upscale_default_mode?: string;
  add_model_hash_to_info?: boolean;
  add_model_name_to_info?: boolean;
  add_version_to_infotext?: boolean;
  /** Checkpoint for this request by name (resolved by the Engine against its models folder). */
  sd_model_checkpoint?: string;
  /**
   * A1111's sd_vae: "Automatic" (default: a `<checkpoint stem>.vae.*` file beside the checkpoint, else the
   * checkpoint's own VAE), "None" (the checkpoint's own) or a VAE file's name; resolved by the Engine.
   */
  sd_vae?: string;
  add_vae_hash_to_info?: boolean;
  add_vae_name_to_info?: boolean;
}

/** Fields shared by txt2img and img2img. */
export interface CommonParams {
  prompt?: string;
  negative_prompt?: string;
  steps?: number;
  sampler_name?: string;
  scheduler?: string;
  cfg_scale?: number;
  seed?: number;
  subseed?: number;
  subseed_strength?: number;
  seed_resize_from_h?: number;
  seed_resize_from_w?: number;
  width?: number;
  height?: number;
  batch_size?: number;
  n_iter?: number;
  /** Shorthand for override_settings.CLIP_stop_at_last_layers. */
  clip_skip?: number;
  eta?: number;
  disable_extra_networks?: boolean;
  /** Seamless tiles: circular padding in the UNet and VAE convolutions (null = the `tiling` setting). */
  tiling?: boolean | null;
  override_settings?: OverrideSettings;
  /**
   * "Advanced Seed Blending": the initial noise blended from these weighted seeds (catalog/seed-blend.ts)
   * instead of the seed's; null or absent = off.
   */
  seed_blend?: readonly SeedBlendEntry[] | null;
  /**
   * "Prompt Blending": `{a|b:2}` in a prompt is the weighted average of the conditioning of its alternatives
   * (text/prompt-blend.ts). Off by default: without the extension A1111 reads braces as plain text.
   */
  prompt_blending?: boolean | null;
}

export interface Txt2ImgParams extends CommonParams {
  enable_hr?: boolean;
  /** Second-pass strength (A1111's txt2img default is null, which hires fix reads as 0.7 in the UI; we use 0.7). */
  denoising_strength?: number;
  hr_scale?: number;
  hr_upscaler?: string;
  hr_second_pass_steps?: number;
  hr_resize_x?: number;
  hr_resize_y?: number;
  hr_sampler_name?: string;
  hr_scheduler?: string;
  hr_prompt?: string;
  hr_negative_prompt?: string;
}

/** An init image: PNG bytes or decoded 8-bit pixels. */
export type InitImage = Uint8Array | { width: number; height: number; channels: 1 | 2 | 3 | 4; data: Uint8Array };

export interface Img2ImgParams extends CommonParams {
  init_images: InitImage[];
  /** 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale. */
  resize_mode?: number;
  denoising_strength?: number;
  initial_noise_multiplier?: number;
  /** Inpainting mask: white (or opaque) is repainted. */
  mask?: InitImage | null;
  /** Sets mask_blur_x and mask_blur_y when given. */
  mask_blur?: number | null;
  mask_blur_x?: number;
  mask_blur_y?: number;
  mask_round?: boolean;
  /** Masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing. */
  inpainting_fill?: number;
  /** "Only masked": crop to the mask (plus padding), render at width x height, paste back. */
  inpaint_full_res?: boolean;
  inpaint_full_res_padding?: number;
  /** 1: repaint what is not masked. */
  inpainting_mask_invert?: number;
  /** A mask for the fill and the latent blend instead of the processed `mask`. */
  latent_mask?: InitImage | null;
}

/** Every setting the pipeline reads, complete. */
export interface Settings {
  randn_source: RandnSource;
  eta_noise_seed_delta: number;
  CLIP_stop_at_last_layers: number;
  pad_cond_uncond: boolean;
  batch_cond_uncond: boolean;
  emphasis: EmphasisMode;
  comma_padding_backtrack: number;
  eta_ancestral: number;
  eta_ddim: number;
  s_churn: number;
  s_tmin: number;
  s_tmax: number;
  s_noise: number;
  sigma_min: number;
  sigma_max: number;
  rho: number;
  always_discard_next_to_last_sigma: boolean;
  img2img_fix_steps: boolean;
  initial_noise_multiplier: number;
  inpainting_mask_weight: number;
  tiling: boolean;
  latent_upscale_default_mode: string;
  add_model_hash_to_info: boolean;
  add_model_name_to_info: boolean;
  add_version_to_infotext: boolean;
  add_vae_hash_to_info: boolean;
  add_vae_name_to_info: boolean;
}

/** A1111 v1.10.1's option defaults (modules/shared_options.py). */
export const DEFAULT_SETTINGS: Readonly<Settings> = {
  randn_source: 'GPU',
  eta_noise_seed_delta: 0,
  CLIP_stop_at_last_layers: 1,
  pad_cond_uncond: false,
  batch_cond_uncond: true,
  emphasis: 'Original',
  comma_padding_backtrack: 20,
  eta_ancestral: 1,
  eta_ddim: 0,
  s_churn: 0,
  s_tmin: 0,
  s_tmax: 0,
  s_noise: 1,
  sigma_min: 0,
  sigma_max: 0,
  rho: 0,
  always_discard_next_to_last_sigma: false,
  img2img_fix_steps: false,
  initial_noise_multiplier: 1,
  inpainting_mask_weight: 1,
  tiling: false,
  latent_upscale_default_mode: 'Latent',
  add_model_hash_to_info: true,
  add_model_name_to_info: true,
  add_version_to_infotext: true,
  add_vae_hash_to_info: true,
  add_vae_name_to_info: true,
};

export interface ResolvedCommon {
  prompt: string;
  negative_prompt: string;
  steps: number;
  sampler_name: string;
  scheduler: string;
  cfg_scale: number;
  seed: number;
  subseed: number;
  subseed_strength: number;
  seed_resize_from_h: number;
  seed_resize_from_w: number;
  width: number;
  height: number;
  batch_size: number;
  n_iter: number;
  eta: number | undefined;
  disable_extra_networks: boolean;
  tiling: boolean;
  settings: Settings;
  /** Present when the request blends seeds. */
  seed_blend?: readonly SeedBlendEntry[];
  prompt_blending?: boolean;
}

export interface ResolvedTxt2Img extends ResolvedCommon {
  enable_hr: boolean;
  denoising_strength: number;
  hr_scale: number;
  hr_upscaler: string | undefined;
  hr_second_pass_steps: number;
  hr_resize_x: number;
  hr_resize_y: number;
  hr_sampler_name: string | undefined;
  hr_scheduler: string | undefined;
  hr_prompt: string;
  hr_negative_prompt: string;
}

export interface ResolvedImg2Img extends ResolvedCommon {
  init_images: InitImage[];
  resize_mode: number;
  denoising_strength: number;
  initial_noise_multiplier: number;
  /** Present when the request has a mask. */
  inpaint: ResolvedInpaint | undefined;
}

export interface ResolvedInpaint {
  mask: InitImage;
  latent_mask: InitImage | undefined;
  mask_blur_x: number;
  mask_blur_y: number;
  mask_round: boolean;
  inpainting_fill: number;
  inpaint_full_res: boolean;
  inpaint_full_res_padding: number;
  inpainting_mask_invert: boolean;
}

function bad(field: string, message: string, value: unknown): never {
  throw new DarkroomError('BAD_PARAMS', `${field}: ${message}`, { field, value });
}

function int(field: string, v: unknown, fallback: number, min: number, max: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) bad(field, 'must be an integer', v);
  if (v < min || v > max) bad(field, `must be between ${min} and ${max}`, v);
  return v;
}

function num(field: string, v: unknown, fallback: number, min: number, max: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(field, 'must be a finite number', v);
  if (v < min || v > max) bad(field, `must be between ${min} and ${max}`, v);
  return v;
}

/** A numeric field checked against the catalog's bound (REQUEST_BOUNDS), its default the catalog's unless given. */
function bounded(field: BoundedField, v: unknown, fallback?: number, name: string = field): number {
  const b: NumberBound = REQUEST_BOUNDS[field];
  if (v === undefined || v === null) {
    const d = fallback ?? b.default;
    if (d === undefined) bad(name, 'is required', v);
    return d;
  }
  if (typeof v !== 'number') bad(name, b.integer ? 'must be an integer' : 'must be a finite number', v);
  const why = boundViolation(field, v);
  if (why) bad(name, why, v);
  return v;
}

function str(field: string, v: unknown, fallback: string): string {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string') bad(field, 'must be a string', v);
  return v;
}

function optStr(field: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') bad(field, 'must be a string', v);
  return v;
}

function bool(field: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') bad(field, 'must be true or false', v);
  return v;
}

const SETTING_KEYS = new Set(Object.keys(DEFAULT_SETTINGS));

/**
 * Override keys that are not generation settings (A1111 clients send many UI options there); A1111 applies
 * what it knows and logs the rest, and so do we: unknown keys are reported here and otherwise ignored.
 */
export function unknownSettings(overrides: OverrideSettings | undefined): string[] {
  return Object.keys(overrides ?? {}).filter((k) => !SETTING_KEYS.has(k) && k !== 'sd_model_checkpoint' && k !== 'sd_vae');
}

export function resolveSettings(overrides: OverrideSettings | undefined, clipSkip?: number): Settings {
  const o: Record<string, unknown> = { ...(overrides ?? {}) };
  const d = DEFAULT_SETTINGS;
  const randn = str('override_settings.randn_source', o.randn_source, d.randn_source);
  if (randn !== 'GPU' && randn !== 'CPU' && randn !== 'NV') bad('override_settings.randn_source', 'must be GPU, CPU or NV', randn);
  const emphasis = str('override_settings.emphasis', o.emphasis, d.emphasis);
  if (!['Original', 'No norm', 'Ignore', 'None'].includes(emphasis)) {
    bad('override_settings.emphasis', 'must be Original, No norm, Ignore or None', emphasis);
  }
  const clip = clipSkip ?? o.CLIP_stop_at_last_layers;
  return {
    randn_source: randn,
    eta_noise_seed_delta: int('override_settings.eta_noise_seed_delta', o.eta_noise_seed_delta, d.eta_noise_seed_delta, -SEED_MAX, SEED_MAX),
    CLIP_stop_at_last_layers: bounded('clip_skip', clip, d.CLIP_stop_at_last_layers),
    pad_cond_uncond: bool('override_settings.pad_cond_uncond', o.pad_cond_uncond, d.pad_cond_uncond),
    batch_cond_uncond: bool('override_settings.batch_cond_uncond', o.batch_cond_uncond, d.batch_cond_uncond),
    emphasis: emphasis as EmphasisMode,
    comma_padding_backtrack: int('override_settings.comma_padding_backtrack', o.comma_padding_backtrack, d.comma_padding_backtrack, 0, 74),
    eta_ancestral: num('override_settings.eta_ancestral', o.eta_ancestral, d.eta_ancestral, 0, 10),
    eta_ddim: num('override_settings.eta_ddim', o.eta_ddim, d.eta_ddim, 0, 10),
    s_churn: num('override_settings.s_churn', o.s_churn, d.s_churn, 0, 100),
    s_tmin: num('override_settings.s_tmin', o.s_tmin, d.s_tmin, 0, 1e4),
    s_tmax: num('override_settings.s_tmax', o.s_tmax, d.s_tmax, 0, 1e4),
    s_noise: num('override_settings.s_noise', o.s_noise, d.s_noise, 0, 10),
    sigma_min: num('override_settings.sigma_min', o.sigma_min, d.sigma_min, 0, 1e4),
    sigma_max: num('override_settings.sigma_max', o.sigma_max, d.sigma_max, 0, 1e4),
    rho: num('override_settings.rho', o.rho, d.rho, 0, 100),
    always_discard_next_to_last_sigma: bool('override_settings.always_discard_next_to_last_sigma', o.always_discard_next_to_last_sigma, d.always_discard_next_to_last_sigma),
    img2img_fix_steps: bool('override_settings.img2img_fix_steps', o.img2img_fix_steps, d.img2img_fix_steps),
    initial_noise_multiplier: num('override_settings.initial_noise_multiplier', o.initial_noise_multiplier, d.initial_noise_multiplier, 0, 10),
    inpainting_mask_weight: num('override_settings.inpainting_mask_weight', o.inpainting_mask_weight, d.inpainting_mask_weight, 0, 1),
    tiling: bool('override_settings.tiling', o.tiling, d.tiling),
    latent_upscale_default_mode: str('override_settings.latent_upscale_default_mode', o.latent_upscale_default_mode, d.latent_upscale_default_mode),
    add_model_hash_to_info: bool('override_settings.add_model_hash_to_info', o.add_model_hash_to_info, d.add_model_hash_to_info),
    add_model_name_to_info: bool('override_settings.add_model_name_to_info', o.add_model_name_to_info, d.add_model_name_to_info),
    add_version_to_infotext: bool('override_settings.add_version_to_infotext', o.add_version_to_infotext, d.add_version_to_infotext),
    add_vae_hash_to_info: bool('override_settings.add_vae_hash_to_info', o.add_vae_hash_to_info, d.add_vae_hash_to_info),
    add_vae_name_to_info: bool('override_settings.add_vae_name_to_info', o.add_vae_name_to_info, d.add_vae_name_to_info),
  };
}

function resolveCommon(p: CommonParams): ResolvedCommon {
  const settings = resolveSettings(p.override_settings, p.clip_skip === undefined || p.clip_skip === null ? undefined : p.clip_skip);
  const width = bounded('width', p.width);
  const height = bounded('height', p.height);
  return {
    prompt: str('prompt', p.prompt, ''),
    negative_prompt: str('negative_prompt', p.negative_prompt, ''),
    steps: bounded('steps', p.steps),
    // A1111's API falls back to its legacy sampler_index default, Euler
    sampler_name: str('sampler_name', p.sampler_name, 'Euler'),
    scheduler: str('scheduler', p.scheduler, 'Automatic'),
    cfg_scale: bounded('cfg_scale', p.cfg_scale),
    seed: bounded('seed', p.seed),
    subseed: bounded('subseed', p.subseed),
    subseed_strength: bounded('subseed_strength', p.subseed_strength),
    seed_resize_from_h: bounded('seed_resize_from_h', p.seed_resize_from_h),
    seed_resize_from_w: bounded('seed_resize_from_w', p.seed_resize_from_w),
    width,
    height,
    batch_size: bounded('batch_size', p.batch_size),
    n_iter: bounded('n_iter', p.n_iter),
    eta: p.eta === undefined || p.eta === null ? undefined : bounded('eta', p.eta),
    disable_extra_networks: bool('disable_extra_networks', p.disable_extra_networks, false),
    tiling: bool('tiling', p.tiling, settings.tiling),
    settings,
    ...resolveBlends(p),
  };
}

function resolveBlends(p: CommonParams): Pick<ResolvedCommon, 'seed_blend' | 'prompt_blending'> {
  const out: { seed_blend?: SeedBlendEntry[]; prompt_blending?: boolean } = {};
  if (p.seed_blend !== undefined && p.seed_blend !== null) {
    if (!Array.isArray(p.seed_blend) || p.seed_blend.some((e) => typeof e !== 'object' || e === null)) bad('seed_blend', 'must be a list of {seed, weight}', p.seed_blend);
    checkSeedBlend(p.seed_blend);
    out.seed_blend = p.seed_blend.map((e) => ({ seed: e.seed, weight: e.weight }));
  }
  if (bool('prompt_blending', p.prompt_blending, false)) out.prompt_blending = true;
  return out;
}

export function resolveTxt2Img(p: Txt2ImgParams): ResolvedTxt2Img {
  const c = resolveCommon(p);
  return {
    ...c,
    enable_hr: bool('enable_hr', p.enable_hr, false),
    denoising_strength: bounded('denoising_strength', p.denoising_strength, TXT2IMG_DENOISING_DEFAULT),
    hr_scale: bounded('hr_scale', p.hr_scale),
    hr_upscaler: optStr('hr_upscaler', p.hr_upscaler),
    hr_second_pass_steps: bounded('hr_second_pass_steps', p.hr_second_pass_steps),
    hr_resize_x: bounded('hr_resize_x', p.hr_resize_x),
    hr_resize_y: bounded('hr_resize_y', p.hr_resize_y),
    hr_sampler_name: optStr('hr_sampler_name', p.hr_sampler_name),
    hr_scheduler: optStr('hr_scheduler', p.hr_scheduler),
    hr_prompt: str('hr_prompt', p.hr_prompt, ''),
    hr_negative_prompt: str('hr_negative_prompt', p.hr_negative_prompt, ''),
  };
}

export function resolveImg2Img(p: Img2ImgParams): ResolvedImg2Img {
  const c = resolveCommon(p);
  if (!Array.isArray(p.init_images) || p.init_images.length === 0) {
    throw new DarkroomError('INIT_IMAGE_MISSING', 'img2img needs at least one init image', {});
  }
  return {
    ...c,
    init_images: p.init_images,
    resize_mode: bounded('resize_mode', p.resize_mode),
    denoising_strength: bounded('denoising_strength', p.denoising_strength),
    initial_noise_multiplier: bounded('initial_noise_multiplier', p.initial_noise_multiplier, c.settings.initial_noise_multiplier),
    inpaint: resolveInpaint(p),
  };
}

/** A1111's img2img mask fields with the API's defaults; undefined without a mask. */
function resolveInpaint(p: Img2ImgParams): ResolvedInpaint | undefined {
  const blur = p.mask_blur === undefined || p.mask_blur === null ? undefined : bounded('mask_blur', p.mask_blur);
  const resolved: ResolvedInpaint | undefined =
    p.mask === undefined || p.mask === null
      ? undefined
      : {
          mask: p.mask,
          latent_mask: p.latent_mask ?? undefined,
          mask_blur_x: blur ?? bounded('mask_blur_x', p.mask_blur_x),
          mask_blur_y: blur ?? bounded('mask_blur_y', p.mask_blur_y),
          mask_round: bool('mask_round', p.mask_round, true),
          inpainting_fill: bounded('inpainting_fill', p.inpainting_fill),
          inpaint_full_res: bool('inpaint_full_res', p.inpaint_full_res, true),
          inpaint_full_res_padding: bounded('inpaint_full_res_padding', p.inpaint_full_res_padding),
          inpainting_mask_invert: bounded('inpainting_mask_invert', p.inpainting_mask_invert) === 1,
        };
  if (!resolved && p.latent_mask !== undefined && p.latent_mask !== null) bad('latent_mask', 'needs a mask', 'latent_mask');
  return resolved;
}
