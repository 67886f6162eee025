/**
 * Command-line flags to A1111 request fields. Every flag is typed and checked here, so a bad value is reported
 * with the flag's name before any model is loaded.
 */
import { parseArgs } from 'node:util';
import type { Img2ImgParams, OverrideSettings, RandnSource, Txt2ImgParams } from '@darkroom/core/pipeline/params.js';
import { resolveSamplerEntry, SAMPLER_CATALOG } from '@darkroom/core/catalog/samplers.js';
import { BUILTIN_MODEL_RESOLUTION } from '@darkroom/core/catalog/built-in-model.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const USAGE = `usage:
  darkroom txt2img --prompt TEXT [options] [-o out.png]
  darkroom img2img --init-image in.png --prompt TEXT [--denoising-strength 0.75] [options] [-o out.png]
  darkroom png-info FILE.png [--json]
  darkroom xyz --x-type TYPE --x-values VALUES [--y-type ...] [options] [-o DIR]   (darkroom xyz --help)
  darkroom seed-travel --seed N --dest-seeds "N, ..." [options] [-o DIR]   (darkroom seed-travel --help)
  darkroom train --kind embedding|hypernetwork --name NAME --data DIR [options]   (darkroom train --help)

generation options (A1111 defaults in brackets):
  -p, --prompt TEXT            prompt (A1111 syntax: (emphasis:1.2), [from:to:when], AND, BREAK, <hypernet:name:m>)
  -n, --negative-prompt TEXT   negative prompt
      --steps N                sampling steps [20]
      --sampler NAME           sampler, e.g. "Euler a", "DPM++ 2M", "DPM++ 2M Karras" [DPM++ 2M]
      --scheduler NAME         Automatic, Karras, Exponential, ... [Automatic]
      --cfg-scale X            classifier-free guidance scale [7]
      --seed N                 seed, -1 = random [-1]
      --subseed N              variation seed [-1]
      --subseed-strength X     variation strength 0..1 [0]
      --width N, --height N    image size, multiples of 8 [512; 128 with the built-in model]
      --batch-size N           images per batch [1]
      --batch-count N          batches (A1111 n_iter) [1]
      --clip-skip N            CLIP layers to skip [1]
      --rng GPU|CPU|NV         noise source [GPU]
      --ensd N                 eta noise seed delta [0]
      --pad-conds              pad cond/uncond to the same length (A1111 pad_cond_uncond)
      --tiling                 seamless tiles: circular padding in the UNet and VAE convolutions
  hires fix (txt2img):
      --hires                  enable the second pass
      --hr-scale X             upscale factor [2]
      --hr-upscaler NAME       Latent, "Latent (nearest)", "Latent (nearest-exact)", Lanczos, Nearest, None,
                               or the file stem of an --upscaler-model [Latent]
      --hr-steps N             second-pass steps, 0 = same as --steps [0]
      --denoising-strength X   second-pass strength [0.7]; img2img strength [0.75]
  img2img:
      --init-image FILE        init image (PNG)
      --resize-mode N          0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale [0]
  inpainting (img2img):
      --mask FILE              mask (PNG): white, or opaque where an alpha channel is used, is repainted
      --mask-blur N            Gaussian blur of the mask edge, in pixels [4]
      --mask-invert            repaint what is not masked
      --inpainting-fill N      masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing [0]
      --inpaint-area AREA      masked (crop to the mask, render at full size, paste back) or whole [masked]
      --inpaint-padding N      pixels of context around the mask with --inpaint-area masked [0]
  models and networks:
      --model FILE             checkpoint (.safetensors/.ckpt); default: the built-in model (scenes of shapes, 128x128)
      --vocab DIR              CLIP vocabulary folder for --model (vocab.json + merges.txt)
      --embedding FILE|DIR     textual-inversion embedding(s), repeatable
      --hypernetwork FILE      hypernetwork file(s), repeatable; use with <hypernet:name:m> in the prompt
      --upscaler-model FILE    ESRGAN / Real-ESRGAN file(s) (.pth, .safetensors), repeatable; --hr-upscaler STEM
      --threads N              CPU threads for onnxruntime
  output:
  -o, --output FILE            output PNG; with several images FILE-0.png, FILE-1.png, ... [darkroom-<seed>.png]
      --json                   print the result (infotexts, seeds, files) as JSON on stdout
      --quiet                  no progress bar
`;

const OPTIONS = {
  prompt: { type: 'string', short: 'p' },
  'negative-prompt': { type: 'string', short: 'n' },
  steps: { type: 'string' },
  sampler: { type: 'string' },
  scheduler: { type: 'string' },
  'cfg-scale': { type: 'string' },
  seed: { type: 'string' },
  subseed: { type: 'string' },
  'subseed-strength': { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  'batch-size': { type: 'string' },
  'batch-count': { type: 'string' },
  'clip-skip': { type: 'string' },
  rng: { type: 'string' },
  ensd: { type: 'string' },
  'pad-conds': { type: 'boolean' },
  hires: { type: 'boolean' },
  'hr-scale': { type: 'string' },
  'hr-upscaler': { type: 'string' },
  'hr-steps': { type: 'string' },
  'denoising-strength': { type: 'string' },
  'init-image': { type: 'string' },
  'resize-mode': { type: 'string' },
  tiling: { type: 'boolean' },
  mask: { type: 'string' },
  'mask-blur': { type: 'string' },
  'mask-invert': { type: 'boolean' },
  'inpainting-fill': { type: 'string' },
  'inpaint-area': { type: 'string' },
  'inpaint-padding': { type: 'string' },
  model: { type: 'string' },
  vocab: { type: 'string' },
  embedding: { type: 'string', multiple: true },
  hypernetwork: { type: 'string', multiple: true },
  'upscaler-model': { type: 'string', multiple: true },
  threads: { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Command = 'txt2img' | 'img2img' | 'png-info' | 'help';

export interface CliRequest {
  readonly command: Command;
  readonly txt2img?: Txt2ImgParams;
  /** img2img parameters without the init image, which main reads from `initImage`. */
  readonly img2img?: Omit<Img2ImgParams, 'init_images'>;
  readonly initImage?: string;
  /** Mask file for inpainting, read by main like the init image. */
  readonly mask?: string;
  readonly file?: string;
  readonly model?: string;
  readonly vocab?: string;
  readonly embeddings: string[];
  readonly hypernetworks: string[];
  readonly upscalers: string[];
  readonly threads?: number;
  readonly output?: string;
  readonly json: boolean;
  readonly quiet: boolean;
}

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) throw new UsageError(`--${flag} must be an integer, got "${v}"`);
  return n;
}

function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got "${v}"`);
  return n;
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function parseCli(argv: readonly string[]): CliRequest {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  const command = positionals[0];
  const base = {
    embeddings: v.embedding ?? [],
    hypernetworks: v.hypernetwork ?? [],
    upscalers: v['upscaler-model'] ?? [],
    json: v.json ?? false,
    quiet: v.quiet ?? false,
    ...defined({ model: v.model, vocab: v.vocab, output: v.output, threads: int('threads', v.threads) }),
  };
  if (v.help || command === undefined || command === 'help') return { command: 'help', ...base };
  if (command === 'png-info') {
    if (positionals.length !== 2) throw new UsageError('png-info takes exactly one PNG file');
    return { command, file: positionals[1]!, ...base };
  }
  if (command !== 'txt2img' && command !== 'img2img') throw new UsageError(`unknown command "${command}"`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}" (quote prompts with spaces)`);

  const rng = v.rng?.toUpperCase();
  if (rng !== undefined && rng !== 'GPU' && rng !== 'CPU' && rng !== 'NV') throw new UsageError(`--rng must be GPU, CPU or NV, got "${v.rng}"`);
  const overrides: OverrideSettings = defined({
    randn_source: rng as RandnSource | undefined,
    eta_noise_seed_delta: int('ensd', v.ensd),
    pad_cond_uncond: v['pad-conds'] ? true : undefined,
  });
  // A1111 renders an unknown sampler name with DPM++ 2M; on the command line that is a typo to report.
  if (v.sampler !== undefined && resolveSamplerEntry(v.sampler, v.scheduler, false).fallback) {
    throw new UsageError(`--sampler: no sampler "${v.sampler}"; valid names: ${SAMPLER_CATALOG.map((s) => s.name).join(', ')} (optionally followed by a scheduler, e.g. "DPM++ 2M Karras")`);
  }
  const builtIn = v.model === undefined;
  const common = defined({
    prompt: v.prompt ?? '',
    negative_prompt: v['negative-prompt'],
    steps: int('steps', v.steps) ?? 20,
    sampler_name: v.sampler ?? 'DPM++ 2M',
    scheduler: v.scheduler,
    cfg_scale: num('cfg-scale', v['cfg-scale']),
    seed: int('seed', v.seed),
    subseed: int('subseed', v.subseed),
    subseed_strength: num('subseed-strength', v['subseed-strength']),
    // the built-in model draws at the size it was trained at; a real checkpoint gets A1111's 512
    width: int('width', v.width) ?? (builtIn ? BUILTIN_MODEL_RESOLUTION : 512),
    height: int('height', v.height) ?? (builtIn ? BUILTIN_MODEL_RESOLUTION : 512),
    batch_size: int('batch-size', v['batch-size']),
    n_iter: int('batch-count', v['batch-count']),
    clip_skip: int('clip-skip', v['clip-skip']),
    tiling: v.tiling,
    override_settings: Object.keys(overrides).length ? overrides : undefined,
  });
  if (command === 'txt2img') {
    for (const flag of ['init-image', 'resize-mode', 'mask', 'mask-blur', 'mask-invert', 'inpainting-fill', 'inpaint-area', 'inpaint-padding'] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} is an img2img option`);
    }
    return {
      command,
      txt2img: {
        ...common,
        ...defined({
          enable_hr: v.hires,
          hr_scale: num('hr-scale', v['hr-scale']),
          hr_upscaler: v['hr-upscaler'],
          hr_second_pass_steps: int('hr-steps', v['hr-steps']),
          denoising_strength: num('denoising-strength', v['denoising-strength']),
        }),
      },
      ...base,
    };
  }
  for (const flag of ['hires', 'hr-scale', 'hr-upscaler', 'hr-steps'] as const) {
    if (v[flag] !== undefined) throw new UsageError(`--${flag} is a txt2img (hires fix) option`);
  }
  if (!v['init-image']) throw new UsageError('img2img needs --init-image FILE');
  if (v.mask === undefined) {
    for (const flag of ['mask-blur', 'mask-invert', 'inpainting-fill', 'inpaint-area', 'inpaint-padding'] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} needs --mask FILE`);
    }
  }
  const area = v['inpaint-area'];
  if (area !== undefined && area !== 'masked' && area !== 'whole') throw new UsageError(`--inpaint-area must be masked or whole, got "${area}"`);
  return {
    command,
    initImage: v['init-image'],
    ...defined({ mask: v.mask }),
    img2img: {
      ...common,
      ...defined({
        denoising_strength: num('denoising-strength', v['denoising-strength']),
        resize_mode: int('resize-mode', v['resize-mode']),
        mask_blur: int('mask-blur', v['mask-blur']),
        inpainting_mask_invert: v['mask-invert'] ? 1 : undefined,
        inpainting_fill: int('inpainting-fill', v['inpainting-fill']),
        inpaint_full_res: area === undefined ? undefined : area === 'masked',
        inpaint_full_res_padding: int('inpaint-padding', v['inpaint-padding']),
      }),
    },
    ...base,
  };
}
