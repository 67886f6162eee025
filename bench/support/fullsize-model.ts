/**
 * The full-size SD UNets (SD 1.5, SD 2.1) as benches build them: the config and tensor shapes we ship in
 * fullsize-models.json (checked against ../shared/oracle/model when that is present), seeded random weights
 * made on demand so that only the graph builder's copy is ever held, and the production graph builder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { oracleRoot } from '../../packages/core/parity/oracle.js';
import { DarkroomError } from '../../packages/core/src/errors.js';
import type { BuiltModel } from '../../packages/core/src/graph/ir.js';
import { inferModelConfig, overridesFromJson, UNET_PREFIX, type TensorIndex, type UNetConfig } from '../../packages/core/src/model-files/config.js';
import { unetBuilder } from '../../packages/core/src/models/graphs.js';
import type { AttentionBuild } from '../../packages/core/src/planning/attention.js';
import type { ComputeDType } from '../../packages/core/src/models/layers.js';
import type { Float32Tensor } from '../../packages/core/src/tensor.js';
import { nowMs } from './stats.js';

export type FullsizeName = 'sd15' | 'sd21';
export const FULLSIZE_NAMES: readonly FullsizeName[] = ['sd15', 'sd21'];

export interface FullsizeSpec {
  readonly name: FullsizeName;
  readonly unet: UNetConfig;
  readonly parameters: number;
  readonly tensors: ReadonlyArray<readonly [string, readonly number[]]>;
  /** Where the numbers were confirmed: the oracle's config and key list, or only the shipped copy. */
  readonly checkedAgainst: 'oracle' | 'shipped copy only';
}

interface ShippedEntry {
  unet: UNetConfig;
  parameters: number;
  tensors: Array<[string, number[]]>;
}

const SHIPPED = join(dirname(fileURLToPath(import.meta.url)), 'fullsize-models.json');

function shipped(): Record<FullsizeName, ShippedEntry> {
  return JSON.parse(readFileSync(SHIPPED, 'utf8')) as Record<FullsizeName, ShippedEntry>;
}

/** The UNet config the engine infers from the oracle's key list and yaml, when the oracle is at hand. */
function fromOracle(name: FullsizeName): { unet: UNetConfig; tensors: Array<[string, number[]]> } | undefined {
  const folder = join(oracleRoot(), 'model');
  const keysFile = join(folder, `${name}-keys.json`);
  const configFile = join(folder, `${name}-config.json`);
  if (!existsSync(keysFile) || !existsSync(configFile)) return undefined;
  const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as { keys: Record<string, { shape: number[] }> };
  const index: TensorIndex = new Map(Object.entries(keys.keys).map(([k, v]) => [k, { dtype: 'float32', shape: v.shape }]));
  const config = inferModelConfig(index, overridesFromJson(JSON.parse(readFileSync(configFile, 'utf8'))));
  const tensors = [...index]
    .filter(([k]) => k.startsWith(UNET_PREFIX))
    .map(([k, v]): [string, number[]] => [k.slice(UNET_PREFIX.length), [...v.shape]]);
  return { unet: config.unet, tensors };
}

export function fullsizeSpec(name: FullsizeName): FullsizeSpec {
  const entry = shipped()[name];
  if (!entry) throw new DarkroomError('BENCH_UNKNOWN_MODEL', `no full-size model "${name}" (have ${FULLSIZE_NAMES.join(', ')})`);
  const oracle = fromOracle(name);
  if (oracle) {
    const same =
      JSON.stringify(oracle.unet) === JSON.stringify(entry.unet) &&
      JSON.stringify([...oracle.tensors].sort()) === JSON.stringify([...entry.tensors].sort());
    if (!same) {
      throw new DarkroomError(
        'BENCH_SPEC_STALE',
        `bench/support/fullsize-models.json disagrees with the oracle's ${name} config or key list; regenerate it`,
        { name },
      );
    }
  }
  return { name, ...entry, checkedAgainst: oracle ? 'oracle' : 'shipped copy only' };
}

/** xorshift32 uniform in [-scale, scale): deterministic and fast enough for 860M values. */
function fillUniform(out: Float32Array, scale: number, seed: number): void {
  let s = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 31 - 1) * scale;
  }
}

function nameSeed(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Norm scales start at 1 (as torch initializes them) so activations stay in a realistic range. */
const NORM_SCALE = /(norm\d?|in_layers\.0|out_layers\.0|out\.0)\.weight$/;

/**
 * Random UNet weights of the right shapes, generated when the builder asks for one and not kept: the
 * builder's initializers are then the only copy (3.4 GB for SD 1.5 instead of twice that).
 */
export class RandomWeights implements ReadonlyMap<string, Float32Tensor> {
  private readonly shapes: ReadonlyMap<string, readonly number[]>;

  constructor(
    tensors: ReadonlyArray<readonly [string, readonly number[]]>,
    private readonly seed: number,
  ) {
    this.shapes = new Map(tensors);
  }

  get size(): number {
    return this.shapes.size;
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  get(name: string): Float32Tensor | undefined {
    const shape = this.shapes.get(name);
    if (!shape) return undefined;
    const n = shape.reduce((a, d) => a * d, 1);
    const data = new Float32Array(n);
    if (shape.length === 1) {
      if (NORM_SCALE.test(name)) data.fill(1);
      else fillUniform(data, 0.02, nameSeed(name, this.seed));
    } else {
      // Variance 1/fan_in keeps the residual stream from growing or vanishing through 25 blocks.
      fillUniform(data, Math.sqrt(3 / (n / shape[0]!)), nameSeed(name, this.seed));
    }
    return { dtype: 'float32', shape: [...shape], data };
  }

  keys(): MapIterator<string> {
    return this.shapes.keys();
  }

  *entries(): MapIterator<[string, Float32Tensor]> {
    for (const k of this.shapes.keys()) yield [k, this.get(k)!];
  }

  *values(): MapIterator<Float32Tensor> {
    for (const k of this.shapes.keys()) yield this.get(k)!;
  }

  [Symbol.iterator](): MapIterator<[string, Float32Tensor]> {
    return this.entries();
  }

  forEach(fn: (value: Float32Tensor, key: string, map: ReadonlyMap<string, Float32Tensor>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

export interface UNetShape {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly contextLength: number;
}

export interface BuiltUNet {
  readonly model: BuiltModel;
  /** Graph construction, weights generation included. */
  readonly buildMs: number;
  /** Serialization to ONNX protobuf (weights as external data). */
  readonly serializeMs: number;
  readonly weightBytes: number;
}

export interface FullsizeUNetOptions {
  readonly fusedAttention: boolean;
  readonly attention?: AttentionBuild;
  readonly feedForwardChunkBytes?: number;
  readonly dtype?: ComputeDType;
  readonly seed?: number;
}

function fullsizeUNetBuilder(spec: FullsizeSpec, shape: UNetShape, opts: FullsizeUNetOptions): ReturnType<typeof unetBuilder> {
  return unetBuilder(new RandomWeights(spec.tensors, opts.seed ?? 1), spec.unet, {
    ...shape,
    fusedAttention: opts.fusedAttention,
    ...(opts.attention ? { attention: opts.attention } : {}),
    ...(opts.feedForwardChunkBytes !== undefined ? { feedForwardChunkBytes: opts.feedForwardChunkBytes } : {}),
    ...(opts.dtype ? { dtype: opts.dtype } : {}),
  });
}

/** The UNet cut into `parts` consecutive models, as lowvram runs it (GraphBuilder.toModelParts). */
export function buildFullsizeUNetParts(spec: FullsizeSpec, shape: UNetShape, opts: FullsizeUNetOptions, parts: number, externalDataAboveBytes: number): BuiltModel[] {
  return fullsizeUNetBuilder(spec, shape, opts).toModelParts(parts, { externalDataAboveBytes });
}

export function buildFullsizeUNet(spec: FullsizeSpec, shape: UNetShape, opts: FullsizeUNetOptions): BuiltUNet {
  const t0 = nowMs();
  const builder = fullsizeUNetBuilder(spec, shape, opts);
  const t1 = nowMs();
  const model = builder.toModel();
  const t2 = nowMs();
  const weightBytes = model.externalData.reduce((s, e) => s + e.data.byteLength, 0) + model.bytes.byteLength;
  return { model, buildMs: t1 - t0, serializeMs: t2 - t1, weightBytes };
}
