/**
 * The farm's own overhead: jobs per second through API -> Redis -> worker on the tiny demo model at one
 * sampler step (so queueing, HTTP, storage and events dominate), the latency from POST to a worker starting
 * the job (p50/p99, on an idle farm and under a backlog) with 1, 2 and 4 worker processes, and the event-loop
 * delay of a worker's main thread while it renders, against BullMQ's lock renewal interval.
 *
 *   npm run bench -- farm-throughput -- --jobs 60 --workers 1,2,4 --render-steps 200
 *
 * Needs Redis at REDIS_URL / 127.0.0.1:6379 (scripts/ensure-redis.sh). Processes are the real services.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { Engine } from '../packages/core/src/pipeline/index.js';
import { listArg, numberArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { startFarm, waitFor, type Farm } from '../test/support/farm.js';

const argv = process.argv.slice(2);
const JOBS = numberArg(argv, 'jobs', 60);
const IDLE_JOBS = numberArg(argv, 'idle-jobs', 30);
const WORKERS = listArg(argv, 'workers', ['1', '2', '4']).map(Number);
const SIZE = numberArg(argv, 'size', 64);
const RENDER_STEPS = numberArg(argv, 'render-steps', 200);
const LOCK_DURATION_MS = 30_000;
const JOB = { prompt: 'a lighthouse on a cliff, (stormy sky:1.2)', steps: 1, width: SIZE, height: SIZE, seed: 1 };

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function submit(farm: Farm, body: object): Promise<string> {
  const r = await farm.request('POST', '/v1/txt2img', { body });
  if (r.status !== 202) throw new Error(`submit: ${r.status} ${JSON.stringify(r.json)}`);
  return (r.json as { id: string }).id;
}

async function finished(queue: Queue, ids: readonly string[]): Promise<{ timestamp: number; processedOn: number; finishedOn: number }[]> {
  return waitFor('jobs finished', async () => {
    const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
    if (jobs.some((j) => !j?.finishedOn)) return null;
    if (jobs.some((j) => j!.failedReason)) throw new Error(`a job failed: ${jobs.find((j) => j!.failedReason)!.failedReason}`);
    return jobs.map((j) => ({ timestamp: j!.timestamp, processedOn: j!.processedOn!, finishedOn: j!.finishedOn! }));
  }, 600_000, 25);
}

async function scrapeLoopDelay(port: number): Promise<{ p50: number; p99: number; max: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const get = (stat: string) => Number(new RegExp(`darkroom_worker_event_loop_delay_seconds\\{stat="${stat}"\\} ([0-9.e+-]+)`).exec(text)?.[1] ?? NaN) * 1000;
  return { p50: get('p50'), p99: get('p99'), max: get('max') };
}

async function runFarm(workers: number): Promise<{ row: Row; loop?: { p50: number; p99: number; max: number; renderMs: number } }> {
  const farm = await startFarm({ workers, env: { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn', LOCK_DURATION_MS: String(LOCK_DURATION_MS) } });
  const queue = new Queue('generate', { connection: farm.redis, prefix: farm.prefix });
  try {
    // Warm-up: every worker generates/loads the demo model and compiles its graphs once.
    await finished(queue, await Promise.all(Array.from({ length: workers * 2 }, () => submit(farm, JOB))));

    // Idle farm: one job at a time, so POST -> start is pure dispatch latency.
    const idle: number[] = [];
    for (let i = 0; i < IDLE_JOBS; i++) {
      const [j] = await finished(queue, [await submit(farm, JOB)]);
      idle.push(j!.processedOn - j!.timestamp);
    }

    // Backlog: all jobs at once, as fast as the API takes them.
    const t0 = Date.now();
    const ids: string[] = [];
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (ids.length < JOBS) {
        ids.push('');
        ids[ids.length - 1] = await submit(farm, JOB);
      }
    }));
    const loaded = await finished(queue, ids.filter(Boolean));
    const wall = (Math.max(...loaded.map((j) => j.finishedOn)) - t0) / 1000;
    const waits = loaded.map((j) => j.processedOn - j.timestamp);
    const row: Row = {
      workers, jobs: loaded.length, jobsPerS: loaded.length / wall,
      idleP50: percentile(idle, 50), idleP99: percentile(idle, 99),
      loadedP50: percentile(waits, 50), loadedP99: percentile(waits, 99),
      renderMed: percentile(loaded.map((j) => j.finishedOn - j.processedOn), 50),
    };

    let loop;
    if (workers === 1) {
      const w = farm.workers[0]!;
      await scrapeLoopDelay(w.port); // resets the window
      const [j] = await finished(queue, [await submit(farm, { ...JOB, steps: RENDER_STEPS })]);
      loop = { ...(await scrapeLoopDelay(w.port)), renderMs: j!.finishedOn - j!.processedOn };
    }
    return { row, loop };
  } finally {
    await queue.close();
    await farm.stop();
  }
}

/** The same render on the calling thread, as a worker without a render thread would run it. */
async function inlineLoopDelay(): Promise<{ max: number; p99: number; engineMsPerJob: number }> {
  const engine = new Engine();
  await engine.txt2img({ ...JOB });
  // The engine alone on the same job, for how much of a job's run time is the farm's.
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    await engine.txt2img({ ...JOB });
    times.push(performance.now() - t);
  }
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  await engine.txt2img({ ...JOB, steps: RENDER_STEPS });
  h.disable();
  await engine.close();
  return { max: h.max / 1e6, p99: h.percentile(99) / 1e6, engineMsPerJob: percentile(times, 50) };
}

const rows: Row[] = [];
let loop: { p50: number; p99: number; max: number; renderMs: number } | undefined;
for (const n of WORKERS) {
  const r = await runFarm(n);
  rows.push(r.row);
  loop ??= r.loop;
}
const inline = await inlineLoopDelay();

printTable(`Farm throughput (tiny model, 1 step, ${SIZE}x${SIZE}; latency = POST -> worker starts the job, ms)`, [
  { key: 'workers', label: 'workers', digits: 0 },
  { key: 'jobs', label: 'jobs', digits: 0 },
  { key: 'jobsPerS', label: 'jobs/s', digits: 2 },
  { key: 'idleP50', label: 'idle p50', digits: 0 },
  { key: 'idleP99', label: 'idle p99', digits: 0 },
  { key: 'loadedP50', label: 'backlog p50', digits: 0 },
  { key: 'loadedP99', label: 'backlog p99', digits: 0 },
  { key: 'renderMed', label: 'job run med', digits: 0 },
], rows);
console.log(`engine alone, same 1-step job, in-process: ${inline.engineMsPerJob.toFixed(0)} ms (median of 10)`);
const loopRows: Row[] = [
  { where: 'worker main thread (engine in render thread)', p99: loop?.p99 ?? null, max: loop?.max ?? null, renewal: LOCK_DURATION_MS / 2 },
  { where: 'engine on the calling thread (for contrast)', p99: inline.p99, max: inline.max, renewal: LOCK_DURATION_MS / 2 },
];
printTable(`Event-loop delay while rendering ${RENDER_STEPS} steps (ms) vs BullMQ lock renewal interval`, [
  { key: 'where', label: 'thread' },
  { key: 'p99', label: 'p99', digits: 1 },
  { key: 'max', label: 'max', digits: 1 },
  { key: 'renewal', label: 'renewal every', digits: 0 },
], loopRows);
const file = writeResult({
  bench: 'farm-throughput',
  date: new Date().toISOString(),
  machine: machineInfo('cpu'),
  parameters: { jobs: JOBS, idleJobs: IDLE_JOBS, workers: WORKERS, size: SIZE, steps: 1, renderSteps: RENDER_STEPS, lockDurationMs: LOCK_DURATION_MS },
  rows,
  eventLoop: { worker: loop, inline, renderRenewalIntervalMs: LOCK_DURATION_MS / 2 },
  notes: [
    'idle: one job at a time on an idle farm; backlog: all jobs submitted at once (includes queueing behind other jobs).',
    'Worker processes share the host CPU with the API and Redis; on a 2-core host more workers contend for the same cores.',
  ],
});
console.log(`wrote ${file}`);
process.exit(0);
