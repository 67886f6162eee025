/**
 * The A1111 scripts Darkroom runs, by the names A1111's API uses: `script_name` is matched against each
 * selectable script's title lower-cased (modules/scripts.py script_name_to_index), so any casing of the title
 * selects it, and `/sdapi/v1/scripts` lists those lower-cased titles. Besides A1111's built-in ones, the custom
 * scripts of A1111's wiki that Darkroom runs: "Advanced Seed Blending" (a file copied into scripts/), "Seed
 * travel" and "txt2img2img" (extensions). "Prompt Blending" is no entry: its show() returns False, it is always on
 * in A1111 and a request field here (`prompt_blending`).
 */

/** Titles as the scripts return them from title(). */
export const SCRIPT_TITLES = {
  'advanced seed blending': 'Advanced Seed Blending',
  'prompt matrix': 'Prompt matrix',
  'prompts from file or textbox': 'Prompts from file or textbox',
  'x/y/z plot': 'X/Y/Z plot',
  'seed travel': 'Seed travel',
  txt2img2img: 'txt2img2img',
} as const;

export type ScriptName = keyof typeof SCRIPT_TITLES;

/**
 * In A1111's listing order: its scripts/ folder is loaded in file-name order (advanced_seed_blending,
 * prompt_matrix, prompts_from_file, xyz_grid), then the extensions' scripts by extension folder (seed_travel,
 * txt2img2img).
 */
export const SCRIPT_NAMES: readonly ScriptName[] = ['advanced seed blending', 'prompt matrix', 'prompts from file or textbox', 'x/y/z plot', 'seed travel', 'txt2img2img'];

/** Scripts whose show() hides them on the img2img tab: txt2img2img starts from a txt2img. */
const TXT2IMG_ONLY: ReadonlySet<ScriptName> = new Set(['txt2img2img']);

/** The scripts a tab lists (`/sdapi/v1/scripts` has one list per tab), in listing order. */
export function scriptNamesFor(mode: 'txt2img' | 'img2img'): ScriptName[] {
  return SCRIPT_NAMES.filter((n) => mode === 'txt2img' || !TXT2IMG_ONLY.has(n));
}

/**
 * `script_name` of a request to the script it selects, or undefined (A1111 answers 422 "Script not found"); with
 * a tab, only the scripts that tab lists.
 */
export function scriptByName(scriptName: string, mode?: 'txt2img' | 'img2img'): ScriptName | undefined {
  const key = scriptName.toLowerCase();
  return (mode ? scriptNamesFor(mode) : SCRIPT_NAMES).find((n) => n === key);
}

/**
 * Scripts the farm runs as flows that A1111's API has no script_name for (its wiki lists extensions of these
 * kinds, each with arguments of its own): they take named options on `/v1/flows`, are not listed by
 * `/sdapi/v1/scripts`, and are planned by their own functions (img2img-video.ts, animator.ts).
 */
export const FLOW_SCRIPT_NAMES = ['img2img video', 'animator'] as const;
export type FlowScriptName = (typeof FLOW_SCRIPT_NAMES)[number];

/** `name` (any case) to the flow-only script it names, if any. */
export function flowScriptName(name: string): FlowScriptName | undefined {
  const key = name.toLowerCase();
  return FLOW_SCRIPT_NAMES.find((n) => n === key);
}
