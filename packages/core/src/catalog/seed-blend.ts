/**
 * Initial noise blended from several weighted seeds, as the "Advanced Seed Blending" script makes it: each seed's
 * noise is rng.randn(seed, shape); then, while more than one noise is left, the first one is slerped into each of
 * the others, `slerp(w / (w + w_first), first, other)`, and that result carries the weight `w * w_first`. With two
 * seeds that is slerp(w2 / (w1 + w2), n1, n2), A1111's variation noise at that strength; with more the weights
 * are the script's (a product, not a sum), kept as it defines them. The noise itself is sampling/rng/image-rng's
 * blendSeedNoise; this module reads and checks the blend (no engine code, so requests are checked without it).
 */
import { DarkroomError } from '../errors.js';

export interface SeedBlendEntry {
  readonly seed: number;
  /** Relative weight (>= 0). */
  readonly weight: number;
}

function invalid(message: string, value: unknown): never {
  throw new DarkroomError('SEED_BLEND_INVALID', message, { field: 'seed_blend', value });
}

/** Python's float() of a decimal text, finite values only. */
function pyFloat(text: string): number | undefined {
  const s = text.trim();
  if (!/^[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+(_\d+)*)?$/.test(s)) return undefined;
  const v = Number(s.replaceAll('_', ''));
  return Number.isFinite(v) ? v : undefined;
}

/** Checks a blend: seeds are integers, weights finite and >= 0, and no slerp of the chain divides 0 by 0. */
export function checkSeedBlend(entries: readonly SeedBlendEntry[]): void {
  if (!Array.isArray(entries) || entries.length === 0) invalid('a seed blend needs at least one seed', entries);
  for (const e of entries) {
    if (!Number.isSafeInteger(e.seed) || e.seed < 0) invalid(`seed ${JSON.stringify(e.seed)} must be a non-negative integer`, e.seed);
    if (!Number.isFinite(e.weight) || e.weight < 0) invalid(`the weight of seed ${e.seed} must be a number of at least 0`, e.weight);
  }
  let weights = entries.map((e) => e.weight);
  while (weights.length > 1) {
    const [first, ...rest] = weights as [number, ...number[]];
    if (rest.some((w) => w + first === 0)) invalid('the weights leave a blend of two zero-weight noises (0/0); give the seeds positive weights', entries);
    weights = rest.map((w) => w * first);
  }
}

/** The script's text, `seed[:weight], ...` (Python's int() and float(); a third `:` part is ignored as it does). */
export function parseSeedBlend(text: string): SeedBlendEntry[] {
  const entries = text.split(',').map((one) => {
    const parts = one.split(':');
    const seed = parts[0]!.trim();
    if (!/^[+]?\d+(_\d+)*$/.test(seed)) invalid(`${JSON.stringify(seed)} is not a seed (expected seed:weight, ...)`, text);
    const weight = parts.length > 1 ? pyFloat(parts[1]!) : 1;
    if (weight === undefined) invalid(`${JSON.stringify(parts[1]!.trim())} is not a weight (expected seed:weight, ...)`, text);
    return { seed: Number(seed.replaceAll('_', '')), weight };
  });
  checkSeedBlend(entries);
  return entries;
}
