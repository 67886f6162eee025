/**
 * Noise computed ahead on other threads while the sampling thread runs the model: a run's per-image draws
 * (ImageRNG.next) and its Brownian-tree increments are known before it starts (noise-plan.ts), so noise threads
 * compute them in order and the sampler only takes each result (a transferred buffer, no copy). onnxruntime's
 * run() blocks the sampling thread for the whole model call, which is when the noise threads work.
 *
 * Exactness: the threads run the same generator and tree code on the same inputs, so every value is the same
 * bits; any call that differs from the plan, and everything after it, is computed on the sampling thread from
 * the generator state the run has reached, as it would be without threads.
 */
import { receiveMessageOnPort } from 'node:worker_threads';
import { float32, type Float32Tensor } from '../../tensor.js';
import { BatchedBrownianTree } from '../kdiffusion/brownian-tree.js';
import type { ImageRNG, NoiseSource } from '../rng/image-rng.js';
import type { BrownianNoiseFactory, NoiseSampler, Sampler } from '../types.js';
import { planNoise } from './noise-plan.js';
import { CTRL, CTRL_WORDS, type BrownianJob, type NoiseJob, type NoiseResult, type RngJob } from './noise-protocol.js';
import { noiseThreads, type NoiseThreadHandle, type NoiseThreads } from './noise-threads.js';

/** How far a thread may run ahead of the sampler (results held at once per stream). */
const WINDOW = 4;
/** A thread that has not answered in this long is taken for dead; the run goes on without it. */
const TAKE_TIMEOUT_MS = 30_000;

let nextStreamId = 1;

/** One thread's ordered results for this run. */
class Stream {
  private taken = 0;
  private dead = false;
  readonly id = nextStreamId++;
  readonly ctrl: Int32Array;

  constructor(readonly thread: NoiseThreadHandle) {
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * CTRL_WORDS));
  }

  send(job: Omit<RngJob, 'stream' | 'ctrl' | 'window'> | Omit<BrownianJob, 'stream' | 'ctrl' | 'window'>): void {
    const full: NoiseJob = { ...job, stream: this.id, ctrl: this.ctrl.buffer as SharedArrayBuffer, window: WINDOW };
    this.thread.worker.postMessage(full);
  }

  /** The next result, waiting for it; undefined once the thread failed or stopped answering. */
  take(): NoiseResult | undefined {
    if (this.dead) return undefined;
    while (Atomics.load(this.ctrl, CTRL.produced) <= this.taken) {
      if (Atomics.wait(this.ctrl, CTRL.produced, this.taken, TAKE_TIMEOUT_MS) === 'timed-out') break;
    }
    let result: NoiseResult | undefined;
    if (Atomics.load(this.ctrl, CTRL.failed) === 0) {
      // late results of an earlier, cancelled stream of this thread come first: drop them
      for (;;) {
        const m = receiveMessageOnPort(this.thread.results);
        if (!m) break;
        const r = m.message as NoiseResult;
        if (r.stream === this.id) {
          result = r;
          break;
        }
      }
    }
    if (!result) {
      this.dead = true;
      return undefined;
    }
    this.taken++;
    Atomics.store(this.ctrl, CTRL.consumed, this.taken);
    Atomics.notify(this.ctrl, CTRL.consumed);
    return result;
  }

  cancel(): void {
    this.dead = true;
    Atomics.store(this.ctrl, CTRL.cancelled, 1);
    Atomics.notify(this.ctrl, CTRL.consumed);
  }
}

export interface PrefetchInput {
  readonly sampler: Sampler;
  readonly sigmas: Float32Array;
  readonly options: Readonly<Record<string, number | string | boolean>>;
  readonly seeds: readonly number[];
  /** The run's ImageRNG, after the start noise: the run leaves it where the sampler's draws would. */
  readonly rng: ImageRNG;
  readonly source: NoiseSource;
  readonly randnLocal: (seed: number, shape: readonly number[]) => Float32Tensor;
}

/** The noise half of a SamplerContext, fed by noise threads; `finish()` once the sampler has returned or thrown. */
export interface PrefetchedNoise {
  readonly noise: () => Float32Tensor;
  readonly skipNoise: () => void;
  readonly brownian?: BrownianNoiseFactory;
  finish(): void;
}

/**
 * Plans the run and hands its noise to idle noise threads. Undefined when there is nothing to compute ahead or no
 * thread is free (or prefetching is off): the caller then draws on its own thread as before.
 */
export async function prefetchNoise(input: PrefetchInput, pool: NoiseThreads | undefined = noiseThreads()): Promise<PrefetchedNoise | undefined> {
  if (!pool) return undefined;
  const rng = input.rng;
  const batch = input.seeds.length;
  const plan = await planNoise(input.sampler, { sigmas: input.sigmas, options: input.options, seeds: input.seeds }, batch);
  const replay = rng.replayState();
  const wantRng = replay !== undefined && plan.draws.includes('draw');
  const queries = plan.brownian?.queries ?? [];
  if (!wantRng && queries.length === 0) return undefined;
  await pool.ready();
  const workers = pool.acquire((wantRng ? 1 : 0) + Math.min(queries.length, 16));
  if (workers.length === 0) return undefined;
  const release = (): void => workers.forEach((w) => pool.release(w));

  // per-image draws: one stream
  const shape = rng.batchShape;
  let rngStream: Stream | undefined;
  if (wantRng) {
    rngStream = new Stream(workers[0]!);
    rngStream.send({ kind: 'rng', opts: replay.opts, drawsBefore: replay.draws, slots: plan.draws });
  }
  let slot = 0;
  let rngLocal = !rngStream;
  // without a stream every call is the generator's own; with one, the generator catches up when the plan breaks
  const goLocal = (): void => {
    if (rngLocal) return;
    rngLocal = true;
    rngStream?.cancel();
    for (let i = 0; i < slot; i++) rng.skip();
  };
  const fromStream = (): Float32Array | null | undefined => {
    if (rngLocal || slot >= plan.draws.length) return undefined;
    return rngStream!.take()?.data;
  };
  const noise = (): Float32Tensor => {
    if (!rngLocal && plan.draws[slot] === 'draw') {
      const data = fromStream();
      if (data) {
        slot++;
        return float32(shape, data);
      }
    }
    goLocal();
    slot++;
    return rng.next();
  };
  const skipNoise = (): void => {
    if (!rngLocal && slot < plan.draws.length && fromStream() !== undefined) {
      slot++;
      return;
    }
    goLocal();
    slot++;
    rng.skip();
  };

  // Brownian increments: queries dealt round-robin to the other threads, each with its own tree
  const brownianWorkers = wantRng ? workers.slice(1) : workers;
  const streams: Stream[] = [];
  if (plan.brownian && brownianWorkers.length > 0) {
    const k = brownianWorkers.length;
    brownianWorkers.forEach((w, j) => {
      const stream = new Stream(w);
      stream.send({
        kind: 'brownian',
        shape: [batch, ...rng.opts.shape],
        sigmaMin: plan.brownian!.sigmaMin,
        sigmaMax: plan.brownian!.sigmaMax,
        seeds: input.seeds,
        source: input.source,
        queries: queries.filter((_, q) => q % k === j),
      });
      streams.push(stream);
    });
  }
  let brownian: BrownianNoiseFactory | undefined;
  if (streams.length > 0) {
    brownian = (x, sigmaMin, sigmaMax): NoiseSampler => {
      let q = 0;
      let local: BatchedBrownianTree | undefined;
      let remote = sigmaMin === plan.brownian!.sigmaMin && sigmaMax === plan.brownian!.sigmaMax;
      return (sigma, sigmaNext) => {
        const expected = queries[q];
        if (remote && expected && expected[0] === sigma && expected[1] === sigmaNext) {
          const data = streams[q % streams.length]!.take()?.data;
          q++;
          if (data && data.length === x.data.length) return float32(x.shape, data);
        }
        if (remote) {
          remote = false;
          streams.forEach((s) => s.cancel());
        }
        local ??= new BatchedBrownianTree(x.shape, sigmaMin, sigmaMax, input.seeds, input.randnLocal);
        return local.noise(sigma, sigmaNext);
      };
    };
  }

  return {
    noise,
    skipNoise,
    ...(brownian ? { brownian } : {}),
    finish: () => {
      if (!rngLocal) {
        rngStream?.cancel();
        for (let i = 0; i < slot; i++) rng.skip();
        rngLocal = true;
      }
      streams.forEach((s) => s.cancel());
      release();
    },
  };
}
