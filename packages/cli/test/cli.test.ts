import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCli, UsageError } from '../src/args.js';
import { outputPaths } from '../src/main.js';
import { readPngText } from '@darkroom/core/formats/png.js';

const bin = resolve(import.meta.dirname, '../bin/darkroom.js');

test('flags become A1111 request fields', () => {
  const r = parseCli([
    'txt2img', '--prompt', 'a castle', '-n', 'fog', '--steps', '12', '--sampler', 'Euler a', '--scheduler', 'karras',
    '--seed', '42', '--cfg-scale', '6.5', '--batch-size', '2', '--rng', 'cpu', '--hires', '--hr-scale', '1.5', '-o', 'x.png',
  ]);
  assert.equal(r.command, 'txt2img');
  assert.deepEqual(r.txt2img, {
    prompt: 'a castle',
    negative_prompt: 'fog',
    steps: 12,
    sampler_name: 'Euler a',
    scheduler: 'karras',
    cfg_scale: 6.5,
    seed: 42,
    width: 128,
    height: 128,
    batch_size: 2,
    override_settings: { randn_source: 'CPU' },
    enable_hr: true,
    hr_scale: 1.5,
  });
  assert.equal(r.output, 'x.png');
  // a real checkpoint gets A1111's 512x512 default
  assert.equal(parseCli(['txt2img', '--model', 'm.safetensors']).txt2img?.width, 512);
});

test('bad flags are usage errors that name the flag', () => {
  const bad = (argv: string[], re: RegExp) => assert.throws(() => parseCli(argv), (e: unknown) => e instanceof UsageError && re.test(e.message));
  bad(['txt2img', '--steps', 'abc'], /--steps must be an integer/);
  bad(['txt2img', '--cfg-scale', 'x'], /--cfg-scale must be a number/);
  bad(['txt2img', '--rng', 'TPU'], /--rng must be GPU, CPU or NV/);
  bad(['txt2img', '--bogus'], /bogus/);
  bad(['txt2img', 'a', 'castle'], /unexpected argument "a"/);
  bad(['img2img', '--prompt', 'x'], /needs --init-image/);
  bad(['txt2img', '--init-image', 'x.png'], /img2img option/);
  bad(['paint'], /unknown command "paint"/);
  // An unknown sampler is a typo here (A1111's API would render it with DPM++ 2M): the message lists the valid names.
  bad(['txt2img', '--sampler', 'Euler ancestral'], /--sampler: no sampler "Euler ancestral"; valid names: DPM\+\+ 2M, .*Euler a, Euler, /);
  bad(['txt2img', '--sampler', 'k_euler_a'], /no sampler "k_euler_a"/);
  // A scheduler suffix is part of a valid name, as in A1111.
  assert.equal(parseCli(['txt2img', '--sampler', 'DPM++ 2M Karras']).txt2img?.sampler_name, 'DPM++ 2M Karras');
});

test('inpainting and tiling flags become A1111 request fields; mask options need a mask', () => {
  const r = parseCli([
    'img2img', '--init-image', 'in.png', '--mask', 'm.png', '--mask-blur', '8', '--mask-invert', '--inpainting-fill', '1',
    '--inpaint-area', 'whole', '--inpaint-padding', '16', '--tiling',
  ]);
  assert.equal(r.mask, 'm.png');
  assert.equal(r.img2img?.mask_blur, 8);
  assert.equal(r.img2img?.inpainting_mask_invert, 1);
  assert.equal(r.img2img?.inpainting_fill, 1);
  assert.equal(r.img2img?.inpaint_full_res, false);
  assert.equal(r.img2img?.inpaint_full_res_padding, 16);
  assert.equal(r.img2img?.tiling, true);
  assert.equal(parseCli(['txt2img', '--tiling']).txt2img?.tiling, true);
  assert.throws(() => parseCli(['img2img', '--init-image', 'in.png', '--mask-blur', '2']), /--mask-blur needs --mask FILE/);
  assert.throws(() => parseCli(['img2img', '--init-image', 'in.png', '--mask', 'm.png', '--inpaint-area', 'all']), /--inpaint-area must be masked or whole/);
  assert.throws(() => parseCli(['txt2img', '--mask', 'm.png']), /--mask is an img2img option/);
});

test('output names: one file as given, several numbered', () => {
  assert.deepEqual(outputPaths('out.png', [5]), ['out.png']);
  assert.deepEqual(outputPaths('out.png', [5, 6]), ['out-0.png', 'out-1.png']);
  assert.deepEqual(outputPaths(undefined, [5]), ['darkroom-5.png']);
});

test('darkroom txt2img renders on the demo model and png-info reads the infotext back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'darkroom-cli-'));
  try {
    const out = join(dir, 'castle.png');
    const run = spawnSync(process.execPath, [bin, 'txt2img', '-p', 'a castle in a forest', '--steps', '3', '--seed', '9', '-o', out, '--json'], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { files: string[]; seeds: number[]; infotexts: string[] };
    assert.deepEqual(result.files, [out]);
    assert.deepEqual(result.seeds, [9]);
    assert.equal(readPngText(new Uint8Array(readFileSync(out))).parameters, result.infotexts[0]);
    assert.match(run.stderr, /3\/3/); // the progress bar reached the end

    const info = spawnSync(process.execPath, [bin, 'png-info', out], { encoding: 'utf8' });
    assert.equal(info.status, 0, info.stderr);
    assert.equal(info.stdout.trim(), result.infotexts[0]);

    const bad = spawnSync(process.execPath, [bin, 'txt2img', '--width', '65', '-o', out], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /error \[BAD_PARAMS\]: width: must be a multiple of 8/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--upscaler-model files are the job upscalers --hr-upscaler names by stem', () => {
  const r = parseCli(['txt2img', '--hires', '--hr-upscaler', '4x_Tiny', '--upscaler-model', 'm/4x_Tiny.pth', '--upscaler-model', 'm/b.safetensors']);
  assert.deepEqual(r.upscalers, ['m/4x_Tiny.pth', 'm/b.safetensors']);
  assert.equal(r.txt2img?.hr_upscaler, '4x_Tiny');
  assert.deepEqual(parseCli(['txt2img']).upscalers, []);
});
