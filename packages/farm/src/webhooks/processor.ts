import { DelayedError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobRunnerConfig } from '../config.js';
import { jobFailure, type WebhookJobData } from '../jobs.js';
import type { FarmKeys } from '../keys.js';
import type { Logger } from '../logger.js';
import { deliverWebhook, DeliveryError } from './deliver.js';
import { tenantWebhookSecret } from './signing.js';
import { SsrfError } from './ssrf.js';
import { acquireTenantSlot } from './tenant-slots.js';

export interface DeliveryLogEntry {
  message_id: string;
  event: string;
  attempt: number;
  at: string;
  ok: boolean;
  status: number | null;
  duration_ms: number;
  error: string | null;
}

const LOG_MAX = 200;

/** The metrics counter of delivery attempts by result (a prom-client Counter fits). */
export interface DeliveryCounter {
  inc(labels: { result: string }): void;
}

/** How long a delivery waits when its tenant has every slot in use, before it is offered again (plus jitter). */
export const TENANT_BUSY_DELAY_MS = 500;

/**
 * The `webhooks` queue's processor: one signed POST per attempt, every attempt recorded in the job's delivery log.
 * Generation workers and trainers both run it (WEBHOOK_DELIVERY).
 *
 * A tenant holds at most WEBHOOK_TENANT_CONCURRENCY attempts at once, farm-wide. A delivery of a tenant at its
 * limit goes back to the queue for a moment (BullMQ's DelayedError: no attempt is spent) and frees the process's
 * slot for another tenant's delivery, so one tenant's slow receivers delay only its own messages.
 */
export interface WebhookProcessorContext {
  cfg: JobRunnerConfig;
  redis: Redis;
  keys: FarmKeys;
  masterSecret: string;
  deliveries: DeliveryCounter;
  log: Logger;
}

export function webhookProcessor(ctx: WebhookProcessorContext) {
  return async (job: Job<WebhookJobData>, token?: string): Promise<{ status: number }> => {
    const d = job.data;
    const slot = await acquireTenantSlot(ctx.redis, ctx.keys, d.tenant, ctx.cfg.webhookTenantConcurrency, ctx.cfg.webhookTimeoutMs);
    if (!slot) {
      await job.moveToDelayed(Date.now() + TENANT_BUSY_DELAY_MS + Math.floor(Math.random() * TENANT_BUSY_DELAY_MS / 2), token);
      throw new DelayedError();
    }
    try {
      return await deliverOnce(ctx, job);
    } finally {
      await slot.release().catch((e: Error) => ctx.log.warn({ tenant: d.tenant, err: e.message }, 'could not release a webhook slot; it expires by itself'));
    }
  };
}

async function deliverOnce(ctx: WebhookProcessorContext, job: Job<WebhookJobData>): Promise<{ status: number }> {
  const d = job.data;
  const body = JSON.stringify(d.payload);
  const started = performance.now();
  const record = async (entry: Omit<DeliveryLogEntry, 'message_id' | 'event' | 'attempt' | 'at' | 'duration_ms'>) => {
    const full: DeliveryLogEntry = {
      message_id: d.messageId, event: d.event, attempt: job.attemptsMade + 1, at: new Date().toISOString(),
      duration_ms: Math.round(performance.now() - started), ...entry,
    };
    const key = ctx.keys.deliveries(d.jobId);
    await ctx.redis.multi().rpush(key, JSON.stringify(full)).ltrim(key, -LOG_MAX, -1).expire(key, ctx.cfg.retainFailedS).exec();
  };
  try {
    const res = await deliverWebhook({
      url: d.url, secret: tenantWebhookSecret(ctx.masterSecret, d.tenant), messageId: d.messageId, body,
      allowlist: ctx.cfg.webhookAllowlist, timeoutMs: ctx.cfg.webhookTimeoutMs,
    });
    await record({ ok: true, status: res.status, error: null });
    ctx.deliveries.inc({ result: 'delivered' });
    return { status: res.status };
  } catch (e) {
    const status = e instanceof DeliveryError ? e.status : null;
    await record({ ok: false, status, error: (e as Error).message });
    ctx.log.warn({ jobId: d.jobId, messageId: d.messageId, attempt: job.attemptsMade + 1, err: (e as Error).message }, 'webhook delivery failed');
    if (e instanceof SsrfError) {
      ctx.deliveries.inc({ result: 'forbidden' });
      throw jobFailure(e);
    }
    ctx.deliveries.inc({ result: 'retry' });
    throw e;
  }
}
