/**
 * The web page's inpainting, VAE choice, assets panel and X/Y/Z plot builder in headless Chromium, against the real
 * API, a worker process and Redis: a mask painted and partly erased on the init image reaches img2img as A1111's
 * `mask`; a VAE and a PNG embedding uploaded on the Assets tab are listed (the embedding with its picture) and the
 * VAE chosen on the form renders; an X/Y/Z plot's cells appear before the flow completes, then its grid.
 * Screenshots go to test-artifacts/web (ignored).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { decodePng, encodePng } from '@darkroom/core/formats/png.js';
import { parseSafetensors, writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { saveEmbeddingPng } from '@darkroom/core/networks/embeddings/save.js';
import { DEMO_MODEL_NAME, ensureDemoModel } from '@darkroom/core/pipeline/demo-model.js';
import { float32, type HostTensor } from '@darkroom/core/tensor.js';
import type { Browser, Page } from 'playwright-core';
import { artifactPath, findChromium } from './support/browser.js';
import { startFarm, type Farm } from './support/farm.js';

const KEY = 'panels-key-0123456789';
const KEY_B = 'other-key-0123456789';
const chromium = findChromium();
if (!chromium) console.log('# web panels tests SKIPPED: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)');
const opts = { skip: chromium ? false : 'no Chromium installed (apt-get install chromium, or set CHROMIUM_PATH)' };

/** A 64x64 RGB pattern: the init image. */
function pattern(): Uint8Array {
  const data = new Uint8Array(64 * 64 * 3);
  for (let i = 0; i < 64 * 64; i++) data.set([(i % 64) * 4, Math.floor(i / 64) * 4, 128], i * 3);
  return encodePng({ width: 64, height: 64, channels: 3, data });
}

/** The demo checkpoint's VAE with its decoder's last bias moved, in A1111's VAE file layout (no prefix). */
async function demoVae(): Promise<Uint8Array> {
  const demo = await ensureDemoModel();
  const { tensors } = parseSafetensors(new Uint8Array(await readFile(demo.checkpoint)), demo.checkpoint);
  const vae = new Map<string, HostTensor>();
  for (const [k, t] of tensors) {
    if (!k.startsWith('first_stage_model.')) continue;
    const data = Float32Array.from(t.data as Float32Array);
    if (k.endsWith('decoder.conv_out.bias')) for (let i = 0; i < data.length; i++) data[i] = data[i]! + 0.3;
    vae.set(k.slice('first_stage_model.'.length), { dtype: 'float32', shape: t.shape, data });
  }
  return writeSafetensors(vae);
}

describe('the web page\'s inpainting, VAE, assets and X/Y/Z plot in headless Chromium (real API, worker, Redis)', () => {
  let farm: Farm;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const shot = async (name: string) => page.screenshot({ path: await artifactPath(`${name}.png`), fullPage: true });
  /** Waits for a render's outcome; on a timeout the page is kept as a screenshot, to see what it showed instead. */
  const rendered = async (what: ReturnType<Page['locator']>, name: string, timeout = 120_000) => what.waitFor({ timeout }).catch(async (e: unknown) => {
    await shot(`fail-${name}`);
    console.log(`# worker log before the ${name} timeout:\n${farm.workers.map((w) => w.log.join('').slice(-3000)).join('\n')}`);
    throw e;
  });

  before(async () => {
    if (!chromium) return;
    farm = await startFarm({ workers: 1, env: { API_KEYS: `panels:${KEY},other:${KEY_B}` } });
    // A second checkpoint for the form's checkpoint choice: the demo model's files under another name in MODELS_DIR.
    const demo = await ensureDemoModel();
    const dir = farm.env.MODELS_DIR!;
    await mkdir(dir, { recursive: true });
    await cp(demo.checkpoint, join(dir, 'second-demo.safetensors'));
    await writeFile(join(dir, 'second-demo.json'), JSON.stringify(demo.config));
    await cp(join(dirname(demo.checkpoint), `${DEMO_MODEL_NAME}.vocab`), join(dir, 'second-demo.vocab'), { recursive: true });
    const { chromium: launcher } = await import('playwright-core');
    browser = await launcher.launch({ executablePath: chromium, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    await ctx.addInitScript(`sessionStorage.setItem('darkroom.key', ${JSON.stringify(KEY)})`);
    page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${farm.url}/`);
    await page.locator('body[data-loaded=true]').waitFor();
  });

  after(async () => {
    await browser?.close();
    await farm?.stop();
  });

  const small = async (steps: string) => {
    await page.locator('#steps').fill(steps);
    await page.locator('#width').fill('64');
    await page.locator('#height').fill('64');
    await page.locator('#sampler_name').selectOption('Euler');
  };

  test('the image size follows the checkpoint (128 for the built-in model, 512 for others) until someone sets it', opts, async () => {
    const size = async () => [await page.locator('#width').inputValue(), await page.locator('#height').inputValue()];
    assert.deepEqual(await size(), ['128', '128'], 'Default is the built-in model');
    await page.locator('#checkpoint').selectOption({ label: 'second-demo' });
    assert.deepEqual(await size(), ['512', '512']);
    await page.locator('#checkpoint').selectOption('');
    assert.deepEqual(await size(), ['128', '128']);
    await page.locator('#width').fill('96');
    await page.locator('#checkpoint').selectOption({ label: 'second-demo' });
    assert.deepEqual(await size(), ['96', '128'], 'a size someone typed stays');
    await page.locator('#checkpoint').selectOption('');
  });

  test('a mask painted and partly erased on the init image is sent as img2img\'s mask and inpaints', opts, async () => {
    await page.locator('#init-file').setInputFiles({ name: 'init.png', mimeType: 'image/png', buffer: Buffer.from(pattern()) });
    await page.waitForFunction('document.getElementById("mask-canvas").width === 64');
    const canvas = page.locator('#mask-canvas');
    // Brush 40 screen px; a stroke across the middle, then an erased dot in its centre with the same brush.
    await page.locator('#mask-brush').fill('40');
    await canvas.scrollIntoViewIfNeeded();
    const box = (await canvas.boundingBox())!;
    assert.ok(box.width > 100, `the init image is shown large enough to paint on (${box.width}px)`);
    const at = (fx: number, fy: number) => [box.x + box.width * fx, box.y + box.height * fy] as const;
    await page.mouse.move(...at(0.2, 0.5));
    await page.mouse.down();
    await page.mouse.move(...at(0.5, 0.5), { steps: 5 });
    await page.mouse.move(...at(0.8, 0.5), { steps: 5 });
    await page.mouse.up();
    await page.locator('#mask-tools[data-painted=true]').waitFor();
    await page.locator('#mask-erase').check();
    await page.mouse.click(...at(0.5, 0.5));
    await page.locator('#mask-paint').check();
    await shot('20-mask-painted');

    await page.locator('#prompt').fill('a red door');
    await small('3');
    await page.locator('#denoising_strength').fill('0.9');
    const sent = page.waitForRequest((r) => r.url().endsWith('/v1/img2img') && r.method() === 'POST');
    await page.locator('#generate').click();
    const body = JSON.parse((await sent).postData() ?? '{}') as { mask?: string; mask_blur?: number; inpainting_fill?: number };
    assert.ok(body.mask?.startsWith('data:image/png;base64,'), 'the mask goes with the request');
    assert.equal(body.mask_blur, 4);
    assert.equal(body.inpainting_fill, 1);
    const mask = decodePng(new Uint8Array(Buffer.from(body.mask!.split(',')[1]!, 'base64')));
    assert.deepEqual([mask.width, mask.height], [64, 64], 'the mask has the init image\'s size');
    const px = (x: number, y: number) => mask.data[(y * 64 + x) * mask.channels]!;
    assert.equal(px(16, 32), 255, 'painted on the stroke');
    assert.equal(px(48, 32), 255, 'painted at the stroke\'s other end');
    assert.equal(px(32, 32), 0, 'erased in the centre');
    assert.equal(px(32, 4), 0, 'untouched above the stroke');
    assert.equal(px(16, 60), 0, 'untouched below the stroke');
    await rendered(page.locator('#job-view[data-state=completed] .infotext').filter({ hasText: 'Mask blur: 4' }), 'inpaint');
    await shot('21-inpainted');
    // The mask tools fit a phone.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(Number(overflow) <= 0, `the mask tools are ${String(overflow)}px wider than a phone`);
    await page.locator('#mask-tools').screenshot({ path: await artifactPath('26-mask-phone.png') });
    await page.setViewportSize({ width: 1280, height: 900 });

    // Cleared, the next img2img has no mask.
    await page.locator('#mask-clear').click();
    assert.equal(await page.locator('#mask-options').isVisible(), false);
    await page.locator('#init-clear').click();
    assert.equal(await page.locator('#mask-tools').isVisible(), false);
  });

  test('a VAE and a PNG embedding uploaded on the Assets tab are listed, the embedding with its picture; the checkpoint and VAE chosen render', opts, async () => {
    await page.locator('#tab-assets').click();
    await page.locator('#asset-kind').selectOption('vaes');
    await page.locator('#asset-file').setInputFiles({ name: 'warm.vae.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(await demoVae()) });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.locator('#asset-list td', { hasText: 'warm.vae.safetensors' }).waitFor();

    const vec = float32([2, 32], Float32Array.from({ length: 64 }, (_, i) => Math.cos(i) * 0.02));
    const picture = { width: 48, height: 48, channels: 3 as const, data: new Uint8Array(48 * 48 * 3).fill(200) };
    const png = saveEmbeddingPng({
      name: 'lamp-style', vec, vectors: 2, width: 32, step: 10, sdCheckpoint: null, sdCheckpointName: null, filename: 'lamp-style.png', hash: '', shorthash: '',
    }, picture);
    await page.locator('#asset-kind').selectOption('embeddings');
    await page.locator('#asset-file').setInputFiles({ name: 'lamp-style.png', mimeType: 'image/png', buffer: Buffer.from(png) });
    await page.getByRole('button', { name: 'Upload' }).click();
    const pic = page.locator('#asset-list tr[data-name="lamp-style"] img.asset-pic[src^="blob:"]');
    await pic.waitFor();
    // The picture decodes: the PNG the embedding was saved in, with its payload's side blocks.
    await page.waitForFunction('document.querySelector(\'#asset-list tr[data-name="lamp-style"] img\').naturalWidth > 48');
    await shot('22-assets-embedding-picture');
    // Another tenant's embedding image, or a file that has none, is not served.
    assert.equal((await farm.request('GET', '/v1/embeddings/lamp-style/image')).status, 401);
    assert.equal((await farm.request('GET', '/v1/embeddings/nothing/image', { key: KEY })).status, 404);
    assert.equal((await farm.request('GET', '/v1/embeddings/lamp-style/image', { key: KEY_B })).status, 404);

    await page.locator('#tab-generate').click();
    await page.locator('#sd_vae option[value="warm.vae.safetensors"]').waitFor({ state: 'attached' });
    await page.locator('#sd_vae').selectOption('warm.vae.safetensors');
    await page.locator('#checkpoint').selectOption({ label: 'second-demo' });
    await page.locator('#prompt').fill('a lamp, lamp-style');
    await small('3');
    await page.locator('#seed').fill('11');
    await page.locator('#generate').click();
    const info = page.locator('#job-view[data-state=completed] .infotext');
    await rendered(info.filter({ hasText: 'VAE: warm.vae' }), 'vae');
    assert.match((await info.first().textContent()) ?? '', /Model: second-demo, .*TI hashes: "lamp-style: /);
    // Its settings come back with the checkpoint and VAE chosen.
    await page.locator('#sd_vae').selectOption('');
    await page.locator('#checkpoint').selectOption('');
    await page.getByRole('button', { name: 'Use these settings again' }).click();
    await page.waitForFunction('document.getElementById("sd_vae").value === "warm.vae.safetensors"');
    assert.equal(await page.locator('#checkpoint option:checked').textContent(), 'second-demo');
    await page.locator('#sd_vae').selectOption('');
    await page.locator('#checkpoint').selectOption('');
  });

  test('an X/Y/Z plot over the form: its cells fill in before the flow completes, then the grid', opts, async () => {
    await page.locator('#tab-generate').click();
    await page.locator('#prompt').fill('a kite');
    await small('16');
    await page.locator('#seed').fill('5');
    await page.locator('#tab-scripts').click();
    await page.locator('#xyz-x-type option[value="Seed"]').waitFor({ state: 'attached' });
    await page.locator('#xyz-x-type').selectOption('Seed');
    await page.locator('#xyz-x-values').fill('5,6');
    await page.locator('#xyz-y-type').selectOption('CFG Scale');
    await page.locator('#xyz-y-values').fill('4-8 [3]');
    // For each cell's image, the flow's state when it appeared.
    await page.evaluate(`(() => {
      window.__cells = [];
      new MutationObserver((ms) => {
        for (const m of ms) for (const n of m.addedNodes) {
          if (n.nodeName === 'IMG') window.__cells.push(document.getElementById('xyz-view').dataset.state);
        }
      }).observe(document.getElementById('xyz-cells'), { childList: true, subtree: true });
    })()`);
    await page.locator('#xyz-run').click();
    await rendered(page.locator('#xyz-cells .xyz-cell img').first(), 'xyz-cell');
    await shot('23-xyz-filling');
    await rendered(page.locator('#xyz-view[data-state=completed] #xyz-grid-img[src^="blob:"]'), 'xyz-grid');
    assert.equal(await page.locator('#xyz-cells .xyz-cell').count(), 6);
    assert.equal(await page.locator('#xyz-cells .xyz-cell img').count(), 6);
    // Laid out as the farm draws it: two X values across, three CFG scales down.
    assert.equal(await page.locator('#xyz-cells .xyz-grid').getAttribute('style'), '--cols:2');
    const labels = await page.locator('#xyz-cells figcaption').allTextContents();
    assert.deepEqual(labels.slice(0, 2), ['Seed: 5, CFG Scale: 4.0', 'Seed: 6, CFG Scale: 4.0']);
    const states = await page.evaluate('window.__cells') as string[];
    assert.ok(states.filter((s) => s !== 'completed').length >= 1, `cells appeared as they completed: ${states.join(',')}`);
    assert.match((await page.locator('#xyz-result .infotext').textContent()) ?? '', /X Type: Seed, X Values: "5,6", .*Y Type: CFG Scale, Y Values: 4-8 \[3\]/);
    await shot('24-xyz-grid');

    // A reload shows the plot again.
    await page.reload();
    await page.locator('body[data-loaded=true]').waitFor();
    await page.locator('#tab-scripts').click();
    await page.locator('#xyz-view[data-state=completed] #xyz-grid-img[src^="blob:"]').waitFor();
    assert.equal(await page.locator('#xyz-cells .xyz-cell img').count(), 6);

    // An axis of names offers the form's: picked ones are added to its values.
    await page.locator('#xyz-z-type').selectOption('Sampler');
    await page.locator('#xyz-z-choices').getByRole('button', { name: 'Euler', exact: true }).click();
    await page.locator('#xyz-z-choices').getByRole('button', { name: 'DPM++ 2M', exact: true }).click();
    assert.equal(await page.locator('#xyz-z-values').inputValue(), 'Euler, DPM++ 2M');
    await page.locator('#xyz-z-type').selectOption('Nothing');
    assert.equal(await page.locator('#xyz-z-choices').isVisible(), false);
    await page.locator('#xyz-z-values').fill('');

    // A bad axis value is named.
    await page.locator('#xyz-y-values').fill('');
    await page.locator('#xyz-run').click();
    await page.locator('#xyz-error', { hasText: 'script.args' }).waitFor();

    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(Number(overflow) <= 0, `the Scripts tab is ${String(overflow)}px wider than a phone`);
    await shot('25-xyz-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.deepEqual(errors, [], 'no script errors on the page');
  });
});
