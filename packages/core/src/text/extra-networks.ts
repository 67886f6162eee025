/**
 * A1111 `extra_networks.parse_prompt`: `<name:arg1:arg2>` tags (hypernet, lora, ...) are cut out of the text
 * that gets encoded; the infotext keeps the original prompt.
 */

const EXTRA_NET_RE = /<([\p{L}\p{N}_]+):([^>]+)>/gu;

export interface ExtraNetworkPrompt {
  /** The prompt without the tags (surrounding whitespace untouched, as upstream). */
  readonly prompt: string;
  /** Per network kind, the argument lists in prompt order: `<hypernet:anime:0.8>` -> hypernet: [['anime', '0.8']]. */
  readonly networks: ReadonlyMap<string, string[][]>;
}

export function parseExtraNetworks(prompt: string): ExtraNetworkPrompt {
  const networks = new Map<string, string[][]>();
  const stripped = prompt.replace(EXTRA_NET_RE, (_m, name: string, args: string) => {
    const list = networks.get(name) ?? [];
    list.push(args.split(':'));
    networks.set(name, list);
    return '';
  });
  return { prompt: stripped, networks };
}

/** `parse_prompts`: every prompt stripped; the networks are those of the first prompt (upstream's rule). */
export function parseExtraNetworksOfBatch(prompts: readonly string[]): { prompts: string[]; networks: ReadonlyMap<string, string[][]> } {
  const parsed = prompts.map(parseExtraNetworks);
  return { prompts: parsed.map((p) => p.prompt), networks: parsed[0]?.networks ?? new Map() };
}
