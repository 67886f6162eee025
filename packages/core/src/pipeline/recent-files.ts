/**
 * Parsed network files (embeddings, hypernetworks, LoRAs) an engine keeps for its next jobs, by path: at most
 * `limit` of each kind, the least recently used dropped first, so a long-lived worker that meets many different
 * files does not keep every one it has ever parsed. A Map, so the loaders' memo code takes it unchanged.
 */
export class RecentFiles<V> extends Map<string, V> {
  constructor(private readonly limit: number) {
    super();
  }

  override get(key: string): V | undefined {
    const v = super.get(key);
    if (v !== undefined) {
      // re-inserted at the end: Map iteration order is insertion order, so the first key is the least recent
      super.delete(key);
      super.set(key, v);
    }
    return v;
  }

  override set(key: string, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.limit) {
      const oldest = this.keys().next().value as string;
      super.delete(oldest);
    }
    return this;
  }
}
