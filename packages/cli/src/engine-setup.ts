/** The engine and per-job options a command renders with, from its flags: shared by txt2img/img2img and the scripts. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, type EngineJobOptions } from '@darkroom/core/pipeline/engine.js';
import type { CliRequest } from './args.js';
import type { ProgressBar } from './progress.js';

/** Where `.darkroom/` (compiled graphs, trained files) lives: $DARKROOM_HOME, else the checkout. */
export function darkroomHome(): string {
  return process.env.DARKROOM_HOME ? resolve(process.env.DARKROOM_HOME) : resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
}

export function openEngine(req: CliRequest): Engine {
  return new Engine({
    root: darkroomHome(),
    ...(req.model ? { checkpoint: resolve(req.model) } : {}),
    ...(req.vocab ? { vocabulary: resolve(req.vocab) } : {}),
    ...(req.threads !== undefined ? { threads: req.threads } : {}),
  });
}

/** The networks and upscalers the flags name, the abort signal, and step progress drawn on `bar` under `label`. */
export function jobOptions(req: CliRequest, signal: AbortSignal, bar: ProgressBar | undefined, label = ''): EngineJobOptions {
  return {
    embeddings: req.embeddings.map((p) => resolve(p)),
    hypernetworks: req.hypernetworks.map((p) => resolve(p)),
    upscalers: req.upscalers.map((p) => resolve(p)),
    signal,
    ...(bar ? { onStep: (e: { step: number; steps: number; pass: string }) => bar.update(e.step, e.steps, [label, e.pass === 'hires' ? 'hires' : ''].filter(Boolean).join(' ')) } : {}),
  };
}
