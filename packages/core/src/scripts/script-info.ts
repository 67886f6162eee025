/**
 * `/sdapi/v1/script-info` entries for the scripts, in A1111's shape (api_models.ScriptInfo / ScriptArg): the
 * script's lower-cased title and one entry per ui() control in run() order, with the control's label, default
 * value and, where the control has them, minimum, maximum, step and choices (null otherwise).
 */
import { SCRIPT_NAMES, type ScriptName } from './names.js';
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

/** Every script on both tabs (A1111 lists the txt2img scripts, then the img2img ones). */
export function scriptInfos(): ScriptInfo[] {
  return [false, true].flatMap((img2img) => SCRIPT_NAMES.map((name) => ({ name, is_alwayson: false, is_img2img: img2img, args: scriptArgs(name, img2img) })));
}
