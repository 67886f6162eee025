/**
 * The flow-only scripts on `/v1/flows`: img2img video and the animator. They have no A1111 script_args order, so
 * they take named `script.options`, checked here with their own schemas (a refusal names `script.options.<field>`),
 * and are planned by core (planImg2ImgVideo, planAnimator) into the same children and parent plan as the A1111
 * scripts (childrenOfPlan).
 */
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { isDarkroomError } from '@darkroom/core/errors.js';
import {
  ANIMATOR_DEFAULTS, planAnimator, planImg2ImgVideo, VIDEO_SEED_MODES, type FlowScriptName, type GenerationParams, type ScriptPlan, type StagedScriptPlan,
} from '@darkroom/core/scripts/index.js';
import type { Img2ImgParams } from '@darkroom/core/pipeline/params.js';
import { FarmError, Img2ImgRequest, isFarmError, Txt2ImgRequest, type GenerateKind, type GenerateRequest } from '@darkroom/farm';
import { MAX_FLOW_CHILDREN, type FlowAnimationSettings, type FlowScriptPlan } from '@darkroom/farm/flows.js';
import { readVideoFrames, VIDEO_MAX_DECODED_BYTES } from '@darkroom/farm/video-input.js';
import type { ApiContext } from './context.js';
import { childrenOfPlan, type PlannedChild } from './flow-scripts.js';
import { parseWith } from './http-errors.js';

const OPTIONS = 'script.options';

const schedule = z.union([z.number(), z.string().max(20_000)]);

export const VideoOptions = z.strictObject({
  input: z.string().min(1).regex(/^(data:[a-z/+.-]+;base64,)?[A-Za-z0-9+/=\s]+$/, 'base64 data')
    .describe('base64 of a zip of PNG/JPEG frames (in natural name order) or of an animated GIF'),
  seed: z.enum(VIDEO_SEED_MODES).default('fixed').describe('fixed: the base\'s seed for every frame; travel: seed + frame index'),
  fps: z.number().gt(0).max(240).nullable().default(null)
    .describe('frame rate of the output; null: a GIF\'s own frame timing, 10 for a zip of frames'),
}).describe('img2img video: each input frame through img2img with the base\'s parameters');

export const AnimatorOptions = z.strictObject({
  frames: z.number().int().min(1).max(MAX_FLOW_CHILDREN).describe('frames, frame 0 included'),
  prompts: z.string().max(100_000).default('').describe('`frame: prompt` lines; before the first key the base\'s prompt'),
  negative_prompts: z.string().max(100_000).default('').describe('`frame: negative prompt` lines'),
  zoom: schedule.default(1).describe('zoom per frame, a number or `frame: value` keys (linear between them)'),
  rotate: schedule.default(0).describe('degrees per frame, counter-clockwise'),
  translate_x: schedule.default(0).describe('pixels per frame, right'),
  translate_y: schedule.default(0).describe('pixels per frame, down'),
  denoising_strength: z.number().min(0).max(1).nullable().default(null).describe('img2img strength of frames 1 on; null: the base\'s, 0.75 without one'),
  seed: z.enum(VIDEO_SEED_MODES).default('fixed'),
  fps: z.number().gt(0).max(240).default(ANIMATOR_DEFAULTS.fps),
}).describe('the animator: each frame an img2img of the frame before it, moved');

/** A refusal of a script's options or base, with its field under `prefix`. */
function under(prefix: string, e: unknown): unknown {
  if (isFarmError(e)) {
    const field = e.field === undefined ? prefix : e.field.startsWith(prefix) ? e.field : `${prefix}.${e.field}`;
    const message = e.message.startsWith(prefix) ? e.message : e.field !== undefined && e.message.startsWith(e.field) ? `${prefix}.${e.message}` : `${field}: ${e.message}`;
    return new FarmError(e.code, e.status, message, field, e.file);
  }
  if (isDarkroomError(e)) {
    const raw = typeof e.details.field === 'string' ? e.details.field : undefined;
    const field = raw === undefined ? prefix : raw === 'seed' || raw === 'subseed' || raw === 'mask' ? `base.${raw}` : `${prefix}.${raw}`;
    const status = e.code === 'SCRIPT_TOO_MANY_CELLS' ? 413 : 400;
    return new FarmError(e.code, status, `${field}: ${e.message.replace(/^[a-z_]+: /, '')}`, field);
  }
  return e;
}

function parseIn<T>(schema: z.ZodType<T>, input: unknown, prefix: string): T {
  try {
    return parseWith(schema, input);
  } catch (e) {
    throw under(prefix, e);
  }
}

/** Core plans take engine params; the farm's requests are a superset of the fields they read. */
function asParams<P extends GenerationParams>(r: GenerateRequest): P {
  return { ...r, script_name: null, script_args: [] } as unknown as P;
}

async function planVideo(ctx: ApiContext, rawOptions: unknown, rawBase: Record<string, unknown>) {
  const o = parseIn(VideoOptions, rawOptions, OPTIONS);
  if ('init_images' in rawBase) throw new FarmError('INVALID_REQUEST', 400, `base.init_images: img2img video's frames come from ${OPTIONS}.input`, 'base.init_images');
  const bytes = new Uint8Array(Buffer.from(o.input.replace(/^data:[a-z/+.-]+;base64,/, ''), 'base64'));
  const video = await readVideoFrames(bytes, { maxFrames: MAX_FLOW_CHILDREN, maxPixels: ctx.cfg.maxInputPixels, maxDecodedBytes: VIDEO_MAX_DECODED_BYTES }, `${OPTIONS}.input`);
  const b64 = video.frames.map((f) => Buffer.from(f).toString('base64'));
  // The base is an img2img body whose init image is each frame in turn: checked once with the first.
  const base = parseIn(Img2ImgRequest, { ...rawBase, init_images: [b64[0]] }, 'base');
  checkBase(base);
  const plan = planImg2ImgVideo(video.frames, {
    seed: o.seed, fps: o.fps ?? 10, delaysMs: o.fps === null ? video.delaysMs : null,
  }, asParams<Img2ImgParams>(base), { randomSeed: () => randomInt(0, 4294967294), maxCells: MAX_FLOW_CHILDREN });
  // Each cell's init image goes out as the base64 the child's request carries (prepareGenerateJob stores it).
  const withFrames = { ...plan, cells: plan.cells.map((c, k) => ({ ...c, params: { ...c.params, init_images: [b64[k]] } })) } as unknown as ScriptPlan;
  return { plan: withFrames, kind: 'img2img' as GenerateKind, base: base as GenerateRequest };
}

function planAnimation(rawOptions: unknown, rawBase: Record<string, unknown>) {
  const o = parseIn(AnimatorOptions, rawOptions, OPTIONS);
  const kind: GenerateKind = 'init_images' in rawBase ? 'img2img' : 'txt2img';
  const base: GenerateRequest = kind === 'img2img' ? parseIn(Img2ImgRequest, rawBase, 'base') : parseIn(Txt2ImgRequest, rawBase, 'base');
  checkBase(base);
  if ('init_images' in base && base.init_images.length !== 1) {
    throw new FarmError('INVALID_REQUEST', 400, 'base.init_images: the animator starts from one image', 'base.init_images');
  }
  const plan: StagedScriptPlan = planAnimator({
    frames: o.frames, prompts: o.prompts, negativePrompts: o.negative_prompts, zoom: o.zoom, rotate: o.rotate, translateX: o.translate_x, translateY: o.translate_y,
    denoisingStrength: o.denoising_strength, seed: o.seed, fps: o.fps,
  }, asParams(base), { randomSeed: () => randomInt(0, 4294967294), maxCells: MAX_FLOW_CHILDREN });
  return { plan, kind, base };
}

function checkBase(base: GenerateRequest): void {
  if (base.script_name !== null) throw new FarmError('INVALID_REQUEST', 400, 'base.script_name: name the script in `script`', 'base.script_name');
  if (base.webhook !== null) throw new FarmError('INVALID_REQUEST', 400, 'base.webhook: a flow notifies through its own webhook', 'base.webhook');
  if (base.batch_size * base.n_iter !== 1) throw new FarmError('INVALID_REQUEST', 400, 'base.batch_size: each frame is one image (batch_size and n_iter 1)', 'base.batch_size');
}

/** A flow-only script over `base` (the raw body: the script decides which kind of request it is). */
export async function planFarmFlowScript(
  ctx: ApiContext, name: FlowScriptName, args: readonly unknown[], options: unknown, rawBase: Record<string, unknown>, animation: FlowAnimationSettings | null,
): Promise<{ children: PlannedChild[]; script: FlowScriptPlan }> {
  if (args.length > 0) throw new FarmError('INVALID_REQUEST', 400, `script.args: ${name} takes named ${OPTIONS}, not A1111 script_args`, 'script.args');
  if (options === undefined) throw new FarmError('INVALID_REQUEST', 400, `${OPTIONS}: ${name} needs its options`, OPTIONS);
  let planned: { plan: ScriptPlan | StagedScriptPlan; kind: GenerateKind; base: GenerateRequest };
  try {
    planned = name === 'img2img video' ? await planVideo(ctx, options, rawBase) : planAnimation(options, rawBase);
  } catch (e) {
    // Refusals the farm made already name their field; core's plan errors name the option.
    throw isFarmError(e) ? e : under(OPTIONS, e);
  }
  return childrenOfPlan(name, planned.plan, planned.kind, planned.base, { status: 400, nameField: 'script.name', animation });
}
