/**
 * `darkroom xyz` and `darkroom seed-travel`: the script's own flags become A1111's `script_args` (in the order the
 * script's run() takes them, so core reads them exactly as it reads an API request), and every other flag is a
 * generation flag read by parseCli, as `darkroom txt2img` (or img2img with --init-image) would read it.
 */
import type { ScriptName } from '@darkroom/core/scripts/index.js';
import { parseCli, UsageError, type CliRequest } from './args.js';

export type ScriptCommand = 'xyz' | 'seed-travel';

export const SCRIPT_COMMANDS: Readonly<Record<ScriptCommand, ScriptName>> = { xyz: 'x/y/z plot', 'seed-travel': 'seed travel' };

export const SCRIPT_USAGE = `usage:
  darkroom xyz --x-type TYPE --x-values VALUES [--y-type TYPE --y-values VALUES] [--z-type ...] [options] [-o DIR]
  darkroom seed-travel --seed N --dest-seeds "N, N, ..." [--travel-steps N] [--fps X] [options] [-o DIR]

Both run A1111's script on the local engine (the built-in model unless --model) and write into DIR
[darkroom-<command>-<seed>]: the grids or the frames as PNGs with their infotext, and seed travel's animation.
Every txt2img option applies (darkroom --help); with --init-image the cells are img2img renders.

X/Y/Z plot (A1111's labels and defaults):
      --x-type TYPE            axis: Seed, Var. seed, Var. strength, Steps, CFG Scale, Prompt S/R, Sampler,
      --y-type TYPE              Schedule type, Size, Clip skip, Denoising, ..., or its index [x: Seed, y/z: Nothing]
      --z-type TYPE
      --x-values VALUES        comma-separated values; ranges 1-5, 1-10 (+2), 1-10 [5]; quoted "a, b" keeps commas
      --y-values VALUES
      --z-values VALUES
      --no-legend              no axis labels around the grid
      --include-lone-images    also write each cell's images (they are written anyway; kept for A1111's order)
      --include-sub-grids      also write the X/Y grid of each Z value
      --keep-seeds             "Keep -1 for seeds": every cell draws its own random seed
      --vary-seeds-x           add the cell's X position to its seed (also --vary-seeds-y, --vary-seeds-z)
      --margin N               grid margins in pixels [0]
Seed travel (yownas/seed_travel's options):
      --dest-seeds "N, ..."    destination seed(s), after --seed
      --random-seeds N         travel between N random seeds instead (--seed and --dest-seeds left out)
      --travel-steps N         images between each seed [10]
      --rate NAME              Linear, Hug-the-middle, Slow start, Quick start [Linear]
      --rate-strength X        exponent of Slow start / Quick start [3]
      --loop-back              travel back to the first seed
      --compare-paths          one travel from the first seed to each destination
      --bump-seed X            one image per destination at this variation strength, no animation [0]
      --allow-euler-a          allow the Euler a sampler (it draws new noise every step)
      --lead-in-out N          frames the first and last image are repeated in the animation [0]
      --fps X                  animation frame rate, 0 = no animation [30]
      --gif                    also write the animation as a GIF (an animated WebP is always written)
      --no-cache               render frames with the same noise again instead of reusing them
`;

interface FlagSpec {
  readonly name: string;
  readonly boolean: boolean;
  /** The script_args index the flag sets, for naming it in core's errors. */
  readonly arg?: number;
}

const XYZ_FLAGS: readonly FlagSpec[] = [
  { name: 'x-type', boolean: false, arg: 0 }, { name: 'x-values', boolean: false, arg: 1 },
  { name: 'y-type', boolean: false, arg: 3 }, { name: 'y-values', boolean: false, arg: 4 },
  { name: 'z-type', boolean: false, arg: 6 }, { name: 'z-values', boolean: false, arg: 7 },
  { name: 'no-legend', boolean: true, arg: 9 }, { name: 'include-lone-images', boolean: true, arg: 10 },
  { name: 'include-sub-grids', boolean: true, arg: 11 }, { name: 'keep-seeds', boolean: true, arg: 12 },
  { name: 'vary-seeds-x', boolean: true, arg: 13 }, { name: 'vary-seeds-y', boolean: true, arg: 14 },
  { name: 'vary-seeds-z', boolean: true, arg: 15 }, { name: 'margin', boolean: false, arg: 16 },
];

const TRAVEL_FLAGS: readonly FlagSpec[] = [
  { name: 'random-seeds', boolean: false, arg: 1 }, { name: 'dest-seeds', boolean: false, arg: 2 },
  { name: 'travel-steps', boolean: false, arg: 3 }, { name: 'rate', boolean: false, arg: 4 },
  { name: 'rate-strength', boolean: false, arg: 5 }, { name: 'loop-back', boolean: true, arg: 6 },
  { name: 'fps', boolean: false, arg: 7 }, { name: 'compare-paths', boolean: true, arg: 9 },
  { name: 'allow-euler-a', boolean: true, arg: 10 }, { name: 'bump-seed', boolean: false, arg: 11 },
  { name: 'lead-in-out', boolean: false, arg: 12 }, { name: 'no-cache', boolean: true, arg: 15 },
  { name: 'gif', boolean: true },
];

export interface ScriptCliRequest {
  readonly command: ScriptCommand;
  readonly script: ScriptName;
  /** A1111's script_args for the script. */
  readonly scriptArgs: readonly unknown[];
  /** The flag behind each script_args index, so an argument core refuses is reported by its flag. */
  readonly argFlags: ReadonlyMap<number, string>;
  /** The generation flags, read as `darkroom txt2img` (or img2img) reads them; `output` is the folder. */
  readonly generation: CliRequest;
  readonly gif: boolean;
  readonly help: boolean;
}

/** Splits the script's flags (`--fps 10`, `--fps=10`, `--gif`) from the rest, which go to parseCli unchanged. */
function splitFlags(argv: readonly string[], specs: readonly FlagSpec[]): { values: Map<string, string | true>; rest: string[] } {
  const values = new Map<string, string | true>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(token);
    const spec = m ? specs.find((s) => s.name === m[1]) : undefined;
    if (!m || !spec) {
      rest.push(token);
      continue;
    }
    if (values.has(spec.name)) throw new UsageError(`--${spec.name} given twice`);
    if (spec.boolean) {
      if (m[2] !== undefined) throw new UsageError(`--${spec.name} takes no value`);
      values.set(spec.name, true);
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${spec.name} needs a value`);
    values.set(spec.name, value);
  }
  return { values, rest };
}

function number(flag: string, v: string | true | undefined, integer: boolean): number | undefined {
  if (v === undefined || v === true) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'}, got "${v}"`);
  }
  return n;
}

/** An axis type by label, or by index as A1111's API also takes it. */
function axisType(v: string | true | undefined): string | number | null {
  if (v === undefined || v === true) return null;
  return /^\d+$/.test(v) ? Number(v) : v;
}

function xyzArgs(values: Map<string, string | true>): unknown[] {
  const text = (name: string): string | null => {
    const v = values.get(name);
    return typeof v === 'string' ? v : null;
  };
  for (const axis of ['y', 'z']) {
    if (values.has(`${axis}-values`) && !values.has(`${axis}-type`)) throw new UsageError(`--${axis}-values needs --${axis}-type`);
  }
  // A1111's argument order; text values throughout ("Use text inputs instead of dropdowns"), so a sampler or
  // checkpoint axis is typed like any other.
  return [
    axisType(values.get('x-type')), text('x-values'), [],
    axisType(values.get('y-type')), text('y-values'), [],
    axisType(values.get('z-type')), text('z-values'), [],
    !values.has('no-legend'), values.has('include-lone-images'), values.has('include-sub-grids'), values.has('keep-seeds'),
    values.has('vary-seeds-x'), values.has('vary-seeds-y'), values.has('vary-seeds-z'),
    number('margin', values.get('margin'), true) ?? null, true,
  ];
}

function travelArgs(values: Map<string, string | true>): unknown[] {
  const text = (name: string): string | null => {
    const v = values.get(name);
    return typeof v === 'string' ? v : null;
  };
  const random = number('random-seeds', values.get('random-seeds'), true);
  // The script's 22 arguments; null keeps the script's default. The frames are always written ("show images").
  return [
    random !== undefined, random ?? null, text('dest-seeds'), number('travel-steps', values.get('travel-steps'), true) ?? null,
    text('rate'), number('rate-strength', values.get('rate-strength'), false) ?? null, values.has('loop-back'),
    number('fps', values.get('fps'), false) ?? null, true, values.has('compare-paths'), values.has('allow-euler-a'),
    number('bump-seed', values.get('bump-seed'), false) ?? null, number('lead-in-out', values.get('lead-in-out'), true) ?? null,
    null, null, !values.has('no-cache'), null, null, null, null, null, null,
  ];
}

export function parseScriptCli(command: ScriptCommand, argv: readonly string[]): ScriptCliRequest {
  const specs = command === 'xyz' ? XYZ_FLAGS : TRAVEL_FLAGS;
  const { values, rest } = splitFlags(argv, specs);
  const help = rest.includes('--help') || rest.includes('-h');
  const kind = rest.some((t) => t === '--init-image' || t.startsWith('--init-image=')) ? 'img2img' : 'txt2img';
  const generation = help ? parseCli(['help']) : parseCli([kind, ...rest]);
  const argFlags = new Map(specs.filter((s) => s.arg !== undefined).map((s) => [s.arg!, `--${s.name}`]));
  return {
    command, script: SCRIPT_COMMANDS[command], scriptArgs: help ? [] : command === 'xyz' ? xyzArgs(values) : travelArgs(values),
    argFlags, generation, gif: values.has('gif'), help,
  };
}
