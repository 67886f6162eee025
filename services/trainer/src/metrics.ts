import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { eventLoopDelayGauge } from '@darkroom/farm';

export function createTrainerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'darkroom_trainer_' });
  return {
    registry,
    trainings: new Counter({
      name: 'darkroom_trainer_trainings_total', help: 'training attempts ended by this trainer, by outcome (completed, failed, cancelled, requeued)',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
    stepDuration: new Histogram({
      name: 'darkroom_trainer_step_duration_seconds', help: 'time per optimizer step',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
    }),
    checkpoints: new Counter({ name: 'darkroom_trainer_checkpoints_total', help: 'checkpoints stored, by reason', labelNames: ['reason'] as const, registers: [registry] }),
    rollbacks: new Counter({ name: 'darkroom_trainer_rollbacks_total', help: 'runs rolled back to their last checkpoint after a non-finite loss', registers: [registry] }),
    cache: new Counter({ name: 'darkroom_trainer_cache_requests_total', help: 'asset cache lookups', labelNames: ['cache', 'result'] as const, registers: [registry] }),
    webhooks: new Counter({ name: 'darkroom_webhook_deliveries_total', help: 'webhook delivery attempts, by result', labelNames: ['result'] as const, registers: [registry] }),
    eventLoop: eventLoopDelayGauge(registry, 'darkroom_trainer_event_loop_delay_seconds'),
  };
}
export type TrainerMetrics = ReturnType<typeof createTrainerMetrics>;
