import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { elementwiseClose, scaledClose } from '../../parity/report.js';
import { isDarkroomError } from '../../src/errors.js';
import { readSafetensorsFile } from '../../src/formats/safetensors.js';
import { PyDict, torchTensor, writeTorchFile } from '../../src/formats/torch.js';
import { detectVParameterization, loadModel, lookupRows } from '../../src/models/index.js';
import type { Float32Tensor, HostTensor } from '../../src/tensor.js';
import { toFloat32 } from '../../src/tensor.js';

const folder = join(oracleRoot(), 'model');
const skip = existsSync(join(folder, 'cases.json')) ? false : `oracle data not found at ${folder}`;

async function caseTensors(name: string): Promise<Map<string, HostTensor>> {
  return (await readSafetensorsFile(join(folder, name))).tensors;
}

function f32(t: HostTensor | undefined): Float32Tensor {
  assert.ok(t);
  return toFloat32(t);
}

test('a second load of the same checkpoint builds nothing and gives identical outputs', { skip }, async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-model-cache-'));
  try {
    const c = await caseTensors('tiny-sd1.unet-8x8.safetensors');
    const x = f32(c.get('x'));
    const t = f32(c.get('t')).data;
    const ctx = f32(c.get('context'));
    const opts = { checkpoint: join(folder, 'tiny-sd1.safetensors'), config: join(folder, 'tiny-sd1.json'), cacheDir, threads: 1 };

    const first = await loadModel(opts);
    assert.equal(first.kind, 'sd1');
    assert.equal(first.sha256.length, 64);
    assert.equal(first.alphasCumprod.length, 1000);
    const out1 = await first.unet.run(x, t, ctx);
    const embeds = lookupRows(first.textEncoder.tokenEmbedding, [49406, 320, 49407], [1, 3]);
    assert.deepEqual(embeds.shape, [1, 3, 32]);
    const text = f32((await caseTensors('tiny-sd1.text-embeds.safetensors')).get('inputs_embeds'));
    const cond1 = await first.textEncoder.encode(text, 1);
    assert.equal(first.buildCount, 2);
    await first.unet.run(x, t, ctx); // same shape: no new graph
    assert.equal(first.buildCount, 2);
    await first.release();

    const graphs = join(cacheDir, 'graphs');
    const entries = readdirSync(graphs);
    assert.equal(entries.length, 2);
    const mtimes = entries.map((e) => statSync(join(graphs, e, 'model.onnx')).mtimeMs);

    const second = await loadModel(opts);
    const out2 = await second.unet.run(x, t, ctx);
    const cond2 = await second.textEncoder.encode(text, 1);
    assert.equal(second.buildCount, 0);
    assert.equal(second.sha256, first.sha256);
    assert.deepEqual(out2.data, out1.data);
    assert.deepEqual(cond2.data, cond1.data);
    assert.deepEqual(readdirSync(graphs), entries);
    assert.deepEqual(entries.map((e) => statSync(join(graphs, e, 'model.onnx')).mtimeMs), mtimes);

    // Another shape is a new graph.
    const half = { dtype: 'float32' as const, shape: [1, 4, 8, 8], data: x.data.slice(0, 256) };
    const ctxHalf = { dtype: 'float32' as const, shape: [1, 77, 32], data: ctx.data.slice(0, 77 * 32) };
    const outHalf = await second.unet.run(half, t.slice(0, 1), ctxHalf);
    assert.equal(second.buildCount, 1);
    assert.ok(elementwiseClose(outHalf.data, out1.data.subarray(0, 256), 5e-6, 5e-6).ok);
    await second.release();
    // The two UNet graphs (batch 2 and batch 1) keep their large weights in the same files on disk.
    const unetEntries = readdirSync(graphs).filter((e) => e.startsWith('unet-'));
    assert.equal(unetEntries.length, 2);
    const inodes = unetEntries.map(
      (e) => new Set(readdirSync(join(graphs, e)).filter((f) => f.endsWith('.bin') && statSync(join(graphs, e, f)).size >= 65536).map((f) => statSync(join(graphs, e, f)).ino)),
    );
    assert.ok(inodes[0]!.size > 0);
    assert.deepEqual(inodes[0], inodes[1]);
    await assert.rejects(second.unet.run(x, t, ctx), (e: unknown) => isDarkroomError(e, 'MODEL_RELEASED'));
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('a .ckpt with the same weights loads and gives the same UNet output', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-model-ckpt-'));
  try {
    const { tensors } = await readSafetensorsFile(join(folder, 'tiny-sd2.safetensors'));
    const stateDict = new PyDict();
    for (const [k, t] of tensors) stateDict.set(k, torchTensor(t));
    const root = new PyDict([['state_dict', stateDict], ['global_step', 1]]);
    const ckpt = join(dir, 'tiny-sd2.ckpt');
    await writeFile(ckpt, writeTorchFile(root));
    const c = await caseTensors('tiny-sd2.unet-8x8.safetensors');
    const x = f32(c.get('x'));
    const t = f32(c.get('t')).data;
    const ctx = f32(c.get('context'));
    const fromCkpt = await loadModel({ checkpoint: ckpt, config: join(folder, 'tiny-sd2.json'), cacheDir: join(dir, 'cache'), threads: 1 });
    assert.equal(fromCkpt.kind, 'sd2');
    assert.equal(fromCkpt.parameterization, 'v');
    assert.equal(fromCkpt.textEncoder.defaultClipSkip, 2);
    assert.equal(fromCkpt.name, 'tiny-sd2');
    const out = await fromCkpt.unet.run(x, t, ctx);
    await fromCkpt.release();
    const ref = f32(c.get('out'));
    const close = elementwiseClose(out.data, ref.data, 5e-5, 5e-5);
    assert.ok(close.ok, `maxAbs ${close.maxAbs}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('fused attention (com.microsoft MultiHeadAttention) matches the plain graph on CPU', { skip }, async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-model-fused-'));
  try {
    const c = await caseTensors('tiny-sd1.unet-8x16.safetensors');
    const model = await loadModel({
      checkpoint: join(folder, 'tiny-sd1.safetensors'),
      config: join(folder, 'tiny-sd1.json'),
      cacheDir,
      fusedAttention: true,
      threads: 1,
    });
    const out = await model.unet.run(f32(c.get('x')), f32(c.get('t')).data, f32(c.get('context')));
    const unet = elementwiseClose(out.data, f32(c.get('out')).data, 5e-5, 5e-5);
    assert.ok(unet.ok, `unet maxAbs ${unet.maxAbs}`);
    const d = await caseTensors('tiny-sd1.vae-decode-8x8-lowvar.safetensors');
    const image = await model.vae.decode(f32(d.get('latent')));
    const vae = elementwiseClose(image.data, f32(d.get('image')).data, 5e-5, 5e-5);
    assert.ok(vae.ok, `vae maxAbs ${vae.maxAbs}`);
    await model.release();
    // Both graphs really use the fused op.
    const graphs = join(cacheDir, 'graphs');
    const entries = readdirSync(graphs);
    assert.equal(entries.length, 2);
    for (const e of entries) {
      assert.ok(readFileSync(join(graphs, e, 'model.onnx')).includes('MultiHeadAttention'), `${e} has no MultiHeadAttention`);
    }
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('bad inputs are refused with MODEL_BAD_INPUT', { skip }, async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-model-bad-'));
  try {
    const model = await loadModel({ checkpoint: join(folder, 'tiny-sd1.safetensors'), config: join(folder, 'tiny-sd1.json'), cacheDir });
    const x: Float32Tensor = { dtype: 'float32', shape: [1, 4, 8, 8], data: new Float32Array(256) };
    const ctx: Float32Tensor = { dtype: 'float32', shape: [1, 77, 32], data: new Float32Array(77 * 32) };
    const wrongCtx: Float32Tensor = { dtype: 'float32', shape: [1, 77, 16], data: new Float32Array(77 * 16) };
    const bad = (e: unknown): boolean => isDarkroomError(e, 'MODEL_BAD_INPUT');
    await assert.rejects(model.unet.run(x, new Float32Array(2), ctx), bad);
    await assert.rejects(model.unet.run(x, new Float32Array(1), wrongCtx), bad);
    await assert.rejects(model.textEncoder.encode(ctx, 5), bad);
    await assert.rejects(model.vae.encode({ dtype: 'float32', shape: [1, 3, 60, 64], data: new Float32Array(3 * 60 * 64) }), bad);
    assert.equal(model.buildCount, 0);
    await model.release();
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('checkpoints of other families are refused', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-model-sdxl-'));
  try {
    const { writeSafetensors } = await import('../../src/formats/safetensors.js');
    const t: HostTensor = { dtype: 'float32', shape: [2], data: new Float32Array(2) };
    const file = join(dir, 'xl.safetensors');
    await writeFile(
      file,
      writeSafetensors(
        new Map([
          ['conditioner.embedders.0.transformer.text_model.final_layer_norm.weight', t],
          ['model.diffusion_model.input_blocks.0.0.weight', t],
        ]),
      ),
    );
    await assert.rejects(loadModel({ checkpoint: file, cacheDir: join(dir, 'c') }), (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'));
    await assert.rejects(loadModel({ checkpoint: join(dir, 'x.bin'), cacheDir: join(dir, 'c') }), (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('fp16 graphs stay within the half-precision tolerance of the float32 reference', { skip }, async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-model-fp16-'));
  try {
    const model = await loadModel({
      checkpoint: join(folder, 'tiny-sd2.safetensors'),
      config: join(folder, 'tiny-sd2.json'),
      cacheDir,
      fp16: true,
      threads: 1,
    });
    const u = await caseTensors('tiny-sd2.unet-8x16.safetensors');
    const out = await model.unet.run(f32(u.get('x')), f32(u.get('t')).data, f32(u.get('context')));
    const te = await caseTensors('tiny-sd2.text-embeds.safetensors');
    const cond = await model.textEncoder.encode(f32(te.get('inputs_embeds')), 2);
    const d = await caseTensors('tiny-sd2.vae-decode-8x12.safetensors');
    const image = await model.vae.decode(f32(d.get('latent')));
    await model.release();
    for (const [what, a, ref] of [
      ['unet', out, f32(u.get('out'))],
      ['text', cond, f32(te.get('penultimate_ln'))],
      ['vae', image, f32(d.get('image'))],
    ] as const) {
      const c = scaledClose(a.data, ref.data, 1e-2);
      assert.ok(c.ok, `${what}: max|a-b|/max|ref| = ${c.maxRel}`);
      // ...and it really is half precision: a float32 graph would be ~1e-6 off.
      assert.ok(c.maxRel > 1e-5, `${what}: suspiciously exact for fp16 (${c.maxRel})`);
    }
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('the SD2 eps/v probe runs the UNet on A1111\'s test input', { skip }, async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-model-vprobe-'));
  try {
    const model = await loadModel({ checkpoint: join(folder, 'tiny-sd2.safetensors'), config: join(folder, 'tiny-sd2.json'), cacheDir });
    const isV = await detectVParameterization(model.unet, model.config.unet.contextDim);
    assert.equal(typeof isV, 'boolean');
    assert.equal(model.buildCount, 1); // one (1,4,8,8) graph with a 2-token context
    const half = { dtype: 'float32' as const, shape: [1, 4, 8, 8], data: new Float32Array(256).fill(0.5) };
    const ctx = { dtype: 'float32' as const, shape: [1, 2, 32], data: new Float32Array(64).fill(0.5) };
    const out = await model.unet.run(half, Float32Array.of(999), ctx);
    const mean = out.data.reduce((s, v) => s + v - 0.5, 0) / out.data.length;
    assert.equal(isV, mean < -1);
    await model.release();
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('a separate VAE file replaces the checkpoint VAE (A1111 sd_vae)', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-model-vae-'));
  try {
    const { writeSafetensors } = await import('../../src/formats/safetensors.js');
    const { tensors } = await readSafetensorsFile(join(folder, 'tiny-sd2.safetensors'));
    const vaeOnly = new Map<string, HostTensor>();
    for (const [k, t] of tensors) if (k.startsWith('first_stage_model.')) vaeOnly.set(k.slice('first_stage_model.'.length), t);
    vaeOnly.set('loss.logvar', { dtype: 'float32', shape: [], data: new Float32Array(1) });
    const vaeFile = join(dir, 'other.vae.safetensors');
    await writeFile(vaeFile, writeSafetensors(vaeOnly));
    const cacheDir = join(dir, 'cache');
    const base = { checkpoint: join(folder, 'tiny-sd1.safetensors'), config: join(folder, 'tiny-sd1.json'), cacheDir, threads: 1 };
    const d = await caseTensors('tiny-sd2.vae-decode-8x8.safetensors');
    const own = await loadModel(base);
    const ownImage = await own.vae.decode(f32(d.get('latent')));
    await own.release();
    const swapped = await loadModel({ ...base, vae: vaeFile });
    const image = await swapped.vae.decode(f32(d.get('latent')));
    assert.equal(swapped.buildCount, 1, 'a different VAE is a different graph');
    await swapped.release();
    const close = elementwiseClose(image.data, f32(d.get('image')).data, 5e-5, 5e-5);
    assert.ok(close.ok, `maxAbs ${close.maxAbs}`);
    assert.ok(!elementwiseClose(ownImage.data, f32(d.get('image')).data, 5e-5, 5e-5).ok);
    await assert.rejects(
      loadModel({ ...base, vae: join(folder, 'tiny-sd1.unet-8x8.safetensors') }),
      (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('BF16 checkpoints are upcast and run (bf16-rounded weights stay near the float32 reference)', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-model-bf16-'));
  try {
    const { writeSafetensors } = await import('../../src/formats/safetensors.js');
    const { tensors } = await readSafetensorsFile(join(folder, 'tiny-sd1.safetensors'));
    const bf16 = new Map<string, HostTensor>();
    const bits = new Uint32Array(1);
    const view = new Float32Array(bits.buffer);
    for (const [k, t] of tensors) {
      if (t.dtype !== 'float32' || !k.startsWith('model.diffusion_model.')) {
        bf16.set(k, t);
        continue;
      }
      const src = t.data as Float32Array;
      const out = new Uint16Array(src.length);
      for (let i = 0; i < src.length; i++) {
        view[0] = src[i]!;
        const x = bits[0]!;
        out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // round to nearest even
      }
      bf16.set(k, { dtype: 'bfloat16', shape: t.shape, data: out });
    }
    const file = join(dir, 'tiny-sd1-bf16.safetensors');
    await writeFile(file, writeSafetensors(bf16));
    const model = await loadModel({ checkpoint: file, config: join(folder, 'tiny-sd1.json'), cacheDir: join(dir, 'cache'), threads: 1 });
    const c = await caseTensors('tiny-sd1.unet-8x8.safetensors');
    const out = await model.unet.run(f32(c.get('x')), f32(c.get('t')).data, f32(c.get('context')));
    await model.release();
    const close = scaledClose(out.data, f32(c.get('out')).data, 5e-2);
    assert.ok(close.ok, `max|a-b|/max|ref| = ${close.maxRel}`);
    assert.ok(close.maxRel > 1e-4, 'the weights really were rounded to bf16');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
