/**
 * A1111's "Prompt matrix" script (scripts/prompt_matrix.py, images.draw_prompt_matrix): the prompt split at `|`,
 * the first part always present, every combination of the other parts (combination k takes part n+1 when bit n
 * of k is set), joined by ", " or " " with the variable parts after the first part or before it. The seed is
 * fixed once; each image takes seed (+ k with "different seed") and subseed + k, as process_images gives a list
 * of prompts. The grid has 2^floor(n/2) rows; the first ceil(n/2) variable parts label the columns, the rest the
 * rows, each in black where the part is in the image and struck-through grey where it is not.
 */
import { checkCellCount, fixSeed, scriptArgError } from './script-errors.js';
import type { GenerationParams, GridAnnotation, PlanContext, ScriptCell, ScriptPlan } from './types.js';

export interface PromptMatrixOptions {
  /** "Put variable parts at start of prompt". */
  readonly putAtStart: boolean;
  /** "Use different seed for each picture". */
  readonly differentSeeds: boolean;
  /** "Select prompt": which prompt is split. */
  readonly promptType: 'positive' | 'negative';
  /** "Select joining char". */
  readonly variationsDelimiter: 'comma' | 'space';
  /** "Grid margins (px)". */
  readonly marginSize: number;
}

export const PROMPT_MATRIX_DEFAULTS: PromptMatrixOptions = {
  putAtStart: false,
  differentSeeds: false,
  promptType: 'positive',
  variationsDelimiter: 'comma',
  marginSize: 0,
};

/** Python's str.strip() with no argument, then .strip(','). */
function stripPart(text: string): string {
  return text.replace(/^\s+|\s+$/gu, '').replace(/^,+|,+$/g, '');
}

/** The prompts of every combination, in A1111's order. */
export function promptMatrixPrompts(prompt: string, putAtStart: boolean, delimiter: string): string[] {
  const parts = prompt.split('|');
  const count = 2 ** (parts.length - 1);
  const prompts: string[] = [];
  for (let k = 0; k < count; k++) {
    const selected = parts.slice(1).filter((_, n) => Math.floor(k / 2 ** n) % 2 === 1).map(stripPart);
    prompts.push((putAtStart ? [...selected, parts[0]!] : [parts[0]!, ...selected]).join(delimiter));
  }
  return prompts;
}

/** draw_prompt_matrix's labels: columns for the first half of the variable parts, rows for the rest. */
export function promptMatrixLegend(parts: readonly string[]): { columns: GridAnnotation[][]; rows: GridAnnotation[][] } {
  const variable = parts.slice(1);
  const boundary = Math.ceil(variable.length / 2);
  const side = (texts: readonly string[]) =>
    Array.from({ length: 2 ** texts.length }, (_, pos) => texts.map((text, i) => ({ text, active: Math.floor(pos / 2 ** i) % 2 === 1 })));
  return { columns: side(variable.slice(0, boundary)), rows: side(variable.slice(boundary)) };
}

export function validatePromptMatrixOptions(o: PromptMatrixOptions): void {
  if (o.promptType !== 'positive' && o.promptType !== 'negative') scriptArgError('script_args[2]', `Unknown prompt type ${o.promptType}`, o.promptType);
  if (o.variationsDelimiter !== 'comma' && o.variationsDelimiter !== 'space') {
    scriptArgError('script_args[3]', `Unknown variations delimiter ${o.variationsDelimiter}`, o.variationsDelimiter);
  }
  if (!Number.isInteger(o.marginSize) || o.marginSize < 0 || o.marginSize > 500) scriptArgError('script_args[4]', 'grid margins must be an integer from 0 to 500', o.marginSize);
}

export function planPromptMatrix<P extends GenerationParams>(o: PromptMatrixOptions, base: P, ctx: PlanContext = {}): ScriptPlan<P> {
  validatePromptMatrixOptions(o);
  const seed = fixSeed(base.seed, ctx, 'seed');
  const subseed = fixSeed(base.subseed, ctx, 'subseed');
  const source = (o.promptType === 'positive' ? base.prompt : base.negative_prompt) ?? '';
  const parts = source.split('|');
  checkCellCount(2 ** (parts.length - 1), ctx, 'the prompt matrix');
  const prompts = promptMatrixPrompts(source, o.putAtStart, o.variationsDelimiter === 'comma' ? ', ' : ' ');
  const cells: ScriptCell<P>[] = prompts.map((text, k) => ({
    params: {
      ...base,
      ...(o.promptType === 'positive' ? { prompt: text } : { negative_prompt: text }),
      seed: seed + (o.differentSeeds ? k : 0),
      subseed: subseed + k,
      batch_size: 1,
      n_iter: 1,
    },
    label: text,
  }));
  const legend = promptMatrixLegend(parts);
  return {
    script: 'prompt matrix',
    cells,
    layout: {
      grids: [
        {
          source: { kind: 'cells', cells: cells.map((_, i) => i) },
          rows: 2 ** Math.floor((parts.length - 1) / 2),
          legend: { ...legend, margin: o.marginSize },
          // The grid carries the first image's infotext, unchanged.
          infotext: { cell: 0, extra: [] },
        },
      ],
    },
    outputs: [{ kind: 'grid', grid: 0 }, ...cells.map((_, cell) => ({ kind: 'cell-first' as const, cell }))],
    warnings: [],
  };
}
