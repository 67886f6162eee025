/**
 * A conservative estimate of the peak resident memory of a process rendering one job: the runtime, the
 * weights of every session the job opens, and what onnxruntime's CPU arena keeps for each session once the job
 * has run (the arena never gives memory back, so the peak is the sum over sessions, not the largest one).
 *
 * Calibrated against the demo model's measured peak RSS, each case rendered in a child process of its own with a
 * cold graph cache (bench/memory-estimate.ts: two iterations of three steps, so every session reaches its steady
 * arena; onnxruntime plans a memory pattern on the second run of a shape and keeps the first run's blocks too).
 * 2-core development host, CPU provider; MiB above the child's own baseline (about 100 MiB), measured -> estimated:
 *   plain     128x128     129 ->  237 (+84%)    512x256        706 ->  887 (+26%)
 *             256x256     318 ->  440 (+39%)    256x256 b2     427 ->  547 (+28%)
 *             384x384     780 -> 1030 (+32%)    384x384 b2     858 -> 1539 (+79%)
 *             512x512    1900 -> 2380 (+25%)    256 hires x1.5 913 -> 1216 (+33%)
 *             256 img2img 343 ->  646 (+88%)    256 hires x2  2034 -> 2566 (+26%)
 *   subquad   512x512    1093 -> 1612 (+47%)    768x768       2128 -> 2795 (+31%)    1024x1024 3711 -> 4286 (+15%)
 *   auto      1024x1024  2726 -> 3241 (+19%)    1536x1536     2052 -> 2458 (+20%)    2048x2048 2769 -> 3646 (+32%)
 * (1536 and 2048 decode in VAE tiles.) The estimate is above every measurement, by 15% to 88%; the large relative
 * errors are the small jobs, where fixed per-session overheads dominate. One step is not enough to calibrate on:
 * the same plain 512x512 render peaked at 1.1 GiB after one step and at 1.7-2.0 GiB after several (the memory
 * pattern), and runs vary by a sixth.
 *
 * The full-size models are too large to measure on the development host. Their estimate uses the same terms with
 * weights from the parameter counts and is checked against the two observations on record: building and running
 * the full-size SD 1.5 UNet alone peaks near 7.5 GB (bench/README.md; estimated 8.6 GB for its session and build),
 * and SD 1.5 (an F16 file) at 256x256 took 8.8 GB for one step (estimated 9.9 GiB = 10.6 GB).
 */
import { attentionBuild, type AttentionMode } from '../planning/attention.js';
import { attentionHeads, type ModelConfig } from '../model-files/config.js';
import { parameterCounts } from '../model-files/parameter-count.js';
import { DEFAULT_VAE_TILING, tilesNeeded, type VaeTiling } from '../planning/vae-tiles.js';
import type { Provider } from '../runtime/session.js';

const MiB = 1024 ** 2;

/**
 * How attention holds its scores. `plain` materialises heads x queries x keys float32 scores per batch row.
 * `lean` (split and sub-quadratic chunks, onnxruntime's fused kernel) never holds a whole score matrix; what it
 * keeps grows with the tokens instead, measured per (batch row x head x query token) above a floor. Attentions
 * whose plain scores are at most `plainUpToBytes` are built plain anyway (the reference where it is cheap).
 */
export type AttentionMemory =
  | { readonly kind: 'plain' }
  | { readonly kind: 'lean'; readonly floorBytes: number; readonly bytesPerHeadToken: number; readonly plainUpToBytes: number };

export const PLAIN_ATTENTION_MEMORY: AttentionMemory = { kind: 'plain' };

/**
 * Lean attention on the demo UNet, steady arena above the session and convolutions (MiB, 2 rows x 4 heads):
 * split 883 / 1016 / 2191 at 768 / 1024 / 1536 pixels, sub-quadratic 702 / 1425 / 2371, fused 316 (1024) and
 * 785 (1536), auto 456 (1024). The chunked forms keep about 8 KiB per row, head and token beyond two chunk
 * targets (the memory pattern keeps several chunks' blocks); the fused kernel about 3 KiB above 128 MiB, counted
 * as 4 KiB for the margin the whole-pipeline runs below need.
 */
const CHUNKED_BYTES_PER_HEAD_TOKEN = 8 * 1024;
const FUSED_BYTES_PER_HEAD_TOKEN = 4 * 1024;
const FUSED_FLOOR_BYTES = 128 * MiB;

/** How an engine built with attention `mode` on `provider` holds its scores. */
export function attentionMemory(mode: AttentionMode, provider: Provider, chunkBytes?: number): AttentionMemory {
  const build = attentionBuild(mode, provider, chunkBytes);
  if (build.form === 'plain') return PLAIN_ATTENTION_MEMORY;
  // the builders keep the small attentions plain (planning/attention.ts says which)
  const { plainUpToBytes } = build;
  return build.form === 'fused'
    ? { kind: 'lean', floorBytes: FUSED_FLOOR_BYTES, bytesPerHeadToken: FUSED_BYTES_PER_HEAD_TOKEN, plainUpToBytes }
    : { kind: 'lean', floorBytes: 2 * build.chunkBytes, bytesPerHeadToken: CHUNKED_BYTES_PER_HEAD_TOKEN, plainUpToBytes };
}

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
  /** The engine's VAE tiling (default its own): a tiled VAE runs at the tile's size, whatever the image's. */
  readonly vaeTiling?: VaeTiling;
  /** 4 for float32 weights (CPU), 2 for float16. */
  readonly bytesPerWeight?: number;
  /** The process without sessions; default the worker's (WORKER_RUNTIME_BYTES). */
  readonly runtimeBytes?: number;
  /**
   * The checkpoint file's size, when known: a file stores every parameter in at least two bytes, so a smaller file
   * than the config's parameters need holds a smaller model, and the weights are scaled down to what it can hold.
   */
  readonly checkpointBytes?: number;
  /**
   * medvram: one session is open at a time (each component's sessions are released before another opens), so
   * the peak holds the largest session's weights and arena, not their sum.
   */
  readonly oneSessionResident?: boolean;
  /** batch_cond_uncond false: the UNet takes the cond rows and the uncond rows in separate calls. */
  readonly sequentialCondUncond?: boolean;
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
    /** Decoded images, tiles and PNGs held in JavaScript. */
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
/** float16 checkpoints: the most compact storage the loaders read. */
const MIN_BYTES_PER_STORED_PARAMETER = 2;
/** The latent is 1/8 of the image on every SD model (the VAE's three downsamplings). */
const LATENT_FACTOR = 8;
/**
 * Float copies of each final image alive in JavaScript: the decoded image, a tiled VAE's sums and blend weights, and
 * the tile outputs the garbage collector has not yet freed (measured: whole renders at 1536 and 2048 pixels peak
 * 250-300 MiB above their sessions).
 */
const IMAGE_FLOAT_COPIES = 8;
/** Tokens of one prompt chunk: the cross-attention keys. */
const CONTEXT_TOKENS = 77;

interface Pass {
  readonly latentH: number;
  readonly latentW: number;
}

function latentOf(s: PassSize): Pass {
  return { latentH: Math.ceil(s.height / LATENT_FACTOR), latentW: Math.ceil(s.width / LATENT_FACTOR) };
}

/** One attention of `rows` x `heads` over `queries` x `keys` tokens, as `attention` holds it. */
function attentionBytes(attention: AttentionMemory, rows: number, heads: number, queries: number, keys: number): number {
  const plain = PLAIN_SCORE_COPIES * rows * heads * queries * keys * FLOAT;
  if (attention.kind === 'plain' || rows * heads * queries * keys * FLOAT <= attention.plainUpToBytes) return plain;
  return Math.min(plain, attention.floorBytes + attention.bytesPerHeadToken * rows * heads * queries);
}

/** The costliest attention of the UNet: every attention level, self and cross, over `rows` batch rows. */
function unetAttentionBytes(config: ModelConfig, pass: Pass, rows: number, attention: AttentionMemory): number {
  const u = config.unet;
  let largest = 0;
  let h = pass.latentH;
  let w = pass.latentW;
  u.channelMult.forEach((mult, level) => {
    const lowest = level === u.channelMult.length - 1;
    if (u.attentionResolutions.includes(2 ** level) || lowest) {
      const { heads } = attentionHeads(u, u.modelChannels * mult);
      const tokens = h * w;
      largest = Math.max(largest, attentionBytes(attention, rows, heads, tokens, Math.max(tokens, CONTEXT_TOKENS)));
    }
    // stride-2 convolutions with padding 1
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
  });
  return largest;
}

function unetSessionBytes(config: ModelConfig, pass: Pass, rows: number, attention: AttentionMemory): number {
  const conv = CONV_ACTIVATION_FACTOR * rows * config.unet.modelChannels * pass.latentH * pass.latentW * FLOAT;
  return UNET_SESSION_BYTES + conv + unetAttentionBytes(config, pass, rows, attention);
}

/** The size a VAE session runs at: the image's, or one tile's when the image is tiled. */
function vaeRunSize(size: PassSize, tiling: VaeTiling): PassSize {
  const latent = latentOf(size);
  if (!tilesNeeded(tiling, latent.latentH, latent.latentW, LATENT_FACTOR)) return size;
  const side = tiling.tile * LATENT_FACTOR;
  return { width: Math.min(size.width, side), height: Math.min(size.height, side) };
}

/** A VAE decoder or encoder at an image size: its full-resolution convolutions and its one-head mid attention. */
function vaeSessionBytes(config: ModelConfig, size: PassSize, attention: AttentionMemory): number {
  const v = config.vae;
  const widest = Math.max(...v.chMult.map((m, level) => (v.ch * m * size.width * size.height) / 4 ** level));
  const latent = latentOf(size);
  const tokens = latent.latentH * latent.latentW;
  // measured: the mid attention's scores add about one copy to the steady arena, not three
  const mid = attentionBytes(attention, 1, 1, tokens, tokens) / PLAIN_SCORE_COPIES;
  return VAE_SESSION_BYTES + CONV_ACTIVATION_FACTOR * widest * FLOAT + mid;
}

export function estimateJobMemory(req: MemoryEstimateRequest): MemoryEstimate {
  const { config, attention } = req;
  const bytesPerWeight = req.bytesPerWeight ?? FLOAT;
  const full = parameterCounts(config);
  const total = full.unet + full.text + full.vaeDecoder + full.vaeEncoder;
  const scale = req.checkpointBytes === undefined ? 1 : Math.min(1, req.checkpointBytes / MIN_BYTES_PER_STORED_PARAMETER / total);
  const counts = { unet: full.unet * scale, text: full.text * scale, vaeDecoder: full.vaeDecoder * scale, vaeEncoder: full.vaeEncoder * scale };
  // apart, every UNet call takes at most batch_size rows (cond chunks of batch_size, then the uncond rows)
  const rows = req.sequentialCondUncond ? req.batchSize : req.batchSize * ((req.condsPerImage ?? 1) + 1);
  const first: PassSize = { width: req.width, height: req.height };
  const passes: PassSize[] = req.hires ? [first, req.hires] : [first];
  const unet = passes.map((p) => unetSessionBytes(config, latentOf(p), rows, attention));

  // Each VAE session is compiled for one image size, decoder and encoder apart.
  const final = req.hires ?? first;
  const vaeSizes: { size: PassSize; encoder: boolean }[] = [{ size: final, encoder: false }];
  if (req.encodesInput) vaeSizes.push({ size: first, encoder: true });
  if (req.hires && !req.hires.latentUpscale) vaeSizes.push({ size: first, encoder: false }, { size: req.hires, encoder: true });
  const tiling = req.vaeTiling ?? DEFAULT_VAE_TILING;
  const vae = vaeSizes.map((s) => vaeSessionBytes(config, vaeRunSize(s.size, tiling), attention));

  // Every session holds its own copy of its component's weights; a graph built for a new size holds the largest
  // component again while it is written and handed over; the token embeddings stay in JavaScript for prompts.
  const sessions: { kind: 'text' | 'unet' | 'vae'; weights: number; arena: number }[] = [
    { kind: 'text', weights: counts.text, arena: TEXT_SESSION_BYTES },
    ...unet.map((arena) => ({ kind: 'unet' as const, weights: counts.unet, arena })),
    ...vaeSizes.map((s, i) => ({ kind: 'vae' as const, weights: s.encoder ? counts.vaeEncoder : counts.vaeDecoder, arena: vae[i]! })),
  ];
  const buildCopy = BUILD_COPIES * Math.max(counts.unet, counts.text, counts.vaeDecoder);
  const tokenTable = config.text.vocabSize * config.text.width * scale;
  const pixels = final.width * final.height;
  const images = req.batchSize * pixels * 3 * (IMAGE_FLOAT_COPIES * FLOAT + 1);
  const runtime = req.runtimeBytes ?? WORKER_RUNTIME_BYTES;
  // the build reads weights into float32 arrays whatever the sessions then hold
  const fixed = runtime + (buildCopy + tokenTable) * FLOAT + images;

  if (req.oneSessionResident) {
    const largest = sessions.reduce((a, s) => (s.weights * bytesPerWeight + s.arena > a.weights * bytesPerWeight + a.arena ? s : a));
    const weights = largest.weights * bytesPerWeight + (buildCopy + tokenTable) * FLOAT;
    const bytes = fixed + largest.weights * bytesPerWeight + largest.arena;
    const only = (kind: 'text' | 'unet' | 'vae'): number[] => (largest.kind === kind ? [largest.arena] : []);
    return { bytes, parts: { runtime, weights, text: only('text')[0] ?? 0, unet: only('unet'), vae: only('vae'), images } };
  }
  const sessionWeights = sessions.reduce((sum, s) => sum + s.weights, 0);
  const weights = sessionWeights * bytesPerWeight + (buildCopy + tokenTable) * FLOAT;
  const bytes = fixed + sessionWeights * bytesPerWeight + sessions.reduce((sum, s) => sum + s.arena, 0);
  return { bytes, parts: { runtime, weights, text: TEXT_SESSION_BYTES, unet, vae, images } };
}
