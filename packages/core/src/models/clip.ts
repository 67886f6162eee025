/**
 * The CLIP text transformer of SD1 (HF CLIPTextModel keys, quick_gelu) and SD2 (OpenCLIP text tower keys,
 * packed in_proj, exact GELU) as one graph.
 *
 * Input: `inputs_embeds (B,77,D)`: token embeddings *before* position embeddings, where textual-inversion
 * vectors are spliced in (the lookup happens on the host with the exported token embedding matrix).
 * Outputs: `skip_<N>` = final LayerNorm of `hidden_states[-N]` for N = 1..layers+1 (A1111 "CLIP skip N";
 * N = 1 is `last_hidden_state`, N = 2 is SD2's `penultimate`), and with `exposeHidden` the raw
 * `hidden_<i>` (0 = embeddings, i = after layer i, no final LN).
 */
import type { GraphBuilder, Value } from '../graph/builder.js';
import { hostTensor } from '../graph/builder.js';
import type { Float32Tensor } from '../tensor.js';
import type { TextEncoderConfig } from '../model-files/config.js';
import { layerNorm, linear, linearFromRows, ModuleWeights, multiHeadAttention, type ComputeDType } from './layers.js';

export interface TextBuildOptions {
  readonly batch: number;
  readonly dtype?: ComputeDType;
  /** Adds `hidden_<i>` outputs (parity checks). */
  readonly exposeHidden?: boolean;
}

export interface TextGraph {
  readonly inputsEmbeds: Value;
  /** skips[N-1] = final LN of hidden_states[-N]. */
  readonly skips: readonly Value[];
  readonly hidden: readonly Value[];
  /** Checkpoint tensors the graph never read (the token embedding, text_projection and logit_scale always). */
  readonly unusedWeights: readonly string[];
}

/** Names of the per-layer tensors in the two layouts. */
interface LayerNames {
  ln1: string;
  ln2: string;
  fc1: string;
  fc2: string;
  outProj: string;
}

function layerNames(cfg: TextEncoderConfig, i: number): LayerNames {
  if (cfg.layout === 'hf-clip') {
    const p = `encoder.layers.${i}`;
    return { ln1: `${p}.layer_norm1`, ln2: `${p}.layer_norm2`, fc1: `${p}.mlp.fc1`, fc2: `${p}.mlp.fc2`, outProj: `${p}.self_attn.out_proj` };
  }
  const p = `transformer.resblocks.${i}`;
  return { ln1: `${p}.ln_1`, ln2: `${p}.ln_2`, fc1: `${p}.mlp.c_fc`, fc2: `${p}.mlp.c_proj`, outProj: `${p}.attn.out_proj` };
}

function qkv(w: ModuleWeights, x: Value, cfg: TextEncoderConfig, i: number): [Value, Value, Value] {
  if (cfg.layout === 'hf-clip') {
    const p = `encoder.layers.${i}.self_attn`;
    return [linear(w, x, `${p}.q_proj`), linear(w, x, `${p}.k_proj`), linear(w, x, `${p}.v_proj`)];
  }
  const p = `transformer.resblocks.${i}.attn`;
  const d = cfg.width;
  return (['q', 'k', 'v'] as const).map((n, j) =>
    linearFromRows(w, x, `${p}.in_proj_weight`, `${p}.in_proj_bias`, j * d, (j + 1) * d, `text.${p}.${n}_proj`),
  ) as [Value, Value, Value];
}

/** -inf above the diagonal: token i sees tokens 0..i only (no padding mask, as CLIP). */
function causalMask(b: GraphBuilder, n: number): Value {
  const values = new Array<number>(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) values[i * n + j] = j > i ? -Infinity : 0;
  return b.constant(hostTensor('float32', [n, n], values));
}

export function buildTextEncoder(
  b: GraphBuilder,
  weights: ReadonlyMap<string, Float32Tensor>,
  cfg: TextEncoderConfig,
  opts: TextBuildOptions,
): TextGraph {
  const dtype = opts.dtype ?? 'float32';
  const w = new ModuleWeights(b, weights, 'text.', dtype);
  const n = cfg.maxPositions;
  const inputsEmbeds = b.input('inputs_embeds', 'float32', [opts.batch, n, cfg.width]);
  const positionName = cfg.layout === 'hf-clip' ? 'embeddings.position_embedding.weight' : 'positional_embedding';
  let h = b.add(b.cast(inputsEmbeds, dtype), w.param(positionName));
  const hidden: Value[] = [h];
  const mask = causalMask(b, n);
  const act = (x: Value): Value => (cfg.activation === 'quick_gelu' ? b.quickGelu(x) : b.gelu(x));
  for (let i = 0; i < cfg.layers; i++) {
    const names = layerNames(cfg, i);
    const x = layerNorm(w, h, names.ln1, cfg.layerNormEps);
    const [q, k, v] = qkv(w, x, cfg, i);
    const attn = multiHeadAttention(b, q, k, v, cfg.heads, { scaleAt: 'query', mask });
    h = b.add(h, linear(w, attn, names.outProj));
    h = b.add(h, linear(w, act(linear(w, layerNorm(w, h, names.ln2, cfg.layerNormEps), names.fc1)), names.fc2));
    hidden.push(h);
  }
  const finalLn = cfg.layout === 'hf-clip' ? 'final_layer_norm' : 'ln_final';
  const g = b.cast(w.param(`${finalLn}.weight`), 'float32');
  const beta = b.cast(w.param(`${finalLn}.bias`), 'float32');
  const skips: Value[] = [];
  for (let skip = 1; skip <= cfg.layers + 1; skip++) {
    skips.push(b.layerNorm(b.cast(hidden[cfg.layers + 1 - skip]!, 'float32'), g, beta, cfg.layerNormEps));
  }
  return { inputsEmbeds, skips, hidden: hidden.map((v) => b.cast(v, 'float32')), unusedWeights: w.unused() };
}

/** Graph-level names of the text encoder outputs. */
export const textOutputName = (clipSkip: number): string => `skip_${clipSkip}`;
export const hiddenOutputName = (i: number): string => `hidden_${i}`;

