/**
 * Seeds of every image of a job, as A1111's process_images assigns them: seed -1 becomes a random seed, image i
 * gets seed + i (or the same seed for all when a variation strength is set) and subseed + i.
 */
import { randomInt } from 'node:crypto';

/** A1111's get_fixed_seed: -1 means random.randrange(4294967294). */
export function fixedSeed(seed: number, random: () => number = () => randomInt(0, 4294967294)): number {
  return seed === -1 ? random() : seed;
}

export interface JobSeeds {
  readonly seed: number;
  readonly subseed: number;
  /** One per image, over n_iter * batch_size images. */
  readonly allSeeds: readonly number[];
  readonly allSubseeds: readonly number[];
}

export function jobSeeds(
  p: { seed: number; subseed: number; subseed_strength: number; batch_size: number; n_iter: number },
  random?: () => number,
): JobSeeds {
  const seed = fixedSeed(p.seed, random);
  const subseed = fixedSeed(p.subseed, random);
  const n = p.batch_size * p.n_iter;
  const allSeeds = Array.from({ length: n }, (_, i) => seed + (p.subseed_strength === 0 ? i : 0));
  const allSubseeds = Array.from({ length: n }, (_, i) => subseed + i);
  return { seed, subseed, allSeeds, allSubseeds };
}
