/**
 * A noise thread: computes the draws and Brownian increments a sampler run will ask for, in order, at most
 * `window` ahead of what the sampling thread has taken, and posts each (its buffer transferred) as soon as it
 * is ready. Everything is the same code the sampling thread would run, so the values are the same bits.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { BatchedBrownianTree } from '../kdiffusion/brownian-tree.js';
import { ImageRNG, randnLocal } from '../rng/image-rng.js';
import { CTRL, STATUS_READY, type BrownianJob, type NoiseJob, type NoiseResult, type RngJob } from './noise-protocol.js';

/** Waits until the stream has room for one more result; false when it was cancelled. */
function waitForRoom(ctrl: Int32Array, produced: number, window: number): boolean {
  for (;;) {
    if (Atomics.load(ctrl, CTRL.cancelled) !== 0) return false;
    const consumed = Atomics.load(ctrl, CTRL.consumed);
    if (produced - consumed < window) return true;
    Atomics.wait(ctrl, CTRL.consumed, consumed, 1000);
  }
}

const data = workerData as { status: SharedArrayBuffer; results: MessagePort };
const results = data.results;

function post(ctrl: Int32Array, result: NoiseResult): void {
  results.postMessage(result, result.data ? [result.data.buffer as ArrayBuffer] : []);
  Atomics.add(ctrl, CTRL.produced, 1);
  Atomics.notify(ctrl, CTRL.produced);
}

function runRng(job: RngJob): void {
  const ctrl = new Int32Array(job.ctrl);
  const rng = new ImageRNG(job.opts);
  for (let i = 0; i < job.drawsBefore; i++) rng.skip();
  for (let i = 0; i < job.slots.length; i++) {
    if (!waitForRoom(ctrl, i, job.window)) return;
    if (job.slots[i] === 'skip') {
      rng.skip();
      post(ctrl, { stream: job.stream, index: i, data: null });
    } else {
      post(ctrl, { stream: job.stream, index: i, data: rng.next().data });
    }
  }
}

function runBrownian(job: BrownianJob): void {
  const ctrl = new Int32Array(job.ctrl);
  const tree = new BatchedBrownianTree(job.shape, job.sigmaMin, job.sigmaMax, job.seeds, (seed, shape) => randnLocal(job.source, seed, shape));
  for (let i = 0; i < job.queries.length; i++) {
    if (!waitForRoom(ctrl, i, job.window)) return;
    const [sigma, sigmaNext] = job.queries[i]!;
    post(ctrl, { stream: job.stream, index: i, data: tree.noise(sigma, sigmaNext).data });
  }
}

const status = new Int32Array(data.status);
parentPort!.on('message', (job: NoiseJob) => {
  try {
    if (job.kind === 'rng') runRng(job);
    else runBrownian(job);
  } catch {
    // the sampling thread sees the flag and computes the rest itself
    const ctrl = new Int32Array(job.ctrl);
    Atomics.store(ctrl, CTRL.failed, 1);
    Atomics.add(ctrl, CTRL.produced, 1);
    Atomics.notify(ctrl, CTRL.produced);
  }
});
Atomics.store(status, STATUS_READY, 1);
Atomics.notify(status, STATUS_READY);
