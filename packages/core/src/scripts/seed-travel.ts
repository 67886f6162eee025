/**
 * The "Seed travel" script (yownas/seed_travel): frames that travel between the initial noise of consecutive
 * seeds. Every frame is a plain generation with seed = the pair's first seed, subseed = its second and
 * subseed_strength = t, so the engine's variation noise (rng.slerp of the two seeds' noise) does the
 * interpolation: t = 0 is the first seed's own image. A pair gets `steps` frames at t = i/steps (i < steps),
 * reshaped by the rate; without loop-back the travel ends on a plain render of its last seed, with loop-back the
 * last pair runs back to the first seed and includes t = 1. "Compare paths" makes one travel from the first seed
 * to each destination, "Bump seed" one image per destination at that strength. Frames with the same noise (the
 * script's cache: the pair written either way round, t = 0 or 1 whatever the other seed) share one cell, so the
 * fan-out renders each once. Each travel with a frame rate becomes one animation of its frames, padded at both
 * ends by "lead in/out".
 */
import { checkCellCount, fixSeed, scriptArgError } from './script-errors.js';
import { SEED_TRAVEL_RATES, type SeedTravelOptions, type SeedTravelRate } from './seed-travel-options.js';
import type { AnimationSpec, GenerationParams, PlanContext, ScriptCell, ScriptOutput, ScriptPlan } from './types.js';

/** One frame's noise: (seed, subseed, subseed_strength), the script's generation key. */
export interface TravelKey {
  readonly seed: number;
  readonly subseed: number;
  readonly strength: number;
}

/**
 * The variation strength of frame i of `steps` under the rate. "Hug-the-middle" is the old `unsinify`:
 * t + 0.1·sin(2πt), which speeds up the ends and slows the middle, where the slerp of two independent noises moves
 * fastest. "Quick start" is the mirror of "Slow start", 1 - (1-t)^r: the script writes (1-t)^r, which starts each
 * pair at the destination seed and runs backwards, so its first frame would not be the first seed's image.
 */
export function seedTravelStrength(i: number, steps: number, rate: SeedTravelRate, rateStrength: number): number {
  const t = i / steps;
  switch (rate) {
    case 'Linear':
      return t;
    case 'Hug-the-middle':
      return t + 0.1 * Math.sin(t * 2 * Math.PI);
    case 'Slow start':
      return t ** rateStrength;
    case 'Quick start':
      return 1 - (1 - t) ** rateStrength;
  }
}

/** Python's int() of a decimal string (signs, surrounding blanks and digit underscores allowed). */
function pyInt(text: string): number | undefined {
  const s = text.trim();
  if (!/^[+-]?\d+(_\d+)*$/.test(s)) return undefined;
  const v = Number(s.replaceAll('_', ''));
  return Number.isSafeInteger(v) ? v : undefined;
}

/** The destination seeds: parenthesised parts left out, the rest split at commas, each an integer. */
export function parseDestinationSeeds(text: string): number[] {
  const cleaned = text.replace(/\([^)]*\)/g, ',').replace(/,,*/g, ',');
  return cleaned.split(',').map((part) => {
    const v = pyInt(part);
    if (v === undefined || v < -1) scriptArgError('script_args[2]', `destination seed ${JSON.stringify(part.trim())} is not a seed (comma-separated integers)`, text);
    return v;
  });
}

export function validateSeedTravelOptions(o: SeedTravelOptions): void {
  const int = (at: number, v: number, min: number, what: string) => {
    if (!Number.isInteger(v) || v < min) scriptArgError(`script_args[${at}]`, `${what} must be an integer of at least ${min}`, v);
  };
  int(1, o.seedCount, 0, 'the number of random seeds');
  int(3, o.steps, 1, 'steps');
  int(12, o.leadInOut, 0, 'lead in/out frames');
  if (!SEED_TRAVEL_RATES.includes(o.rate)) scriptArgError('script_args[4]', `must be one of ${SEED_TRAVEL_RATES.join(', ')}`, o.rate);
  if (!Number.isFinite(o.rateStrength) || o.rateStrength < 0 || o.rateStrength > 10) scriptArgError('script_args[5]', 'rate strength must be from 0 to 10', o.rateStrength);
  if (!Number.isFinite(o.fps) || o.fps < 0 || o.fps > 240) scriptArgError('script_args[7]', 'frames per second must be from 0 (no video) to 240', o.fps);
  if (!Number.isFinite(o.bumpSeed) || o.bumpSeed < 0 || o.bumpSeed > 0.5) scriptArgError('script_args[11]', 'bump seed must be from 0 to 0.5', o.bumpSeed);
  if (o.upscaleRatio !== 1 && o.upscaleRatio !== 0) scriptArgError('script_args[14]', 'upscaling frames is not supported by Darkroom\'s seed travel (ratio 1 only)', o.upscaleRatio);
  if (o.ssimThreshold !== 0) scriptArgError('script_args[16]', 'the SSIM threshold adds frames after seeing the images, which a planned fan-out cannot do (0 only)', o.ssimThreshold);
  if (o.rifePasses !== 0) scriptArgError('script_args[20]', 'RIFE frame interpolation is not supported by Darkroom (0 only)', o.rifePasses);
}

/** The seeds the travel visits, in order, every -1 fixed once. */
function travelSeeds(o: SeedTravelOptions, base: GenerationParams, ctx: PlanContext): number[] {
  if (o.randomSeeds) {
    if (o.seedCount < 2) scriptArgError('script_args[1]', 'You need at least 2 random seeds.', o.seedCount);
    const seeds = o.comparePaths || o.bumpSeed > 0 ? [fixSeed(base.seed, ctx, 'seed')] : [];
    // random.randint(0, 2147483647): the plan's random seeds folded into the script's range
    for (let s = 0; s < o.seedCount; s++) seeds.push(fixSeed(-1, ctx, 'script_args[0]') % 2147483648);
    return seeds;
  }
  if (o.destinationSeeds.trim() === '') scriptArgError('script_args[2]', 'No destination seeds were set.', o.destinationSeeds);
  return [fixSeed(base.seed, ctx, 'seed'), ...parseDestinationSeeds(o.destinationSeeds).map((s) => fixSeed(s, ctx, 'script_args[2]'))];
}

/** The generation keys of one travel, in frame order (the script's generation_queue). */
export function travelKeys(travel: readonly number[], o: Pick<SeedTravelOptions, 'steps' | 'rate' | 'rateStrength' | 'loopBack'>): TravelKey[] {
  const keys: TravelKey[] = [];
  const pairs = travel.length - (o.loopBack ? 0 : 1);
  let last = travel[0]!;
  for (let s = 0; s < pairs; s++) {
    const seed = travel[s]!;
    const subseed = s + 1 < travel.length ? travel[s + 1]! : travel[0]!;
    // the pair back to the first seed also takes t = 1, which is the first seed's noise
    const frames = o.steps + (s + 1 === travel.length ? 1 : 0);
    for (let i = 0; i < frames; i++) keys.push({ seed, subseed, strength: seedTravelStrength(i, o.steps, o.rate, o.rateStrength) });
    last = subseed;
  }
  if (!o.loopBack) keys.push({ seed: last, subseed: last, strength: 0 });
  return keys;
}

/** The script's cache key: the lower seed first, a seed that cannot show (t = 0 or 1) as 0. */
function cacheKey(k: TravelKey): string {
  let [seed0, seed1, strength] = [k.seed, k.subseed, k.strength];
  if (seed1 < seed0) [seed0, seed1, strength] = [seed1, seed0, 1 - strength];
  if (strength === 0) seed1 = 0;
  if (strength === 1) seed0 = 0;
  return `${seed0}:${seed1}:${strength}`;
}

export function planSeedTravel<P extends GenerationParams>(o: SeedTravelOptions, base: P, ctx: PlanContext = {}): ScriptPlan<P> {
  validateSeedTravelOptions(o);
  if (!o.allowEulerA && o.bumpSeed === 0 && base.sampler_name === 'Euler a') {
    scriptArgError('script_args[10]', 'Euler a draws new noise every step, which breaks the travel; allow it explicitly to use it', base.sampler_name);
  }
  const seeds = travelSeeds(o, base, ctx);
  const cells: ScriptCell<P>[] = [];
  const cellOf = (k: TravelKey, cache: Map<string, number> | null): number => {
    const key = cacheKey(k);
    const hit = cache?.get(key);
    if (hit !== undefined) return hit;
    cells.push({
      params: { ...base, seed: k.seed, subseed: k.subseed, subseed_strength: k.strength, batch_size: 1, n_iter: 1 },
      label: k.strength === 0 ? `seed ${k.seed}` : `seed ${k.seed} → ${k.subseed} at ${k.strength}`,
    });
    cache?.set(key, cells.length - 1);
    return cells.length - 1;
  };
  const outputs: ScriptOutput[] = [];
  const animations: AnimationSpec[] = [];
  if (o.bumpSeed > 0) {
    checkCellCount(seeds.length - 1, ctx, 'the seed bump');
    for (const subseed of seeds.slice(1)) outputs.push({ kind: 'cell-all', cell: cellOf({ seed: seeds[0]!, subseed, strength: o.bumpSeed }, null) });
    return { script: 'seed travel', cells, layout: { grids: [] }, outputs: o.showImages ? outputs : [], warnings: [], animations };
  }
  const loopBack = o.loopBack && !o.comparePaths;
  const travels = o.comparePaths ? seeds.slice(1).map((s) => [seeds[0]!, s]) : [seeds];
  const plans = travels.map((travel) => travelKeys(travel, { ...o, loopBack }));
  checkCellCount(plans.reduce((n, keys) => n + keys.length, 0), ctx, 'the seed travel');
  // The script's image cache lives for one run: shared between the travels of "compare paths" too.
  const cache = o.useCache ? new Map<string, number>() : null;
  travels.forEach((travel, t) => {
    const frames = plans[t]!.map((k) => cellOf(k, cache));
    for (const cell of frames) outputs.push({ kind: 'cell-first', cell });
    if (o.fps > 0) {
      const lead = (cell: number) => new Array<number>(o.leadInOut).fill(cell);
      animations.push({
        frames: [...lead(frames[0]!), ...frames, ...lead(frames[frames.length - 1]!)],
        fps: o.fps,
        label: travel.join(' → ') + (loopBack ? ` → ${travel[0]}` : ''),
      });
    }
  });
  return { script: 'seed travel', cells, layout: { grids: [] }, outputs: o.showImages ? outputs : [], warnings: [], animations };
}
