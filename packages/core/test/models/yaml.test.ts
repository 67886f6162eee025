import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { loadModel } from '../../src/models/load.js';
import { parseYaml } from '../../src/model-files/yaml.js';

const folder = join(oracleRoot(), 'model');
const skip = existsSync(join(folder, 'cases.json')) ? false : `oracle data not found at ${folder}`;

// Written the way Stability's configs/stable-diffusion/v2-inference-v.yaml is: comments, YAML 1.1 booleans,
// flow lists, an empty list, a quoted string and 1.0e-4.
const V2_INFERENCE_V = `model:
  base_learning_rate: 1.0e-4
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 64
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False # we set this to false because this is an inference only config

    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        use_checkpoint: True
        use_fp16: True
        image_size: 32 # unused
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_head_channels: 64 # need to fix for flash-attn
        use_spatial_transformer: True
        use_linear_in_transformer: True
        transformer_depth: 1
        context_dim: 1024
        legacy: False

    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          #attn_type: "vanilla-xformers"
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult:
          - 1
          - 2
          - 4
          - 4
          num_res_blocks: 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity

    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params:
        freeze: True
        layer: "penultimate"
`;

test('an ldm yaml parses to the same values as its JSON form', { skip }, async () => {
  const json = JSON.parse(await readFile(join(folder, 'sd21-config.json'), 'utf8')) as { model: unknown };
  assert.deepEqual(parseYaml(V2_INFERENCE_V), { model: json.model });
});

test('YAML details: block sequences of mappings, scalars as PyYAML reads them, refusals', () => {
  assert.deepEqual(parseYaml('a:\n  - target: x\n    params:\n      f: [ 1.e-6 ]\n  - y\nb: ~\nc: \'q: r\' # c\n'), {
    a: [{ target: 'x', params: { f: [1e-6] } }, 'y'],
    b: null,
    c: 'q: r',
  });
  assert.deepEqual(parseYaml('k: {}\nn: -3\ns: 0.5.1\n'), { k: {}, n: -3, s: '0.5.1' });
  for (const bad of ['a:\n\tb: 1\n', 'a: &x 1\n', 'a: 1\na: 2\n', 'a: [[1]]\n', 'a: 1\n    b: 2\n']) {
    assert.throws(() => parseYaml(bad), (e: unknown) => isDarkroomError(e, 'MODEL_CONFIG_INVALID'), JSON.stringify(bad));
  }
});

test('a <checkpoint>.yaml beside the checkpoint is used when no config is given', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-model-yaml-'));
  try {
    const ckpt = join(dir, 'tiny-sd2.safetensors');
    await copyFile(join(folder, 'tiny-sd2.safetensors'), ckpt);
    const tiny = V2_INFERENCE_V.replace('model_channels: 320', 'model_channels: 32')
      .replace('attention_resolutions: [ 4, 2, 1 ]', 'attention_resolutions: [ 1, 2 ]')
      .replace('num_res_blocks: 2\n        channel_mult: [ 1, 2, 4, 4 ]', 'num_res_blocks: 1\n        channel_mult: [ 1, 2 ]')
      .replace('num_head_channels: 64', 'num_head_channels: 8')
      .replace('context_dim: 1024', 'context_dim: 32')
      .replace('ch: 128', 'ch: 32')
      .replace('num_res_blocks: 2\n          attn', 'num_res_blocks: 1\n          attn')
      .replace('          - 4\n          - 4', '          - 2\n          - 2');
    // Tiny text encoders are not a standard width, so their heads come from a text_encoder block.
    await writeFile(join(dir, 'tiny-sd2.yaml'), `${tiny}text_encoder:\n  text_cfg:\n    heads: 4\n`);
    const model = await loadModel({ checkpoint: ckpt, cacheDir: join(dir, 'cache') });
    assert.equal(model.parameterization, 'v');
    assert.equal(model.config.unet.numHeadChannels, 8);
    assert.equal(model.config.text.heads, 4);
    await model.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
