import type { Float32Tensor } from '../tensor.js';

/**
 * k-diffusion's model(x, sigma): the denoised prediction for a batch. `sigma` holds one value per batch item
 * (A1111 passes the same sigma for every item, but samplers must not assume it).
 * The sampler owns `x` and may overwrite it once the promise settles: a denoiser that keeps it must copy it.
 * The returned tensor must be fresh: multistep samplers (DPM++ 2M/3M, LMS) keep earlier outputs across steps.
 */
export type Denoiser = (x: Float32Tensor, sigma: Float32Array) => Promise<Float32Tensor>;

/**
 * The raw eps model on the VP latent, as A1111's CompVis samplers (DDIM, PLMS, UniPC, DDIM CFG++) call it:
 * `t` per batch item, continuous where the sampler passes fractional timesteps.
 */
export type EpsModel = (x: Float32Tensor, t: Float32Array) => Promise<Float32Tensor>;

/** How a sampler asks the guidance around the model to behave (A1111's CFGDenoiser attributes). */
export interface GuidanceOptions {
  /**
   * Factor on the CFG scale (A1111's `cond_scale_miltiplier`, default 1): DDIM CFG++ guides with cfg / 12.5.
   * The infotext keeps the requested CFG scale.
   */
  readonly cfgScaleMultiplier?: number;
}

/** The guided eps of one call together with the unconditional eps it was combined from (fresh tensors). */
export interface GuidedEps {
  readonly eps: Float32Tensor;
  /** A1111's `last_noise_uncond`: the uncond rows of the model call, one per batch item. */
  readonly uncondEps: Float32Tensor;
}

/**
 * The eps model with classifier-free guidance exposed, for samplers that use the unconditional prediction apart
 * from the guided one (DDIM CFG++ renoises with it). Without guidance (no CFG), uncondEps equals eps.
 */
export type GuidedEpsModel = (x: Float32Tensor, t: Float32Array, guidance?: GuidanceOptions) => Promise<GuidedEps>;

/**
 * Called after every sampler step, with the step index, total and the current sample and denoised estimate.
 * The tensors are the sampler's working buffers: copy them to keep them past the callback.
 */
export type StepCallback = (info: { step: number; steps: number; x: Float32Tensor; denoised?: Float32Tensor }) => void;

/**
 * k-diffusion's noise_sampler(sigma, sigma_next): noise of the latent's shape for the step between two noise
 * levels. The Brownian tree answers the same query with the same noise, whatever was asked before.
 */
export type NoiseSampler = (sigma: number, sigmaNext: number) => Float32Tensor;

/**
 * Builds the Brownian noise sampler the SDE samplers use over [sigmaMin, sigmaMax] (both > 0), as A1111's
 * `create_noise_sampler`: one Brownian tree per batch item, seeded from that item's seed.
 */
export type BrownianNoiseFactory = (x: Float32Tensor, sigmaMin: number, sigmaMax: number) => NoiseSampler;

export interface SamplerContext {
  /** k-diffusion denoiser (CFG already applied by the caller). */
  readonly denoise: Denoiser;
  /** Eps model for CompVis-style samplers; undefined where only a denoiser is available. */
  readonly eps?: EpsModel;
  /**
   * The same eps model with its guidance exposed (see GuidedEpsModel). Samplers that need the unconditional eps
   * (DDIM CFG++) call this when present, else `eps` standing in for both (a model without CFG).
   */
  readonly guidedEps?: GuidedEpsModel;
  /** The sigma schedule, ending in 0 where the schedule does (k-diffusion convention). */
  readonly sigmas: Float32Array;
  /**
   * The next noise draw of the latent's shape (k-diffusion's randn_like, which A1111 routes to its per-image
   * generators). Each call is one draw.
   */
  readonly noise: () => Float32Tensor;
  /**
   * Advances the noise source by one draw without producing it. Euler, Heun and DPM2 draw noise every step
   * even when s_churn is 0 and never use it; the generators must still advance. Falls back to `noise()`.
   */
  readonly skipNoise?: () => void;
  /** Seeds of each batch item, for samplers that seed their own noise (the Brownian tree of the SDE family). */
  readonly seeds?: readonly number[];
  /**
   * Brownian noise for DPM++ SDE / 2M SDE / 2M SDE Heun / 3M SDE. When absent, a Brownian tree per batch item is
   * built from `seeds` with `randnLocal` (see kdiffusion/brownian-tree.ts).
   */
  readonly brownian?: BrownianNoiseFactory;
  /**
   * A1111's `randn_local(seed, shape)`: the first draw of a fresh generator of the run's noise source. The
   * Brownian tree's internal normals come from here.
   */
  readonly randnLocal?: (seed: number, shape: readonly number[]) => Float32Tensor;
  readonly onStep?: StepCallback;
  /** Checked between steps: an aborted signal stops the sampler with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * Sampler options as A1111 sets them: eta, s_churn, s_tmin, s_tmax (0 or absent = infinity), s_noise,
   * solver_type, order, r; DPM fast/adaptive also read sigma_min, sigma_max and n (see samplers.ts).
   */
  readonly options?: Readonly<Record<string, number | string | boolean>>;
}

/** A sampler walks the sigmas from an initial sample (noise already scaled by sigmas[0] for k-diffusion). */
export type Sampler = (x: Float32Tensor, ctx: SamplerContext) => Promise<Float32Tensor>;
