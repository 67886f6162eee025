/**
 * A1111's "Prompts from file or textbox" (scripts/prompts_from_file.py): one job per non-blank line (lines
 * stripped). A line containing `--` is read as `--key value` options split like a shell command line (shlex);
 * `--prompt` / `--negative_prompt` take every word up to the next `--key`. A line that fails to parse is
 * rendered with the whole line as its prompt, as A1111 logs and carries on. A line's prompt goes before or after
 * the request's prompt with a space. Seeds: a -1 seed is fixed once when either seed box is ticked; "Iterate
 * seed every line" moves it on by batch_size x n_iter after each line.
 */
import { DarkroomError, isDarkroomError } from '../errors.js';
import { samplerEntryByAlias } from '../catalog/samplers.js';
import { parsePyFloat, parsePyInt } from '../text/python-compat.js';
import { shlexSplit } from './python-shlex.js';
import { checkCellCount, fixSeed, scriptArgError } from './script-errors.js';
import type { PromptsFromFileOptions } from './prompts-from-file-options.js';
import type { GenerationParams, PlanContext, ScriptCell, ScriptPlan } from './types.js';
import { closestCheckpoint } from './xyz-axes.js';

type LineValue = string | number | boolean;

const parseString = (v: string): string => v;
const parseBool = (v: string): boolean => v === 'true';

/** prompt_tags: the options a line may set, with A1111's conversions. */
const PROMPT_TAGS: Readonly<Record<string, (v: string) => LineValue>> = {
  sd_model: parseString,
  outpath_samples: parseString,
  outpath_grids: parseString,
  prompt_for_display: parseString,
  prompt: parseString,
  negative_prompt: parseString,
  styles: parseString,
  seed: parsePyInt,
  subseed_strength: parsePyFloat,
  subseed: parsePyInt,
  seed_resize_from_h: parsePyInt,
  seed_resize_from_w: parsePyInt,
  sampler_index: parsePyInt,
  sampler_name: parseString,
  batch_size: parsePyInt,
  n_iter: parsePyInt,
  steps: parsePyInt,
  cfg_scale: parsePyFloat,
  width: parsePyInt,
  height: parsePyInt,
  restore_faces: parseBool,
  tiling: parseBool,
  do_not_save_samples: parseBool,
  do_not_save_grid: parseBool,
};

/** Options that change where A1111 saves or what it shows, never the image: read and dropped. */
const NO_EFFECT = new Set(['outpath_samples', 'outpath_grids', 'prompt_for_display', 'do_not_save_samples', 'do_not_save_grid', 'sampler_index', 'styles']);

/** cmdargs: a line's options; throws (with A1111's assertion text) where A1111's parser fails. */
export function promptLineOptions(line: string, checkpoints?: readonly string[]): Map<string, LineValue> {
  const args = shlexSplit(line);
  const res = new Map<string, LineValue>();
  let pos = 0;
  const fail = (message: string): never => {
    throw new DarkroomError('PROMPT_LINE_INVALID', message);
  };
  while (pos < args.length) {
    const arg = args[pos]!;
    if (!arg.startsWith('--')) fail(`must start with "--": ${arg}`);
    if (pos + 1 >= args.length) fail(`missing argument for command line option ${arg}`);
    const tag = arg.slice(2);
    if (tag === 'prompt' || tag === 'negative_prompt') {
      pos++;
      let prompt = args[pos]!;
      pos++;
      while (pos < args.length && !args[pos]!.startsWith('--')) prompt += ' ' + args[pos++]!;
      res.set(tag, prompt);
      continue;
    }
    const parse = PROMPT_TAGS[tag];
    if (!parse) fail(`unknown commandline option: ${arg}`);
    let value = args[pos + 1]!;
    if (tag === 'sampler_name') {
      const sampler = samplerEntryByAlias(value);
      // A1111 sets None here, and the job then fails on "bad sampler name".
      if (!sampler) throw new DarkroomError('SCRIPT_ARGS_INVALID', `unknown sampler ${value}`, { value });
      value = sampler.name;
    }
    if (tag === 'sd_model' && checkpoints) {
      const found = closestCheckpoint(value, checkpoints);
      if (found === undefined) fail(`Unknown checkpoint: ${value}`);
      value = found!;
    }
    res.set(tag, parse!(value));
    pos += 2;
  }
  return res;
}

export function planPromptsFromFile<P extends GenerationParams>(o: PromptsFromFileOptions, base: P, ctx: PlanContext = {}): ScriptPlan<P> {
  if (o.promptPosition !== 'start' && o.promptPosition !== 'end') scriptArgError('script_args[2]', 'must be "start" or "end"', o.promptPosition);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Python's str.splitlines() boundaries
  const lines = o.text.split(/\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/).map((l) => l.trim()).filter((l) => l.length > 0);
  checkCellCount(lines.length, ctx, 'the prompt list');
  const warnings: string[] = [];
  let seed = base.seed ?? -1;
  if ((o.iterateSeed || o.sameSeedForAllLines) && seed === -1) seed = fixSeed(seed, ctx, 'seed');
  const step = (base.batch_size ?? 1) * (base.n_iter ?? 1);
  const basePrompt = base.prompt ?? '';
  const baseNegative = base.negative_prompt ?? '';
  const cells: ScriptCell<P>[] = lines.map((line, i) => {
    let options = new Map<string, LineValue>([['prompt', line]]);
    if (line.includes('--')) {
      try {
        options = promptLineOptions(line, ctx.checkpoints);
      } catch (e) {
        if (isDarkroomError(e, 'SCRIPT_ARGS_INVALID')) scriptArgError('script_args[3]', `line ${i + 1}: ${e.message}`, line);
        if (!isDarkroomError(e, 'PROMPT_LINE_INVALID') && !isDarkroomError(e, 'SHLEX_ERROR') && !isDarkroomError(e, 'PY_VALUE_ERROR')) throw e;
        warnings.push(`Error parsing line ${line} as commandline: ${e.message}`);
      }
    }
    const cell: Record<string, unknown> = { ...base, seed, override_settings: { ...base.override_settings } };
    for (const [key, value] of options) {
      if (NO_EFFECT.has(key)) continue;
      if (key === 'restore_faces') {
        if (value) scriptArgError('script_args[3]', `line ${i + 1}: face restoration is not supported by Darkroom`, line);
        continue;
      }
      if (key === 'sd_model') (cell.override_settings as Record<string, unknown>).sd_model_checkpoint = value;
      else cell[key] = value;
    }
    const linePrompt = options.get('prompt');
    if (typeof linePrompt === 'string' && linePrompt && basePrompt) {
      cell.prompt = o.promptPosition === 'start' ? `${linePrompt} ${basePrompt}` : `${basePrompt} ${linePrompt}`;
    }
    const lineNegative = options.get('negative_prompt');
    if (typeof lineNegative === 'string' && lineNegative && baseNegative) {
      cell.negative_prompt = o.promptPosition === 'start' ? `${lineNegative} ${baseNegative}` : `${baseNegative} ${lineNegative}`;
    }
    if (o.iterateSeed) seed += step;
    // The cell is a copy of P with fields of A1111's request names set from the line, each typed as P declares.
    return { params: cell as unknown as P, label: line };
  });
  return {
    script: 'prompts from file or textbox',
    cells,
    layout: { grids: [] },
    outputs: cells.map((_, cell) => ({ kind: 'cell-all' as const, cell })),
    warnings,
  };
}
