/**
 * `/sdapi/v1/script-info` entries for the scripts, in A1111's shape (api_models.ScriptInfo / ScriptArg): the
 * script's lower-cased title and one entry per ui() control in run() order, with the control's label, default
 * value and, where the control has them, minimum, maximum, step and choices (null otherwise).
 */
import { scriptNamesFor, type ScriptName } from './names.js';
import { SEED_TRAVEL_DEFAULTS as travel, SEED_TRAVEL_RATES } from './seed-travel-options.js';
import { TXT2IMG2IMG_DEFAULTS } from './txt2img2img.js';
import { xyzAxesFor } from './xyz-axes.js';

export interface ScriptArgInfo {
  readonly label: string;
  readonly value: unknown;
  readonly minimum: number | null;
  readonly maximum: number | null;
  readonly step: number | null;
  readonly choices: readonly string[] | null;
}

export interface ScriptInfo {
  readonly name: ScriptName;
  readonly is_alwayson: boolean;
  readonly is_img2img: boolean;
  readonly args: readonly ScriptArgInfo[];
}

const arg = (label: string, value: unknown, more: Partial<ScriptArgInfo> = {}): ScriptArgInfo => ({
  label,
  value,
  minimum: null,
  maximum: null,
  step: null,
  choices: null,
  ...more,
});

const checkbox = (label: string, value: boolean) => arg(label, value);
const margins = () => arg('Grid margins (px)', 0, { minimum: 0, maximum: 500, step: 2 });

function scriptArgs(name: ScriptName, img2img: boolean): ScriptArgInfo[] {
  switch (name) {
    case 'advanced seed blending':
      return [arg('Seeds', '')];
    case 'seed travel':
      return [
        checkbox('Only use Random seeds (Unless comparing paths)', travel.randomSeeds),
        arg('Number of random seed(s)', travel.seedCount),
        arg('Destination seed(s) (Comma separated)', travel.destinationSeeds),
        arg('Steps (Number of images between each seed)', travel.steps),
        arg('Interpolation rate', travel.rate, { choices: [...SEED_TRAVEL_RATES] }),
        arg('Rate strength', travel.rateStrength, { minimum: 0, maximum: 10, step: 0.1 }),
        checkbox('Loop back to initial seed', travel.loopBack),
        arg('Frames per second (0 to disable video)', travel.fps),
        checkbox('Show generated images in ui', travel.showImages),
        checkbox('Compare paths (Separate travels from 1st seed to each destination)', travel.comparePaths),
        checkbox('Allow the default Euler a Sampling method. (Does not produce good results)', travel.allowEulerA),
        arg('Bump seed (If > 0 do a Compare Paths but only one image. No video will be generated.)', travel.bumpSeed, { minimum: 0, maximum: 0.5, step: 0.001 }),
        arg('Number of frames for lead in/out', travel.leadInOut),
        arg('Upscaler', travel.upscaler, { choices: ['None', 'Lanczos', 'Nearest'] }),
        arg('Upscale ratio', travel.upscaleRatio, { minimum: 0, maximum: 8, step: 0.1 }),
        checkbox('Use cache', travel.useCache),
        arg('SSIM threshold (0 to disable)', travel.ssimThreshold, { minimum: 0, maximum: 1, step: 0.01 }),
        arg('SSIM CenterCrop% (0 to disable)', travel.ssimCenterCrop, { minimum: 0, maximum: 100, step: 1 }),
        arg('SSIM minimum substep', travel.ssimMinSubstep),
        arg('Desired min SSIM threshold (% of threshold)', travel.ssimMinPercent, { minimum: 0, maximum: 100, step: 1 }),
        arg('RIFE passes', travel.rifePasses),
        checkbox('Drop original frames', travel.rifeDropOriginal),
      ];
    case 'txt2img2img':
      return [
        arg('img2img prompt (empty: the txt2img prompt)', TXT2IMG2IMG_DEFAULTS.prompt),
        arg('img2img negative prompt (empty: the txt2img one)', TXT2IMG2IMG_DEFAULTS.negativePrompt),
        arg('Denoising strength', TXT2IMG2IMG_DEFAULTS.denoisingStrength, { minimum: 0, maximum: 1, step: 0.01 }),
        arg('img2img steps (0: the txt2img steps)', TXT2IMG2IMG_DEFAULTS.steps, { minimum: 0, maximum: 150, step: 1 }),
        arg('img2img CFG scale (0: the txt2img scale)', TXT2IMG2IMG_DEFAULTS.cfgScale, { minimum: 0, maximum: 30, step: 0.5 }),
      ];
    case 'prompt matrix':
      return [
        checkbox('Put variable parts at start of prompt', false),
        checkbox('Use different seed for each picture', false),
        arg('Select prompt', 'positive', { choices: ['positive', 'negative'] }),
        arg('Select joining char', 'comma', { choices: ['comma', 'space'] }),
        margins(),
      ];
    case 'prompts from file or textbox':
      return [
        checkbox('Iterate seed every line', false),
        checkbox('Use same random seed for all lines', false),
        arg('Insert prompts at the', 'start', { choices: ['start', 'end'] }),
        arg('List of prompt inputs', ''),
      ];
    case 'x/y/z plot': {
      const labels = xyzAxesFor(img2img ? 'img2img' : 'txt2img').map((a) => a.label);
      const axis = (K: string, value: string) => [
        arg(`${K} type`, value, { choices: labels }),
        arg(`${K} values`, ''),
        arg(`${K} values`, [], { choices: [] }),
      ];
      return [
        ...axis('X', labels[1]!),
        ...axis('Y', labels[0]!),
        ...axis('Z', labels[0]!),
        checkbox('Draw legend', true),
        checkbox('Include Sub Images', false),
        checkbox('Include Sub Grids', false),
        checkbox('Keep -1 for seeds', false),
        checkbox('Vary seeds for X', false),
        checkbox('Vary seeds for Y', false),
        checkbox('Vary seeds for Z', false),
        margins(),
        checkbox('Use text inputs instead of dropdowns', false),
      ];
    }
  }
}

/** Every script of each tab (A1111 lists the txt2img scripts, then the img2img ones). */
export function scriptInfos(): ScriptInfo[] {
  return [false, true].flatMap((img2img) =>
    scriptNamesFor(img2img ? 'img2img' : 'txt2img').map((name) => ({ name, is_alwayson: false, is_img2img: img2img, args: scriptArgs(name, img2img) })),
  );
}
