/**
 * `darkroom train` flags, named after A1111's train tab fields. Each is checked here so a bad value is reported
 * with its flag before any model loads; the learn-rate and clip schedules are parsed by the trainer itself.
 */
import { parseArgs } from 'node:util';
import { LATENT_SAMPLING_METHODS, type LatentSampling } from '@darkroom/core/catalog/training-options.js';
import type { ClipGradMode } from '@darkroom/core/training/clip-grad.js';
import { UsageError } from './args.js';

export const TRAIN_USAGE = `usage:
  darkroom train --kind embedding --name NAME --data DIR [--init-text TEXT] [--vectors N] [options]
  darkroom train --kind hypernetwork --name NAME --data DIR [--sizes 768,320,640,1280] [options]
  darkroom train --resume DIR/checkpoint.safetensors --data DIR ...   (the same flags as the run it continues)

DIR holds the training images (PNG) with optional captions beside them (cat.png + cat.txt).
Outputs go to --out (default ./<name>): <name>.pt, <name>.pt.optim (and <name>.safetensors for an embedding),
intermediate <name>-N.pt every --save-every steps, checkpoint.safetensors (resumable) and the loss CSV.

training options (A1111 defaults in brackets):
      --learn-rate SCHEDULE    e.g. "0.005" or "0.005:100, 1e-3:1000, 1e-5" [0.005; hypernetwork 0.00001]
      --batch-size N           [1]
      --gradient-step N        gradient accumulation steps [1]
      --steps N                max steps [100000]
      --width N, --height N    training size [512; 128 with the built-in model]
      --template FILE          prompt template, one line per prompt with [name] and [filewords]
                               [a built-in "a photo of [name], [filewords]"-style template]
      --clip-grad-mode M       disabled, value or norm [disabled]
      --clip-grad-value SCHED  clip value schedule [0.1]
      --latent-sampling M      once, deterministic or random [once]
      --use-weight             use PNG alpha as the loss weight
      --shuffle-tags           shuffle the caption's comma-separated tags
      --tag-drop-out P         drop each tag with probability P [0]
      --save-every N           checkpoint and intermediate files every N steps [500]
      --seed N                 seed of every random draw (order, timesteps, noise) [0]
      --clip-skip N            [1]
  a new embedding:
      --init-text TEXT         initialization text ['*']
      --vectors N              vectors per token [1]
      --embedding FILE         continue training this embedding instead
  a new hypernetwork:
      --sizes LIST             context widths [768,320,640,1280; the built-in model's width with it]
      --layer-structure LIST   [1,2,1]
      --activation NAME        [linear]
      --weight-init NAME       Normal, XavierUniform, XavierNormal, KaimingUniform, KaimingNormal [Normal]
      --layer-norm             add LayerNorm after each Linear
      --hypernetwork FILE      continue training this hypernetwork instead
  models and output:
      --model FILE             checkpoint; default: the built-in model
      --vocab DIR              CLIP vocabulary folder for --model
      --threads N              CPU threads for onnxruntime
      --out DIR                output folder [./<name>]
      --quiet                  no progress bar
`;

const OPTIONS = {
  kind: { type: 'string' },
  name: { type: 'string' },
  data: { type: 'string' },
  resume: { type: 'string' },
  'learn-rate': { type: 'string' },
  'batch-size': { type: 'string' },
  'gradient-step': { type: 'string' },
  steps: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  template: { type: 'string' },
  'clip-grad-mode': { type: 'string' },
  'clip-grad-value': { type: 'string' },
  'latent-sampling': { type: 'string' },
  'use-weight': { type: 'boolean' },
  'shuffle-tags': { type: 'boolean' },
  'tag-drop-out': { type: 'string' },
  'save-every': { type: 'string' },
  seed: { type: 'string' },
  'clip-skip': { type: 'string' },
  'init-text': { type: 'string' },
  vectors: { type: 'string' },
  embedding: { type: 'string' },
  sizes: { type: 'string' },
  'layer-structure': { type: 'string' },
  activation: { type: 'string' },
  'weight-init': { type: 'string' },
  'layer-norm': { type: 'boolean' },
  hypernetwork: { type: 'string' },
  model: { type: 'string' },
  vocab: { type: 'string' },
  threads: { type: 'string' },
  out: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface TrainRequest {
  readonly help: boolean;
  readonly kind: 'embedding' | 'hypernetwork';
  readonly name: string;
  readonly data: string;
  readonly resume?: string;
  readonly learnRate: string;
  readonly batchSize: number;
  readonly gradientStep: number;
  readonly steps: number;
  readonly width?: number;
  readonly height?: number;
  readonly template?: string;
  readonly clipGradMode: ClipGradMode;
  readonly clipGradValue: string;
  readonly latentSampling: LatentSampling;
  readonly useWeight: boolean;
  readonly shuffleTags: boolean;
  readonly tagDropOut: number;
  readonly saveEvery: number;
  readonly seed: number;
  readonly clipSkip: number;
  readonly initText: string;
  readonly vectors: number;
  readonly embedding?: string;
  readonly sizes?: number[];
  readonly layerStructure: number[];
  readonly activation: string;
  readonly weightInit: string;
  readonly layerNorm: boolean;
  readonly hypernetwork?: string;
  readonly model?: string;
  readonly vocab?: string;
  readonly threads?: number;
  readonly out?: string;
  readonly quiet: boolean;
}

function int(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, got "${v}"`);
  return n;
}

function list(flag: string, v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x) || x <= 0)) throw new UsageError(`--${flag} must be a comma-separated list of positive numbers, got "${v}"`);
  return xs;
}

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}

export function parseTrainArgs(argv: readonly string[]): TrainRequest {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: false, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  const help = v.help ?? false;
  const kind = oneOf('kind', v.kind, ['embedding', 'hypernetwork'] as const, v.hypernetwork ? 'hypernetwork' : 'embedding');
  if (!help && !v.name && !v.embedding && !v.hypernetwork) throw new UsageError('train needs --name NAME (or --embedding / --hypernetwork FILE to continue)');
  if (!help && !v.data) throw new UsageError('train needs --data DIR (the training images)');
  const tagDropOut = v['tag-drop-out'] === undefined ? 0 : Number(v['tag-drop-out']);
  if (!(tagDropOut >= 0 && tagDropOut <= 1)) throw new UsageError(`--tag-drop-out must be between 0 and 1, got "${v['tag-drop-out']}"`);
  const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
  return {
    help,
    kind,
    name: v.name ?? '',
    data: v.data ?? '',
    learnRate: v['learn-rate'] ?? (kind === 'hypernetwork' ? '0.00001' : '0.005'),
    batchSize: int('batch-size', v['batch-size'], 1) ?? 1,
    gradientStep: int('gradient-step', v['gradient-step'], 1) ?? 1,
    steps: int('steps', v.steps, 1) ?? 100000,
    clipGradMode: oneOf('clip-grad-mode', v['clip-grad-mode'], ['disabled', 'value', 'norm'] as const, 'disabled'),
    clipGradValue: v['clip-grad-value'] ?? '0.1',
    latentSampling: oneOf('latent-sampling', v['latent-sampling'], LATENT_SAMPLING_METHODS, 'once'),
    useWeight: v['use-weight'] ?? false,
    shuffleTags: v['shuffle-tags'] ?? false,
    tagDropOut,
    saveEvery: int('save-every', v['save-every'], 0) ?? 500,
    seed: int('seed', v.seed, 0) ?? 0,
    clipSkip: int('clip-skip', v['clip-skip'], 1) ?? 1,
    initText: v['init-text'] ?? '*',
    vectors: int('vectors', v.vectors, 1) ?? 1,
    layerStructure: list('layer-structure', v['layer-structure']) ?? [1, 2, 1],
    activation: v.activation ?? 'linear',
    weightInit: v['weight-init'] ?? 'Normal',
    layerNorm: v['layer-norm'] ?? false,
    quiet: v.quiet ?? false,
    ...defined({
      resume: v.resume,
      width: int('width', v.width, 8),
      height: int('height', v.height, 8),
      template: v.template,
      embedding: v.embedding,
      sizes: list('sizes', v.sizes),
      hypernetwork: v.hypernetwork,
      model: v.model,
      vocab: v.vocab,
      threads: int('threads', v.threads, 1),
      out: v.out,
    }),
  };
}
