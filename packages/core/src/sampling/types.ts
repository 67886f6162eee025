import type { Float32Tensor } from '../tensor.js';

/**
 * k-diffusion's model(x, sigma): the denoised prediction for a batch. `sigma` holds one value per batch item
 * (A1111 passes the same sigma for every item, but samplers must not assume it).
 */
export type Denoiser = (x: Float32Tensor, sigma: Float32Array) => Promise<Float32Tensor>;

/**
 * The raw eps model on the VP latent, as A1111's CompVis samplers (DDIM, PLMS, UniPC, DDIM CFG++) call it:
 * `t` per batch item, continuous where the sampler passes fractional timesteps.
 */
export type EpsModel = (x: Float32Tensor, t: Float32Array) => Promise<Float32Tensor>;

/** Called after every sampler step, with the step index, total and the current sample and denoised estimate. */
export type StepCallback = (info: { step: number; steps: number; x: Float32Tensor; denoised?: Float32Tensor }) => void;

export interface SamplerContext {
  /** k-diffusion denoiser (CFG already applied by the caller). */
  readonly denoise: Denoiser;
  /** Eps model for CompVis-style samplers; undefined where only a denoiser is available. */
  readonly eps?: EpsModel;
  /** The sigma schedule, ending in 0 where the schedule does (k-diffusion convention). */
  readonly sigmas: Float32Array;
  /**
   * The next noise draw of the latent's shape (k-diffusion's randn_like, which A1111 routes to its per-image
   * generators). Each call is one draw.
   */
  readonly noise: () => Float32Tensor;
  /** Seeds of each batch item, for samplers that seed their own noise (the Brownian tree of the SDE family). */
  readonly seeds?: readonly number[];
  readonly onStep?: StepCallback;
  /** Checked between steps: an aborted signal stops the sampler with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Sampler options as A1111 sets them (eta, s_churn, s_tmin, s_tmax, s_noise, solver order, ...). */
  readonly options?: Readonly<Record<string, number | string | boolean>>;
}

/** A sampler walks the sigmas from an initial sample (noise already scaled by sigmas[0] for k-diffusion). */
export type Sampler = (x: Float32Tensor, ctx: SamplerContext) => Promise<Float32Tensor>;
