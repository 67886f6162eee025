import { basename } from 'node:path';
import type { RenderRequest } from './render-protocol.js';

/**
 * The engine names the files it could not use by their paths in this worker's cache (content-hash folders);
 * clients know them by the names they uploaded them under. Every path of the request becomes its name, and any
 * other absolute path left (a graph cache file) its last part, so no message leaves with a server path.
 */
export function withoutRequestPaths(message: string, req: RenderRequest): string {
  const files = [
    ...(req.checkpoint ? [req.checkpoint] : []),
    ...req.networks.embeddings,
    ...req.networks.hypernetworks,
    ...req.networks.loras,
    ...(req.vae ? [req.vae] : []),
    ...(req.upscalers ?? []),
  ];
  let out = message;
  for (const f of files) out = out.split(f.path).join(f.name);
  return out.replace(/(?:\/[^\s/"'`:,;()[\]]+){2,}/g, (p) => basename(p));
}
