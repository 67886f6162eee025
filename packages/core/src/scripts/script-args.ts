/**
 * A1111's positional `script_args` (the script's ui() controls in order, as its run() takes them) to the typed
 * options of each script. A missing trailing argument takes the control's default; a wrong type is refused
 * naming its index. X/Y/Z axis types are indices into the axes of the request's tab (A1111's dropdowns are
 * type="index"); an axis label is taken too.
 */
import { PROMPT_MATRIX_DEFAULTS, type PromptMatrixOptions } from './prompt-matrix.js';
import { PROMPTS_FROM_FILE_DEFAULTS, type PromptsFromFileOptions } from './prompts-from-file-options.js';
import { scriptArgError } from './script-errors.js';
import type { ScriptName } from './names.js';
import { SEED_BLENDING_DEFAULTS, type SeedBlendingOptions } from './seed-blending.js';
import { SEED_TRAVEL_DEFAULTS, SEED_TRAVEL_RATES, type SeedTravelOptions } from './seed-travel-options.js';
import { TXT2IMG2IMG_DEFAULTS, type Txt2Img2ImgOptions } from './txt2img2img.js';
import { xyzAxesFor } from './xyz-axes.js';
import { XYZ_PLOT_DEFAULTS, type XyzAxisOptions, type XyzPlotOptions } from './xyz-options.js';

export interface ScriptOptionsByName {
  'advanced seed blending': SeedBlendingOptions;
  'prompt matrix': PromptMatrixOptions;
  'x/y/z plot': XyzPlotOptions;
  'prompts from file or textbox': PromptsFromFileOptions;
  'seed travel': SeedTravelOptions;
  txt2img2img: Txt2Img2ImgOptions;
}

export type ScriptOptions = ScriptOptionsByName[ScriptName];

export interface ScriptArgsContext {
  /** The tab the request comes from: X/Y/Z axis indices count the axes that tab shows. */
  readonly mode?: 'txt2img' | 'img2img';
}

class Args {
  constructor(private readonly args: readonly unknown[]) {}
  private at(i: number): unknown {
    return i < this.args.length ? this.args[i] : undefined;
  }
  bool(i: number, fallback: boolean): boolean {
    const v = this.at(i);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') scriptArgError(`script_args[${i}]`, 'must be true or false', v);
    return v;
  }
  str(i: number, fallback: string): string {
    const v = this.at(i);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') scriptArgError(`script_args[${i}]`, 'must be a string', v);
    return v;
  }
  choice<T extends string>(i: number, fallback: T, choices: readonly T[]): T {
    const v = this.str(i, fallback);
    if (!(choices as readonly string[]).includes(v)) scriptArgError(`script_args[${i}]`, `must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`, v);
    return v as T;
  }
  int(i: number, fallback: number, min: number, max: number): number {
    const v = this.at(i);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) scriptArgError(`script_args[${i}]`, `must be an integer from ${min} to ${max}`, v);
    return v;
  }
  /** A gr.Number or gr.Slider: any finite number in the range. */
  num(i: number, fallback: number, min: number, max: number): number {
    const v = this.at(i);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) scriptArgError(`script_args[${i}]`, `must be a number from ${min} to ${max}`, v);
    return v;
  }
  strings(i: number): string[] {
    const v = this.at(i);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) scriptArgError(`script_args[${i}]`, 'must be a list of strings', v);
    return v as string[];
  }
  axisType(i: number, fallback: string, mode: 'txt2img' | 'img2img'): string {
    const v = this.at(i);
    if (v === undefined || v === null) return fallback;
    const axes = xyzAxesFor(mode);
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < axes.length) return axes[v]!.label;
    if (typeof v === 'string' && axes.some((a) => a.label === v)) return v;
    return scriptArgError(`script_args[${i}]`, `must be a ${mode} X/Y/Z plot axis index from 0 to ${axes.length - 1} (or its label)`, v);
  }
  get length(): number {
    return this.args.length;
  }
}

function tooMany(args: readonly unknown[], count: number): void {
  if (args.length > count) scriptArgError(`script_args[${count}]`, `the script takes ${count} arguments`, args[count]);
}

export function promptMatrixArgs(scriptArgs: readonly unknown[]): PromptMatrixOptions {
  tooMany(scriptArgs, 5);
  const a = new Args(scriptArgs);
  const d = PROMPT_MATRIX_DEFAULTS;
  return {
    putAtStart: a.bool(0, d.putAtStart),
    differentSeeds: a.bool(1, d.differentSeeds),
    promptType: a.choice(2, d.promptType, ['positive', 'negative']),
    variationsDelimiter: a.choice(3, d.variationsDelimiter, ['comma', 'space']),
    marginSize: a.int(4, d.marginSize, 0, 500),
  };
}

export function xyzPlotArgs(scriptArgs: readonly unknown[], mode: 'txt2img' | 'img2img' = 'txt2img'): XyzPlotOptions {
  tooMany(scriptArgs, 18);
  const a = new Args(scriptArgs);
  const d = XYZ_PLOT_DEFAULTS;
  const axis = (at: number, fallback: XyzAxisOptions): XyzAxisOptions => ({
    type: a.axisType(at, fallback.type, mode),
    values: a.str(at + 1, fallback.values),
    valuesDropdown: a.strings(at + 2),
  });
  return {
    x: axis(0, d.x),
    y: axis(3, d.y),
    z: axis(6, d.z),
    drawLegend: a.bool(9, d.drawLegend),
    includeLoneImages: a.bool(10, d.includeLoneImages),
    includeSubGrids: a.bool(11, d.includeSubGrids),
    noFixedSeeds: a.bool(12, d.noFixedSeeds),
    varySeedsX: a.bool(13, d.varySeedsX),
    varySeedsY: a.bool(14, d.varySeedsY),
    varySeedsZ: a.bool(15, d.varySeedsZ),
    marginSize: a.int(16, d.marginSize, 0, 500),
    csvMode: a.bool(17, d.csvMode),
  };
}

export function promptsFromFileArgs(scriptArgs: readonly unknown[]): PromptsFromFileOptions {
  tooMany(scriptArgs, 4);
  const a = new Args(scriptArgs);
  const d = PROMPTS_FROM_FILE_DEFAULTS;
  return {
    iterateSeed: a.bool(0, d.iterateSeed),
    sameSeedForAllLines: a.bool(1, d.sameSeedForAllLines),
    promptPosition: a.choice(2, d.promptPosition, ['start', 'end']),
    text: a.str(3, d.text),
  };
}

export function seedBlendingArgs(scriptArgs: readonly unknown[]): SeedBlendingOptions {
  tooMany(scriptArgs, 1);
  return { seeds: new Args(scriptArgs).str(0, SEED_BLENDING_DEFAULTS.seeds) };
}

/** Seed travel's run() arguments in its newest order (22, the RIFE and SSIM ones last). */
export function seedTravelArgs(scriptArgs: readonly unknown[]): SeedTravelOptions {
  tooMany(scriptArgs, 22);
  const a = new Args(scriptArgs);
  const d = SEED_TRAVEL_DEFAULTS;
  return {
    randomSeeds: a.bool(0, d.randomSeeds),
    seedCount: a.int(1, d.seedCount, 0, 4096),
    destinationSeeds: a.str(2, d.destinationSeeds),
    steps: a.int(3, d.steps, 1, 4096),
    rate: a.choice(4, d.rate, [...SEED_TRAVEL_RATES]),
    rateStrength: a.num(5, d.rateStrength, 0, 10),
    loopBack: a.bool(6, d.loopBack),
    fps: a.num(7, d.fps, 0, 240),
    showImages: a.bool(8, d.showImages),
    comparePaths: a.bool(9, d.comparePaths),
    allowEulerA: a.bool(10, d.allowEulerA),
    bumpSeed: a.num(11, d.bumpSeed, 0, 0.5),
    leadInOut: a.int(12, d.leadInOut, 0, 4096),
    upscaler: a.str(13, d.upscaler),
    upscaleRatio: a.num(14, d.upscaleRatio, 0, 8),
    useCache: a.bool(15, d.useCache),
    ssimThreshold: a.num(16, d.ssimThreshold, 0, 1),
    ssimCenterCrop: a.num(17, d.ssimCenterCrop, 0, 100),
    ssimMinSubstep: a.num(18, d.ssimMinSubstep, 0, 1),
    ssimMinPercent: a.num(19, d.ssimMinPercent, 0, 100),
    rifePasses: a.int(20, d.rifePasses, 0, 16),
    rifeDropOriginal: a.bool(21, d.rifeDropOriginal),
  };
}

export function txt2img2imgArgs(scriptArgs: readonly unknown[]): Txt2Img2ImgOptions {
  tooMany(scriptArgs, 5);
  const a = new Args(scriptArgs);
  const d = TXT2IMG2IMG_DEFAULTS;
  return {
    prompt: a.str(0, d.prompt),
    negativePrompt: a.str(1, d.negativePrompt),
    denoisingStrength: a.num(2, d.denoisingStrength, 0, 1),
    steps: a.int(3, d.steps, 0, 1000),
    cfgScale: a.num(4, d.cfgScale, 0, 100),
  };
}

/** The typed options of a script from A1111's positional script_args. */
export function scriptArgsFromA1111<N extends ScriptName>(name: N, scriptArgs: readonly unknown[], ctx: ScriptArgsContext = {}): ScriptOptionsByName[N] {
  if (!Array.isArray(scriptArgs)) scriptArgError('script_args', 'must be a list', scriptArgs);
  const byName: { [K in ScriptName]: () => ScriptOptionsByName[K] } = {
    'advanced seed blending': () => seedBlendingArgs(scriptArgs),
    'seed travel': () => seedTravelArgs(scriptArgs),
    txt2img2img: () => txt2img2imgArgs(scriptArgs),
    'prompt matrix': () => promptMatrixArgs(scriptArgs),
    'x/y/z plot': () => xyzPlotArgs(scriptArgs, ctx.mode ?? 'txt2img'),
    'prompts from file or textbox': () => promptsFromFileArgs(scriptArgs),
  };
  return byName[name]();
}
