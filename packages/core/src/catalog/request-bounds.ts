/**
 * The numeric fields of a generation request: A1111's API default and the range Darkroom accepts. The API's
 * request schemas (farm/schemas.ts) and the engine's resolver (pipeline/params.ts) both read this table, so a value
 * the API lets through is one the engine takes, and a refusal names the same field and range in both.
 *
 * A1111's API itself bounds almost nothing (its pydantic models take any int); the ranges here are what the engine
 * can render: sizes in multiples of 8 (the latent is an eighth of the image), steps and second-pass steps to 1000,
 * CFG either side of zero as A1111 computes it, a batch or iteration count that one job can hold. The farm's memory
 * admission refuses, with the size named, a request within these ranges that no worker has the memory for.
 */

export interface NumberBound {
  readonly min: number;
  readonly max: number;
  /** Whole numbers only. */
  readonly integer: boolean;
  readonly multipleOf?: number;
  /** A1111's API default; absent where the field is optional and "not given" means something of its own. */
  readonly default?: number;
}

/** Seeds are whole numbers JavaScript holds exactly; -1 asks for a random one. */
export const SEED_MAX = 2 ** 53 - 1;

const int = (min: number, max: number, dflt?: number): NumberBound => ({ min, max, integer: true, ...(dflt === undefined ? {} : { default: dflt }) });
const real = (min: number, max: number, dflt?: number): NumberBound => ({ min, max, integer: false, ...(dflt === undefined ? {} : { default: dflt }) });

export const REQUEST_BOUNDS = {
  // txt2img and img2img
  seed: int(-1, SEED_MAX, -1),
  subseed: int(-1, SEED_MAX, -1),
  subseed_strength: real(0, 1, 0),
  seed_resize_from_h: int(-1, 8192, -1),
  seed_resize_from_w: int(-1, 8192, -1),
  batch_size: int(1, 64, 1),
  n_iter: int(1, 100, 1),
  steps: int(1, 1000, 50),
  cfg_scale: real(-100, 100, 7),
  width: { ...int(8, 8192, 512), multipleOf: 8 },
  height: { ...int(8, 8192, 512), multipleOf: 8 },
  eta: real(0, 10),
  clip_skip: int(1, 12),
  // img2img's strength; txt2img's hires pass defaults to TXT2IMG_DENOISING_DEFAULT
  denoising_strength: real(0, 1, 0.75),
  // txt2img's hires fix
  hr_scale: real(1, 8, 2),
  hr_second_pass_steps: int(0, 1000, 0),
  hr_resize_x: int(0, 8192, 0),
  hr_resize_y: int(0, 8192, 0),
  // img2img and inpainting
  resize_mode: int(0, 3, 0),
  initial_noise_multiplier: real(0, 10),
  mask_blur: int(0, 64),
  mask_blur_x: int(0, 64, 4),
  mask_blur_y: int(0, 64, 4),
  inpainting_fill: int(0, 3, 0),
  inpaint_full_res_padding: int(0, 256, 0),
  inpainting_mask_invert: int(0, 1, 0),
} as const satisfies Record<string, NumberBound>;

export type BoundedField = keyof typeof REQUEST_BOUNDS;

/** txt2img's denoising strength (the hires pass) when the request gives none: A1111's 0.7. */
export const TXT2IMG_DENOISING_DEFAULT = 0.7;

/** Why `value` is outside `field`'s bound, or null when it is inside. */
export function boundViolation(field: BoundedField, value: number): string | null {
  const b: NumberBound = REQUEST_BOUNDS[field];
  if (!Number.isFinite(value)) return 'must be a finite number';
  if (b.integer && !Number.isInteger(value)) return 'must be an integer';
  if (value < b.min || value > b.max) return `must be between ${b.min} and ${b.max}`;
  if (b.multipleOf !== undefined && value % b.multipleOf !== 0) return `must be a multiple of ${b.multipleOf}`;
  return null;
}
