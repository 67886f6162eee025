/**
 * The training thread: the one place the trainer touches the engine (packages/core). It runs inside a
 * worker_threads thread started by train-host.ts and reads the shared stop flag after every optimizer step.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Engine } from '@darkroom/core/pipeline/engine.js';
import { threadFailure } from '@darkroom/core/errors.js';
import { runTrainingSession } from './training-session.js';
import { STOP_NONE, type CheckpointMessage, type HostMessage, type ThreadMessage, type TrainRequest } from './train-protocol.js';

const port = parentPort!;
const config = workerData as { provider: 'cpu' | 'cuda'; modelCacheBytes: number; cacheDir: string; fallbackToCpu: boolean };

function post(m: ThreadMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

/** One Engine for the thread's lifetime: loaded checkpoints stay cached between trainings (MODEL_CACHE_BYTES). */
const engine = new Engine({
  cacheDir: config.cacheDir,
  provider: config.provider,
  fallbackToCpu: config.fallbackToCpu,
  memoryBudgetBytes: config.modelCacheBytes,
});

/** Checkpoints waiting for the main thread to store them, by sequence number. */
const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

function buffersOf(m: CheckpointMessage): ArrayBuffer[] {
  const all = [m.checkpoint, ...m.files.map((f) => f.bytes)].map((b) => b.buffer);
  // Transfer only buffers a view owns whole and that are not shared between views.
  return [...new Set(all)].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}

async function train(id: number, request: TrainRequest, stopFlag: SharedArrayBuffer): Promise<void> {
  const flag = new Int32Array(stopFlag);
  try {
    const result = await runTrainingSession(engine, config.provider, request, {
      step: (m) => post({ type: 'step', id, ...m }),
      rollback: (m) => post({ type: 'rollback', id, ...m }),
      preview: (step, png, infotext) => post({ type: 'preview', id, step, png, infotext }),
      store: (m) => new Promise<void>((resolve, reject) => {
        pending.set(m.seq, { resolve, reject });
        post({ type: 'checkpoint', id, ...m }, buffersOf(m));
      }),
      stopRequested: () => Atomics.load(flag, 0) !== STOP_NONE,
    });
    post({ type: 'done', id, ...result });
  } catch (e) {
    // A DarkroomError is the engine refusing this training on purpose (diverged, bad parameters, unreadable
    // file): a retry would refuse again. Anything else may be transient (out of memory, a lost device).
    post({ type: 'error', id, ...threadFailure(e, 'TRAINING_FAILED') });
  } finally {
    for (const p of pending.values()) p.reject(new Error('training ended'));
    pending.clear();
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (m: HostMessage) => {
  if (m.type === 'stored') {
    const p = pending.get(m.seq);
    pending.delete(m.seq);
    if (m.error === undefined) p?.resolve();
    else p?.reject(new Error(`checkpoint ${m.seq} was not stored: ${m.error}`));
    return;
  }
  if (m.type === 'shutdown') {
    void queue.then(() => engine.close()).finally(() => process.exit(0));
    return;
  }
  queue = queue.then(() => train(m.id, m.request, m.stopFlag));
});

post({ type: 'ready', engine: `packages/core (${config.provider})` });
