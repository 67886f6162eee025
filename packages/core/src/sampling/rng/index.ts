/** Seeded noise as A1111 makes it: torch CPU (AVX2 / portable kernels), NV Philox, ImageRNG and its helpers. */
export {
  blendSeedNoise,
  createGenerator,
  ImageRNG,
  noiseSourceFromA1111,
  randn,
  randnLocal,
  slerp,
  type ImageRngOptions,
  type NoiseGenerator,
  type NoiseSource,
} from './image-rng.js';
export { TorchCpuGenerator, type TorchCpuKernel } from '../../rng/torch-cpu.js';
export { PhiloxGenerator } from './philox.js';
export { checkSeedBlend, parseSeedBlend, type SeedBlendEntry } from '../../catalog/seed-blend.js';
