/**
 * On the demo model: DDIM CFG++ renders through the CFG denoiser's uncond eps, and img2img with DPM fast /
 * DPM adaptive runs over the truncated schedule's own range (A1111's sample_img2img), not the model's.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { Engine } from '../../src/pipeline/engine.js';
import { decodePng } from '../../src/formats/png.js';
import { parseGenerationParameters } from '../../src/formats/infotext.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import type { PipelineTrace } from '../../src/pipeline/trace.js';

let engine: Engine;

before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});

after(async () => {
  await engine.close();
});

const base: Txt2ImgParams = {
  prompt: 'a red castle in a forest',
  negative_prompt: 'grainy, fog',
  steps: 4,
  sampler_name: 'DDIM CFG++',
  scheduler: 'Automatic',
  cfg_scale: 6.5,
  seed: 4321,
  width: 64,
  height: 64,
};

test('DDIM CFG++ renders, deterministically, and the infotext keeps the requested CFG scale', async () => {
  const a = await engine.txt2img(base);
  const b = await engine.txt2img(base);
  assert.deepEqual(a.images[0], b.images[0]);
  assert.ok(new Set(decodePng(a.images[0]!).data).size > 50);
  const p = parseGenerationParameters(a.infotexts[0]!);
  assert.equal(p.get('Sampler'), 'DDIM CFG++');
  assert.equal(p.get('CFG scale'), '6.5');
  // not plain DDIM under another name
  const ddim = await engine.txt2img({ ...base, sampler_name: 'DDIM' });
  assert.notDeepEqual(ddim.images[0], a.images[0]);
  const eta = await engine.txt2img({ ...base, override_settings: { eta_ddim: 0.25 } });
  assert.match(eta.infotexts[0]!, /Eta DDIM: 0\.25/);
});

test('DDIM CFG++ at CFG scale 0 equals DDIM at CFG scale 0: both then run on the uncond eps alone', async () => {
  // guided eps = uncond + (cond - uncond) * 0 = uncond, and CFG++ renoises with uncond: DDIM's update exactly
  const cfgpp = await engine.txt2img({ ...base, cfg_scale: 0 });
  const ddim = await engine.txt2img({ ...base, cfg_scale: 0, sampler_name: 'DDIM' });
  // the pixels (the PNGs differ in their infotext's sampler name)
  assert.deepEqual(decodePng(cfgpp.images[0]!).data, decodePng(ddim.images[0]!).data);
  const guided = await engine.txt2img({ ...base, cfg_scale: 4 });
  assert.notDeepEqual(decodePng(guided.images[0]!).data, decodePng(cfgpp.images[0]!).data);
});

test('DDIM CFG++ renoises with the uncond rows of the model call and guides at cfg / 12.5', async () => {
  // record every CFG call's combined eps and every model call's uncond row, then replay the first DDIM step
  const calls: Array<{ x: Float32Array; eps: Float32Array }> = [];
  const uncondRows: Float32Array[] = [];
  const condRows: Float32Array[] = [];
  const trace: PipelineTrace = {
    onCfgCall: (c) => calls.push({ x: c.x.data, eps: Float32Array.from(c.denoised.data) }),
    onDenoiserCall: (c) => {
      const per = c.out.data.length / c.out.shape[0]!;
      condRows.push(c.out.data.slice(0, per));
      uncondRows.push(c.out.data.slice(per, 2 * per));
    },
  };
  await engine.txt2img({ ...base, steps: 3 }, { trace });
  const { compVisTimesteps } = await import('../../src/sampling/schedules/sampler-schedules.js');
  const timesteps = compVisTimesteps(3);
  assert.equal(calls.length, timesteps.length - 1);
  const scale = Math.fround(6.5 * (1 / 12.5));
  calls[0]!.eps.forEach((e, k) => {
    const u = uncondRows[0]![k]!;
    assert.equal(e, Math.fround(u + Math.fround(Math.fround(condRows[0]![k]! - u) * scale)));
  });
  // the first call at the last timestep steps to the one before it
  const { sdDiscreteSchedule } = await import('../../src/sampling/schedules/discrete.js');
  const acp = sdDiscreteSchedule().alphasCumprod;
  const n = timesteps.length;
  const [aT, aPrev] = [acp[timesteps[n - 1]!]!, acp[timesteps[n - 2]!]!];
  let worst = 0;
  calls[0]!.x.forEach((xk, k) => {
    const predX0 = (xk - Math.sqrt(1 - aT) * calls[0]!.eps[k]!) / Math.sqrt(aT);
    const expected = Math.sqrt(aPrev) * predX0 + Math.sqrt(1 - aPrev) * uncondRows[0]![k]!;
    worst = Math.max(worst, Math.abs(calls[1]!.x[k]! - expected));
  });
  assert.ok(worst < 1e-5, `worst ${worst}`);
});

test('img2img with DPM fast / DPM adaptive starts at the truncated schedule\'s sigma, not the model\'s sigma_max', async () => {
  const init = (await engine.txt2img({ ...base, sampler_name: 'Euler', steps: 2 })).images[0]!;
  for (const sampler_name of ['DPM fast', 'DPM adaptive']) {
    let sched: Float32Array | undefined;
    const callSigmas: number[] = [];
    const trace: PipelineTrace = {
      onSigmas: (s) => (sched = s.sigmas),
      onCfgCall: (c) => callSigmas.push(c.sigma[0]!),
    };
    const r = await engine.img2img({ ...base, sampler_name, init_images: [init], denoising_strength: 0.4, steps: 10 }, { trace });
    assert.equal(decodePng(r.images[0]!).width, 64);
    // int(0.4 * 10) + 1 = 5 steps: the schedule from index 10 - 4 - 1 = 5 on
    assert.equal(sched!.length, 6);
    const top = sched![0]!;
    const bottom = sched![sched!.length - 2]!;
    assert.ok(top < 5, `truncated schedule starts at ${top}`);
    assert.ok(Math.abs(callSigmas[0]! - top) <= top * 1e-5, `${sampler_name}: first call at ${callSigmas[0]}, schedule at ${top}`);
    for (const s of callSigmas) assert.ok(s <= top * (1 + 1e-5) && s >= bottom * (1 - 1e-5), `${sampler_name}: call at ${s} outside [${bottom}, ${top}]`);
    // DPM fast spends exactly n = len - 1 model calls
    if (sampler_name === 'DPM fast') assert.equal(callSigmas.length, 5);
  }
});
