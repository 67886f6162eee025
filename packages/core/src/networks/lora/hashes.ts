/**
 * The `Lora hashes` infotext field (`ExtraNetworkLora.activate` with `lora_add_hashes_to_infotext`) and its
 * reading back (`lora_script.infotext_pasted`): `name: shorthash` per loaded network in prompt order, keyed
 * by the name as the prompt wrote it with `:` and `,` removed; a name used twice appears once.
 */

export const LORA_HASHES_KEY = 'Lora hashes';

export function loraHashesValue(loaded: ReadonlyArray<{ readonly name: string; readonly shorthash: string }>): string | null {
  const entries = new Map<string, string>();
  for (const n of loaded) {
    if (!n.shorthash) continue;
    // A Python dict: a repeated key keeps its first position and takes the last value.
    entries.set(n.name.replaceAll(':', '').replaceAll(',', ''), n.shorthash);
  }
  return entries.size ? [...entries].map(([k, v]) => `${k}: ${v}`).join(', ') : null;
}

/** The name -> shorthash pairs of a `Lora hashes` value. */
export function parseLoraHashes(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of value.split(',')) {
    const i = part.indexOf(':');
    if (i < 0) continue; // A1111 would fail on such an entry; it cannot come from its own infotext
    out.set(part.slice(0, i).trim().replaceAll(',', ''), part.slice(i + 1).trim());
  }
  return out;
}

/**
 * `infotext_pasted`: in a pasted prompt, `<lora:alias:` whose alias the hashes name is rewritten to the alias
 * of the local network with that shorthash (`lookup(shorthash)`), so a renamed file still matches.
 */
export function relinkLoraPrompt(prompt: string, hashes: ReadonlyMap<string, string>, lookup: (shorthash: string) => string | undefined): string {
  return prompt.replace(/<lora:([^:]+):/g, (m, alias: string) => {
    const shorthash = hashes.get(alias);
    if (shorthash === undefined) return m;
    const local = lookup(shorthash);
    return local === undefined ? m : `<lora:${local}:`;
  });
}
