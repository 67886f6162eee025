import { DelayedError, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  checkpointIdentity, fitsBudget, heldKeys, liveWorkers, QUEUE_NAMES, routeJob, type AssetRegistry, type CheckpointFile, type WorkerConfig,
  type FarmKeys, type GenerateJobData, type Heartbeat, type Logger,
} from '@darkroom/farm';

/**
 * After handing a job to an idle warm worker, the claimer waits this long before asking for work again, so the
 * idle worker (already blocked waiting for a job, woken by the marker returnToQueue adds) is the one that takes it.
 */
export const HANDOFF_PAUSE_MS = 150;

/**
 * Puts a claimed job back in the queue without using an attempt: for an idle warm worker at the front of the
 * queue (of its priority), so the next worker to ask for work gets this job and not the one behind it; for busy
 * warm workers out of sight for `delayMs`. The caller throws `WaitingError` or `DelayedError` respectively, which
 * BullMQ's worker takes as "moved elsewhere".
 *
 * Why the front: two warm workers that each claimed the other's job both hand back at once. Put at the back (a
 * delayed job is promoted behind the waiting ones), each job lands behind the other, and the worker whose pause
 * ends first claims the job it just saw go by: the other's again, until the routing bound runs out. At the front,
 * whichever worker asks first gets the job handed back last, which it either holds or hands back once more to
 * the worker about to ask.
 */
export async function returnToQueue(
  redis: Pick<Redis, 'zadd'>,
  job: Job,
  token: string | undefined,
  to: 'idle' | 'busy',
  delayMs: number,
  now: number,
): Promise<void> {
  if (to === 'busy') {
    await job.moveToDelayed(now + delayMs, token);
    return;
  }
  await job.moveToWait(token);
  await wakeBlockedWorkers(redis, job);
}

/**
 * Adds the queue's base marker, the entry a drained BullMQ worker's blocking fetch (BZPOPMIN on the marker) wakes
 * on. BullMQ's move from active to wait adds it for a job without a priority but not for a prioritized one (it
 * re-adds the job to the prioritized set only; bullmq 6.7's moveJobFromActiveToWait), and every farm job has a
 * priority (fair share). Without it the idle warm worker the job was handed to sleeps through it until its block
 * times out (drainDelay, 5 s) while the claimer keeps taking the job back and handing it over. The marker is the
 * one BullMQ itself adds when a job becomes available (score 0, member "0"); a spare one only costs a worker an
 * empty fetch.
 */
async function wakeBlockedWorkers(redis: Pick<Redis, 'zadd'>, job: Job): Promise<void> {
  await redis.zadd(`${job.queueQualifiedName}:marker`, 0, '0');
}

/**
 * What this worker's engine holds loaded, as routing keys: the render thread reports its loaded checkpoint paths
 * after every render, and the paths map to keys through the checkpoints this worker resolved. A change goes out
 * in the heartbeat at once.
 */
export class WarmModels {
  private readonly keyOfPath = new Map<string, string>();
  private loadedPaths: string[] = [];
  private keys: string[] = [];

  constructor(private readonly heartbeat: Pick<Heartbeat, 'update'>) {}

  /** The keys of the checkpoints loaded now, most recently used first. */
  get held(): readonly string[] {
    return this.keys;
  }

  /** A job's checkpoint was resolved to this file (its path is what the engine reports). */
  resolved(file: CheckpointFile): void {
    this.keyOfPath.set(file.path, file.sha256);
  }

  /** The render thread's report after a render. */
  engineHolds(paths: readonly string[]): void {
    this.loadedPaths = [...paths];
    this.refresh();
  }

  private refresh(): void {
    const next = heldKeys(this.loadedPaths, this.keyOfPath);
    if (next.length === this.keys.length && next.every((k, i) => k === this.keys[i])) return;
    this.keys = next;
    this.heartbeat.update({ models: next });
  }
}

export interface RouteContext {
  redis: Redis;
  keys: FarmKeys;
  cfg: Pick<WorkerConfig, 'warmRouting' | 'warmRoutingWaitMs' | 'warmRoutingRetryMs' | 'modelsDir'>;
  registry: AssetRegistry;
  workerName: string;
  warm: WarmModels;
  log: Logger;
  onHandBack: (to: 'idle' | 'busy') => void;
}

/**
 * Warm routing at claim time (packages/farm/src/warm-routing.ts): returns when this worker should render the job;
 * otherwise hands it back (BullMQ's DelayedError path, no attempt used up) for a worker that holds its checkpoint.
 */
export async function routeOrHandBack(ctx: RouteContext, job: Job<GenerateJobData>, token: string | undefined): Promise<void> {
  if (!ctx.cfg.warmRouting) return;
  const data = job.data;
  // A name that no longer resolves is the render's to report (MODEL_NOT_FOUND), not routing's.
  const key = await checkpointIdentity({ registry: ctx.registry, modelsDir: ctx.cfg.modelsDir }, data.tenant, data.request.model).catch(() => null);
  if (key === null || ctx.warm.held.includes(key)) return;
  const routingKey = ctx.keys.routing(job.id!);
  const [first, live] = await Promise.all([ctx.redis.get(routingKey), liveWorkers(ctx.redis, ctx.keys, QUEUE_NAMES.generate)]);
  const now = Date.now();
  const decision = routeJob({
    key, self: ctx.workerName, held: ctx.warm.held, live, fits: (w) => fitsBudget(data, w),
    firstHandBackAt: first === null ? null : Number(first), now,
    policy: { waitMs: ctx.cfg.warmRoutingWaitMs, retryMs: ctx.cfg.warmRoutingRetryMs },
  });
  if (decision.action === 'take') {
    if (decision.reason === 'waited-enough') ctx.log.info({ waitedMs: now - Number(first) }, 'no warm worker took the job in time; rendering it here');
    else ctx.log.debug({ reason: decision.reason, live: live.map((w) => ({ name: w.name, models: w.models ?? [], job: w.job })) }, 'job taken without its checkpoint loaded');
    return;
  }
  // The first hand-back starts the bound; the key outlives it so a late claim still sees the wait is over.
  await ctx.redis.set(routingKey, String(now), 'PX', ctx.cfg.warmRoutingWaitMs + 3600_000, 'NX');
  ctx.log.debug({ to: decision.to, workers: decision.workers }, 'job handed back for a worker that holds its checkpoint');
  ctx.onHandBack(decision.to);
  await returnToQueue(ctx.redis, job, token, decision.to, decision.delayMs, now);
  if (decision.to === 'busy') throw new DelayedError();
  await new Promise((r) => setTimeout(r, HANDOFF_PAUSE_MS));
  throw new WaitingError();
}
