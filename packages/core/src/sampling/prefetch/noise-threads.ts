/**
 * The pool of noise threads a process keeps: started on first use, unreferenced (they never hold the process
 * open), each taking one stream at a time. Size: DARKROOM_NOISE_THREADS (0 turns prefetching off), else one less
 * than the cores the process may use, at least 1 and at most 4.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { STATUS_READY } from './noise-protocol.js';

/** A loaded thread as a run gets it: jobs go to `worker`, results come back on `results`. */
export interface NoiseThreadHandle {
  readonly worker: Worker;
  /** The thread's result port for its whole life (read with receiveMessageOnPort; never listened to). */
  readonly results: MessagePort;
}

interface NoiseThread extends NoiseThreadHandle {
  readonly status: Int32Array;
  busy: boolean;
  dead: boolean;
}

export function noiseThreadCount(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.DARKROOM_NOISE_THREADS;
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    return Number.isInteger(n) && n >= 0 ? Math.min(n, 16) : 0;
  }
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/** The thread's entry, next to this module (TypeScript sources run through tsx, which a thread must register). */
function startThread(status: SharedArrayBuffer, results: MessagePort): Worker {
  const here = import.meta.url;
  const entry = new URL(here.endsWith('.ts') ? './noise-worker.ts' : './noise-worker.js', here);
  const register = here.endsWith('.ts') ? `await (await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})).register();` : '';
  const source = `(async () => { ${register} await import(${JSON.stringify(entry.href)}); })().catch(() => process.exit(1));`;
  return new Worker(source, { eval: true, workerData: { status, results }, transferList: [results] });
}

export class NoiseThreads {
  private readonly threads: NoiseThread[] = [];
  private started = false;

  constructor(readonly size: number) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.size; i++) {
      const status = new SharedArrayBuffer(4);
      const { port1, port2 } = new MessageChannel();
      let worker: Worker;
      try {
        worker = startThread(status, port2);
      } catch {
        port1.close();
        return;
      }
      port1.unref();
      const thread: NoiseThread = { worker, results: port1, status: new Int32Array(status), busy: false, dead: false };
      worker.on('error', () => (thread.dead = true));
      worker.on('exit', () => (thread.dead = true));
      worker.unref();
      this.threads.push(thread);
    }
  }

  /** Starts the threads if needed and waits (at most `timeoutMs`) until they have loaded. */
  async ready(timeoutMs = 10_000): Promise<void> {
    this.start();
    const until = Date.now() + timeoutMs;
    while (this.threads.some((t) => !t.dead && Atomics.load(t.status, STATUS_READY) === 0) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Up to `n` loaded idle threads, now busy until released. */
  acquire(n: number): NoiseThreadHandle[] {
    const out: NoiseThreadHandle[] = [];
    for (const t of this.threads) {
      if (out.length >= n) break;
      if (t.busy || t.dead || Atomics.load(t.status, STATUS_READY) === 0) continue;
      t.busy = true;
      out.push(t);
    }
    return out;
  }

  release(handle: NoiseThreadHandle): void {
    const t = this.threads.find((x) => x.worker === handle.worker);
    if (t) t.busy = false;
  }
}

let shared: NoiseThreads | undefined;

/** The process's pool; undefined when prefetching is off (DARKROOM_NOISE_THREADS=0). */
export function noiseThreads(): NoiseThreads | undefined {
  const size = noiseThreadCount();
  if (size === 0) return undefined;
  shared ??= new NoiseThreads(size);
  return shared;
}
