import { BUILTIN_MODEL, listModelsDir, type AssetRegistry } from '@darkroom/farm';

export interface ModelEntry {
  /** A1111 title: `<file> [<shorthash>]`. */
  title: string;
  model_name: string;
  hash: string | null;
  sha256: string | null;
  filename: string;
  config: string | null;
  source: 'builtin' | 'models_dir' | 'upload';
  /** File size in bytes (null for the built-in model): bounds what a memory estimate counts for its weights. */
  size: number | null;
}

/** Checkpoints a tenant can name: the built-in model, MODELS_DIR and the tenant's uploads. */
export async function listModels(registry: AssetRegistry, modelsDir: string, tenant: string): Promise<ModelEntry[]> {
  const out: ModelEntry[] = [{ title: BUILTIN_MODEL, model_name: BUILTIN_MODEL, hash: null, sha256: null, filename: BUILTIN_MODEL, config: null, source: 'builtin', size: null }];
  for (const m of await listModelsDir(modelsDir)) {
    out.push({ title: m.relativePath, model_name: m.modelName, hash: null, sha256: null, filename: m.path, config: null, source: 'models_dir', size: m.size });
  }
  for (const r of await registry.list(tenant, 'models')) {
    const hash = r.sha256.slice(0, 10);
    out.push({ title: `${r.filename} [${hash}]`, model_name: r.name, hash, sha256: r.sha256, filename: r.filename, config: null, source: 'upload', size: r.size });
  }
  return out;
}

/** Matches what A1111 accepts for a checkpoint: title, title without hash, model_name, file name, or short hash. */
export function findModel(models: ModelEntry[], name: string): ModelEntry | undefined {
  const bare = name.replace(/\s*\[[0-9a-f]+\]$/, '');
  return models.find((m) => m.title === name || m.model_name === name || m.model_name === bare || m.title === bare
    || m.filename === name || (m.hash !== null && m.hash === name));
}
