import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { PyDict, writeTorchFile } from '../../src/formats/torch.js';
import { torchTensor } from '../../src/formats/torch.js';
import type { TensorIndex } from '../../src/model-files/config.js';
import {
  activateLoras,
  bindLora,
  convertDiffusersName,
  loadLoraFile,
  loraComments,
  loraHashesValue,
  LoraLibrary,
  loraModuleTable,
  mergeLoras,
  parseLoraHashes,
  relinkLoraPrompt,
} from '../../src/networks/lora/index.js';
import { loraUses, parseExtraNetworks } from '../../src/pipeline/extra-networks.js';
import { float32, type Float32Tensor, type HostTensor } from '../../src/tensor.js';

const U = 'model.diffusion_model.';
const T = 'cond_stage_model.transformer.text_model.';

/** A minimal SD1-shaped index: one attention projection, one conv, one text projection, their biases. */
function index(): TensorIndex {
  const e = (shape: number[]) => ({ dtype: 'float32' as const, shape });
  return new Map([
    [`${U}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight`, e([4, 3])],
    [`${U}input_blocks.1.0.in_layers.2.weight`, e([2, 2, 3, 3])],
    [`${U}input_blocks.1.0.in_layers.2.bias`, e([2])],
    [`${T}encoder.layers.0.self_attn.q_proj.weight`, e([3, 3])],
    [`${T}encoder.layers.0.self_attn.q_proj.bias`, e([3])],
  ]);
}

function seq(n: number, f: (i: number) => number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

function weights(): Map<string, Float32Tensor> {
  const m = new Map<string, Float32Tensor>();
  for (const [k, v] of index()) m.set(k, float32(v.shape, seq(v.shape.reduce((a, d) => a * d, 1), (i) => Math.sin(i + k.length))));
  return m;
}

const up = float32([4, 2], seq(8, (i) => (i - 3) / 7));
const down = float32([2, 3], seq(6, (i) => (i + 1) / 5));

async function kohya(alpha = 1): Promise<Uint8Array> {
  const p = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q';
  return writeSafetensors(
    {
      [`${p}.lora_up.weight`]: up,
      [`${p}.lora_down.weight`]: down,
      [`${p}.alpha`]: float32([], Float32Array.of(alpha)),
      'lora_unet_nowhere_at_all.lora_up.weight': up,
    },
    { ss_output_name: 'styled' },
  );
}

test('diffusers names map as A1111 maps them, quirks included', () => {
  assert.equal(convertDiffusersName('lora_unet_down_blocks_1_attentions_0_proj_in', false), 'diffusion_model_input_blocks_4_1_proj_in');
  assert.equal(convertDiffusersName('lora_unet_mid_block_resnets_1_conv1', false), 'diffusion_model_middle_block_2_in_layers_2');
  assert.equal(convertDiffusersName('lora_unet_up_blocks_0_upsamplers_0_conv', false), 'diffusion_model_output_blocks_2_1_conv');
  assert.equal(convertDiffusersName('lora_unet_up_blocks_1_upsamplers_0_conv', false), 'diffusion_model_output_blocks_5_2_conv');
  assert.equal(convertDiffusersName('lora_unet_time_embedding_linear_2', false), 'diffusion_model_time_embed_2');
  assert.equal(convertDiffusersName('lora_te_text_model_encoder_layers_3_mlp_fc2', true), 'model_transformer_resblocks_3_mlp_c_proj');
  assert.equal(convertDiffusersName('lora_te_text_model_encoder_layers_3_self_attn_q_proj', true), 'model_transformer_resblocks_3_attn_q_proj');
});

test('a kohya LoRA merges as W + up @ down * alpha / rank * multiplier, and reports its unmatched keys', async () => {
  const file = await loadLoraFile(await kohya(1), 'style.safetensors');
  assert.equal(file.name, 'style');
  assert.equal(file.alias, 'styled');
  assert.equal(file.shorthash.length, 12);
  const table = loraModuleTable(index(), 'sd1');
  const bound = bindLora(file, table);
  assert.deepEqual([...bound.modules.keys()], ['diffusion_model_input_blocks_1_1_transformer_blocks_0_attn1_to_q']);
  assert.deepEqual([...bound.unmatched], [['lora_unet_nowhere_at_all.lora_up.weight', 'diffusion_model_nowhere_at_all']]);
  const w = weights();
  const key = `${U}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight`;
  const r = mergeLoras(w, table, [{ name: 'style', network: bound, te: 0.3, unet: 0.8, dyn: null }]);
  const W = w.get(key)!;
  const got = r.weights.get(key)!;
  for (let o = 0; o < 4; o++)
    for (let i = 0; i < 3; i++) {
      let d = 0;
      for (let k = 0; k < 2; k++) d += up.data[o * 2 + k]! * down.data[k * 3 + i]!;
      assert.ok(Math.abs(got.data[o * 3 + i]! - (W.data[o * 3 + i]! + d * 0.5 * 0.8)) < 1e-6);
    }
  assert.equal(r.weights.size, 1, 'only the targeted tensor changes');
  assert.notEqual(w.get(key), got, 'the original is not written');
  // dyn=1 keeps the first rank component only, with the same alpha / full-rank scale.
  const d1 = mergeLoras(w, table, [{ name: 'style', network: bound, te: 1, unet: 1, dyn: 1 }]).weights.get(key)!;
  assert.ok(Math.abs(d1.data[0]! - (W.data[0]! + up.data[0]! * down.data[0]! * 0.5)) < 1e-6);
});

test('a layer whose shape does not fit counts an error and keeps its weight', async () => {
  const p = 'lora_unet_input_blocks_1_0_in_layers_2';
  const bytes = writeSafetensors({ [`${p}.lora_up.weight`]: float32([2, 1, 1, 1], seq(2, (i) => i + 1)), [`${p}.lora_down.weight`]: float32([1, 3, 3, 3], seq(27, () => 0.1)) });
  const file = await loadLoraFile(bytes, 'bad.safetensors');
  const table = loraModuleTable(index(), 'sd1');
  const r = mergeLoras(weights(), table, [{ name: 'bad', network: bindLora(file, table), te: 1, unet: 1, dyn: null }]);
  assert.equal(r.weights.size, 0);
  assert.deepEqual([...r.errors], [['bad', 1]]);
  assert.match(r.layerErrors[0]!, /^Network bad layer diffusion_model_input_blocks_1_0_in_layers_2: The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton dimension 1$/);
  assert.deepEqual(loraComments(['missing'], r.errors), ['Lora not found: missing', 'Networks with errors: bad (1)']);
});

test('keys no module type accepts fail the whole file', async () => {
  const bytes = writeSafetensors({ 'lora_unet_input_blocks_1_0_in_layers_2.something': float32([1], Float32Array.of(1)) });
  const file = await loadLoraFile(bytes, 'odd.safetensors');
  assert.throws(() => bindLora(file, loraModuleTable(index(), 'sd1')), (e: unknown) => isDarkroomError(e, 'LORA_LOAD_FAILED'));
  // Through activation it is "not found", as A1111 reports it, and other networks still load.
  const good = await loadLoraFile(await kohya(), 'style.safetensors');
  const act = activateLoras(
    [
      { name: 'odd', te: 1, unet: 1, dyn: null },
      { name: 'styled', te: 1, unet: 1, dyn: null },
    ],
    new LoraLibrary([file, good]),
    loraModuleTable(index(), 'sd1'),
  );
  assert.deepEqual(act.notFound, ['odd']);
  assert.deepEqual(act.applications.map((a) => a.name), ['styled']);
  assert.equal(act.hashes, `styled: ${good.shorthash}`);
});

test('hostile and broken files are refused with fixed codes', async () => {
  const code = async (bytes: Uint8Array, name: string): Promise<string> => {
    try {
      await loadLoraFile(bytes, name);
    } catch (e) {
      if (isDarkroomError(e)) return e.code;
      throw e;
    }
    return 'loaded';
  };
  assert.equal(await code(new Uint8Array(0), 'x.safetensors'), 'LORA_EMPTY_FILE');
  assert.equal(await code(Uint8Array.of(1, 2, 3), 'x.txt'), 'LORA_UNSUPPORTED_FORMAT');
  assert.match(await code(Uint8Array.of(1, 2, 3), 'x.safetensors'), /^ST_/);
  // A pickle that would call os.system: the restricted reader refuses the global before anything runs.
  const evil = new TextEncoder().encode('\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.');
  assert.match(await code(evil, 'x.pt'), /^TORCH_/);
  // A torch file whose dict holds something other than tensors.
  const notTensors = writeTorchFile(new PyDict([['lora_unet_x.alpha', 'one']]));
  assert.equal(await code(notTensors, 'x.pt'), 'LORA_BAD_FILE');
  const fine = writeTorchFile(new PyDict([['lora_unet_x.alpha', torchTensor(float32([], Float32Array.of(1)) as HostTensor)]]));
  assert.equal(await code(fine, 'x.pt'), 'loaded');
});

test('prompt syntax: positional and named multipliers, lyco, and a bad value dropping every LoRA', () => {
  const uses = (p: string) => loraUses(parseExtraNetworks(p).calls);
  assert.deepEqual(uses('<lora:a:0.5:unet=2:dyn=4> <lyco:b>').uses, [
    { name: 'a', te: 0.5, unet: 2, dyn: 4 },
    { name: 'b', te: 1, unet: 1, dyn: null },
  ]);
  assert.deepEqual(uses('<lora:a:1:te=0.3>').uses, [{ name: 'a', te: 0.3, unet: 0.3, dyn: null }]);
  const bad = uses('<lora:a:1> <lora:b:abc>');
  assert.deepEqual(bad.uses, []);
  assert.equal(bad.error, "ValueError: could not convert string to float: 'abc'");
});

test('Lora hashes: names lose : and ,; a repeated name appears once; reading back relinks by hash', () => {
  const v = loraHashesValue([
    { name: 'peft, A/B', shorthash: 'aaaaaaaaaaaa' },
    { name: 'x:y', shorthash: 'bbbbbbbbbbbb' },
    { name: 'peft, A/B', shorthash: 'aaaaaaaaaaaa' },
  ]);
  assert.equal(v, 'peft A/B: aaaaaaaaaaaa, xy: bbbbbbbbbbbb');
  const back = parseLoraHashes(v!);
  assert.deepEqual([...back], [['peft A/B', 'aaaaaaaaaaaa'], ['xy', 'bbbbbbbbbbbb']]);
  assert.equal(
    relinkLoraPrompt('<lora:xy:0.5> <lora:other:1>', back, (h) => (h === 'bbbbbbbbbbbb' ? 'renamed' : undefined)),
    '<lora:renamed:0.5> <lora:other:1>',
  );
});
