/**
 * The render thread: the one place the worker touches the engine (packages/core). It runs inside a
 * worker_threads thread started by render-host.ts, and checks the shared cancel flag after every sampler step
 * (the engine then stops before the next one).
 */
import type { ComputeDType } from '@darkroom/core/models/layers.js';
import { parentPort, workerData } from 'node:worker_threads';
import {
  batchKey, Engine, renderBatch, type EngineJobOptions, type GenerationResult, type Img2ImgParams, type ProgressEvent, type Txt2ImgParams,
} from '@darkroom/core/pipeline/index.js';
import { batchParams } from '@darkroom/farm/job-batch-key.js';
import type { Float32Tensor } from '@darkroom/core/tensor.js';
import type { MemoryMode } from '@darkroom/core/models/memory-mode.js';
import type { StopControl } from '@darkroom/core/pipeline/job.js';
import { engineParams } from '@darkroom/farm/engine-params.js';
import { affineTransform } from '@darkroom/core/pipeline/affine-transform.js';
import { decodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import type { InitImage } from '@darkroom/core/pipeline/params.js';
import { DarkroomError, isCancelled, threadFailure } from '@darkroom/core/errors.js';
import { renderExtras } from './extras-render.js';
import { decodeInputImage } from './input-images.js';
import { latentPreviewPng } from '@darkroom/core/pipeline/preview.js';
import { withoutRequestPaths } from './request-paths.js';
import { CANCEL_REQUESTED, INTERRUPT_REQUESTED, SKIP_REQUESTED, type HostMessage, type RenderOutput, type RenderRequest, type ThreadMessage } from './render-protocol.js';

const port = parentPort!;
const config = workerData as { provider: 'cpu' | 'cuda'; modelCacheBytes: number; cacheDir: string; fallbackToCpu: boolean; previewEvery: number; attention: string; memoryMode: MemoryMode; weightsDtype: ComputeDType; maxInputPixels: number; intraOpThreads: number | null };

function post(m: ThreadMessage): void {
  port.postMessage(m);
}

/**
 * One Engine for the thread's lifetime: it keeps loaded checkpoints and their sessions in its own LRU within
 * MODEL_CACHE_BYTES, and serves the tiny demo model when a job names no checkpoint.
 */
const engine = new Engine({
  cacheDir: config.cacheDir,
  provider: config.provider,
  fallbackToCpu: config.fallbackToCpu,
  memoryBudgetBytes: config.modelCacheBytes,
  attention: config.attention,
  memoryMode: config.memoryMode,
  weightsDtype: config.weightsDtype,
  // ORT_INTRA_OP_THREADS; onnxruntime's own default (one thread per physical core) when unset.
  ...(config.intraOpThreads !== null ? { threads: config.intraOpThreads } : {}),
});

/** A1111's base64 image field (optionally a data: URI) to bytes. */
function base64Image(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64.replace(/^data:image\/[a-z+.-]+;base64,/, ''), 'base64'));
}

/** An init image as pixels, for a move before the img2img (decodeInputImage hands plain PNGs on as bytes). */
function initRaster(img: InitImage, i: number): RasterImage {
  if (!(img instanceof Uint8Array)) return img;
  try {
    return decodePng(img);
  } catch (e) {
    throw new DarkroomError('INVALID_IMAGE', `init_images.${i}: the image cannot be decoded: ${(e as Error).message}`, { field: `init_images.${i}` });
  }
}

/** A batch's per-request results as one output, request by request (one image each). */
function joinResults(results: readonly GenerationResult[]): Pick<GenerationResult, 'images' | 'infotexts' | 'seeds' | 'subseeds'> {
  return {
    images: results.flatMap((r) => r.images),
    infotexts: results.flatMap((r) => r.infotexts),
    seeds: results.flatMap((r) => r.seeds),
    subseeds: results.flatMap((r) => r.subseeds),
  };
}

async function render(id: number, req: RenderRequest, flagBuf: SharedArrayBuffer): Promise<void> {
  const flag = new Int32Array(flagBuf);
  const controller = new AbortController();
  const iterations = Number(req.params.n_iter ?? 1);
  let lastStep = 0;
  let stepAtCancel = -1;
  const skipped: Record<string, string> = {};
  // The latest denoised prediction, kept only when previews are on (the trace hands over a copy per call).
  let denoised: Float32Tensor | null = null;
  const trace = config.previewEvery > 0 ? { onDenoiserCall: (c: { out: Float32Tensor }) => void (denoised = c.out) } : undefined;
  const onStep = (s: ProgressEvent): void => {
    lastStep = s.step;
    // A1111's "Approx cheap" preview of the first image (core's table and rounding); only SD's 4-channel latents have one.
    const preview = denoised && denoised.shape[1] === 4 && s.step % config.previewEvery === 0 ? latentPreviewPng(denoised) : null;
    post({ type: 'step', id, step: s.step, steps: s.steps, iteration: s.iteration, iterations, ...(preview ? { preview } : {}) });
    if (stepAtCancel < 0 && Atomics.load(flag, 0) === CANCEL_REQUESTED) {
      stepAtCancel = s.step;
      controller.abort();
    }
  };
  try {
    if (Atomics.load(flag, 0) === CANCEL_REQUESTED) controller.abort();
    // A1111's interrupt and skip, raised on the same flag: the engine keeps what sampling reached.
    const stop: StopControl = {
      requested: () => {
        const v = Atomics.load(flag, 0);
        return v === INTERRUPT_REQUESTED ? 'interrupt' : v === SKIP_REQUESTED ? 'skip' : null;
      },
      skipped: () => void Atomics.compareExchange(flag, 0, SKIP_REQUESTED, 0),
    };
    const job: EngineJobOptions = {
      onStep,
      signal: controller.signal,
      stop,
      ...(trace ? { trace } : {}),
      // Files sit in the cache under their content hash; the names are the ones the tenant uploaded them as.
      ...(req.checkpoint ? { checkpoint: { path: req.checkpoint.path, name: req.checkpoint.name } } : {}),
      embeddings: req.networks.embeddings.map((e) => ({ path: e.path, name: e.name })),
      hypernetworks: req.networks.hypernetworks.map((h) => ({ path: h.path, name: h.name })),
      loras: req.networks.loras.map((l) => ({ path: l.path, name: l.name })),
      ...(req.vae ? { vae: { path: req.vae.path, name: req.vae.name } } : {}),
      ...(req.upscalers ? { upscalers: req.upscalers.map((u) => ({ path: u.path, name: u.name })) } : {}),
      onEmbeddingSkipped: (name, why) => void (skipped[name] = `${why.code}: ${withoutRequestPaths(why.message, req)}`),
    };
    if (req.kind === 'extras') {
      const stopped = (): 'cancel' | 'interrupt' | null => {
        const v = Atomics.load(flag, 0);
        return v === CANCEL_REQUESTED ? 'cancel' : v === INTERRUPT_REQUESTED ? 'interrupt' : null;
      };
      const output = await renderExtras(req, config, stopped);
      post(output ? { type: 'done', id, output } : { type: 'cancelled', id, stepAtCancel: 0, lastStep: 0 });
      return;
    }
    const params = engineParams(req.params);
    // The mask comes from storage; a latent_mask (rare) travels in the request as A1111's base64.
    // Images are decoded here, off the worker's event loop, each checked against MAX_INPUT_PIXELS first.
    const max = config.maxInputPixels;
    if (typeof params.latent_mask === 'string') params.latent_mask = await decodeInputImage(base64Image(params.latent_mask), 'latent_mask', max);
    // A batch the engine's own key refuses with the files this job got renders this job alone.
    const batch = req.kind === 'txt2img' && req.batch?.length ? [batchParams(req.params), ...req.batch.map((p) => batchParams(p))] : null;
    const batchable = batch !== null && new Set(batch.map((p) => batchKey(p, job) ?? '')).size === 1 && batchKey(batch[0]!, job) !== null;
    const result = req.kind === 'txt2img'
      ? batchable
        ? joinResults(await renderBatch(engine, batch!, job))
        : await engine.txt2img(params as Txt2ImgParams, job)
      : await engine.img2img({
        ...params,
        init_images: await Promise.all(req.initImages.map(async (img, i) => {
          const decoded = await decodeInputImage(img, `init_images.${i}`, max);
          return req.initTransform ? affineTransform(initRaster(decoded, i), req.initTransform) : decoded;
        })),
        ...(req.mask ? { mask: await decodeInputImage(req.mask, 'mask', max) } : {}),
      } as Img2ImgParams, job);
    if (controller.signal.aborted) {
      post({ type: 'cancelled', id, stepAtCancel, lastStep });
      return;
    }
    const output: RenderOutput = {
      images: result.images, infotexts: result.infotexts, seeds: result.seeds, subseeds: result.subseeds,
      ...(Object.keys(skipped).length > 0 ? { skippedEmbeddings: skipped } : {}),
      ...(batch !== null && !batchable ? { unbatched: true as const } : {}),
    };
    post({ type: 'done', id, output });
  } catch (e) {
    if (controller.signal.aborted || isCancelled(e)) {
      post({ type: 'cancelled', id, stepAtCancel: Math.max(stepAtCancel, 0), lastStep });
      return;
    }
    // A DarkroomError is the engine refusing this request on purpose (bad parameters, unreadable file):
    // retrying would refuse again. Anything else may be transient (out of memory, a lost device): retry.
    const failure = threadFailure(e, 'RENDER_FAILED');
    post({ type: 'error', id, ...failure, message: withoutRequestPaths(failure.message, req) });
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (m: HostMessage) => {
  if (m.type === 'shutdown') {
    void queue.then(() => engine.close()).finally(() => process.exit(0));
    return;
  }
  // What stays loaded after each render goes to the main thread, which advertises it for warm routing.
  queue = queue.then(() => render(m.id, m.request, m.cancelFlag)).finally(() => post({ type: 'models', checkpoints: engine.loadedCheckpoints().reverse() }));
});

post({ type: 'ready', engine: `packages/core (${config.provider})` });
