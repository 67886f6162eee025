import type { Redis } from 'ioredis';
import type { AttentionMemory } from '@darkroom/core/pipeline/memory-estimate.js';
import type { FarmKeys } from './keys.js';

/** What a worker or trainer says about itself with every heartbeat. */
export interface WorkerAdvert {
  readonly name: string;
  readonly queue: string;
  /** Peak memory it takes jobs up to (WORKER_MEMORY_BUDGET). */
  readonly budgetBytes: number;
  /** How its attention holds scores, which decides what a job of a given size needs on it. */
  readonly attention: AttentionMemory;
  /** MEMORY_MODE medvram or lowvram: one component's sessions resident at a time (absent in adverts of older workers). */
  readonly oneSessionResident?: boolean;
  /** 2 for WEIGHTS_DTYPE=float16 (absent: 4, float32). */
  readonly bytesPerWeight?: number;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: string;
  /** The job in hand, null when idle. */
  readonly job: string | null;
  /**
   * Routing keys (warm-routing.ts) of the checkpoints its engine holds loaded, most recently used first: jobs naming
   * one of them are preferred here. Absent in adverts of trainers and older workers (nothing held).
   */
  readonly models?: readonly string[];
  /** Resident memory of the process at this heartbeat (render threads included): `/sdapi/v1/memory`'s used RAM. */
  readonly rssBytes?: number;
}

/** A heartbeat lives three intervals: one late refresh is not a death, three are. */
export const HEARTBEAT_TTL_INTERVALS = 3;
/** Names whose last heartbeat is this old are dropped from a queue's index. */
const INDEX_RETENTION_MS = 24 * 3600_000;

/**
 * A process's liveness in Redis: a key holding its advert with a TTL, refreshed every interval, and its name in the
 * queue's index so the API can list them. A process that dies stops refreshing and its key expires; one that stops
 * cleanly deletes it at once.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private advert: WorkerAdvert;

  constructor(
    private readonly redis: Redis,
    private readonly keys: FarmKeys,
    advert: WorkerAdvert,
    private readonly intervalMs: number,
    private readonly onError: (e: Error) => void,
  ) {
    this.advert = advert;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(this.onError), this.intervalMs);
    this.timer.unref();
  }

  /**
   * The job in hand goes out at once (not at the next interval): other workers read it to route jobs to idle
   * warm workers, and a start or an end seconds stale would route jobs to a busy one.
   */
  setJob(job: string | null): void {
    this.update({ job });
  }

  /** Changes the advert and sends it now; a failure is reported and the next interval sends it again. */
  update(change: Partial<Pick<WorkerAdvert, 'job' | 'models'>>): void {
    this.advert = { ...this.advert, ...change };
    if (this.timer) void this.beat().catch(this.onError);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const { queue, name } = this.advert;
    await this.redis.multi().del(this.keys.heartbeat(queue, name)).zrem(this.keys.heartbeats(queue), name).exec();
  }

  private async beat(): Promise<void> {
    const { queue, name } = this.advert;
    const advert: WorkerAdvert = { ...this.advert, rssBytes: process.memoryUsage.rss() };
    await this.redis.multi()
      .set(this.keys.heartbeat(queue, name), JSON.stringify(advert), 'PX', this.intervalMs * HEARTBEAT_TTL_INTERVALS)
      .zadd(this.keys.heartbeats(queue), Date.now(), name)
      .exec();
  }
}

/** The processes on `queue` whose heartbeat has not expired. */
export async function liveWorkers(redis: Redis, keys: FarmKeys, queue: string): Promise<WorkerAdvert[]> {
  const index = keys.heartbeats(queue);
  await redis.zremrangebyscore(index, '-inf', String(Date.now() - INDEX_RETENTION_MS));
  const names = await redis.zrange(index, '0', '-1');
  if (names.length === 0) return [];
  const adverts = await redis.mget(names.map((n) => keys.heartbeat(queue, n)));
  return adverts.filter((a): a is string => a !== null).map((a) => JSON.parse(a) as WorkerAdvert);
}
