import type { ModelConfig } from '@darkroom/core/model-files/config.js';
import { BUILTIN_MODEL_CONFIG, SD1_CONFIG, SD2_CONFIG } from '@darkroom/core/model-files/reference-configs.js';
import { hiresSize } from '@darkroom/core/pipeline/hires-size.js';
import { attentionMemory, estimateJobMemory, type AttentionMemory, type MemoryEstimateRequest } from '@darkroom/core/pipeline/memory-estimate.js';
import { isLatentUpscaler } from '@darkroom/core/catalog/upscalers.js';
import { BUILTIN_MODEL } from './assets.js';
import type { FarmConfig } from './config.js';
import { workerMemoryBudget } from './machine-memory.js';
import { FarmError } from './errors.js';
import type { GenerateKind, GenerateRequest } from './schemas.js';

/**
 * Admission by need: what a generation job's peak memory will be on a worker, and whether any worker's budget
 * holds it. The API and the workers decide with the same function, so a job the API admits for a worker is
 * one that worker takes.
 */

/** A worker's side of the question: its budget and how its attention holds scores. */
export interface MemoryBudget {
  readonly budgetBytes: number;
  readonly attention: AttentionMemory;
  /** MEMORY_MODE medvram or lowvram: one of text encoder, UNet and VAE open at a time, so the peak is the largest. */
  readonly oneSessionResident?: boolean;
  /** Bytes each weight takes in the worker's sessions: 2 with WEIGHTS_DTYPE=float16, else (and when absent) 4. */
  readonly bytesPerWeight?: number;
}

/** How a job's need is computed on a worker: everything in its budget but the budget itself. */
export type MemoryShape = Pick<MemoryBudget, 'attention' | 'oneSessionResident' | 'bytesPerWeight'>;

/** The budget a worker configured with `cfg` advertises (the API assumes the same when no worker is alive). */
export function memoryBudgetFromConfig(
  cfg: Pick<FarmConfig, 'workerMemoryBudget' | 'attention' | 'executionProvider' | 'memoryMode' | 'weightsDtype'>,
): MemoryBudget {
  return {
    budgetBytes: workerMemoryBudget(cfg.workerMemoryBudget),
    attention: attentionMemory(cfg.attention, cfg.executionProvider),
    oneSessionResident: cfg.memoryMode !== 'normal',
    bytesPerWeight: cfg.weightsDtype === 'float16' ? 2 : 4,
  };
}

const GiB = 1024 ** 3;

/**
 * The API never reads checkpoints, so a job naming one is estimated as the larger of the full-size SD 1.x and
 * SD 2.x models (SD 1.x has more heads at full resolution, SD 2.x a larger text encoder); the built-in model is known.
 */
function configsFor(request: GenerateRequest): readonly ModelConfig[] {
  return request.model === null || request.model === BUILTIN_MODEL ? [BUILTIN_MODEL_CONFIG] : [SD1_CONFIG, SD2_CONFIG];
}

/** A1111 splits a prompt into conditionings at every standalone AND; each is a UNet row of its own. */
function andParts(prompt: string): number {
  return prompt.split(/\bAND\b/).length;
}

function hiresOf(kind: GenerateKind, request: GenerateRequest): MemoryEstimateRequest['hires'] {
  if (kind !== 'txt2img' || !('enable_hr' in request) || !request.enable_hr) return undefined;
  const size = hiresSize(request);
  // null is the latent_upscale_default_mode setting, a latent mode unless a tenant changed it
  const upscaler = request.hr_upscaler ?? (typeof request.override_settings?.latent_upscale_default_mode === 'string'
    ? request.override_settings.latent_upscale_default_mode : 'Latent');
  return { width: size.width, height: size.height, latentUpscale: isLatentUpscaler(upscaler) };
}

/** A generation job as admission sees it: the request and the size of the checkpoint it names, when known. */
export interface JobToAdmit {
  readonly kind: GenerateKind;
  readonly request: GenerateRequest;
  readonly checkpointBytes?: number | null;
}

/** The estimate's inputs for a job as submitted; `shape` narrows it to find which field makes it too large. */
function estimateRequests(
  job: JobToAdmit, budget: MemoryShape,
  shape: { batch: boolean; conds: boolean; hires: boolean } = { batch: true, conds: true, hires: true },
): MemoryEstimateRequest[] {
  const { kind, request } = job;
  const hires = shape.hires ? hiresOf(kind, request) : undefined;
  const hrPrompt = 'hr_prompt' in request ? request.hr_prompt : '';
  return configsFor(request).map((config) => ({
    config, width: request.width, height: request.height, attention: budget.attention,
    ...(budget.oneSessionResident ? { oneSessionResident: true } : {}),
    ...(budget.bytesPerWeight ? { bytesPerWeight: budget.bytesPerWeight } : {}),
    ...(request.override_settings?.batch_cond_uncond === false ? { sequentialCondUncond: true } : {}),
    batchSize: shape.batch ? request.batch_size : 1,
    condsPerImage: shape.conds ? Math.max(andParts(request.prompt), andParts(hrPrompt)) : 1,
    encodesInput: kind === 'img2img',
    ...(hires ? { hires } : {}),
    ...(job.checkpointBytes ? { checkpointBytes: job.checkpointBytes } : {}),
  }));
}

function peakOf(requests: readonly MemoryEstimateRequest[]): number {
  return Math.max(...requests.map((r) => estimateJobMemory(r).bytes));
}

/** The job's estimated peak on a worker of the given attention, memory mode and weight type. */
export function jobMemoryBytes(job: JobToAdmit, shape: MemoryShape): number {
  return peakOf(estimateRequests(job, shape));
}

export function fitsBudget(job: JobToAdmit, budget: MemoryBudget): boolean {
  return jobMemoryBytes(job, budget) <= budget.budgetBytes;
}

const gib = (bytes: number): string => `${(bytes / GiB).toFixed(1)} GiB`;

/** The largest value in `candidates` (ascending) for which `fits` holds, or null. */
function largest<T>(candidates: readonly T[], fits: (v: T) => boolean): T | null {
  let best: T | null = null;
  for (const c of candidates) {
    if (!fits(c)) break;
    best = c;
  }
  return best;
}

/**
 * Null when some budget holds the job; else a 422 naming the field that makes it too large: the size when even
 * one image without hires does not fit, else the batch, the AND parts, then the hires pass, with what would fit.
 */
export function memoryRefusal(job: JobToAdmit, budgets: readonly MemoryBudget[]): FarmError | null {
  const { request } = job;
  const fitsSome = (req: GenerateRequest, shape?: { batch: boolean; conds: boolean; hires: boolean }): boolean =>
    budgets.some((b) => peakOf(estimateRequests({ ...job, request: req }, b, shape)) <= b.budgetBytes);
  if (fitsSome(request)) return null;
  const best = Math.max(...budgets.map((b) => b.budgetBytes));
  const need = Math.min(...budgets.map((b) => jobMemoryBytes(job, b)));
  const model = configsFor(request).length === 1 ? 'the built-in model' : 'its checkpoint (estimated as a full-size SD model)';
  const prefix = `this job needs about ${gib(need)} of memory at its peak on ${model}; the largest worker budget is ${gib(best)} (WORKER_MEMORY_BUDGET)`;
  const refuse = (field: string, hint: string): FarmError => new FarmError('JOB_TOO_LARGE', 422, `${field}: ${prefix}. ${hint}`, field);

  const single = { batch: false, conds: false, hires: false };
  if (!fitsSome(request, single)) {
    const sides = Array.from({ length: 64 }, (_, i) => (i + 1) * 64);
    const side = largest(sides, (s) => fitsSome({ ...request, width: s, height: s }, single));
    const field = request.width >= request.height ? 'width' : 'height';
    return refuse(field, side === null
      ? 'No image size fits: the model itself does not fit any worker.'
      : `At most about ${side}x${side} fits in one image; use smaller width and height.`);
  }
  if (!fitsSome(request, { ...single, batch: true })) {
    const batch = largest(Array.from({ length: request.batch_size }, (_, i) => i + 1), (b) => fitsSome({ ...request, batch_size: b }, { ...single, batch: true }));
    return refuse('batch_size', `batch_size ${batch ?? 1} fits; use n_iter for more images.`);
  }
  if (!fitsSome(request, { batch: true, conds: true, hires: false })) {
    return refuse('prompt', 'Each AND in the prompt adds a conditioning to every step; use fewer AND parts or a smaller batch.');
  }
  const field = 'hr_resize_x' in request && (request.hr_resize_x > 0 || request.hr_resize_y > 0) ? (request.hr_resize_x > 0 ? 'hr_resize_x' : 'hr_resize_y') : 'hr_scale';
  if (field !== 'hr_scale') return refuse(field, 'The hires pass at this size does not fit; resize to less.');
  const scales = Array.from({ length: 28 }, (_, i) => 1 + (i + 1) * 0.25);
  const scale = largest(scales, (s) => fitsSome({ ...request, hr_scale: s }));
  return refuse('hr_scale', scale === null ? 'No hires pass fits at this size; turn hires fix off or lower width and height.' : `hr_scale up to ${scale} fits.`);
}
