/**
 * Inpainting on the demo model: outside the (blurred) mask the result keeps the init image's pixels, inside it
 * changes; an inverted mask does the opposite; "only masked" crops, renders and pastes back; the masked-content
 * modes and the infotext entries A1111 writes. The mask arithmetic (blur, crop region, fill) is checked on its own.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { Engine } from '../../src/pipeline/engine.js';
import { decodePng, encodePng, type RasterImage } from '../../src/formats/png.js';
import { parseGenerationParameters } from '../../src/formats/infotext.js';
import { cropRegion, expandCropRegion, fillMasked, planMask, type MaskPlan } from '../../src/pipeline/inpaint.js';
import { cvGaussianBlur1d } from '../../src/pipeline/mask-pixels.js';
import type { Img2ImgParams } from '../../src/pipeline/params.js';
import { demoCheckpointTensors, demoModelConfig, demoTokenizer, ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { float32 } from '../../src/tensor.js';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let engine: Engine;

before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});

after(async () => {
  await engine.close();
});

const W = 64;
const H = 64;

/** A smooth colour pattern, so that any repainting shows. */
function initImage(): RasterImage {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      data[i] = (x * 4) & 255;
      data[i + 1] = (y * 4) & 255;
      data[i + 2] = ((x + y) * 2) & 255;
    }
  }
  return { width: W, height: H, channels: 3, data };
}

/** White square [x0, x1) x [y0, y1) on black, one channel. */
function squareMask(x0: number, y0: number, x1: number, y1: number): RasterImage {
  const data = new Uint8Array(W * H);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[y * W + x] = 255;
  return { width: W, height: H, channels: 1, data };
}

const base: Img2ImgParams = {
  init_images: [],
  prompt: 'a red door',
  steps: 4,
  sampler_name: 'Euler',
  cfg_scale: 7,
  seed: 77,
  width: W,
  height: H,
  denoising_strength: 0.9,
  mask_blur: 4,
  inpainting_fill: 1,
  inpaint_full_res: false,
};

function planOf(mask: RasterImage, invert: boolean, fullRes = false, padding = 0, blur = 4): MaskPlan {
  return planMask(
    { mask, maskBlurX: blur, maskBlurY: blur, maskRound: true, inpaintingFill: 1, inpaintFullRes: fullRes, inpaintFullResPadding: padding, invert },
    W,
    H,
    0,
  );
}

/** Pixels where the overlay keeps the original (its mask is 0) and where it keeps none of it (255). */
function regions(plan: MaskPlan): { outside: number[]; inside: number[] } {
  const m = plan.maskForOverlay!;
  const outside: number[] = [];
  const inside: number[] = [];
  m.data.forEach((v, i) => (v === 0 ? outside : v === 255 ? inside : []).push(i));
  return { outside, inside };
}

function maxDiff(a: RasterImage, b: RasterImage, pixels: readonly number[]): number {
  let m = 0;
  for (const i of pixels) for (let c = 0; c < 3; c++) m = Math.max(m, Math.abs(a.data[i * 3 + c]! - b.data[i * 3 + c]!));
  return m;
}

function meanDiff(a: RasterImage, b: RasterImage, pixels: readonly number[]): number {
  let s = 0;
  for (const i of pixels) for (let c = 0; c < 3; c++) s += Math.abs(a.data[i * 3 + c]! - b.data[i * 3 + c]!);
  return s / (pixels.length * 3);
}

test('inpainting (original content, whole picture): outside the blurred mask the init pixels stay, inside they change', async () => {
  const init = initImage();
  const mask = squareMask(20, 20, 44, 44);
  const r = await engine.img2img({ ...base, init_images: [encodePng(init)], mask: encodePng(mask) });
  const out = decodePng(r.images[0]!);
  assert.deepEqual([out.width, out.height], [W, H]);
  const { outside, inside } = regions(planOf(mask, false));
  assert.ok(outside.length > 1000 && inside.length > 100, `${outside.length} outside, ${inside.length} inside`);
  assert.ok(maxDiff(out, init, outside) <= 1, `outside differs by up to ${maxDiff(out, init, outside)}`);
  assert.ok(meanDiff(out, init, inside) > 10, `inside changed by only ${meanDiff(out, init, inside)} on average`);

  const p = parseGenerationParameters(r.infotexts[0]!);
  assert.equal(p.get('Mask blur'), '4');
  assert.equal(p.get('Denoising strength'), '0.9');
  assert.equal(p.get('Masked content'), 'original');
  assert.equal(p.get('Inpaint area'), 'Whole picture');
  assert.doesNotMatch(r.infotexts[0]!, /Conditional mask weight/);
  assert.equal(r.parameters.mask, null);
});

test('an inverted mask repaints the other part', async () => {
  const init = initImage();
  const mask = squareMask(20, 20, 44, 44);
  const r = await engine.img2img({ ...base, init_images: [init], mask, inpainting_mask_invert: 1 });
  const out = decodePng(r.images[0]!);
  const { outside, inside } = regions(planOf(mask, true));
  // the kept part is now the square's core
  assert.ok(outside.every((i) => i % W >= 20 && i % W < 44 && Math.floor(i / W) >= 20 && Math.floor(i / W) < 44));
  assert.ok(maxDiff(out, init, outside) <= 1, `kept part differs by up to ${maxDiff(out, init, outside)}`);
  assert.ok(meanDiff(out, init, inside) > 10, `repainted part changed by only ${meanDiff(out, init, inside)}`);
  assert.match(r.infotexts[0]!, /Mask mode: Inpaint not masked/);
});

test('only masked (inpaint_full_res): the crop is rendered at full size and pasted back; outside stays', async () => {
  const init = initImage();
  const mask = squareMask(24, 28, 40, 40);
  const r = await engine.img2img({ ...base, init_images: [init], mask, mask_blur: 2, inpaint_full_res: true, inpaint_full_res_padding: 6 });
  const out = decodePng(r.images[0]!);
  assert.deepEqual([out.width, out.height], [W, H]);
  const plan = planOf(mask, false, true, 6, 2);
  assert.ok(plan.pasteTo);
  // the overlay mask of "only masked" is the blurred mask itself (not doubled)
  const outside: number[] = [];
  const inside: number[] = [];
  plan.maskForOverlay!.data.forEach((v, i) => (v === 0 ? outside : v === 255 ? inside : []).push(i));
  assert.ok(maxDiff(out, init, outside) <= 1, `outside differs by up to ${maxDiff(out, init, outside)}`);
  assert.ok(meanDiff(out, init, inside) > 10, `inside changed by only ${meanDiff(out, init, inside)}`);
  const p = parseGenerationParameters(r.infotexts[0]!);
  assert.equal(p.get('Inpaint area'), 'Only masked');
  assert.equal(p.get('Masked area padding'), '6');
  assert.equal(p.get('Mask blur'), '2');
});

test('masked content fill, latent noise and latent nothing each render and are recorded', async () => {
  const init = initImage();
  const mask = squareMask(16, 16, 48, 48);
  const { outside } = regions(planOf(mask, false));
  for (const [fill, name] of [[0, 'fill'], [2, 'latent noise'], [3, 'latent nothing']] as const) {
    const r = await engine.img2img({ ...base, steps: 2, init_images: [init], mask, inpainting_fill: fill });
    const out = decodePng(r.images[0]!);
    assert.ok(maxDiff(out, init, outside) <= 1, `fill ${fill}: outside differs`);
    assert.equal(parseGenerationParameters(r.infotexts[0]!).get('Masked content'), name);
  }
});

test('an all-black mask with only masked falls back to plain img2img, as A1111 does', async () => {
  const init = initImage();
  const r = await engine.img2img({ ...base, steps: 2, init_images: [init], mask: squareMask(0, 0, 0, 0), inpaint_full_res: true });
  assert.doesNotMatch(r.infotexts[0]!, /Inpaint area/);
  // the blur was applied before the blank mask was found, so the infotext still says so
  assert.match(r.infotexts[0]!, /Mask blur: 4/);
  const plain = await engine.img2img({ ...base, steps: 2, init_images: [init] });
  assert.deepEqual(decodePng(r.images[0]!).data, decodePng(plain.images[0]!).data);
});

test('mask arithmetic: OpenCV-style blur keeps a constant image and spreads an edge symmetrically', () => {
  const flat = { width: 9, height: 3, data: new Uint8Array(27).fill(200) };
  assert.deepEqual([...cvGaussianBlur1d(flat, 21, 4, 'x').data], [...flat.data]);
  const edge = { width: 31, height: 1, data: Uint8Array.from({ length: 31 }, (_, x) => (x === 15 ? 255 : 0)) };
  const b = cvGaussianBlur1d(edge, 21, 4, 'x').data;
  for (let i = 0; i < 15; i++) assert.equal(b[15 - i], b[15 + i]);
  assert.ok(b[15]! < 40 && b[15]! > 15 && b[5]! > 0 && b[4] === 0, `${[...b]}`);
  // getGaussianKernel(3, 0.8) = [0.2390, 0.5220, 0.2390] is [61, 134, 61] / 256 in OpenCV's 8-bit fixed point:
  // (255 * 134 + 128) >> 8 = 133 and (255 * 61 + 128) >> 8 = 61; the column axis blurs the same way
  const impulse = { width: 5, height: 1, data: Uint8Array.of(0, 0, 255, 0, 0) };
  assert.deepEqual([...cvGaussianBlur1d(impulse, 3, 0.8, 'x').data], [0, 61, 133, 61, 0]);
  assert.deepEqual([...cvGaussianBlur1d({ width: 1, height: 5, data: impulse.data }, 3, 0.8, 'y').data], [0, 61, 133, 61, 0]);
  // reflect-101 borders: outside the first pixel lies the second, so an edge pixel sees the 255 twice
  // ((255 * 122 + 128) >> 8 = 122; a replicated border would give 61)
  assert.deepEqual([...cvGaussianBlur1d({ width: 3, height: 1, data: Uint8Array.of(0, 255, 0) }, 3, 0.8, 'x').data], [122, 133, 122]);
});

test('crop region: bounding box plus padding, grown to the processing aspect ratio within the image', () => {
  const m = { width: 100, height: 50, data: new Uint8Array(5000) };
  for (let y = 10; y < 20; y++) for (let x = 30; x < 70; x++) m.data[y * 100 + x] = 9;
  assert.deepEqual(cropRegion(m, 0), [30, 10, 70, 20]);
  assert.deepEqual(cropRegion(m, 5), [25, 5, 75, 25]);
  assert.equal(cropRegion({ width: 4, height: 4, data: new Uint8Array(16) }, 3), undefined);
  // 50x20 region, square processing: height grows to 50, pushed back inside the 50-high image
  assert.deepEqual(expandCropRegion([25, 5, 75, 25], 512, 512, 100, 50), [25, 0, 75, 50]);
  assert.deepEqual(expandCropRegion([40, 0, 50, 40], 512, 512, 100, 50), [25, 0, 65, 40]);
});

test('masked-content fill keeps the unmasked pixels and paints the hole from its surroundings', () => {
  const init = initImage();
  const mask = { width: W, height: H, data: squareMask(20, 20, 44, 44).data };
  const filled = fillMasked(init, mask);
  let kept = true;
  for (let i = 0; i < W * H; i++) if (mask.data[i] === 0) for (let c = 0; c < 3; c++) if (filled.data[i * 3 + c] !== init.data[i * 3 + c]) kept = false;
  assert.ok(kept);
  // the centre of the hole is a blend of the border colours, not black
  const c = (32 * W + 32) * 3;
  assert.ok(filled.data[c]! > 40 && filled.data[c + 1]! > 40, `${filled.data[c]},${filled.data[c + 1]}`);
});

/**
 * An inpainting-shaped tiny checkpoint: the demo model with a 9-channel first UNet convolution (random weights),
 * its config saying in_channels 9, and the demo vocabulary beside it.
 */
async function writeInpaintingCheckpoint(dir: string): Promise<string> {
  const demo = await ensureDemoModel(repoRoot);
  const vocabSize = demoTokenizer().vocabSize;
  const tensors = demoCheckpointTensors(vocabSize);
  const key = 'model.diffusion_model.input_blocks.0.0.weight';
  const conv = tensors.get(key)!;
  const [out, , kh, kw] = conv.shape as [number, number, number, number];
  let state = 12345;
  const data = Float32Array.from({ length: out * 9 * kh * kw }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return (state / 2 ** 31 - 0.5) * 0.4;
  });
  tensors.set(key, float32([out, 9, kh, kw], data));
  const config = demoModelConfig(vocabSize) as { model: { params: { unet_config: { params: { in_channels: number } } } } };
  config.model.params.unet_config.params.in_channels = 9;
  const checkpoint = join(dir, 'tiny-inpainting.safetensors');
  await writeFile(checkpoint, writeSafetensors(tensors, { format: 'pt' }));
  await writeFile(join(dir, 'tiny-inpainting.json'), JSON.stringify(config));
  await cp(demo.checkpoint.replace(/\.safetensors$/, '.vocab'), join(dir, 'tiny-inpainting.vocab'), { recursive: true });
  return checkpoint;
}

test('an inpainting checkpoint (9-channel UNet input) inpaints and generates with the image conditioning', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-inpainting-'));
  try {
    const checkpoint = await writeInpaintingCheckpoint(dir);
    const init = initImage();
    const mask = squareMask(20, 20, 44, 44);
    const r = await engine.img2img({ ...base, steps: 3, init_images: [init], mask }, { checkpoint });
    const out = decodePng(r.images[0]!);
    const { outside, inside } = regions(planOf(mask, false));
    assert.ok(maxDiff(out, init, outside) <= 1);
    assert.ok(meanDiff(out, init, inside) > 10);
    const p = parseGenerationParameters(r.infotexts[0]!);
    assert.equal(p.get('Conditional mask weight'), '1.0');
    assert.equal(p.get('Model'), 'tiny-inpainting');
    // the conditioning reaches the UNet: another mask weight gives another image
    const weaker = await engine.img2img(
      { ...base, steps: 3, init_images: [init], mask, override_settings: { inpainting_mask_weight: 0.25 } },
      { checkpoint },
    );
    assert.notDeepEqual(decodePng(weaker.images[0]!).data, out.data);
    assert.match(weaker.infotexts[0]!, /Conditional mask weight: 0\.25/);

    const t = await engine.txt2img({ prompt: 'a door', steps: 2, seed: 5, width: W, height: H }, { checkpoint });
    assert.equal(decodePng(t.images[0]!).width, W);
    assert.match(t.infotexts[0]!, /Conditional mask weight: 1\.0/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
