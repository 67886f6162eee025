import { resolveSamplerEntry } from '@darkroom/core/catalog/samplers.js';
import type { GenerateRequest } from '@darkroom/farm';
import { flowScriptByName } from './flow-scripts.js';
import { unsupported } from './sdapi-errors.js';

/**
 * A1111 request fields `/sdapi/v1` cannot honour yet, refused by name (422) rather than accepted and ignored: a
 * client asking for face restoration or a script must not get an image made without it as if it had worked.
 * Scripts: A1111 answers an unknown `script_name` with 422 "Script '<name>' not found"; the built-in ones it
 * knows (flow-scripts.ts) run as flows.
 */
export function checkSdapiSupported(req: GenerateRequest): void {
  const mode = 'init_images' in req ? 'img2img' : 'txt2img';
  if (req.restore_faces === true) throw unsupported('restore_faces', 'face restoration (GFPGAN, CodeFormer) is not supported by this farm; send false or leave it out');
  // The scripts core/scripts plans run as flows (sdapi-scripts.ts); any other name is A1111's "not found".
  if (req.script_name !== null && req.script_name !== '' && !flowScriptByName(req.script_name, mode)) {
    throw unsupported('script_name', `Script '${req.script_name}' not found (GET /sdapi/v1/scripts lists the scripts this farm runs)`);
  }
  const alwayson = Object.keys(req.alwayson_scripts);
  if (alwayson.length > 0) throw unsupported(`alwayson_scripts.${alwayson[0]}`, `always on script ${alwayson[0]} not found (GET /sdapi/v1/scripts lists none)`);
  if (req.refiner_checkpoint !== null && req.refiner_checkpoint !== '' && req.refiner_checkpoint !== 'None') {
    throw unsupported('refiner_checkpoint', 'a refiner checkpoint is not supported by this farm');
  }
  if (req.infotext !== null && req.infotext !== '') throw unsupported('infotext', 'filling the request from an infotext is not supported; send the fields themselves');
}

/**
 * A1111 1.10 renders an unknown sampler name with its default sampler (DPM++ 2M) without a word; `/sdapi/v1` keeps
 * that for compatibility and says so: the value for an `X-Darkroom-Sampler-Fallback` header, or null when the name
 * is one the engine runs as asked.
 */
export function samplerFallback(req: GenerateRequest): string | null {
  const requested = req.sampler_name || req.sampler_index;
  const r = resolveSamplerEntry(requested, req.scheduler, false);
  return r.fallback ? `${JSON.stringify(requested)} is not a sampler; rendered with ${r.sampler.name}` : null;
}
