/**
 * The animator: an animation where each frame is an img2img of the frame before it, moved first (zoom, rotate,
 * translate), so a scene drifts and evolves. As the animator scripts of A1111's wiki do it, prompts change at
 * keyframes (`frame: prompt` lines; a prompt holds until the next key) and the moves are keyframed per frame
 * (`frame: value` pairs, linear between keys, held before the first and after the last). Frame 0 is the request
 * itself: an img2img of its init image, or a txt2img when it has none. Frame k needs frame k-1's image, so the
 * plan is a chain of stages (StagedScriptPlan): a farm runs them one after another, each as soon as its predecessor
 * completed. The seed is fixed or travels (seed + frame index), as img2img video's.
 */
import { isIdentityMove, type AffineMove } from '../pipeline/affine-transform.js';
import type { Img2ImgParams } from '../pipeline/params.js';
import { VIDEO_SEED_MODES, type VideoSeedMode } from './img2img-video.js';
import { checkCellCount, fixSeed, scriptArgError } from './script-errors.js';
import { img2imgStageBase, type ScriptStage, type StagedScriptPlan } from './txt2img2img.js';
import type { GenerationParams, PlanContext } from './types.js';

/** A keyframed value: one number for every frame, or `frame: value` pairs separated by commas or lines. */
export type Schedule = number | string;

export interface AnimatorOptions {
  /** Frames in the animation, frame 0 included. */
  readonly frames: number;
  /** `frame: prompt` lines; before the first key the request's prompt. */
  readonly prompts: string;
  /** `frame: negative prompt` lines; before the first key the request's negative prompt. */
  readonly negativePrompts: string;
  /** Zoom each frame applies to the one before (1: none, 1.02: 2% in per frame). */
  readonly zoom: Schedule;
  /** Degrees per frame, counter-clockwise. */
  readonly rotate: Schedule;
  /** Pixels per frame, right. */
  readonly translateX: Schedule;
  /** Pixels per frame, down. */
  readonly translateY: Schedule;
  /** img2img strength of frames 1 on; null: the request's denoising_strength, 0.75 when it has none. */
  readonly denoisingStrength: number | null;
  readonly seed: VideoSeedMode;
  readonly fps: number;
}

export const ANIMATOR_DEFAULTS: AnimatorOptions = {
  frames: 10, prompts: '', negativePrompts: '', zoom: 1, rotate: 0, translateX: 0, translateY: 0, denoisingStrength: null, seed: 'fixed', fps: 10,
};

export interface Keyframe<T> {
  readonly frame: number;
  readonly value: T;
}

/** Most frames an animation may have; a farm bounds it further by its flow size. */
const MAX_FRAMES = 100_000;

function keyFrame(text: string, field: string, where: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) > MAX_FRAMES) scriptArgError(field, `${where}: ${JSON.stringify(t)} is not a frame number`, text);
  return Number(t);
}

function sorted<T>(keys: Keyframe<T>[], field: string): Keyframe<T>[] {
  keys.sort((a, b) => a.frame - b.frame);
  keys.forEach((k, i) => {
    if (i > 0 && keys[i - 1]!.frame === k.frame) scriptArgError(field, `frame ${k.frame} is keyed twice`, k.frame);
  });
  return keys;
}

/** A schedule's keys: `0: 1, 10: 1.05` (Deforum's `0:(1.05)` parentheses allowed), or one number for all frames. */
export function parseSchedule(s: Schedule, field: string): Keyframe<number>[] {
  if (typeof s === 'number') {
    if (!Number.isFinite(s)) scriptArgError(field, 'must be a finite number', s);
    return [{ frame: 0, value: s }];
  }
  const parts = s.split(/[,\n]/).map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) scriptArgError(field, 'needs at least one `frame: value` key', s);
  return sorted(parts.map((part, i) => {
    const colon = part.indexOf(':');
    if (colon < 0) scriptArgError(field, `key ${i} (${JSON.stringify(part)}) is not \`frame: value\``, s);
    const raw = part.slice(colon + 1).trim().replace(/^\((.*)\)$/, '$1').trim();
    const value = raw === '' ? Number.NaN : Number(raw);
    if (!Number.isFinite(value)) scriptArgError(field, `key ${i}: ${JSON.stringify(raw)} is not a number`, s);
    return { frame: keyFrame(part.slice(0, colon), field, `key ${i}`), value };
  }), field);
}

/** The value at `frame`: linear between the keys around it, the nearest key's outside them. */
export function scheduleAt(keys: readonly Keyframe<number>[], frame: number): number {
  const first = keys[0]!;
  if (frame <= first.frame) return first.value;
  for (let i = 1; i < keys.length; i++) {
    const b = keys[i]!;
    if (frame <= b.frame) {
      const a = keys[i - 1]!;
      return a.value + ((b.value - a.value) * (frame - a.frame)) / (b.frame - a.frame);
    }
  }
  return keys[keys.length - 1]!.value;
}

/** `frame: prompt` lines (the prompt may hold colons of its own); blank lines are skipped. */
export function parsePromptKeyframes(text: string, field: string): Keyframe<string>[] {
  const keys: Keyframe<string>[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const colon = line.indexOf(':');
    if (colon < 0) scriptArgError(field, `line ${i + 1} (${JSON.stringify(line.slice(0, 40))}) is not \`frame: prompt\``, line);
    keys.push({ frame: keyFrame(line.slice(0, colon), field, `line ${i + 1}`), value: line.slice(colon + 1).trim() });
  });
  return sorted(keys, field);
}

/** The prompt at `frame`: the last key at or before it, or `before` when the first key is later. */
export function promptAt(keys: readonly Keyframe<string>[], frame: number, before: string): string {
  let prompt = before;
  for (const k of keys) {
    if (k.frame > frame) break;
    prompt = k.value;
  }
  return prompt;
}

/** The move frame k applies to frame k-1's image. */
export function animatorMove(o: Pick<AnimatorOptions, 'zoom' | 'rotate' | 'translateX' | 'translateY'>, frame: number): AffineMove {
  const zoom = scheduleAt(parseSchedule(o.zoom, 'zoom'), frame);
  if (!(zoom > 0)) scriptArgError('zoom', `zoom at frame ${frame} is ${zoom}; it must stay above 0`, zoom);
  return {
    zoom,
    rotate: scheduleAt(parseSchedule(o.rotate, 'rotate'), frame),
    translateX: scheduleAt(parseSchedule(o.translateX, 'translate_x'), frame),
    translateY: scheduleAt(parseSchedule(o.translateY, 'translate_y'), frame),
  };
}

const SEED_SPACE = 4294967296;

export function planAnimator<P extends GenerationParams>(o: AnimatorOptions, base: P, ctx: PlanContext = {}): StagedScriptPlan<P> {
  if (!Number.isInteger(o.frames) || o.frames < 1) scriptArgError('frames', 'must be an integer of at least 1', o.frames);
  checkCellCount(o.frames, ctx, 'the animation');
  if (!(VIDEO_SEED_MODES as readonly string[]).includes(o.seed)) scriptArgError('seed', `must be one of ${VIDEO_SEED_MODES.join(', ')}`, o.seed);
  if (!Number.isFinite(o.fps) || o.fps <= 0 || o.fps > 240) scriptArgError('fps', 'frames per second must be above 0 and at most 240', o.fps);
  if (o.denoisingStrength !== null && !(o.denoisingStrength >= 0 && o.denoisingStrength <= 1)) scriptArgError('denoising_strength', 'must be from 0 to 1', o.denoisingStrength);
  if ('mask' in base && base.mask) scriptArgError('mask', 'the animator takes no mask (every frame is repainted whole)', 'mask');
  const prompts = parsePromptKeyframes(o.prompts, 'prompts');
  const negatives = parsePromptKeyframes(o.negativePrompts, 'negative_prompts');
  // Every move is computed now, so a bad key is refused before anything runs.
  const moves = Array.from({ length: o.frames }, (_, k) => animatorMove(o, k));
  const seed = fixSeed(base.seed, ctx, 'seed');
  const subseed = (base.subseed_strength ?? 0) !== 0 ? fixSeed(base.subseed, ctx, 'subseed') : (base.subseed ?? -1);
  const step = o.seed === 'travel' ? 1 : 0;
  const seedsAt = (k: number) => ({ seed: (seed + k * step) % SEED_SPACE, subseed: subseed === -1 ? -1 : (subseed + k * step) % SEED_SPACE });
  const textAt = (k: number) => ({ prompt: promptAt(prompts, k, base.prompt ?? ''), negative_prompt: promptAt(negatives, k, base.negative_prompt ?? '') });
  const first = { ...base, ...textAt(0), ...seedsAt(0), batch_size: 1, n_iter: 1 } as P;
  const strength = o.denoisingStrength ?? (typeof base.denoising_strength === 'number' ? base.denoising_strength : 0.75);
  const chained = img2imgStageBase(first);
  const stages: ScriptStage[] = [{ kind: 'cells', cells: [0] }];
  for (let k = 1; k < o.frames; k++) {
    const params: Omit<Img2ImgParams, 'init_images'> = { ...chained, ...textAt(k), ...seedsAt(k), denoising_strength: strength };
    const move = moves[k]!;
    stages.push({ kind: 'img2img', params, from: { stage: k - 1, cell: 0, image: 0 }, label: `frame ${k}`, ...(isIdentityMove(move) ? {} : { transform: move }) });
  }
  const all = stages.map((_, k) => k);
  return {
    script: 'animator',
    cells: [{ params: first, label: 'frame 0' }],
    layout: { grids: [] },
    outputs: [{ kind: 'cell-first', cell: 0 }],
    warnings: [],
    stages,
    imageStages: all,
    animations: [{ frames: all, fps: o.fps, label: `${o.frames} frames` }],
  };
}
