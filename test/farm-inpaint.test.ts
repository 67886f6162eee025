/**
 * Inpainting and tiling through the farm (real HTTP, Redis, storage and a worker process): A1111's img2img body
 * with a mask on /sdapi/v1/img2img keeps the init image outside the blurred mask and repaints inside, with the
 * mask's infotext entries; `tiling` and `mask` are accepted on /v1 too, the `tiling` option applies where a request
 * leaves it out, and a latent_mask without a mask is refused naming the field.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePng, encodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { planMask } from '@darkroom/core/pipeline/inpaint.js';
import { startFarm, waitFor, type Farm } from './support/farm.js';

const KEY = 'inpaint-key-0123456789';
const W = 64;
const H = 64;

function pattern(): RasterImage {
  const data = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    const x = i % W;
    const y = Math.floor(i / W);
    data.set([(x * 4) & 255, (y * 4) & 255, ((x + y) * 2) & 255], i * 3);
  }
  return { width: W, height: H, channels: 3, data };
}

function square(): RasterImage {
  const data = new Uint8Array(W * H);
  for (let y = 20; y < 44; y++) for (let x = 20; x < 44; x++) data[y * W + x] = 255;
  return { width: W, height: H, channels: 1, data };
}

const b64 = (img: RasterImage): string => Buffer.from(encodePng(img)).toString('base64');

describe('inpainting and tiling through the farm', () => {
  let farm: Farm;

  before(async () => {
    farm = await startFarm({ workers: 1, env: { API_KEYS: `alice:${KEY}` } });
  });

  after(async () => {
    await farm?.stop();
  });

  test('/sdapi/v1/img2img with a mask: outside the blurred mask the init pixels stay, inside they change', async () => {
    const init = pattern();
    const mask = square();
    const body = {
      prompt: 'a red door', steps: 4, seed: 77, width: W, height: H, sampler_name: 'Euler', denoising_strength: 0.9,
      init_images: [b64(init)], mask: b64(mask), mask_blur: 4, inpainting_fill: 1, inpaint_full_res: false,
    };
    const res = await farm.request('POST', '/sdapi/v1/img2img', { key: KEY, body });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const json = res.json as { images: string[]; info: string; parameters: Record<string, unknown> };
    const out = decodePng(new Uint8Array(Buffer.from(json.images[0]!, 'base64')));
    assert.deepEqual([out.width, out.height], [W, H]);
    const overlay = planMask(
      { mask, maskBlurX: 4, maskBlurY: 4, maskRound: true, inpaintingFill: 1, inpaintFullRes: false, inpaintFullResPadding: 0, invert: false },
      W, H, 0,
    ).maskForOverlay!;
    let outsideMax = 0;
    let insideSum = 0;
    let inside = 0;
    for (let i = 0; i < W * H; i++) {
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(out.data[i * 3 + c]! - init.data[i * 3 + c]!);
        if (overlay.data[i] === 0) outsideMax = Math.max(outsideMax, d);
        if (overlay.data[i] === 255) {
          insideSum += d;
          inside++;
        }
      }
    }
    assert.ok(outsideMax <= 1, `outside differs by up to ${outsideMax}`);
    assert.ok(insideSum / inside > 10, `inside changed by ${insideSum / inside} on average`);
    const info = JSON.parse(json.info) as { infotexts: string[] };
    const p = parseGenerationParameters(info.infotexts[0]!);
    assert.equal(p.get('Mask blur'), '4');
    assert.equal(p.get('Denoising strength'), '0.9');
    assert.equal(json.parameters.mask, null, 'the mask is echoed only with include_init_images');
  });

  test('/v1 takes mask and tiling; a latent_mask without a mask is refused naming it', async () => {
    const sub = await farm.request('POST', '/v1/txt2img', { key: KEY, body: { prompt: 'tiles', steps: 2, width: W, height: H, tiling: true } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    const job = await waitFor('tiled job', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY })).json as { state: string; outputs: { infotext: string }[]; error: unknown };
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 60_000);
    assert.equal(job.state, 'completed', JSON.stringify(job.error));
    assert.match(job.outputs[0]!.infotext, /Tiling: True/);

    const masked = await farm.request('POST', '/v1/img2img', {
      key: KEY, body: { prompt: 'x', steps: 2, width: W, height: H, init_images: [b64(pattern())], mask: b64(square()), inpaint_full_res: true, inpaint_full_res_padding: 4 },
    });
    assert.equal(masked.status, 202, JSON.stringify(masked.json));
    const done = await waitFor('masked job', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${(masked.json as { id: string }).id}`, { key: KEY })).json as { state: string; outputs: { infotext: string }[]; error: unknown };
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 60_000);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.match(done.outputs[0]!.infotext, /Inpaint area: Only masked, Masked area padding: 4/);

    // the tiling option applies to requests that leave `tiling` out, as in A1111
    assert.equal((await farm.request('POST', '/sdapi/v1/options', { key: KEY, body: { tiling: true } })).status, 200);
    const bySetting = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY, body: { prompt: 'tiles', steps: 2, width: W, height: H } });
    assert.equal(bySetting.status, 200, JSON.stringify(bySetting.json));
    assert.match((JSON.parse((bySetting.json as { info: string }).info) as { infotexts: string[] }).infotexts[0]!, /Tiling: True/);
    assert.equal((await farm.request('POST', '/sdapi/v1/options', { key: KEY, body: { tiling: false } })).status, 200);

    const refused = await farm.request('POST', '/v1/img2img', { key: KEY, body: { prompt: 'x', init_images: [b64(pattern())], latent_mask: b64(square()) } });
    assert.equal(refused.status, 400);
    assert.match(JSON.stringify(refused.json), /latent_mask/);
  });
});
