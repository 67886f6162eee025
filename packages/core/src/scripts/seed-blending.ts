/**
 * "Advanced Seed Blending" (amotile's script from A1111's wiki of custom scripts): the initial noise made from
 * several weighted seeds, `seed1:2, seed2:1, seed3:1`; weights are relative (a missing weight is 1). The blend
 * itself (successive slerps of the seeds' noise) is the engine's `seed_blend` (catalog/seed-blend.ts); the
 * plan is one cell carrying it, with the first seed as the image's seed, so its later noise draws and infotext
 * are that seed's and a blend of one seed is a plain render of it.
 */
import { DarkroomError } from '../errors.js';
import { parseSeedBlend, type SeedBlendEntry } from '../catalog/seed-blend.js';
import { scriptArgError } from './script-errors.js';
import type { GenerationParams, PlanContext, ScriptPlan } from './types.js';

export interface SeedBlendingOptions {
  /** "Seeds": `seed[:weight], ...`. */
  readonly seeds: string;
}

export const SEED_BLENDING_DEFAULTS: SeedBlendingOptions = { seeds: '' };

/** The blend entries of the "Seeds" text, errors naming script_args[0]. */
export function seedBlendingEntries(text: string): SeedBlendEntry[] {
  try {
    return parseSeedBlend(text);
  } catch (e) {
    if (e instanceof DarkroomError) scriptArgError('script_args[0]', e.message, text);
    throw e;
  }
}

export function planSeedBlending<P extends GenerationParams>(o: SeedBlendingOptions, base: P, _ctx: PlanContext = {}): ScriptPlan<P> {
  const entries = seedBlendingEntries(o.seeds);
  // The script replaces the whole noise maker: variation seeds and seed resize no longer take part.
  const params = { ...base, seed: entries[0]!.seed, seed_blend: entries, subseed_strength: 0, seed_resize_from_h: -1, seed_resize_from_w: -1 };
  return {
    script: 'advanced seed blending',
    cells: [{ params, label: o.seeds }],
    layout: { grids: [] },
    outputs: [{ kind: 'cell-all', cell: 0 }],
    warnings: [],
  };
}
