/**
 * The typed options of the "Seed travel" script (yownas/seed_travel, listed in A1111's wiki of custom scripts),
 * in the order of its newest run() arguments after `p`. The older releases' "Reduce effect of sin() during
 * interpolation" checkbox (`unsinify`) is the rate "Hug-the-middle".
 */

export const SEED_TRAVEL_RATES = ['Linear', 'Hug-the-middle', 'Slow start', 'Quick start'] as const;
export type SeedTravelRate = (typeof SEED_TRAVEL_RATES)[number];

export interface SeedTravelOptions {
  /** "Only use Random seeds (Unless comparing paths)": travel between seedCount random seeds, the request's seed left out. */
  readonly randomSeeds: boolean;
  /** "Number of random seed(s)". */
  readonly seedCount: number;
  /** "Destination seed(s) (Comma separated)": seeds after the request's seed; anything in parentheses is left out. */
  readonly destinationSeeds: string;
  /** "Steps (Number of images between each seed)": frames from one seed up to (not including) the next. */
  readonly steps: number;
  /** "Interpolation rate": how the variation strength moves over a pair's frames. */
  readonly rate: SeedTravelRate;
  /** "Rate strength": the exponent of "Slow start" and "Quick start". */
  readonly rateStrength: number;
  /** "Loop back to initial seed". */
  readonly loopBack: boolean;
  /** "Frames per second (0 to disable video)". */
  readonly fps: number;
  /** "Show generated images in ui": the frames are among the images returned. */
  readonly showImages: boolean;
  /** "Compare paths (Separate travels from 1st seed to each destination)". */
  readonly comparePaths: boolean;
  /** "Allow the default Euler a Sampling method": refused without it, as the script refuses. */
  readonly allowEulerA: boolean;
  /** "Bump seed": above 0, one image per destination at this variation strength, and no video. */
  readonly bumpSeed: number;
  /** "Number of frames for lead in/out": the first and last frame repeated at the ends of the video. */
  readonly leadInOut: number;
  /** "Upscaler" and "Upscale ratio": frames resized after rendering (only ratio 1 or 0, no resize, is run here). */
  readonly upscaler: string;
  readonly upscaleRatio: number;
  /** "Use cache": a frame with the same noise as an earlier one reuses its image. */
  readonly useCache: boolean;
  /**
   * "SSIM threshold", "SSIM CenterCrop%", "SSIM minimum substep", "Desired min SSIM threshold": frames added
   * where consecutive ones differ too much. That needs the images, so a plan made before rendering cannot hold
   * it: only the threshold 0 (off) is run here.
   */
  readonly ssimThreshold: number;
  readonly ssimCenterCrop: number;
  readonly ssimMinSubstep: number;
  readonly ssimMinPercent: number;
  /** "RIFE passes" and "Drop original frames": frame interpolation by a model Darkroom does not have (0 only). */
  readonly rifePasses: number;
  readonly rifeDropOriginal: boolean;
}

export const SEED_TRAVEL_DEFAULTS: SeedTravelOptions = {
  randomSeeds: false,
  seedCount: 4,
  destinationSeeds: '',
  steps: 10,
  rate: 'Linear',
  rateStrength: 3,
  loopBack: false,
  fps: 30,
  showImages: true,
  comparePaths: false,
  allowEulerA: false,
  bumpSeed: 0,
  leadInOut: 0,
  upscaler: 'Lanczos',
  upscaleRatio: 1,
  useCache: true,
  ssimThreshold: 0,
  ssimCenterCrop: 0,
  ssimMinSubstep: 0.0001,
  ssimMinPercent: 75,
  rifePasses: 0,
  rifeDropOriginal: false,
};
