/**
 * Extra-network tags in prompts (`<hypernet:name:0.8>`, `<lora:name:1>`, any `<kind:args>`), removed from the
 * text that is encoded and returned as data, as A1111's extra_networks.parse_prompt does. The infotext keeps
 * the original prompt.
 */

export interface ExtraNetworkCall {
  /** The tag's kind: 'hypernet', 'lora', ... */
  readonly kind: string;
  /** The ':'-separated arguments: name first, then multipliers as written. */
  readonly items: readonly string[];
}

/** `<(\w+):([^>]+)>`; Python's \w matches Unicode word characters. */
const TAG = /<([\p{L}\p{N}_]+):([^>]+)>/gu;

export function parseExtraNetworks(prompt: string): { text: string; calls: ExtraNetworkCall[] } {
  const calls: ExtraNetworkCall[] = [];
  const text = prompt.replace(TAG, (_m, kind: string, args: string) => {
    calls.push({ kind, items: args.split(':') });
    return '';
  });
  return { text, calls };
}

/** A hypernetwork named in a prompt with its strength (`<hypernet:name>` = 1.0). */
export interface HypernetworkUse {
  readonly name: string;
  readonly multiplier: number;
}

/**
 * A1111's extra_networks_hypernet.activate: every tag in order (the same name twice loads it twice), the
 * multiplier defaults to 1.
 */
export function hypernetworkUses(calls: readonly ExtraNetworkCall[]): HypernetworkUse[] {
  const out: HypernetworkUse[] = [];
  for (const c of calls) {
    if (c.kind !== 'hypernet' || c.items.length === 0) continue;
    out.push({ name: c.items[0]!, multiplier: c.items.length > 1 ? Number(c.items[1]) : 1 });
  }
  return out;
}

/**
 * A1111's parse_prompts: tags are removed from every prompt of the batch, but only the first prompt's tags
 * are activated.
 */
export function parseBatchExtraNetworks(prompts: readonly string[]): { texts: string[]; calls: ExtraNetworkCall[] } {
  const texts: string[] = [];
  let calls: ExtraNetworkCall[] | undefined;
  for (const p of prompts) {
    const r = parseExtraNetworks(p);
    texts.push(r.text);
    calls ??= r.calls;
  }
  return { texts, calls: calls ?? [] };
}
