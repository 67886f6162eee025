/** Sigma schedules and timesteps as A1111 computes them for each sampler and scheduler. */
export { DiscreteSchedule, sdDiscreteSchedule, alphasCumprodF32, scaledLinearBetas } from './discrete.js';
export { lcmSchedule, lcmGetSigmas, lcmTToSigma, lcmAlphasCumprod } from './lcm.js';
export {
  SCHEDULERS,
  findScheduler,
  discreteSigmaModel,
  lcmSigmaModel,
  type SchedulerArgs,
  type SchedulerFn,
  type SchedulerInfo,
  type SigmaModel,
} from './schedulers.js';
export {
  compVisTimesteps,
  discardPenultimate,
  samplerScheduleConfig,
  samplerSigmas,
  type SamplerSchedule,
  type ScheduleOptions,
} from './sampler-schedules.js';
