import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FarmQueues } from '@darkroom/farm';

export function createApiMetrics(queues: () => FarmQueues | undefined) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'darkroom_api_' });
  const states = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
  return {
    registry,
    http: new Histogram({
      name: 'darkroom_http_request_duration_seconds', help: 'HTTP request durations', labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120], registers: [registry],
    }),
    submitted: new Counter({ name: 'darkroom_jobs_submitted_total', help: 'generate jobs accepted', labelNames: ['kind', 'source'] as const, registers: [registry] }),
    cacheRequests: new Counter({
      name: 'darkroom_api_cache_requests_total', help: 'checkpoint lookups in the API\'s cache (for /sdapi/v1/create/*)', labelNames: ['cache', 'result'] as const,
      registers: [registry],
    }),
    queueJobs: new Gauge({
      name: 'darkroom_queue_jobs', help: 'jobs per queue and BullMQ state', labelNames: ['queue', 'state'] as const, registers: [registry],
      async collect() {
        const q = queues();
        if (!q) return;
        for (const queue of [q.generate, q.train, q.webhooks]) {
          const c = await queue.getJobCounts(...states);
          for (const s of states) this.set({ queue: queue.name, state: s }, c[s] ?? 0);
        }
      },
    }),
    backlog: new Gauge({
      name: 'darkroom_queue_backlog', help: 'jobs waiting for a worker: waiting + prioritized + delayed (the autoscaling signal)',
      labelNames: ['queue'] as const, registers: [registry],
      async collect() {
        const q = queues();
        if (!q) return;
        for (const queue of [q.generate, q.train, q.webhooks]) {
          const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
          this.set({ queue: queue.name }, (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0));
        }
      },
    }),
  };
}
export type ApiMetrics = ReturnType<typeof createApiMetrics>;
