import { promptHypernetworks } from '@darkroom/core/pipeline/extra-networks.js';

/**
 * Hypernetwork names a prompt selects with A1111's `<hypernet:name:multiplier>` extra-network tags, each once, read
 * by core's tag parser as the pipeline reads them (names as written; a negative prompt's tags activate nothing).
 */
export function hypernetTags(prompt: string): string[] {
  return [...new Set(promptHypernetworks(prompt).map((u) => u.name))];
}
