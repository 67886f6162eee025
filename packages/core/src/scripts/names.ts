/**
 * The A1111 built-in scripts Darkroom runs, by the names A1111's API uses: `script_name` is matched against
 * each selectable script's title lower-cased (modules/scripts.py script_name_to_index), so any casing of the
 * title selects it, and `/sdapi/v1/scripts` lists those lower-cased titles.
 */

/** Titles as A1111's scripts return them from title(). */
export const SCRIPT_TITLES = {
  'prompt matrix': 'Prompt matrix',
  'prompts from file or textbox': 'Prompts from file or textbox',
  'x/y/z plot': 'X/Y/Z plot',
} as const;

export type ScriptName = keyof typeof SCRIPT_TITLES;

/** In A1111's listing order: its scripts/ folder is loaded in file-name order (prompt_matrix, prompts_from_file, xyz_grid). */
export const SCRIPT_NAMES: readonly ScriptName[] = ['prompt matrix', 'prompts from file or textbox', 'x/y/z plot'];

/** `script_name` of a request to the script it selects, or undefined (A1111 answers 422 "Script not found"). */
export function scriptByName(scriptName: string): ScriptName | undefined {
  const key = scriptName.toLowerCase();
  return SCRIPT_NAMES.find((n) => n === key);
}
