/**
 * A conservative estimate of the peak resident memory of a process rendering one job: the runtime, the
 * weights of every session the job opens, and what onnxruntime's CPU arena keeps for each session once the job
 * has run (the arena never gives memory back, so the peak is the sum over sessions, not the largest one).
 *
 * Calibrated against the demo model's measured peak RSS, each case rendered in a child process of its own with a
 * cold graph cache (bench/memory-estimate.ts: two iterations of three steps, so every session reaches its steady
 * arena; onnxruntime plans a memory pattern on the second run of a shape and keeps the first run's blocks too).
 * 2-core development host, CPU provider, plain attention; MiB above the child's own baseline (about 100 MiB),
 * measured -> estimated:
 *   128x128     129 ->  235 (+83%)    512x256        706 ->  876 (+24%)
 *   256x256     318 ->  435 (+37%)    256x256 b2     427 ->  536 (+26%)
 *   384x384     780 -> 1018 (+31%)    384x384 b2     858 -> 1516 (+77%)
 *   512x512    1900 -> 2359 (+24%)    256 hires x1.5 913 -> 1204 (+32%)
 *   256 img2img 343 ->  641 (+87%)    256 hires x2  2034 -> 2545 (+25%)
 * The estimate is above every measurement, by 24% to 87%; the large relative errors are the small jobs, where
 * fixed per-session overheads dominate. One step is not enough to calibrate on: the same 512x512 render peaked at
 * 1.1 GiB after one step and at 1.7-2.0 GiB after several (the memory pattern), and runs vary by a sixth.
 *
 * The full-size models are too large to measure on the development host. Their estimate uses the same terms with
 * weights from the parameter counts and is checked against the two observations on record: building and running
 * the full-size SD 1.5 UNet alone peaks near 7.5 GB (bench/README.md; estimated 8.6 GB for its session and build),
 * and SD 1.5 (an F16 file) at 256x256 took 8.8 GB for one step (estimated 9.9 GiB = 10.6 GB).
 */
import { attentionHeads, type ModelConfig } from '../models/config.js';
import { parameterCounts } from '../models/parameter-count.js';

const MiB = 1024 ** 2;

/**
 * How attention holds its scores. `plain` materialises heads x queries x keys float32 scores per batch row;
 * `bounded` (split, sub-quadratic and memory-efficient kernels) keeps the score blocks alive at any time
 * within `scoreBytes`, whatever the image size.
 */
export type AttentionMemory = { readonly kind: 'plain' } | { readonly kind: 'bounded'; readonly scoreBytes: number };

export const PLAIN_ATTENTION_MEMORY: AttentionMemory = { kind: 'plain' };

export interface PassSize {
  readonly width: number;
  readonly height: number;
}

export interface MemoryEstimateRequest {
  readonly config: ModelConfig;
  readonly width: number;
  readonly height: number;
  readonly batchSize: number;
  /** Conditionings per image (A1111's AND parts; 1 without AND). Each is a UNet row beside the uncond row. */
  readonly condsPerImage?: number;
  /** img2img: the init images are encoded at width x height. */
  readonly encodesInput?: boolean;
  /** Hires fix: the second pass's size, and whether it upscales latents (else it decodes, resizes, encodes). */
  readonly hires?: PassSize & { readonly latentUpscale: boolean };
  readonly attention: AttentionMemory;
  /** 4 for float32 weights (CPU), 2 for float16. */
  readonly bytesPerWeight?: number;
  /** The process without sessions; default the worker's (WORKER_RUNTIME_BYTES). */
  readonly runtimeBytes?: number;
}

export interface MemoryEstimate {
  readonly bytes: number;
  readonly parts: {
    readonly runtime: number;
    readonly weights: number;
    readonly text: number;
    /** One per UNet session (first pass, then the hires pass). */
    readonly unet: readonly number[];
    readonly vae: readonly number[];
    /** Decoded images and PNGs held in JavaScript. */
    readonly images: number;
  };
}

/** A worker process with its render thread and the demo model loaded, before any session exists: 182 MiB measured. */
export const WORKER_RUNTIME_BYTES = 192 * MiB;
/** Session and arena overheads that do not grow with the image (measured at 64x64: about 60 MiB per session). */
const UNET_SESSION_BYTES = 80 * MiB;
const VAE_SESSION_BYTES = 64 * MiB;
const TEXT_SESSION_BYTES = 32 * MiB;
/**
 * Plain attention's scores are held three times in a steady arena: q k^T, its scaled copy and the softmax, each
 * given its own place by the memory pattern (measured 2.4-2.8 times one score matrix above the session overhead).
 */
const PLAIN_SCORE_COPIES = 3;
/** A bounded attention's blocks may be planned side by side with the next chunk's: counted twice. */
const BOUNDED_SCORE_COPIES = 2;
/**
 * Convolutions at full resolution: the activations, their im2col buffers (9 times the input of a 3x3 conv) and
 * the group-norm temporaries, per channel-pixel of the widest level (measured 15.5-16.2 on the demo VAE).
 */
const CONV_ACTIVATION_FACTOR = 17;
const FLOAT = 4;
/**
 * Building a graph for a size not compiled yet holds the component's weights read into JavaScript and, while
 * onnxruntime copies them in, part of the serialised model: about 2.2 UNets at the peak of the full-size build
 * (7.5 GB with its session), so one and a half copies beside the session's own.
 */
const BUILD_COPIES = 1.5;
/** The latent is 1/8 of the image on every SD model (the VAE's three downsamplings). */
const LATENT_FACTOR = 8;
/** Tokens of one prompt chunk: the cross-attention keys. */
const CONTEXT_TOKENS = 77;

interface Pass {
  readonly latentH: number;
  readonly latentW: number;
}

function latentOf(s: PassSize): Pass {
  return { latentH: Math.ceil(s.height / LATENT_FACTOR), latentW: Math.ceil(s.width / LATENT_FACTOR) };
}

function attentionBytes(attention: AttentionMemory, plainScoreBytes: number): number {
  const plain = PLAIN_SCORE_COPIES * plainScoreBytes;
  return attention.kind === 'plain' ? plain : Math.min(plain, BOUNDED_SCORE_COPIES * attention.scoreBytes);
}

/** The largest score matrix of the UNet: every attention level, self and cross, over `rows` batch rows. */
function unetScoreBytes(config: ModelConfig, pass: Pass, rows: number): number {
  const u = config.unet;
  let largest = 0;
  let h = pass.latentH;
  let w = pass.latentW;
  u.channelMult.forEach((mult, level) => {
    const lowest = level === u.channelMult.length - 1;
    if (u.attentionResolutions.includes(2 ** level) || lowest) {
      const { heads } = attentionHeads(u, u.modelChannels * mult);
      const tokens = h * w;
      largest = Math.max(largest, rows * heads * tokens * Math.max(tokens, CONTEXT_TOKENS) * FLOAT);
    }
    // stride-2 convolutions with padding 1
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
  });
  return largest;
}

function unetSessionBytes(config: ModelConfig, pass: Pass, rows: number, attention: AttentionMemory): number {
  const conv = CONV_ACTIVATION_FACTOR * rows * config.unet.modelChannels * pass.latentH * pass.latentW * FLOAT;
  return UNET_SESSION_BYTES + conv + attentionBytes(attention, unetScoreBytes(config, pass, rows));
}

/** A VAE decoder or encoder at an image size: its full-resolution convolutions and its one-head mid attention. */
function vaeSessionBytes(config: ModelConfig, size: PassSize, attention: AttentionMemory): number {
  const v = config.vae;
  const widest = Math.max(...v.chMult.map((m, level) => (v.ch * m * size.width * size.height) / 4 ** level));
  const latent = latentOf(size);
  const tokens = latent.latentH * latent.latentW;
  const scores = tokens * tokens * FLOAT;
  // measured: the mid attention's scores add about one copy to the steady arena, not three
  const mid = attention.kind === 'plain' ? scores : Math.min(scores, attention.scoreBytes);
  return VAE_SESSION_BYTES + CONV_ACTIVATION_FACTOR * widest * FLOAT + mid;
}

export function estimateJobMemory(req: MemoryEstimateRequest): MemoryEstimate {
  const { config, attention } = req;
  const bytesPerWeight = req.bytesPerWeight ?? FLOAT;
  const counts = parameterCounts(config);
  const rows = req.batchSize * ((req.condsPerImage ?? 1) + 1);
  const first: PassSize = { width: req.width, height: req.height };
  const passes: PassSize[] = req.hires ? [first, req.hires] : [first];
  const unet = passes.map((p) => unetSessionBytes(config, latentOf(p), rows, attention));

  // Each VAE session is compiled for one image size, decoder and encoder apart.
  const final = req.hires ?? first;
  const vaeSizes: { size: PassSize; encoder: boolean }[] = [{ size: final, encoder: false }];
  if (req.encodesInput) vaeSizes.push({ size: first, encoder: true });
  if (req.hires && !req.hires.latentUpscale) vaeSizes.push({ size: first, encoder: false }, { size: req.hires, encoder: true });
  const vae = vaeSizes.map((s) => vaeSessionBytes(config, s.size, attention));

  // Every session holds its own copy of its component's weights; a graph built for a new size holds the largest
  // component again while it is written and handed over; the token embeddings stay in JavaScript for prompts.
  const sessionWeights = counts.text + unet.length * counts.unet
    + vaeSizes.reduce((sum, s) => sum + (s.encoder ? counts.vaeEncoder : counts.vaeDecoder), 0);
  const buildCopy = BUILD_COPIES * Math.max(counts.unet, counts.text, counts.vaeDecoder);
  const tokenTable = config.text.vocabSize * config.text.width;
  const weights = (sessionWeights + buildCopy) * bytesPerWeight + tokenTable * FLOAT;

  // a decoded float image and its 8-bit copy per image of the batch
  const images = req.batchSize * final.width * final.height * 3 * (FLOAT + 1);
  const runtime = req.runtimeBytes ?? WORKER_RUNTIME_BYTES;
  const bytes = runtime + weights + TEXT_SESSION_BYTES + unet.reduce((a, b) => a + b, 0) + vae.reduce((a, b) => a + b, 0) + images;
  return { bytes, parts: { runtime, weights, text: TEXT_SESSION_BYTES, unet, vae, images } };
}
