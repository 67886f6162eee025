import type { CaseResult } from './report.js';

/** A parity suite: checks every case of one folder in its oracle format. */
export interface Suite {
  readonly name: string;
  /** Where the suite's folder sits below an oracle root such as ../shared/oracle ('' for the root itself). */
  readonly under: string;
  /** Files or folders whose presence marks a folder of this suite's format. */
  readonly marker: string;
  run(folder: string): AsyncIterable<CaseResult>;
}

/** Lazily imported so that one suite's missing module never breaks the others' command. */
export const suiteLoaders: Record<string, () => Promise<Suite>> = {
  model: async () => (await import('./model.js')).suite,
  text: async () => (await import('./text.js')).suite,
  sampling: async () => (await import('./sampling.js')).suite,
  networks: async () => (await import('./networks.js')).suite,
  pipeline: async () => (await import('./pipeline.js')).suite,
  training: async () => (await import('./training.js')).suite,
  lora: async () => (await import('./lora.js')).suite,
};
