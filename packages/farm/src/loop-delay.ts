import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/**
 * The main thread's event-loop delay since the previous scrape (then reset). Lock renewal, cancel messages and
 * health checks run on that thread: its delay must stay far below BullMQ's renewal interval (lockDuration / 2),
 * which is why the services keep the engine on a thread of its own.
 */
export function eventLoopDelayGauge(registry: Registry, name: string): Gauge<'stat'> {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  return new Gauge({
    name, help: 'main-thread event-loop delay since the previous scrape',
    labelNames: ['stat'] as const, registers: [registry],
    collect() {
      this.set({ stat: 'p50' }, loop.percentile(50) / 1e9);
      this.set({ stat: 'p99' }, loop.percentile(99) / 1e9);
      this.set({ stat: 'max' }, loop.max / 1e9);
      loop.reset();
    },
  });
}
