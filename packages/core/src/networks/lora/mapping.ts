/**
 * Where A1111 puts a LoRA file's keys (`networks.assign_network_names_to_compvis_modules`,
 * `lora_convert.convert_diffusers_name_to_compvis`, the fallbacks of `networks.load_network`).
 *
 * The module table lists what `named_modules()` of A1111's ldm model gives, keyed by the module path with `.`
 * replaced by `_`: `diffusion_model_<UNet path>`, and for the text encoder `transformer_text_model_<HF path>`
 * (SD1) or `model_<open_clip path>` (SD2). It is derived from the checkpoint's tensor index, so any UNet depth
 * or width gets the table its ldm model would have. The diffusers-name conversion keeps A1111's quirks on
 * purpose: it assumes three input blocks per level and no attention at the deepest level (SD 1.5 / 2.1), so
 * a model laid out otherwise gets keys that land on the wrong layer or on none, exactly as in A1111.
 */
import { SD1_TEXT_PREFIX, SD2_TEXT_PREFIX, UNET_PREFIX, type ModelKind, type TensorIndex } from '../../model-files/config.js';

/** How a module's forward uses its weights, which decides how a network patches it. */
export type LoraTargetKind = 'linear' | 'conv' | 'groupnorm' | 'layernorm' | 'mha' | 'embedding' | 'container';

export interface LoraTarget {
  /** A1111's module key, e.g. `diffusion_model_input_blocks_1_1_proj_in`. */
  readonly key: string;
  readonly kind: LoraTargetKind;
  /** The torch class A1111 sees (Linear, NonDynamicallyQuantizableLinear, Conv2d, GroupNorm32, ...). */
  readonly className: string;
  readonly component: 'text' | 'unet';
  /** Checkpoint key of the weight (for `mha`: `in_proj_weight`); absent for containers. */
  readonly weightKey?: string;
  /** Checkpoint key of the bias, when the layer has one (for `mha`: `out_proj.bias`). */
  readonly biasKey?: string;
  /** For `mha`: the out projection's weight. */
  readonly outWeightKey?: string;
  /** Shape of `weightKey` (for `mha`: the out projection's, which A1111 uses as the module shape). */
  readonly shape?: readonly number[];
  /**
   * Whether A1111's patched forward runs for this module. open_clip's LayerNorms call F.layer_norm directly and
   * MultiheadAttention reads `out_proj.weight` without calling its forward, so networks on them never apply
   * (the out projection is reached through its MultiheadAttention).
   */
  readonly patched: boolean;
}

export interface LoraModuleTable {
  readonly kind: ModelKind;
  readonly targets: ReadonlyMap<string, LoraTarget>;
}

const under = (path: string): string => path.replaceAll('.', '_');

function addContainers(targets: Map<string, LoraTarget>, root: string, path: string, component: 'text' | 'unet'): void {
  const parts = path.split('.');
  for (let i = 0; i < parts.length; i++) {
    const key = under([root, ...parts.slice(0, i)].filter(Boolean).join('.'));
    if (!targets.has(key)) targets.set(key, { key, kind: 'container', className: 'Module', component, patched: false });
  }
}

function unetNormClass(path: string): { kind: LoraTargetKind; className: string } {
  if (/\.norm[123]$/.test(path)) return { kind: 'layernorm', className: 'LayerNorm' };
  // SpatialTransformer.norm is ldm's Normalize (plain GroupNorm); ResBlocks and `out.0` use GroupNorm32.
  if (/\.norm$/.test(path)) return { kind: 'groupnorm', className: 'GroupNorm' };
  return { kind: 'groupnorm', className: 'GroupNorm32' };
}

/** The module table of a checkpoint, from its tensor index (full checkpoint keys). */
export function loraModuleTable(index: TensorIndex, kind: ModelKind): LoraModuleTable {
  const targets = new Map<string, LoraTarget>();
  const has = (k: string): boolean => index.has(k);
  for (const [full, info] of index) {
    if (full.startsWith(UNET_PREFIX) && full.endsWith('.weight')) {
      const path = full.slice(UNET_PREFIX.length, -'.weight'.length);
      const key = under(`diffusion_model.${path}`);
      addContainers(targets, 'diffusion_model', path, 'unet');
      const nd = info.shape.length;
      const cls = nd === 4 ? { kind: 'conv' as const, className: 'Conv2d' } : nd === 2 ? { kind: 'linear' as const, className: 'Linear' } : unetNormClass(path);
      const bias = `${UNET_PREFIX}${path}.bias`;
      targets.set(key, { key, ...cls, component: 'unet', weightKey: full, ...(has(bias) ? { biasKey: bias } : {}), shape: info.shape, patched: true });
    } else if (kind === 'sd1' && full.startsWith(SD1_TEXT_PREFIX) && full.endsWith('.weight')) {
      const path = `text_model.${full.slice(SD1_TEXT_PREFIX.length, -'.weight'.length)}`;
      const key = under(`transformer.${path}`);
      addContainers(targets, 'transformer', path, 'text');
      const nd = info.shape.length;
      const embedding = /embeddings\.(token|position)_embedding$/.test(path);
      const cls = embedding
        ? { kind: 'embedding' as const, className: 'Embedding' }
        : nd === 2
          ? { kind: 'linear' as const, className: path.endsWith('self_attn.out_proj') ? 'NonDynamicallyQuantizableLinear' : 'Linear' }
          : { kind: 'layernorm' as const, className: 'LayerNorm' };
      const bias = `${SD1_TEXT_PREFIX}${path.slice('text_model.'.length)}.bias`;
      targets.set(key, { key, ...cls, component: 'text', weightKey: full, ...(has(bias) ? { biasKey: bias } : {}), shape: info.shape, patched: !embedding });
    } else if (kind === 'sd2' && full.startsWith(SD2_TEXT_PREFIX)) {
      const rel = full.slice(SD2_TEXT_PREFIX.length);
      const mha = /^(transformer\.resblocks\.\d+\.attn)\.in_proj_weight$/.exec(rel);
      if (mha) {
        const path = mha[1]!;
        const key = under(`model.${path}`);
        addContainers(targets, 'model', path, 'text');
        const outWeightKey = `${SD2_TEXT_PREFIX}${path}.out_proj.weight`;
        const outBias = `${SD2_TEXT_PREFIX}${path}.out_proj.bias`;
        targets.set(key, {
          key,
          kind: 'mha',
          className: 'MultiheadAttention',
          component: 'text',
          weightKey: full,
          outWeightKey,
          ...(has(outBias) ? { biasKey: outBias } : {}),
          shape: index.get(outWeightKey)?.shape ?? [info.shape[1]!, info.shape[1]!],
          patched: true,
        });
        continue;
      }
      if (!rel.endsWith('.weight')) continue; // positional_embedding, text_projection, logit_scale: parameters, not modules
      const path = rel.slice(0, -'.weight'.length);
      const key = under(`model.${path}`);
      addContainers(targets, 'model', path, 'text');
      const nd = info.shape.length;
      const isOut = path.endsWith('attn.out_proj');
      const cls =
        path === 'token_embedding'
          ? { kind: 'embedding' as const, className: 'Embedding' }
          : nd === 2
            ? { kind: 'linear' as const, className: isOut ? 'NonDynamicallyQuantizableLinear' : 'Linear' }
            : { kind: 'layernorm' as const, className: 'LayerNorm' };
      const bias = `${SD2_TEXT_PREFIX}${path}.bias`;
      const patched = cls.kind === 'linear' && !isOut;
      targets.set(key, { key, ...cls, component: 'text', weightKey: full, ...(has(bias) ? { biasKey: bias } : {}), shape: info.shape, patched });
    }
  }
  return { kind, targets };
}

const RESNET_SUFFIX: Record<string, string> = {
  conv1: 'in_layers_2',
  conv2: 'out_layers_3',
  norm1: 'in_layers_0',
  norm2: 'out_layers_0',
  time_emb_proj: 'emb_layers_1',
  conv_shortcut: 'skip_connection',
};

function suffixFor(kind: string, rest: string): string {
  return kind === 'resnets' ? (RESNET_SUFFIX[rest] ?? rest) : rest;
}

function sd2TextSuffix(rest: string): string {
  if (rest.includes('mlp_fc1')) return rest.replace('mlp_fc1', 'mlp_c_fc');
  if (rest.includes('mlp_fc2')) return rest.replace('mlp_fc2', 'mlp_c_proj');
  return rest.replace('self_attn', 'attn');
}

/** `convert_diffusers_name_to_compvis`: anchored at the start only, like Python's re.match. */
export function convertDiffusersName(key: string, isSd2: boolean): string {
  let m: RegExpExecArray | null;
  if ((m = /^lora_unet_conv_in(.*)/s.exec(key))) return `diffusion_model_input_blocks_0_0${m[1]}`;
  if ((m = /^lora_unet_conv_out(.*)/s.exec(key))) return `diffusion_model_out_2${m[1]}`;
  if ((m = /^lora_unet_time_embedding_linear_(\d+)(.*)/s.exec(key))) return `diffusion_model_time_embed_${Number(m[1]) * 2 - 2}${m[2]}`;
  if ((m = /^lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)/s.exec(key))) {
    return `diffusion_model_input_blocks_${1 + Number(m[1]) * 3 + Number(m[3])}_${m[2] === 'attentions' ? 1 : 0}_${suffixFor(m[2]!, m[4]!)}`;
  }
  if ((m = /^lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)/s.exec(key))) {
    return `diffusion_model_middle_block_${m[1] === 'attentions' ? 1 : Number(m[2]) * 2}_${suffixFor(m[1]!, m[3]!)}`;
  }
  if ((m = /^lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)/s.exec(key))) {
    return `diffusion_model_output_blocks_${Number(m[1]) * 3 + Number(m[3])}_${m[2] === 'attentions' ? 1 : 0}_${suffixFor(m[2]!, m[4]!)}`;
  }
  if ((m = /^lora_unet_down_blocks_(\d+)_downsamplers_0_conv/s.exec(key))) return `diffusion_model_input_blocks_${3 + Number(m[1]) * 3}_0_op`;
  if ((m = /^lora_unet_up_blocks_(\d+)_upsamplers_0_conv/s.exec(key))) {
    const i = Number(m[1]);
    return `diffusion_model_output_blocks_${2 + i * 3}_${i > 0 ? 2 : 1}_conv`;
  }
  if ((m = /^lora_te_text_model_encoder_layers_(\d+)_(.+)/s.exec(key))) {
    if (isSd2) return `model_transformer_resblocks_${m[1]}_${sd2TextSuffix(m[2]!)}`;
    return `transformer_text_model_encoder_layers_${m[1]}_${m[2]}`;
  }
  if ((m = /^lora_te2_text_model_encoder_layers_(\d+)_(.+)/s.exec(key))) return `1_model_transformer_resblocks_${m[1]}_${sd2TextSuffix(m[2]!)}`;
  return key;
}

/** The module a file key's left part (before its first `.`) lands on, or the last key tried when none. */
export function matchModule(table: LoraModuleTable, left: string): { key: string; target?: LoraTarget } {
  const t = table.targets;
  let key = convertDiffusersName(left, table.kind === 'sd2');
  let target = t.get(key);
  if (!target) {
    const m = /^(.*)_([qkv]_proj)$/s.exec(key);
    if (m) target = t.get(m[1]!);
  }
  if (!target && left.includes('lora_unet')) {
    key = left.replaceAll('lora_unet', 'diffusion_model');
    target = t.get(key);
  } else if (!target && left.includes('lora_te1_text_model')) {
    key = left.replaceAll('lora_te1_text_model', '0_transformer_text_model');
    target = t.get(key);
    if (!target) {
      key = left.replaceAll('lora_te1_text_model', 'transformer_text_model');
      target = t.get(key);
    }
  } else if (!target && left.includes('oft_unet')) {
    key = left.replaceAll('oft_unet', 'diffusion_model');
    target = t.get(key);
  }
  if (!target && key.includes('oft_diag')) {
    // A1111 overwrites the first replacement with the second here; kept as it behaves.
    key = left.replaceAll('lora_te1_text_model', '0_transformer_text_model');
    target = t.get(key);
  }
  return target ? { key, target } : { key };
}
