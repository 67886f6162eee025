import { batchKey } from '@darkroom/core/catalog/batch-key.js';
import type { Txt2ImgParams } from '@darkroom/core/pipeline/params.js';
import { engineParams } from './engine-params.js';
import type { GenerateKind, GenerateRequest } from './schemas.js';
import type { JobUpscaler } from './upscaler-assets.js';
import type { JobVae } from './vae-assets.js';

/**
 * A queued job's batch key (core's catalog/batch-key.ts, the rule of which requests may share a UNet batch),
 * computed by the API at submission and kept in the job's data for the worker that batches (batch-leases.ts).
 *
 * The request's farm fields are mapped onto what the key reads: the checkpoint by the name the API resolved, the
 * hypernetworks named, the VAE and upscaler files resolved, and the embeddings the job will be offered (the named
 * list, or those of the tenant whose names occur in its prompts, as the worker finds them). Fields that never
 * reach the engine are left out; any other field the key does not know keeps the job alone. Jobs of different
 * tenants never share a key. Only txt2img is batched.
 */
const NOT_RENDERED = new Set([
  'model', 'embeddings', 'hypernetworks', 'webhook', 'styles', 'do_not_save_samples', 'do_not_save_grid', 'override_settings_restore_afterwards',
  'comments', 'force_task_id', 'send_images', 'save_images',
]);

/** Fields that do not change the render while they hold the schema's empty default. */
function emptyDefault(k: string, v: unknown): boolean {
  if (k === 'script_args') return Array.isArray(v) && v.length === 0;
  if (k === 'alwayson_scripts') return typeof v === 'object' && v !== null && Object.keys(v).length === 0;
  if (k === 'firstphase_width' || k === 'firstphase_height') return v === 0;
  return false;
}

export interface JobBatchFacts {
  readonly tenant: string;
  readonly kind: GenerateKind;
  readonly request: GenerateRequest;
  /** The embeddings the job is offered: its named list, or the tenant's whose names occur in its prompts. */
  readonly embeddings: readonly string[];
  readonly vae?: JobVae | null | undefined;
  readonly upscalers?: readonly JobUpscaler[] | undefined;
}

/**
 * A request's fields as a batch renders them: the engine's parameters without the fields that never reach the
 * render. The worker hands these to core's renderBatch, whose own key check then sees what this key saw.
 */
export function batchParams(request: Readonly<Record<string, unknown>>): Txt2ImgParams {
  const params: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(engineParams(request))) {
    if (!NOT_RENDERED.has(k) && !emptyDefault(k, v)) params[k] = v;
  }
  return params as Txt2ImgParams;
}

export function jobBatchKey(f: JobBatchFacts): string | null {
  if (f.kind !== 'txt2img') return null;
  const key = batchKey(batchParams(f.request as unknown as Record<string, unknown>), {
    ...(f.request.model !== null ? { checkpoint: f.request.model } : {}),
    embeddings: [...f.embeddings],
    hypernetworks: [...f.request.hypernetworks],
    ...(f.vae ? { vae: JSON.stringify(f.vae) } : {}),
    ...(f.upscalers?.length ? { upscalers: f.upscalers.map((u) => JSON.stringify(u)) } : {}),
  });
  return key === null ? null : JSON.stringify([f.tenant, key]);
}

/**
 * The embeddings a job with no named list is offered: the tenant's whose names occur in its prompts (A1111 matches
 * names as lower-cased CLIP tokens, so a case-insensitive substring test keeps every one that could match).
 */
export function embeddingsInPrompts(names: readonly string[], request: GenerateRequest): string[] {
  const text = [request.prompt, request.negative_prompt, 'hr_prompt' in request ? request.hr_prompt : '', 'hr_negative_prompt' in request ? request.hr_negative_prompt : '']
    .join('\n').toLowerCase();
  return names.filter((n) => text.includes(n.toLowerCase()));
}
