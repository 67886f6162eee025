import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { eventLoopDelayGauge } from '@darkroom/farm';

export function createWorkerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'darkroom_worker_' });
  return {
    registry,
    handedBack: new Counter({ name: 'darkroom_worker_jobs_handed_back_total', help: 'jobs this worker handed back because its memory budget could not hold them', registers: [registry] }),
    routedAway: new Counter({
      name: 'darkroom_worker_jobs_routed_away_total', help: 'jobs this worker handed back for a worker holding their checkpoint loaded (to an idle one, or out of sight while busy ones finish)',
      labelNames: ['to'] as const, registers: [registry],
    }),
    batchedJobs: new Counter({ name: 'darkroom_worker_batched_jobs_total', help: 'jobs this worker rendered in the UNet batch of another job it claimed (BATCH_MAX)', registers: [registry] }),
    modelLoads: new Counter({ name: 'darkroom_worker_model_loads_total', help: 'jobs whose named checkpoint the engine did not hold loaded when the job started', registers: [registry] }),
    workersLost: new Counter({ name: 'darkroom_worker_lost_total', help: 'jobs this worker found stalled: the worker that held each stopped renewing its lock', registers: [registry] }),
    jobs: new Counter({ name: 'darkroom_worker_jobs_total', help: 'generate jobs finished by this worker, by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    jobDuration: new Histogram({
      name: 'darkroom_worker_job_duration_seconds', help: 'time from job start to outputs written', labelNames: ['kind'] as const,
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600], registers: [registry],
    }),
    stepDuration: new Histogram({
      name: 'darkroom_worker_step_duration_seconds', help: 'time per sampler step',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20], registers: [registry],
    }),
    cache: new Counter({ name: 'darkroom_worker_cache_requests_total', help: 'asset cache lookups', labelNames: ['cache', 'result'] as const, registers: [registry] }),
    webhooks: new Counter({ name: 'darkroom_webhook_deliveries_total', help: 'webhook delivery attempts, by result', labelNames: ['result'] as const, registers: [registry] }),
    eventLoop: eventLoopDelayGauge(registry, 'darkroom_worker_event_loop_delay_seconds'),
  };
}
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
