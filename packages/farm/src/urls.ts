import type { SharedConfig } from './config.js';
import type { Storage } from './storage/types.js';

/** S3 outputs are handed out as presigned URLs; folder outputs through the API, which checks the tenant. */
export async function outputUrl(storage: Storage, cfg: Pick<SharedConfig, 'outputUrlTtlS' | 'publicUrl'>, jobId: string, index: number, key: string): Promise<string> {
  return (await storage.presignedUrl(key, cfg.outputUrlTtlS)) ?? `${cfg.publicUrl}/v1/jobs/${jobId}/outputs/${index}.png`;
}

export async function previewUrl(storage: Storage, cfg: Pick<SharedConfig, 'outputUrlTtlS' | 'publicUrl'>, jobId: string, key: string, step: number): Promise<string> {
  return (await storage.presignedUrl(key, cfg.outputUrlTtlS)) ?? `${cfg.publicUrl}/v1/jobs/${jobId}/preview.png?step=${step}`;
}

/** A training's file (`files/`) or preview (`images/`): presigned on S3, else through the API, which checks the tenant. */
export async function trainingFileUrl(
  storage: Storage, cfg: Pick<SharedConfig, 'outputUrlTtlS' | 'publicUrl'>, jobId: string, key: string, area: 'files' | 'images', name: string,
): Promise<string> {
  return (await storage.presignedUrl(key, cfg.outputUrlTtlS)) ?? `${cfg.publicUrl}/v1/trainings/${jobId}/${area}/${encodeURIComponent(name)}`;
}
