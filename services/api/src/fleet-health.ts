import type { WorkerAdvert } from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { liveOn, SERVED_QUEUES } from './fleet.js';

/** `models`: routing keys of the checkpoints the worker's engine holds loaded (warm-routing.ts). */
const workerView = (w: WorkerAdvert) => ({
  name: w.name, host: w.host, memory_budget_bytes: w.budgetBytes, attention: w.attention.kind, job: w.job, models: w.models ?? [],
});

const CONSEQUENCE: Readonly<Record<string, string>> = {
  generate: 'synchronous /sdapi/v1 txt2img and img2img answer 503 and /v1 jobs wait in the queue',
  train: 'trainings wait in the queue',
};

/**
 * The live workers and trainers, by queue, for `/healthz`. A queue without any is reported by name with what it
 * means, but the API itself stays healthy (200): it is the API's liveness probe, and a farm scaled to zero still
 * takes asynchronous jobs.
 */
export async function fleetHealth(ctx: ApiContext): Promise<Record<string, unknown>> {
  const workers: Record<string, unknown> = {};
  const without: string[] = [];
  for (const queue of SERVED_QUEUES) {
    const live = await liveOn(ctx, queue);
    workers[queue] = { alive: live.length, workers: live.map(workerView) };
    if (live.length === 0) without.push(queue);
  }
  const message = without.map((q) => `no live worker on the ${q} queue: ${CONSEQUENCE[q] ?? 'its jobs wait in the queue'}`).join('; ');
  return { workers, queues_without_workers: without, ...(message ? { message } : {}) };
}
