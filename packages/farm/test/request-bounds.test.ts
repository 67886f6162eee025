/**
 * The API's request schemas and the engine's resolver take their numeric bounds from one table (the catalog's
 * REQUEST_BOUNDS): for every field, both accept its smallest and largest value, both refuse one step beyond either
 * end (and a size that is not a multiple of 8), naming the same field, and both default it to the same value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REQUEST_BOUNDS, type BoundedField, type NumberBound } from '@darkroom/core/catalog/request-bounds.js';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { resolveImg2Img, resolveTxt2Img } from '@darkroom/core/pipeline/params.js';
import { Img2ImgRequest, Txt2ImgRequest } from '../src/schemas.js';

const INIT = 'iVBORw0KGgo=';
/** Fields the engine reads only from an img2img request, or only when it has a mask. */
const IMG2IMG_ONLY = new Set<BoundedField>(['resize_mode', 'initial_noise_multiplier']);
const INPAINT_ONLY = new Set<BoundedField>(['mask_blur', 'mask_blur_x', 'mask_blur_y', 'inpainting_fill', 'inpaint_full_res_padding', 'inpainting_mask_invert']);
const TXT2IMG_ONLY = new Set<BoundedField>(['hr_scale', 'hr_second_pass_steps', 'hr_resize_x', 'hr_resize_y']);

function kindOf(field: BoundedField): 'txt2img' | 'img2img' {
  return IMG2IMG_ONLY.has(field) || INPAINT_ONLY.has(field) ? 'img2img' : 'txt2img';
}

function requestWith(field: BoundedField, value: number): Record<string, unknown> {
  const base: Record<string, unknown> = kindOf(field) === 'img2img' ? { init_images: [INIT], ...(INPAINT_ONLY.has(field) ? { mask: INIT } : {}) } : {};
  return { ...base, [field]: value };
}

/** The field the API's schema refuses, or null when it accepts. */
function apiRefusal(field: BoundedField, value: number): string | null {
  const schema = kindOf(field) === 'img2img' ? Img2ImgRequest : Txt2ImgRequest;
  const r = schema.safeParse(requestWith(field, value));
  return r.success ? null : String(r.error.issues[0]!.path[0]);
}

/** The field the engine's resolver refuses, or null when it accepts. */
function engineRefusal(field: BoundedField, value: number): string | null {
  const req = requestWith(field, value);
  try {
    if (kindOf(field) === 'img2img') resolveImg2Img(req as unknown as Parameters<typeof resolveImg2Img>[0]);
    else resolveTxt2Img(req as unknown as Parameters<typeof resolveTxt2Img>[0]);
    return null;
  } catch (e) {
    if (isDarkroomError(e) && e.code === 'BAD_PARAMS') return String(e.details.field);
    throw e;
  }
}

const step = (b: NumberBound): number => (b.integer ? 1 : Math.max(1e-6, (b.max - b.min) * 1e-6));

for (const [name, bound] of Object.entries(REQUEST_BOUNDS) as [BoundedField, NumberBound][]) {
  test(`${name}: the API and the engine accept and refuse the same values`, () => {
    for (const v of [bound.min, bound.max]) {
      assert.equal(apiRefusal(name, v), null, `API refuses ${name}=${v}`);
      assert.equal(engineRefusal(name, v), null, `engine refuses ${name}=${v}`);
    }
    const outside = [bound.min - step(bound), bound.max + step(bound), ...(bound.integer ? [bound.min + 0.5] : [])];
    if (bound.multipleOf !== undefined) outside.push(bound.max - bound.multipleOf / 2);
    for (const v of outside) {
      assert.equal(apiRefusal(name, v), name, `API takes ${name}=${v}`);
      assert.equal(engineRefusal(name, v), name, `engine takes ${name}=${v}`);
    }
  });
}

test('the API and the engine give an omitted field the same default', () => {
  const api = Txt2ImgRequest.parse({});
  const engine = resolveTxt2Img({} as Parameters<typeof resolveTxt2Img>[0]);
  for (const f of ['seed', 'subseed', 'subseed_strength', 'batch_size', 'n_iter', 'steps', 'cfg_scale', 'width', 'height', 'hr_scale'] as const) {
    assert.equal(api[f], REQUEST_BOUNDS[f].default, f);
    assert.equal(engine[f], REQUEST_BOUNDS[f].default, f);
  }
  const img = Img2ImgRequest.parse({ init_images: [INIT] });
  assert.equal(img.denoising_strength, REQUEST_BOUNDS.denoising_strength.default);
  assert.equal(resolveImg2Img({ init_images: [INIT] } as unknown as Parameters<typeof resolveImg2Img>[0]).denoising_strength, REQUEST_BOUNDS.denoising_strength.default);
});

test(`TXT2IMG_ONLY fields are txt2img's`, () => {
  for (const f of TXT2IMG_ONLY) assert.ok(f in Txt2ImgRequest.shape && !(f in Img2ImgRequest.shape), f);
});
