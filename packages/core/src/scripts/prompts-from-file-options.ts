/** The typed options of A1111's "Prompts from file or textbox" script (its run() arguments after `p`). */

export interface PromptsFromFileOptions {
  /** "Iterate seed every line": each line starts batch_size x n_iter seeds after the previous one. */
  readonly iterateSeed: boolean;
  /** "Use same random seed for all lines": a -1 seed is fixed once for every line. */
  readonly sameSeedForAllLines: boolean;
  /** "Insert prompts at the": where a line's prompt goes relative to the request's prompt. */
  readonly promptPosition: 'start' | 'end';
  /** "List of prompt inputs": one job per non-blank line. */
  readonly text: string;
}

export const PROMPTS_FROM_FILE_DEFAULTS: PromptsFromFileOptions = {
  iterateSeed: false,
  sameSeedForAllLines: false,
  promptPosition: 'start',
  text: '',
};
