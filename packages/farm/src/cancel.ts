import type { Redis } from 'ioredis';
import type { FarmKeys } from './keys.js';

/**
 * A cancel must reach whichever worker holds the job (BullMQ's cancelJob only reaches the local process).
 * The API sets a key (seen by a worker that picks the job up later, or polls) and publishes the job id
 * (seen at once by the worker rendering it).
 */
export async function requestCancel(redis: Redis, keys: FarmKeys, jobId: string, ttlS: number): Promise<void> {
  await redis.set(keys.cancel(jobId), String(Date.now()), 'EX', ttlS);
  await redis.publish(keys.cancelChannel, jobId);
}

export async function isCancelRequested(redis: Redis, keys: FarmKeys, jobId: string): Promise<boolean> {
  return (await redis.exists(keys.cancel(jobId))) === 1;
}

/** One subscriber connection per worker process; handlers are registered per running job. */
export class CancelListener {
  private readonly handlers = new Map<string, () => void>();

  private constructor(private readonly sub: Redis) {}

  static async open(subscriber: Redis, keys: FarmKeys): Promise<CancelListener> {
    const listener = new CancelListener(subscriber);
    subscriber.on('message', (_channel: string, jobId: string) => listener.handlers.get(jobId)?.());
    await subscriber.subscribe(keys.cancelChannel);
    return listener;
  }

  watch(jobId: string, onCancel: () => void): () => void {
    this.handlers.set(jobId, onCancel);
    return () => {
      if (this.handlers.get(jobId) === onCancel) this.handlers.delete(jobId);
    };
  }

  async close(): Promise<void> {
    this.handlers.clear();
    await this.sub.quit().catch(() => undefined);
  }
}
