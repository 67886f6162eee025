import { extname } from 'node:path';
import { SafetensorsFile } from '@darkroom/core/formats/safetensors.js';
import { loraAlias, parseLoraMetadata } from '@darkroom/core/networks/lora/file.js';
import { extraNetworkParams, LORA_TAG_KINDS, parseBatchExtraNetworks } from '@darkroom/core/pipeline/extra-networks.js';
import { assetName, type AssetRecord } from './assets.js';

/**
 * LoRA uploads as the farm names them: what a file says of itself (read once at upload, kept in its record, so
 * listings and the worker's name lookup never open the file) and which of a tenant's files a prompt names.
 */

/** A LoRA file's alias and metadata, as A1111's `NetworkOnDisk` reads them: the safetensors header only. */
export async function readLoraDescription(path: string, filename: string): Promise<Required<Pick<AssetRecord, 'alias' | 'metadata'>>> {
  if (extname(filename).toLowerCase() !== '.safetensors') return { alias: assetName(filename), metadata: {} };
  const f = await SafetensorsFile.open(path);
  try {
    const metadata = parseLoraMetadata(f.metadata);
    return { alias: loraAlias(metadata, assetName(filename)), metadata };
  } finally {
    await f.close();
  }
}

/**
 * Names the `<lora:...>` / `<lyco:...>` tags of a job's prompt select (A1111 activates networks from the first
 * prompt only, through the same parser the engine uses). A tag whose values A1111 refuses still names its
 * network here: the engine then drops every LoRA of the job, as A1111 does, whatever files it was handed.
 */
export function loraTagNames(prompt: string): string[] {
  const names = new Set<string>();
  for (const c of parseBatchExtraNetworks([prompt]).calls) {
    const name = LORA_TAG_KINDS.includes(c.kind) ? extraNetworkParams(c).positional[0] : undefined;
    if (name !== undefined) names.add(name);
  }
  return [...names];
}

/**
 * The tenant's LoRA records a prompt's names may mean: those whose name or alias is one of them (A1111 looks a
 * tag's name up among both). Which one wins when a name and an alias collide is the engine's rule, not this.
 */
export function lorasNamed(records: readonly AssetRecord[], names: readonly string[]): AssetRecord[] {
  const wanted = new Set(names);
  return records.filter((r) => wanted.has(r.name) || (r.alias !== undefined && wanted.has(r.alias)));
}
