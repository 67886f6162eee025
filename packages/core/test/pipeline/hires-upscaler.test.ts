import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { decodePng } from '../../src/formats/png.js';
import { Engine } from '../../src/pipeline/engine.js';
import { ARCH, esrganStateDict, writeModel } from '../support/rrdbnet.js';

test('hires fix with an ESRGAN model file named by its stem renders on the demo model', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-hires-esrgan-'));
  const engine = new Engine({ root: repoRoot, threads: 1 });
  try {
    const path = await writeModel(dir, '4x_Tiny.pth', esrganStateDict(ARCH));
    const request = { prompt: 'a castle', steps: 2, seed: 7, width: 64, height: 64, sampler_name: 'Euler', enable_hr: true, hr_scale: 2, denoising_strength: 0.5 };
    const esrgan = await engine.txt2img({ ...request, hr_upscaler: '4x_Tiny' }, { upscalers: [path] });
    const img = decodePng(esrgan.images[0]!);
    assert.deepEqual([img.width, img.height], [128, 128]);
    assert.match(esrgan.infotexts[0]!, /Hires upscaler: 4x_Tiny/);
    const lanczos = await engine.txt2img({ ...request, hr_upscaler: 'Lanczos' });
    assert.notDeepEqual(esrgan.images[0], lanczos.images[0], 'the model, not Lanczos, upscaled the first pass');
    const again = await engine.txt2img({ ...request, hr_upscaler: '4x_Tiny' }, { upscalers: [{ path, name: '4x_Tiny' }] });
    assert.deepEqual(again.images[0], esrgan.images[0]);
    await assert.rejects(engine.txt2img({ ...request, hr_upscaler: '4x_Other' }, { upscalers: [path] }), (e: unknown) => isDarkroomError(e, 'UPSCALER_NOT_FOUND'));
  } finally {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  }
});
