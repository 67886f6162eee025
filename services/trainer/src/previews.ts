/**
 * Preview renders during training: txt2img through the engine's pipeline on the model being trained, with the
 * current parameters, the way A1111's Train tab makes them (`create_image_every`): the embedding registered
 * under the training's name, or the hypernetwork applied at strength 1.
 */
import type { RasterImage } from '@darkroom/core/formats/png.js';
import { EmbeddingDatabase } from '@darkroom/core/networks/embeddings/database.js';
import { hypernetworkVariant } from '@darkroom/core/networks/hypernetworks/graph.js';
import { chunkLookup } from '@darkroom/core/pipeline/embedding-adapter.js';
import type { Txt2ImgParams } from '@darkroom/core/pipeline/params.js';
import { txt2img } from '@darkroom/core/pipeline/txt2img.js';
import type { JobNetworks, PipelineModel } from '@darkroom/core/pipeline/types.js';
import type { TrainingSubject } from '@darkroom/core/training/train-job.js';
import type { TrainingRequest } from '@darkroom/farm/training-schemas.js';

function networksFor(model: PipelineModel, subject: TrainingSubject, name: string): JobNetworks {
  if (subject.kind === 'embedding') {
    const db = new EmbeddingDatabase(model.tokenizer, model.textEncoder.width);
    // Intermediate saves carry `<name>-<step>`; prompts use the training's name.
    db.add({ ...subject.embedding, name });
    return { embeddings: chunkLookup(db) };
  }
  const hypernetwork = subject.hypernetwork;
  return { hypernetworks: { resolve: async (uses) => (uses.length ? hypernetworkVariant(uses.map((u) => ({ hypernetwork, multiplier: u.multiplier }))) : undefined) } };
}

/**
 * A1111's preview parameters: the preview_* fields with preview_from_txt2img, else the first dataset image's
 * caption at the training size with 20 steps. A hypernetwork preview names the network in the prompt, since
 * prompts are what apply hypernetworks here.
 */
export function previewParams(req: TrainingRequest, caption: string): Txt2ImgParams {
  const own = req.preview_from_txt2img;
  const prompt = own ? req.preview_prompt : caption;
  return {
    prompt: req.kind === 'hypernetwork' ? `${prompt} <hypernet:${req.name}:1>` : prompt,
    negative_prompt: own ? req.preview_negative_prompt : '',
    steps: own ? req.preview_steps : 20,
    sampler_name: own ? req.preview_sampler_name : 'Euler a',
    cfg_scale: own ? req.preview_cfg_scale : 7,
    seed: req.preview_seed,
    width: own ? req.preview_width : req.training_width,
    height: own ? req.preview_height : req.training_height,
    batch_size: 1,
    n_iter: 1,
    clip_skip: req.clip_skip,
  };
}

/** `onStep` runs after every sampler step, so a cancel can end a long preview early through `signal`. */
export async function renderPreview(
  model: PipelineModel, subject: TrainingSubject, req: TrainingRequest, caption: string, signal: AbortSignal, onStep: () => void,
): Promise<{ png: Uint8Array; infotext: string }> {
  const r = await txt2img(model, previewParams(req, caption), { networks: networksFor(model, subject, req.name), signal, onStep });
  return { png: r.images[0]!, infotext: r.infotexts[0] ?? '' };
}

/** What the embedding PNG is drawn on when no preview was rendered at that step: a plain grey image of the training size. */
export function plainImage(width: number, height: number): RasterImage {
  return { width, height, channels: 3, data: new Uint8Array(width * height * 3).fill(128) };
}
