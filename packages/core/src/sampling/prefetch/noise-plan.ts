/**
 * Which noise a sampler run will ask for, found before it runs: the sampler is run once on a one-value latent
 * with a model that answers zeros. The noise a k-diffusion or timestep sampler draws depends only on its
 * schedule and options, never on the latent or the model's answer (the draws and their order; the Brownian
 * queries and their times), so the plan of the dry run is the plan of the real run. Where a sampler's control
 * flow does depend on the model (DPM adaptive's error control), the run checks each call against the plan and
 * computes the rest itself from the first difference on.
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import type { Sampler, SamplerContext } from '../types.js';

/** One call of `ctx.noise` ('draw') or `ctx.skipNoise` ('skip'), in order. */
export type DrawSlot = 'draw' | 'skip';

export interface BrownianPlan {
  /** The interval the Brownian tree was built over (the schedule's positive range). */
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** Every noise(sigma, sigmaNext) query, in order. */
  readonly queries: ReadonlyArray<readonly [number, number]>;
}

export interface NoisePlan {
  readonly draws: readonly DrawSlot[];
  readonly brownian: BrownianPlan | undefined;
  /** False when the dry run stopped early (too many calls, or it threw): the plan is only a prefix. */
  readonly complete: boolean;
}

/** A dry run making more calls than this is cut short (its plan is then a prefix). */
const MAX_CALLS = 100_000;

class PlanLimit extends Error {}

/**
 * The noise calls `sampler` makes with these sigmas and options. `batch` is the real batch size (samplers check
 * the seeds against it); the latent is one value per batch item.
 */
export async function planNoise(
  sampler: Sampler,
  ctx: Pick<SamplerContext, 'sigmas' | 'options' | 'seeds'>,
  batch: number,
): Promise<NoisePlan> {
  const shape = [batch, 1, 1, 1];
  const draws: DrawSlot[] = [];
  const queries: Array<readonly [number, number]> = [];
  let range: [number, number] | undefined;
  let calls = 0;
  const count = (): void => {
    if (++calls > MAX_CALLS) throw new PlanLimit('plan too long');
  };
  const zeros = (): Float32Tensor => float32(shape);
  const model = async (x: Float32Tensor): Promise<Float32Tensor> => {
    count();
    return float32(x.shape);
  };
  const dry: SamplerContext = {
    sigmas: ctx.sigmas,
    ...(ctx.options ? { options: ctx.options } : {}),
    ...(ctx.seeds ? { seeds: ctx.seeds } : {}),
    denoise: model,
    eps: model,
    guidedEps: async (x) => {
      count();
      return { eps: float32(x.shape), uncondEps: float32(x.shape) };
    },
    noise: () => {
      count();
      draws.push('draw');
      return zeros();
    },
    skipNoise: () => {
      count();
      draws.push('skip');
    },
    brownian: (x, sigmaMin, sigmaMax) => {
      range = [sigmaMin, sigmaMax];
      return (sigma, sigmaNext) => {
        count();
        queries.push([sigma, sigmaNext]);
        return float32(x.shape);
      };
    },
  };
  let complete = true;
  try {
    await sampler(zeros(), dry);
  } catch {
    complete = false;
  }
  return { draws, brownian: range ? { sigmaMin: range[0], sigmaMax: range[1], queries } : undefined, complete };
}
