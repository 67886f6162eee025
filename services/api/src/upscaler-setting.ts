import { isLatentUpscaler } from '@darkroom/core/catalog/upscalers.js';
import { FarmError, type AssetRegistry, type GenerateRequest } from '@darkroom/farm';
import { listUpscalerDirs, resolveUpscaler, type JobUpscaler, type ResolvedUpscaler } from '@darkroom/farm/upscaler-assets.js';

/** The refusal of an upscaler name nothing has: A1111 fails the whole call ("could not find upscaler named ..."). */
function unknownUpscaler(name: string, field: string): FarmError {
  return new FarmError('UNKNOWN_UPSCALER', 400, `${field}: could not find upscaler named ${name} (GET /sdapi/v1/upscalers lists them; upload one with PUT /v1/upscalers/{filename})`, field);
}

/** The tenant's upscaler names as one lookup: built-ins, uploads, then MODELS_DIR/ESRGAN and MODELS_DIR/RealESRGAN. */
export async function upscalerResolver(registry: AssetRegistry, modelsDir: string, tenant: string): Promise<(name: string, field: string) => ResolvedUpscaler> {
  const [records, local] = await Promise.all([registry.list(tenant, 'upscalers'), listUpscalerDirs(modelsDir)]);
  return (name, field) => {
    const found = resolveUpscaler(records, local, name);
    if (!found) throw unknownUpscaler(name, field);
    return found;
  };
}

/**
 * The model file a txt2img job's `hr_upscaler` names, resolved at submission so an unknown name is refused now,
 * naming the field, instead of failing on a worker (A1111 raises at the start of the job). Latent modes and the
 * built-ins need no file; hires fix off, A1111 never looks at the name.
 */
export async function resolveHiresUpscaler(registry: AssetRegistry, modelsDir: string, tenant: string, req: GenerateRequest): Promise<JobUpscaler | null> {
  if (!('enable_hr' in req) || !req.enable_hr || req.hr_upscaler === null || isLatentUpscaler(req.hr_upscaler)) return null;
  const found = (await upscalerResolver(registry, modelsDir, tenant))(req.hr_upscaler, 'hr_upscaler');
  return 'model' in found ? found.model : null;
}
