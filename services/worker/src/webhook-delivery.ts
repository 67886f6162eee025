import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  deliverWebhook, DeliveryError, SsrfError, tenantWebhookSecret, type FarmConfig, type FarmKeys, type Logger, type WebhookJobData,
} from '@darkroom/farm';
import type { WorkerMetrics } from './metrics.js';

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

/** The `webhooks` queue's processor: one signed POST per attempt, every attempt recorded in the job's delivery log. */
export function webhookProcessor(ctx: {
  cfg: FarmConfig;
  redis: Redis;
  keys: FarmKeys;
  masterSecret: string;
  metrics: WorkerMetrics;
  log: Logger;
}) {
  return async (job: Job<WebhookJobData>): Promise<{ status: number }> => {
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
      ctx.metrics.webhooks.inc({ result: 'delivered' });
      return { status: res.status };
    } catch (e) {
      const status = e instanceof DeliveryError ? e.status : null;
      await record({ ok: false, status, error: (e as Error).message });
      ctx.log.warn({ jobId: d.jobId, messageId: d.messageId, attempt: job.attemptsMade + 1, err: (e as Error).message }, 'webhook delivery failed');
      if (e instanceof SsrfError) {
        ctx.metrics.webhooks.inc({ result: 'forbidden' });
        throw new UnrecoverableError(`${e.code}: ${e.message}`);
      }
      ctx.metrics.webhooks.inc({ result: 'retry' });
      throw e;
    }
  };
}
