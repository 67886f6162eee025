import { UnrecoverableError } from 'bullmq';
import type { AffineMove } from '@darkroom/core/pipeline/affine-transform.js';
import type { EventType } from './events.js';
import type { GenerateKind, GenerateRequest, JobState, Progress, WebhookSpec } from './schemas.js';
import type { JobUpscaler } from './upscaler-assets.js';
import type { JobVae } from './vae-assets.js';

/** What the API puts on the `generate` queue. Seeds are resolved before queueing so a retry redoes the same images. */
export interface GenerateJobData {
  tenant: string;
  kind: GenerateKind;
  /** The validated request with `seed`/`subseed` resolved; `init_images`/`mask` replaced by storage keys. */
  request: GenerateRequest;
  /** Storage keys of uploaded init images / mask (img2img), in request order. */
  inputKeys: { initImages: string[]; mask: string | null };
  webhook: WebhookSpec | null;
  /** SHA-256 of the raw request, so a reused Idempotency-Key with a different body is refused. */
  requestHash: string;
  source: 'v1' | 'sdapi';
  submittedAt: number;
  /** Size of the checkpoint file the job names (null: the built-in model), which bounds its weights in memory estimates. */
  checkpointBytes?: number | null;
  /**
   * The VAE `override_settings.sd_vae` names, resolved at submission: an upload the worker fetches by hash, or a
   * file of MODELS_DIR/VAE.
   */
  vae?: JobVae;
  /** Upscaler model files the request names (hires fix's `hr_upscaler`), resolved at submission; built-ins need none. */
  upscalers?: JobUpscaler[];
  /**
   * A move the worker applies to the init image before the img2img (an animator frame: the previous frame zoomed,
   * rotated, shifted). Set by a flow for its chained stages only; no request field reaches it.
   */
  initTransform?: AffineMove;
  /**
   * The key under which this job may share a UNet batch with other waiting jobs (job-batch-key.ts), computed at
   * submission; null or absent: it renders alone.
   */
  batchKey?: string | null;
}

export interface OutputRecord {
  index: number;
  key: string;
  seed: number;
  subseed: number;
  infotext: string;
}

export interface GenerateJobResult {
  outputs: OutputRecord[];
  /** Worker that completed the job and the attempt number, for provenance. */
  worker: string;
  attempt: number;
  renderMs: number;
  /** Embeddings the prompts named that could not be used (name -> code: reason); the job rendered without them. */
  skipped_embeddings?: Record<string, string>;
  /** Rendered in the batch of this job (the one its worker claimed), not from its own claim. */
  batched_with?: string;
}

/** BullMQ progress payload: the public Progress plus nothing else, so the API passes it through. */
export type JobProgress = Progress;

export interface JobEvent {
  type: EventType;
  jobId: string;
  at: string;
  data: Record<string, unknown>;
}

/** The reason string a cancelled job fails with; the API maps it to state `cancelled`. */
export const CANCELLED_REASON = 'CANCELLED: the job was cancelled';

export function isCancelledReason(reason: string | undefined): boolean {
  return reason?.startsWith('CANCELLED:') === true;
}

/**
 * A failed job's error as it crosses Redis: BullMQ keeps only a string (failedReason, a terminal record's
 * reason), so the envelope travels as its JSON, written by jobFailure and read back by splitFailedReason.
 */
export interface FailureEnvelope {
  readonly code: string;
  readonly message: string;
  /** The request field the failure is about, where it is about one. */
  readonly field?: string;
  readonly retryable: boolean;
}

/** The field a typed error names: FarmError's `field`, or a DarkroomError's `details.field`. */
function fieldOf(e: { readonly field?: unknown; readonly details?: Readonly<Record<string, unknown>> }): string | undefined {
  const f = e.field ?? e.details?.field;
  return typeof f === 'string' ? f : undefined;
}

/**
 * The error a processor throws for a typed failure: its envelope's JSON, and unrecoverable, so BullMQ spends no
 * retry on it, unless the failure is retryable.
 */
export function jobFailure(e: {
  readonly code: string;
  readonly message: string;
  readonly retryable?: boolean;
  readonly field?: unknown;
  readonly details?: Readonly<Record<string, unknown>>;
}): Error {
  const field = fieldOf(e);
  const envelope: FailureEnvelope = { code: e.code, message: e.message, ...(field !== undefined ? { field } : {}), retryable: e.retryable === true };
  const reason = JSON.stringify(envelope);
  return envelope.retryable ? new Error(reason) : new UnrecoverableError(reason);
}

function isEnvelope(v: unknown): v is FailureEnvelope {
  const o = v as Partial<Record<keyof FailureEnvelope, unknown>> | null;
  return typeof o === 'object' && o !== null && typeof o.code === 'string' && typeof o.message === 'string'
    && (o.field === undefined || typeof o.field === 'string');
}

/**
 * The error a failedReason carries, as a job view shows it: `{code, message, field?}` from jobFailure's envelope.
 * A reason that is not one (BullMQ's own, such as a stalled job's, or an untyped crash's message) is RENDER_FAILED
 * with the reason as its message; `CODE: message` is the cancel reason's form and reads as that code.
 */
export function splitFailedReason(reason: string | undefined): { code: string; message: string; field?: string } {
  const text = reason ?? '';
  if (text.startsWith('{')) {
    try {
      const v: unknown = JSON.parse(text);
      if (isEnvelope(v)) return { code: v.code, message: v.message, ...(v.field !== undefined ? { field: v.field } : {}) };
    } catch {
      // Not an envelope: read as plain text below.
    }
  }
  const m = /^([A-Z][A-Z0-9_]+): (.*)$/s.exec(text);
  return m ? { code: m[1]!, message: m[2]! } : { code: 'RENDER_FAILED', message: reason ?? 'unknown error' };
}

export function mapBullState(state: string, failedReason: string | undefined): JobState {
  switch (state) {
    case 'active':
      return 'running';
    case 'completed':
      return 'completed';
    case 'failed':
      return isCancelledReason(failedReason) ? 'cancelled' : 'failed';
    default:
      return 'queued';
  }
}

export function outputKey(tenant: string, jobId: string, index: number): string {
  return `outputs/${tenant}/${jobId}/${index}.png`;
}

/** The latest live preview of a job, overwritten as the job runs. */
export function previewKey(tenant: string, jobId: string): string {
  return `previews/${tenant}/${jobId}/latest.png`;
}

export function inputKey(tenant: string, jobId: string, name: string): string {
  return `inputs/${tenant}/${jobId}/${name}`;
}

export interface WebhookJobData {
  jobId: string;
  tenant: string;
  url: string;
  /** Standard Webhooks `webhook-id`: stable across retries so receivers can deduplicate. */
  messageId: string;
  event: EventType;
  payload: Record<string, unknown>;
}
