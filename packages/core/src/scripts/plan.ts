/** planScript: one entry point over the scripts, for the farm's fan-out and the A1111 facade. */
import { planPromptMatrix } from './prompt-matrix.js';
import { planPromptsFromFile } from './prompts-from-file.js';
import type { ScriptName } from './names.js';
import type { ScriptOptionsByName } from './script-args.js';
import type { GenerationParams, PlanContext, ScriptPlan } from './types.js';
import { planXyzPlot } from './xyz-plot.js';
import { planSeedBlending } from './seed-blending.js';
import { planSeedTravel } from './seed-travel.js';
import { planTxt2Img2Img, type StagedScriptPlan } from './txt2img2img.js';

/** What planScript gives for a script: txt2img2img's plan has dependent stages, the others fan out at once. */
export type PlanByName<P extends GenerationParams> = { [K in ScriptName]: K extends 'txt2img2img' ? StagedScriptPlan<P> : ScriptPlan<P> };

/**
 * The cells and grids of a script run over `base` (the request the script was given). Pure: randomness (a -1
 * seed to fix) comes from ctx.randomSeed. Throws DarkroomError SCRIPT_ARGS_INVALID / SCRIPT_AXIS_INVALID naming
 * the script argument, SCRIPT_SEED_UNRESOLVED, SCRIPT_TOO_MANY_CELLS or SCRIPT_GRID_TOO_LARGE. Seed travel's
 * plan has `animations`; txt2img2img's is a StagedScriptPlan (its `cells` are the first stage).
 */
export function planScript<N extends ScriptName, P extends GenerationParams>(name: N, args: ScriptOptionsByName[N], base: P, ctx: PlanContext = {}): PlanByName<P>[N] {
  const byName: { [K in ScriptName]: (o: ScriptOptionsByName[K]) => PlanByName<P>[K] } = {
    'advanced seed blending': (o) => planSeedBlending(o, base, ctx),
    'seed travel': (o) => planSeedTravel(o, base, ctx),
    txt2img2img: (o) => planTxt2Img2Img(o, base, ctx),
    'prompt matrix': (o) => planPromptMatrix(o, base, ctx),
    'x/y/z plot': (o) => planXyzPlot(o, base, ctx),
    'prompts from file or textbox': (o) => planPromptsFromFile(o, base, ctx),
  };
  return (byName[name] as (o: ScriptOptionsByName[N]) => PlanByName<P>[N])(args);
}
