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
import { xyzAxesFor } from './xyz-axes.js';
import { XYZ_PLOT_DEFAULTS, type XyzAxisOptions, type XyzPlotOptions } from './xyz-options.js';

export interface ScriptOptionsByName {
  'prompt matrix': PromptMatrixOptions;
  'x/y/z plot': XyzPlotOptions;
  'prompts from file or textbox': PromptsFromFileOptions;
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

/** The typed options of a script from A1111's positional script_args. */
export function scriptArgsFromA1111<N extends ScriptName>(name: N, scriptArgs: readonly unknown[], ctx: ScriptArgsContext = {}): ScriptOptionsByName[N] {
  if (!Array.isArray(scriptArgs)) scriptArgError('script_args', 'must be a list', scriptArgs);
  const byName: { [K in ScriptName]: () => ScriptOptionsByName[K] } = {
    'prompt matrix': () => promptMatrixArgs(scriptArgs),
    'x/y/z plot': () => xyzPlotArgs(scriptArgs, ctx.mode ?? 'txt2img'),
    'prompts from file or textbox': () => promptsFromFileArgs(scriptArgs),
  };
  return byName[name]();
}
