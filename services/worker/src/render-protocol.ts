/**
 * Messages between the worker's main thread and the render thread (render.ts). Plain data only: they cross
 * a worker_threads boundary by structured clone.
 */
import type { AffineMove } from '@darkroom/core/pipeline/affine-transform.js';

export interface RenderNetworks {
  embeddings: { name: string; path: string }[];
  hypernetworks: { name: string; path: string }[];
  /** The tenant's LoRA files whose name or alias the prompt's `<lora:...>` / `<lyco:...>` tags use. */
  loras: { name: string; path: string }[];
}

export interface RenderRequest {
  /** `extras`: A1111's postprocessing upscale of `initImages` (params: its upscale fields; no checkpoint, no networks). */
  kind: 'txt2img' | 'img2img' | 'extras';
  /** A1111 request fields (seeds already resolved). */
  params: Record<string, unknown>;
  /** Decoded init images / mask for img2img, as the bytes the client sent. */
  initImages: Uint8Array[];
  mask: Uint8Array | null;
  /** Checkpoint file; null = the built-in model. */
  checkpoint: { path: string; name: string; sha256: string; size: number } | null;
  networks: RenderNetworks;
  /** The VAE upload `sd_vae` named, in place of the checkpoint's own; `name` is its uploaded file name. */
  vae?: { path: string; name: string };
  /** Upscaler model files the request names (hires fix's hr_upscaler), each under the name the request uses. */
  upscalers?: { path: string; name: string }[];
  /** A move applied to each init image before the img2img (an animator frame's zoom, rotate, translate). */
  initTransform?: AffineMove;
  /**
   * Other txt2img jobs rendered in this one's UNet batch (their A1111 fields, seeds resolved; same batch key):
   * the output then holds this job's image first and one image per batched job after it, in this order.
   */
  batch?: Record<string, unknown>[];
}

export interface RenderOutput {
  images: Uint8Array[];
  infotexts: string[];
  seeds: number[];
  subseeds: number[];
  /** Embeddings the prompts named that could not be used (name -> why), rendered without as A1111 does. */
  skippedEmbeddings?: Record<string, string>;
  /**
   * The request's `batch` could not share this render with the files the job got (core's batch key differs, e.g.
   * an embedding uploaded since submission): only this job's own images are here, the batched jobs render alone.
   */
  unbatched?: true;
}

export type HostMessage =
  | { type: 'render'; id: number; request: RenderRequest; cancelFlag: SharedArrayBuffer }
  | { type: 'shutdown' };

export type ThreadMessage =
  | { type: 'ready'; engine: string }
  /** step/steps count over the whole job (all iterations); iteration is 0-based of `iterations` (n_iter). */
  | { type: 'step'; id: number; step: number; steps: number; iteration: number; iterations: number; preview?: Uint8Array }
  | { type: 'done'; id: number; output: RenderOutput }
  | { type: 'cancelled'; id: number; stepAtCancel: number; lastStep: number }
  | { type: 'error'; id: number; code: string; message: string; retryable: boolean }
  /** After every render: the checkpoint paths the engine holds loaded ('' = the built-in model), most recent first. */
  | { type: 'models'; checkpoints: string[] };

/** Index 0 of the shared flag: 0 = run, 1 = cancel requested. Atomics let the thread see it between steps without an event-loop turn. */
export const CANCEL_RUN = 0;
export const CANCEL_REQUESTED = 1;
/** A1111's interrupt: end sampling now, keep the images reached, run no further iteration. */
export const INTERRUPT_REQUESTED = 2;
/** A1111's skip: end the current iteration's sampling now, keep its images, go on; the thread resets it to 0. */
export const SKIP_REQUESTED = 3;
