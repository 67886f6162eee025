/**
 * A new hypernetwork as A1111's `create_hypernetwork` makes it (Train tab): UI strings parsed, modules for the
 * enabled widths, weights initialised by `weight_init`. Random draws come from the caller, so training runs
 * can be seeded; the distributions follow torch.nn.init (Normal: weights std 0.01, biases 0; LayerNorm always so;
 * Xavier gain 1; Kaiming fan_in with a = 0, i.e. gain sqrt(2) for relu and leaky_relu alike).
 */
import { DarkroomError } from '../../errors.js';
import { float32, type Float32Tensor } from '../../tensor.js';
import { sanitizeNetworkName } from '../names.js';
import { moduleLayers, type Hypernetwork, type HypernetworkModule } from './hypernetwork.js';

export type WeightInit = 'Normal' | 'XavierUniform' | 'XavierNormal' | 'KaimingUniform' | 'KaimingNormal';

export interface RandomSource {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal. */
  normal(): number;
}

export interface CreateHypernetworkOptions {
  readonly name: string;
  /** Context widths to cover, e.g. [768, 320, 640, 1280] (SD1) or [1024, 320, 640, 1280] (SD2). */
  readonly sizes: readonly number[];
  /** A list or the UI string "1, 2, 1". */
  readonly layerStructure?: readonly number[] | string;
  readonly activationFunc?: string | null;
  readonly weightInit?: WeightInit;
  readonly addLayerNorm?: boolean;
  readonly useDropout?: boolean;
  /** A list or the UI string "0, 0.3, 0"; ignored unless useDropout (then zeros, as A1111). */
  readonly dropoutStructure?: readonly number[] | string | null;
  /**
   * Activation after the last Linear too. A1111's create UI always writes false; its Hypernetwork class takes the
   * flag, and files made elsewhere carry true, so a farm that creates networks by API can offer it.
   */
  readonly activateOutput?: boolean;
  readonly random: RandomSource;
}

function parseList(v: readonly number[] | string): number[] {
  return typeof v === 'string' ? v.split(',').map((x) => Number(x.trim())) : [...v];
}

function init(shape: number[], kind: WeightInit | 'zeros' | 'layernorm', fanIn: number, fanOut: number, rnd: RandomSource): Float32Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  const normal = (std: number): void => data.forEach((_, i) => (data[i] = rnd.normal() * std));
  const uniform = (bound: number): void => data.forEach((_, i) => (data[i] = (rnd.uniform() * 2 - 1) * bound));
  switch (kind) {
    case 'zeros':
      break;
    case 'Normal':
    case 'layernorm':
      normal(0.01);
      break;
    case 'XavierNormal':
      normal(Math.sqrt(2 / (fanIn + fanOut)));
      break;
    case 'XavierUniform':
      uniform(Math.sqrt(3) * Math.sqrt(2 / (fanIn + fanOut)));
      break;
    case 'KaimingNormal':
      normal(Math.SQRT2 / Math.sqrt(fanIn));
      break;
    case 'KaimingUniform':
      uniform(Math.sqrt(3) * (Math.SQRT2 / Math.sqrt(fanIn)));
      break;
  }
  return float32(shape, data);
}

export function createHypernetwork(opts: CreateHypernetworkOptions): Hypernetwork {
  const layerStructure = parseList(opts.layerStructure ?? [1, 2, 1]);
  if (layerStructure.some((x) => !Number.isFinite(x)) || layerStructure[0] !== 1 || layerStructure[layerStructure.length - 1] !== 1) {
    throw new DarkroomError('HYPERNETWORK_BAD_STRUCTURE', 'layer structure must be numbers starting and ending with 1');
  }
  const useDropout = opts.useDropout ?? false;
  const dropoutStructure = useDropout && opts.dropoutStructure ? parseList(opts.dropoutStructure) : layerStructure.map(() => 0);
  if (dropoutStructure.length !== layerStructure.length || dropoutStructure[dropoutStructure.length - 1] !== 0) {
    throw new DarkroomError('HYPERNETWORK_BAD_STRUCTURE', 'dropout structure must match the layer structure and end with 0');
  }
  const weightInit = opts.weightInit ?? 'Normal';
  const activationFunc = opts.activationFunc ?? null;
  const arch = { layerStructure, activationFunc, addLayerNorm: opts.addLayerNorm ?? false, activateOutput: opts.activateOutput ?? false, dropoutStructure };
  const layers = new Map<number, readonly [HypernetworkModule, HypernetworkModule]>();
  for (const width of opts.sizes) {
    const seq = moduleLayers(width, arch, opts.name);
    const module = (): HypernetworkModule => {
      const params = new Map<number, { weight: Float32Tensor; bias?: Float32Tensor }>();
      for (const l of seq) {
        if (l.kind === 'linear') {
          params.set(l.index, {
            weight: init([l.outFeatures, l.inFeatures], weightInit, l.inFeatures, l.outFeatures, opts.random),
            bias: init([l.outFeatures], 'zeros', 0, 0, opts.random), // A1111's Normal draws biases with std 0
          });
        } else if (l.kind === 'layernorm') {
          params.set(l.index, { weight: init([l.width], 'layernorm', 0, 0, opts.random), bias: init([l.width], 'zeros', 0, 0, opts.random) });
        } else if (l.kind === 'activation' && l.fn === 'prelu') {
          params.set(l.index, { weight: float32([1], Float32Array.of(0.25)) });
        }
      }
      return { layers: seq, params };
    };
    layers.set(width, [module(), module()]);
  }
  const name = sanitizeNetworkName(opts.name);
  return {
    ...arch,
    sizes: [...layers.keys()].sort((a, b) => a - b),
    name,
    step: 0,
    weightInit,
    useDropout,
    lastLayerDropout: dropoutStructure.length >= 2 && dropoutStructure[dropoutStructure.length - 2] !== 0,
    optionalInfo: null,
    sdCheckpoint: null,
    sdCheckpointName: null,
    layers,
    filename: `${name}.pt`,
    hash: '',
    shorthash: '',
  };
}
