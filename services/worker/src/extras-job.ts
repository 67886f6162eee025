import { UnrecoverableError, type Job } from 'bullmq';
import {
  attemptNumber, CANCELLED_REASON, FarmError, jobFailure, leftWaiting, outputKey, outputUrl, recordTerminalEvent, type GenerateJobResult,
} from '@darkroom/farm';
import type { ExtrasJobData } from '@darkroom/farm/extras-jobs.js';
import type { ProcessorContext } from './processor.js';
import { RenderCancelled, RenderFailed } from './render-host.js';
import { OutputsAbandoned, storeOutputs } from './store-outputs.js';
import { jobUpscalerFiles } from './upscaler-files.js';
import { DarkroomError } from '@darkroom/core/errors.js';

/**
 * An extras job (see farm/extras-jobs.ts): its images and upscaler files fetched, the upscale run on the render
 * thread, the PNGs written where a render's outputs go. The result has a render's shape (an output per image, its
 * infotext the `postprocessing` text), so everything that reads finished jobs reads these too.
 */
export async function runExtrasJob(ctx: ProcessorContext, job: Job<ExtrasJobData>): Promise<GenerateJobResult> {
  const data = job.data;
  const jobId = job.id!;
  const attempt = attemptNumber(job);
  const log = ctx.log.child({ jobId, tenant: data.tenant, attempt, kind: 'extras' });
  if (job.attemptsStarted <= 1) await leftWaiting(ctx.redis, ctx.keys, data.tenant);
  const started = performance.now();
  ctx.heartbeat.setJob(jobId);
  const held = new Set<string>();
  try {
    const [images, upscalers] = await Promise.all([
      Promise.all(data.inputKeys.map(async (key) => {
        const b = await ctx.storage.get(key);
        if (!b) throw new DarkroomError('INPUT_MISSING', `input ${key} is gone from storage`);
        return b;
      })),
      jobUpscalerFiles(ctx, data.upscalers, held),
    ]);
    const run = ctx.host.render({
      kind: 'extras', params: { ...data.params }, initImages: images, mask: null, checkpoint: null,
      networks: { embeddings: [], hypernetworks: [], loras: [] }, ...(upscalers.length > 0 ? { upscalers } : {}),
    }, () => undefined);
    const unwatch = ctx.cancels.watch(jobId, run.cancel, () => undefined);
    let output;
    try {
      output = await run.result;
    } finally {
      unwatch();
    }
    const outputs = output.images.map((_, i) => ({ index: i, key: outputKey(data.tenant, jobId, i), seed: 0, subseed: 0, infotext: output.infotexts[i] ?? '' }));
    await storeOutputs({
      storage: ctx.storage, writes: outputs.map((o) => ({ key: o.key, bytes: output.images[o.index]! })), windowMs: ctx.cfg.storageRetryWindowMs, log,
      cancelled: async () => false,
    });
    const renderMs = Math.round(performance.now() - started);
    log.info({ renderMs, images: outputs.length }, 'extras done');
    const result: GenerateJobResult = { outputs, worker: ctx.workerName, attempt, renderMs };
    // Its terminal event, as a render's: written before BullMQ hears of the result (terminal-events.ts).
    const eventOutputs = await Promise.all(outputs.map(async (o) => ({ index: o.index, url: await outputUrl(ctx.storage, ctx.cfg, jobId, o.index, o.key), infotext: o.infotext })));
    const { record } = await recordTerminalEvent(ctx.events, { id: jobId, tenant: data.tenant, webhook: null }, { type: 'completed', data: { outputs: eventOutputs }, result });
    if (record.type !== 'completed' || !record.result) throw new UnrecoverableError(record.reason ?? CANCELLED_REASON);
    return record.result as GenerateJobResult;
  } catch (e) {
    if (e instanceof RenderCancelled || e instanceof OutputsAbandoned) throw new UnrecoverableError(CANCELLED_REASON);
    if (e instanceof RenderFailed || e instanceof FarmError || e instanceof DarkroomError) {
      log.warn({ code: e.code, err: e.message }, 'extras failed');
      throw jobFailure(e);
    }
    throw e;
  } finally {
    ctx.heartbeat.setJob(null);
    ctx.cache.release(held);
  }
}
