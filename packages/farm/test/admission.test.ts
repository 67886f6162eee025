import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attentionMemory, PLAIN_ATTENTION_MEMORY } from '@darkroom/core/pipeline/memory-estimate.js';
import { defaultMemoryBudget, fitsBudget, jobMemoryBytes, memoryBudgetFromConfig, memoryRefusal, Txt2ImgRequest, Img2ImgRequest, workerMemoryBudget } from '../src/index.js';

const GiB = 1024 ** 3;
const txt = (fields: Record<string, unknown>) => ({ kind: 'txt2img' as const, request: Txt2ImgRequest.parse({ prompt: 'a harbour', ...fields }) });
const budget = (gib: number) => ({ budgetBytes: gib * GiB, attention: PLAIN_ATTENTION_MEMORY });

/** A budget the built-in model's 512x512 job fits in (about 3.1 GiB estimated with plain attention). */
const FITS_512 = 3.5;

test('the built-in model at 512x512 fits a 3.5 GiB budget; 1024x1024 is refused naming width, with the size that fits', () => {
  assert.ok(fitsBudget(txt({ width: 512, height: 512 }), budget(FITS_512)));
  const refusal = memoryRefusal(txt({ width: 1024, height: 1024 }), [budget(FITS_512)]);
  assert.equal(refusal?.code, 'JOB_TOO_LARGE');
  assert.equal(refusal?.status, 422);
  assert.equal(refusal?.field, 'width');
  assert.match(refusal!.message, /at most about \d+x\d+ fits/i);
  assert.equal(memoryRefusal(txt({ width: 512, height: 1024 }), [budget(FITS_512)])?.field, 'height');
});

test('the field at fault: batch_size, the AND parts, then the hires pass', () => {
  const one = budget(FITS_512);
  assert.equal(memoryRefusal(txt({ width: 512, height: 512, batch_size: 4 }), [one])?.field, 'batch_size');
  assert.equal(memoryRefusal(txt({ width: 512, height: 512, prompt: 'a AND b AND c AND d' }), [one])?.field, 'prompt');
  const hires = memoryRefusal(txt({ width: 256, height: 256, enable_hr: true, hr_scale: 4 }), [one]);
  assert.equal(hires?.field, 'hr_scale');
  assert.match(hires!.message, /hr_scale up to [12](\.\d+)? fits/);
  assert.equal(memoryRefusal(txt({ width: 256, height: 256, enable_hr: true, hr_resize_x: 1024 }), [one])?.field, 'hr_resize_x');
});

test('any budget that holds the job admits it; a named checkpoint is estimated as a full-size model, bounded by its file', () => {
  assert.equal(memoryRefusal(txt({ width: 1024, height: 1024 }), [budget(FITS_512), budget(64)]), null);
  const named = txt({ width: 512, height: 512, model: 'v1-5-pruned-emaonly' });
  assert.ok(jobMemoryBytes(named, { attention: PLAIN_ATTENTION_MEMORY }) > 8 * GiB);
  assert.equal(memoryRefusal(named, [budget(4)])?.field, 'width');
  const small = { ...txt({ width: 64, height: 64, model: 'tiny-custom' }), checkpointBytes: 5 * 1024 ** 2 };
  assert.ok(jobMemoryBytes(small, { attention: PLAIN_ATTENTION_MEMORY }) < 2 * GiB, 'a 5 MB file cannot hold a full-size model');
  const i2i = { kind: 'img2img' as const, request: Img2ImgRequest.parse({ init_images: ['iVBORw0KGgo='], width: 512, height: 512 }) };
  assert.ok(jobMemoryBytes(i2i, { attention: PLAIN_ATTENTION_MEMORY }) > jobMemoryBytes(txt({ width: 512, height: 512 }), { attention: PLAIN_ATTENTION_MEMORY }));
});

test('lean attention admits what plain attention cannot', () => {
  const big = txt({ width: 1024, height: 1024 });
  assert.notEqual(memoryRefusal(big, [budget(8)]), null);
  assert.equal(memoryRefusal(big, [{ budgetBytes: 8 * GiB, attention: attentionMemory('subquad', 'cpu') }]), null);
});

test('WORKER_MEMORY_BUDGET: configured, else the machine less a tenth (at least 1 GiB)', () => {
  assert.equal(workerMemoryBudget(5 * GiB, 64 * GiB), 5 * GiB);
  assert.equal(workerMemoryBudget(null, 64 * GiB), Math.floor(64 * GiB * 0.9));
  assert.equal(defaultMemoryBudget(4 * GiB), 3 * GiB);
});

test('MEMORY_MODE=medvram: a worker holding one component at a time admits a job a normal worker of the same budget refuses', () => {
  const job = { ...txt({ width: 512, height: 512 }), request: { ...txt({ width: 512, height: 512 }).request, model: 'sd15' }, checkpointBytes: 2.1e9 };
  const normal = jobMemoryBytes(job, { attention: PLAIN_ATTENTION_MEMORY });
  const medvram = jobMemoryBytes(job, { attention: PLAIN_ATTENTION_MEMORY, oneSessionResident: true });
  assert.ok(medvram < normal, `${medvram} < ${normal}`);
  const between = { budgetBytes: (normal + medvram) / 2, attention: PLAIN_ATTENTION_MEMORY };
  assert.equal(fitsBudget(job, between), false);
  assert.equal(fitsBudget(job, { ...between, oneSessionResident: true }), true);
  assert.equal(memoryRefusal(job, [between, { ...between, oneSessionResident: true }]), null);
});

test('MEMORY_MODE: medvram, lowvram and their A1111 flags are read; anything else is refused at start-up, by name', async () => {
  const { loadConfig } = await import('../src/config.js');
  assert.equal(loadConfig({}).memoryMode, 'normal');
  assert.equal(loadConfig({ MEMORY_MODE: '--medvram' }).memoryMode, 'medvram');
  assert.equal(loadConfig({ MEMORY_MODE: '--lowvram' }).memoryMode, 'lowvram');
  assert.throws(() => loadConfig({ MEMORY_MODE: 'highest' }), (e: { code?: string; field?: string }) =>
    e.code === 'CONFIG_INVALID' && e.field === 'MEMORY_MODE');
});

test('WEIGHTS_DTYPE: float16 is read for the cuda provider and refused for the cpu provider, by name', async () => {
  const { loadConfig } = await import('../src/config.js');
  assert.equal(loadConfig({}).weightsDtype, 'float32');
  assert.equal(loadConfig({ EXECUTION_PROVIDER: 'cuda', WEIGHTS_DTYPE: 'fp16' }).weightsDtype, 'float16');
  for (const env of [{ WEIGHTS_DTYPE: 'float16' }, { EXECUTION_PROVIDER: 'cuda', WEIGHTS_DTYPE: 'int4' }]) {
    assert.throws(() => loadConfig(env), (e: { code?: string; field?: string }) => e.code === 'CONFIG_INVALID' && e.field === 'WEIGHTS_DTYPE');
  }
});

test('batch_cond_uncond false halves the UNet rows the estimate counts, so a job refused batched may fit apart', () => {
  const batched = txt({ width: 512, height: 512, batch_size: 2 });
  const apart = { ...batched, request: { ...batched.request, override_settings: { batch_cond_uncond: false } } };
  assert.ok(jobMemoryBytes(apart, { attention: PLAIN_ATTENTION_MEMORY }) < jobMemoryBytes(batched, { attention: PLAIN_ATTENTION_MEMORY }));
});

test('a float16 worker needs less for a named checkpoint than a float32 one, and says so in its budget', () => {
  const job = txt({ model: 'big', width: 512, height: 512 });
  const f32 = jobMemoryBytes(job, { attention: PLAIN_ATTENTION_MEMORY });
  const f16 = jobMemoryBytes(job, { attention: PLAIN_ATTENTION_MEMORY, bytesPerWeight: 2 });
  // SD 1.x/2.x weights are about a billion parameters: two bytes fewer each is gigabytes
  assert.ok(f32 - f16 > 1.5 * GiB, `float16 saves ${(f32 - f16) / GiB} GiB`);
  const base = { workerMemoryBudget: 8 * GiB, attention: 'auto' as const, executionProvider: 'cuda' as const, memoryMode: 'normal' as const };
  assert.equal(memoryBudgetFromConfig({ ...base, weightsDtype: 'float16' }).bytesPerWeight, 2);
  assert.equal(memoryBudgetFromConfig({ ...base, weightsDtype: 'float32' }).bytesPerWeight, 4);
  assert.equal(memoryBudgetFromConfig({ ...base, memoryMode: 'medvram', weightsDtype: 'float32' }).oneSessionResident, true);
});
