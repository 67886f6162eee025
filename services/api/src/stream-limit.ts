import { FarmError } from '@darkroom/farm';

/**
 * Event streams (SSE) a tenant holds open at once on this API process. Streams no longer cost a Redis connection
 * each, but each still holds a socket and a reader here, so one tenant opening thousands cannot starve the rest.
 */
export class TenantStreamLimit {
  private readonly open = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Takes a slot for `tenant` or refuses with 429 TOO_MANY_STREAMS; the returned function gives it back (once). */
  acquire(tenant: string): () => void {
    const n = this.open.get(tenant) ?? 0;
    if (n >= this.max) {
      throw new FarmError('TOO_MANY_STREAMS', 429,
        `this tenant already has ${n} event streams open (SSE_MAX_STREAMS_PER_TENANT=${this.max}); close one, or poll GET /v1/jobs/:id`);
    }
    this.open.set(tenant, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(tenant) ?? 1) - 1;
      if (left <= 0) this.open.delete(tenant);
      else this.open.set(tenant, left);
    };
  }

  count(tenant: string): number {
    return this.open.get(tenant) ?? 0;
  }
}
