/**
 * When two txt2img requests may share one UNet batch and each still get exactly the image it would get alone.
 *
 * A1111 renders a batch with one noise generator per image (seeded by the image's own seed), per-image prompt
 * schedules and per-image emphasis, so most of a request is per image already. What a batch shares, and what
 * therefore has to be equal for every request in it, is:
 * - everything that changes the computation: model and VAE (and the job's network files), size, sampler and
 *   scheduler (resolved, so aliases meet), steps, CFG scale, eta, clip skip and every other setting, tiling,
 *   seed resize, prompt blending, the Version written into the infotext;
 * - the prompts' 75-token chunk counts. `reconstruct_cond_batch` pads every image's conditioning to the longest
 *   in the batch by repeating its last vector, and CFGDenoiser pads or splits cond and uncond by the batch's
 *   longest; either changes an image whose prompt is shorter than its neighbour's. Counting chunks needs the
 *   tokenizer and the job's embeddings (one name can stand for many vectors), which this module has neither of,
 *   so a prompt is put in a class: "one chunk" when that is certain (no embeddings offered to the job, no BREAK,
 *   no AND, and at most 75 UTF-8 bytes outside whitespace: every CLIP BPE token covers at least one byte, and the
 *   prompt parser only removes text), else its exact text, which only an identical prompt shares;
 * - the extra-network tags (`<lora:...>`, `<hypernet:...>`): tags are removed from every prompt but only the
 *   first prompt's are activated (parse_prompts), so requests share a batch only with the same tags in the same
 *   order, and the networks each asked for are the ones that run;
 * - the noise: each image keeps its own seed and variation seed (A1111's all_seeds / all_subseeds), so only the
 *   variation strength is shared; seed blending (one blend for the whole job) and batch-global samplers (DPM
 *   adaptive sizes its steps from the error of the whole batch) are not batched;
 * - hires fix: its options, and its prompts (each image's hires prompt, else its prompt) under the same chunk and
 *   tag rules as the first pass's.
 * A request that is itself a batch (batch_size or n_iter above 1) or carries fields this module does not know
 * (a script, an init image) is not batched. The key is null for a request that must render alone.
 *
 * Prompts, negative prompts and seeds may differ. Infotexts are per image and Darkroom writes no `Batch size` /
 * `Batch pos`, so a batched image's infotext is its solo one.
 */
import { resolveSamplerEntry } from './samplers.js';
import { resolveTxt2Img, type ResolvedTxt2Img, type Txt2ImgParams } from '../pipeline/params.js';
import { parseExtraNetworks } from '../pipeline/extra-networks.js';

/** A file a job names, as the Engine takes it: a path, or a path with the name it goes by. */
export type BatchFile = string | { readonly path: string; readonly name?: string };

/** The parts of a job's options that change what it renders (the Engine's EngineJobOptions has them all). */
export interface BatchJobFiles {
  readonly checkpoint?: BatchFile;
  readonly vae?: BatchFile | null;
  readonly embeddings?: readonly BatchFile[];
  readonly hypernetworks?: readonly BatchFile[];
  readonly loras?: readonly BatchFile[];
  readonly upscalers?: readonly BatchFile[];
  readonly version?: string;
  readonly portableCpuNoise?: boolean;
}

/** The request fields a batch can take; any other field (a script's, an init image) keeps a request alone. */
const KNOWN_FIELDS = new Set<string>([
  'prompt', 'negative_prompt', 'steps', 'sampler_name', 'scheduler', 'cfg_scale', 'seed', 'subseed', 'subseed_strength',
  'seed_resize_from_h', 'seed_resize_from_w', 'width', 'height', 'batch_size', 'n_iter', 'clip_skip', 'eta',
  'disable_extra_networks', 'tiling', 'override_settings', 'seed_blend', 'prompt_blending',
  'enable_hr', 'denoising_strength', 'hr_scale', 'hr_upscaler', 'hr_second_pass_steps', 'hr_resize_x', 'hr_resize_y',
  'hr_sampler_name', 'hr_scheduler', 'hr_prompt', 'hr_negative_prompt',
]);

/** Samplers whose result for one image depends on the other images of the batch. */
const BATCH_GLOBAL_SAMPLERS = new Set(['DPM adaptive']);

/** A1111's chunk budget: 75 tokens between the start and end tokens. */
const CHUNK_TOKENS = 75;

const UTF8 = new TextEncoder();
const BREAK = /\bBREAK\b/;
const AND = /\bAND\b/;

/**
 * True when the prompt is certainly one 75-token chunk: each BPE token covers at least one byte of the cleaned,
 * lowercased text, so at most 75 bytes outside whitespace is at most 75 tokens. Embeddings (a name can stand for
 * more vectors than its bytes), BREAK (a forced new chunk) and AND (several conds per image) are left out.
 */
export function certainlyOneChunk(prompt: string, embeddingsOffered: boolean): boolean {
  if (embeddingsOffered || BREAK.test(prompt) || AND.test(prompt)) return false;
  return UTF8.encode(prompt.normalize('NFC').toLowerCase().replace(/\s+/g, '')).length <= CHUNK_TOKENS;
}

function promptClass(prompt: string, embeddingsOffered: boolean): string {
  return certainlyOneChunk(prompt, embeddingsOffered) ? 'one-chunk' : `exact:${prompt}`;
}

function fileId(f: BatchFile): [string, string | null] {
  return typeof f === 'string' ? [f, null] : [f.path, f.name ?? null];
}

function files(list: readonly BatchFile[] | undefined): Array<[string, string | null]> {
  return (list ?? []).map(fileId);
}

function resolved(params: Txt2ImgParams): ResolvedTxt2Img | null {
  try {
    return resolveTxt2Img(params);
  } catch {
    // an invalid request renders alone, where it fails with its own error
    return null;
  }
}

/**
 * Hires fix's part of the key: its options as given, and its prompts (the hires prompt, else the image's own) under
 * the same chunk and tag rules, since the second pass conditions a batch the way the first does.
 */
function hiresKey(p: ResolvedTxt2Img, embeddingsOffered: boolean, tagsOf: (prompt: string) => string[][]): unknown {
  const prompt = p.hr_prompt || p.prompt;
  return {
    denoising_strength: p.denoising_strength,
    scale: p.hr_scale,
    resize: [p.hr_resize_x, p.hr_resize_y],
    upscaler: p.hr_upscaler ?? null,
    steps: p.hr_second_pass_steps,
    sampler: p.hr_sampler_name ?? null,
    scheduler: p.hr_scheduler ?? null,
    tags: tagsOf(prompt),
    prompt: promptClass(prompt, embeddingsOffered),
    negative_prompt: promptClass(p.hr_negative_prompt || p.negative_prompt, embeddingsOffered),
  };
}

/**
 * The key under which requests can share one UNet batch (equal keys = compatible), or null when the request must
 * render alone. Pure: the same request and job files always give the same key.
 */
export function batchKey(params: Txt2ImgParams, job: BatchJobFiles = {}): string | null {
  if (Object.keys(params).some((k) => !KNOWN_FIELDS.has(k))) return null;
  const p = resolved(params);
  if (!p) return null;
  if (p.batch_size !== 1 || p.n_iter !== 1) return null;
  if (p.seed_blend !== undefined) return null;
  let sampler: string;
  let scheduler: string;
  try {
    const r = resolveSamplerEntry(p.sampler_name, p.scheduler, false);
    sampler = r.sampler.name;
    scheduler = r.scheduler;
  } catch {
    return null;
  }
  if (BATCH_GLOBAL_SAMPLERS.has(sampler)) return null;
  const embeddingsOffered = (job.embeddings?.length ?? 0) > 0;
  const tagsOf = (prompt: string) => (p.disable_extra_networks ? [] : parseExtraNetworks(prompt).calls.map((c) => [c.kind, ...c.items]));
  const overrides = params.override_settings ?? {};
  return JSON.stringify({
    model: [job.checkpoint === undefined ? null : fileId(job.checkpoint), overrides.sd_model_checkpoint ?? null],
    vae: [job.vae === undefined ? 'default' : job.vae === null ? null : fileId(job.vae), overrides.sd_vae ?? null],
    embeddings: files(job.embeddings),
    hypernetworks: files(job.hypernetworks),
    loras: files(job.loras),
    upscalers: files(job.upscalers),
    version: job.version ?? null,
    portableCpuNoise: job.portableCpuNoise ?? false,
    sampler,
    scheduler,
    steps: p.steps,
    cfg_scale: p.cfg_scale,
    width: p.width,
    height: p.height,
    seed_resize: [p.seed_resize_from_w, p.seed_resize_from_h],
    // each image keeps its own seed and variation seed; the strength is the batch's
    subseed_strength: p.subseed_strength,
    eta: p.eta ?? null,
    disable_extra_networks: p.disable_extra_networks,
    tiling: p.tiling,
    prompt_blending: p.prompt_blending ?? false,
    settings: p.settings,
    tags: tagsOf(p.prompt),
    prompt: promptClass(p.prompt, embeddingsOffered),
    negative_prompt: promptClass(p.negative_prompt, embeddingsOffered),
    hires: p.enable_hr ? hiresKey(p, embeddingsOffered, tagsOf) : null,
  });
}
