/**
 * Optional observation points inside a generation, for parity checks and debugging. Every tensor handed to a
 * trace is the trace's own copy. Tracing changes nothing in the result.
 */
import type { Float32Tensor } from '../tensor.js';
import type { CfgTrace } from './cfg-denoiser.js';
import type { TextCallTrace } from './conditioning.js';
import type { MultiCond, ScheduledCond } from './cfg-denoiser.js';

export interface PipelineTrace extends CfgTrace {
  onTextCall?(trace: TextCallTrace): void;
  /** After conditioning of one pass of one iteration: uncond schedules and multiconds per batch item. */
  onConds?(info: { pass: 'first' | 'hires'; iteration: number; conds: readonly MultiCond[]; unconds: ReadonlyArray<readonly ScheduledCond[]> }): void;
  /** The initial noise of a pass (first ImageRNG draw), before any sigma scaling. */
  onInitialNoise?(info: { pass: 'first' | 'hires'; iteration: number; noise: Float32Tensor }): void;
  onSigmas?(info: { pass: 'first' | 'hires'; iteration: number; sigmas: Float32Array }): void;
  /** Each UNet call: its input (already times c_in), timesteps, context and output. */
  onUnetCall?(info: { x: Float32Tensor; t: Float32Array; context: Float32Tensor; out: Float32Tensor }): void;
  /** Each inner denoiser call around the UNet: x before c_in, sigma, denoised result. */
  onDenoiserCall?(info: { x: Float32Tensor; sigma: Float32Array; out: Float32Tensor }): void;
  /** Sampler output of a pass. */
  onLatent?(info: { pass: 'first' | 'hires'; iteration: number; latent: Float32Tensor }): void;
  /** VAE output of one image, before clamping: (1,3,H,W). */
  onDecoded?(info: { iteration: number; index: number; image: Float32Tensor }): void;
}
