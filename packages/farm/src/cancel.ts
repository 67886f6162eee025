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

/** A1111's interrupt and skip: the running render ends its sampling early and keeps what it reached. */
export type StopKind = 'interrupt' | 'skip';

/**
 * Tells the worker running `jobId` to interrupt it (keep the images reached, run no further iteration) or to skip
 * its current iteration. The request is a key the worker takes exactly once (a skip must not skip two iterations),
 * so one sent while the worker is still loading the checkpoint, or lost by pub/sub, is applied when its render
 * starts or at the next poll; the message on the cancel channel (`<kind>:<jobId>`) makes it prompt. An interrupt
 * replaces a pending skip, never the other way round.
 */
export async function requestStop(redis: Redis, keys: FarmKeys, jobId: string, kind: StopKind, ttlS = 3600): Promise<void> {
  if (kind === 'interrupt') await redis.set(keys.stop(jobId), kind, 'EX', ttlS);
  else await redis.set(keys.stop(jobId), kind, 'EX', ttlS, 'NX');
  await redis.publish(keys.cancelChannel, `${kind}:${jobId}`);
}

/** The pending interrupt or skip of a job, taken (deleted) so it is applied once; null when there is none. */
export async function takeStop(redis: Redis, keys: FarmKeys, jobId: string): Promise<StopKind | null> {
  const replies = await redis.multi().get(keys.stop(jobId)).del(keys.stop(jobId)).exec();
  const value = replies?.[0]?.[1];
  return value === 'interrupt' || value === 'skip' ? value : null;
}

export async function isCancelRequested(redis: Redis, keys: FarmKeys, jobId: string): Promise<boolean> {
  return (await redis.exists(keys.cancel(jobId))) === 1;
}

/** One subscriber connection per worker process; handlers are registered per running job. */
export class CancelListener {
  private readonly handlers = new Map<string, () => void>();
  private readonly stops = new Map<string, (kind: StopKind) => void>();

  private constructor(private readonly sub: Redis) {}

  static async open(subscriber: Redis, keys: FarmKeys): Promise<CancelListener> {
    const listener = new CancelListener(subscriber);
    subscriber.on('message', (_channel: string, message: string) => {
      const stop = /^(interrupt|skip):(.+)$/.exec(message);
      if (stop) listener.stops.get(stop[2]!)?.(stop[1] as StopKind);
      else listener.handlers.get(message)?.();
    });
    await subscriber.subscribe(keys.cancelChannel);
    return listener;
  }

  watch(jobId: string, onCancel: () => void, onStop?: (kind: StopKind) => void): () => void {
    this.handlers.set(jobId, onCancel);
    if (onStop) this.stops.set(jobId, onStop);
    return () => {
      if (this.handlers.get(jobId) === onCancel) this.handlers.delete(jobId);
      if (onStop && this.stops.get(jobId) === onStop) this.stops.delete(jobId);
    };
  }

  async close(): Promise<void> {
    this.handlers.clear();
    this.stops.clear();
    await this.sub.quit().catch(() => undefined);
  }
}
