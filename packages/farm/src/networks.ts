/** Hypernetwork names a prompt selects with A1111's `<hypernet:name:multiplier>` extra-network tags. */
export function hypernetTags(...prompts: string[]): string[] {
  const names = new Set<string>();
  for (const p of prompts) {
    for (const m of p.matchAll(/<hypernet:([^:>]+)(?::[^>]*)?>/g)) names.add(m[1]!.trim());
  }
  return [...names];
}
