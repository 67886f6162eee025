import { FarmError, type AssetRegistry, type GenerateRequest } from '@darkroom/farm';
import { listVaeDir, namesVaeFile, vaeForSetting, type JobVae } from '@darkroom/farm/vae-assets.js';

/**
 * A1111's `sd_vae` for one job or the tenant's options: "Automatic", "None" or the name of one of the tenant's VAE
 * uploads or of `MODELS_DIR/VAE`. A name is resolved now, so an unknown one is refused naming the field instead of failing on a worker;
 * the value becomes the upload's file name (what the infotext's `VAE` shows) and the job carries its hash.
 */
export async function resolveVaeName(registry: AssetRegistry, modelsDir: string, tenant: string, value: unknown, field: string): Promise<JobVae | null> {
  if (typeof value !== 'string') throw new FarmError('INVALID_REQUEST', 400, `${field} must be a string ("Automatic", "None" or a VAE name)`, field);
  if (!namesVaeFile(value)) return null;
  const vae = vaeForSetting(await registry.list(tenant, 'vaes'), await listVaeDir(modelsDir), value);
  if (!vae) {
    throw new FarmError('UNKNOWN_VAE', 400, `${field}: no VAE "${value}" (upload it with PUT /v1/vaes/{filename}; GET /sdapi/v1/sd-vae lists them; or "Automatic", "None")`, field);
  }
  return vae;
}

/** The job's VAE upload, if its `override_settings.sd_vae` names one (rewritten to the upload's file name). */
export async function resolveJobVae(registry: AssetRegistry, modelsDir: string, tenant: string, req: GenerateRequest): Promise<JobVae | null> {
  const overrides = req.override_settings as Record<string, unknown> | null;
  if (!overrides || !('sd_vae' in overrides)) return null;
  const vae = await resolveVaeName(registry, modelsDir, tenant, overrides.sd_vae, 'override_settings.sd_vae');
  if (vae) overrides.sd_vae = vae.filename;
  return vae;
}
