/**
 * Several compatible txt2img requests rendered as one batch: one pipeline job of batch_size N whose images carry
 * the requests' own prompts, negative prompts and seeds (A1111's all_prompts / all_seeds), so the UNet runs once
 * per step for all of them. Which requests are compatible is catalog/batch-key.ts; each image comes back as the
 * request's own GenerationResult, the same PNG, infotext, seeds and parameters as the request rendered alone
 * (up to float rounding in the batched UNet).
 */
import { DarkroomError } from '../errors.js';
import { batchKey } from '../catalog/batch-key.js';
import type { Engine, EngineJobOptions } from './engine.js';
import type { GenerationResult, ImageRequest } from './job.js';
import { unknownSettings, type Txt2ImgParams } from './params.js';
import { fixedSeed } from './seeds.js';

export { batchKey, certainlyOneChunk, type BatchJobFiles } from '../catalog/batch-key.js';

/**
 * The record of a request as a solo render returns it (job.ts requestRecord): the request with its seeds fixed
 * and its sampler and scheduler resolved.
 */
function soloRecord(request: Txt2ImgParams, image: ImageRequest, resolved: Record<string, unknown>): Record<string, unknown> {
  const ignored = unknownSettings(request.override_settings);
  return {
    ...request,
    override_settings: request.override_settings ?? {},
    seed: image.seed,
    subseed: image.subseed,
    sampler_name: resolved.sampler_name,
    scheduler: resolved.scheduler,
    ...(ignored.length ? { ignored_settings: ignored } : {}),
  };
}

/**
 * Renders compatible requests (equal, non-null batchKey under `job`) as one batch and returns one result per
 * request, in order. Progress (`job.onStep`) counts the batch's steps once; cancelling cancels them all.
 * Throws BATCH_INCOMPATIBLE when the requests may not share a batch.
 */
export async function renderBatch(engine: Engine, requests: readonly Txt2ImgParams[], job: EngineJobOptions = {}): Promise<GenerationResult[]> {
  if (requests.length === 0) return [];
  const keys = requests.map((r) => batchKey(r, job));
  const bad = keys.findIndex((k) => k === null || k !== keys[0]);
  if (bad >= 0) {
    throw new DarkroomError('BATCH_INCOMPATIBLE', `request ${bad} cannot share a batch with request 0`, { index: bad, batchable: keys[bad] !== null });
  }
  if (requests.length === 1) return [await engine.txt2img(requests[0]!, job)];
  // seeds fixed per request in the order a solo render fixes them (seed, then subseed)
  const images: ImageRequest[] = requests.map((r) => {
    const seed = fixedSeed(r.seed ?? -1, job.random);
    const subseed = fixedSeed(r.subseed ?? -1, job.random);
    return {
      prompt: r.prompt ?? '', negative_prompt: r.negative_prompt ?? '', seed, subseed,
      ...(r.hr_prompt ? { hr_prompt: r.hr_prompt } : {}),
      ...(r.hr_negative_prompt ? { hr_negative_prompt: r.hr_negative_prompt } : {}),
    };
  });
  // The first request stands for the batch: its prompt's extra-network tags are the ones activated, as A1111
  // activates the first prompt's, and the key made them equal across the batch.
  const merged: Txt2ImgParams = { ...requests[0]!, batch_size: requests.length, n_iter: 1 };
  const result = await engine.txt2img(merged, { ...job, perImage: images });
  return requests.map((r, i) => ({
    images: [result.images[i]!],
    infotexts: [result.infotexts[i]!],
    seeds: [images[i]!.seed],
    subseeds: [images[i]!.subseed],
    parameters: soloRecord(r, images[i]!, result.parameters),
    latents: result.latents[i] ? [result.latents[i]!] : [],
  }));
}
