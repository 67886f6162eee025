import { open, readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { checkVaeFile, readCheckpointIndex } from '@darkroom/core/model-files/checkpoint.js';
import { inferModelConfig } from '@darkroom/core/model-files/config.js';
import { loadEmbedding } from '@darkroom/core/networks/embeddings/load.js';
import { loadHypernetwork } from '@darkroom/core/networks/hypernetworks/hypernetwork.js';
import { loadLoraFile } from '@darkroom/core/networks/lora/file.js';
import { inferRrdb } from '@darkroom/core/model-files/rrdbnet.js';
import { readUpscalerStateDict } from '@darkroom/core/model-files/upscaler-file.js';
import type { AssetKind } from './schemas.js';

/**
 * Embeddings, hypernetworks and LoRAs are parsed whole (as the engine parses them), so their size bounds the check's
 * memory; real ones are kilobytes (embeddings) to a few hundred MB (hypernetworks with wide layer structures).
 */
export const MAX_NETWORK_UPLOAD_BYTES = 512 * 1024 ** 2;

/**
 * torch's pre-1.6 (legacy) container is one pickle stream with the storages after it, readable only whole; a large
 * one is accepted unchecked rather than read into the API's memory (the worker's restricted unpickler still refuses
 * a hostile one, as it would at upload). torch.save has written zip files since 2020, so these are rare.
 */
const LEGACY_CHECK_MAX_BYTES = 512 * 1024 ** 2;

async function isLargeLegacyTorch(path: string): Promise<boolean> {
  const { size } = await stat(path);
  if (size <= LEGACY_CHECK_MAX_BYTES) return false;
  const handle = await open(path, 'r');
  try {
    const head = new Uint8Array(4);
    await handle.read(head, 0, 4, 0);
    return head[0] === 0x80; // a pickle, not a zip ("PK") nor safetensors (a length)
  } finally {
    await handle.close();
  }
}

/** Why a file will not load: the loader's stable code and its reason, naming the upload's file name only. */
export interface AssetProblem {
  readonly code: string;
  readonly message: string;
}

/** `text` with every mention of `path` (where the server keeps the file) replaced by the client's `filename`. */
export function withoutPath(text: string, path: string, filename: string): string {
  return text.split(path).join(filename);
}

/**
 * Loads an uploaded file as the worker would, in as little memory as the format allows: a checkpoint's tensor
 * index only (header or pickle; no weights) and the config inferred from it, so a file that lies about its
 * tensors or is not a model A1111 would load is refused; an embedding, hypernetwork or LoRA through its loader (the
 * restricted unpickler, zip members checked on their declared sizes before inflating). Returns null when the
 * file loads. Embedding widths are not checked: which model a job pairs one with is not known yet (A1111 skips
 * an embedding that does not fit the job's model).
 */
export async function checkAssetFile(kind: AssetKind, path: string, filename: string): Promise<AssetProblem | null> {
  try {
    if (kind === 'models') {
      if (extname(filename).toLowerCase() !== '.safetensors' && (await isLargeLegacyTorch(path))) return null;
      inferModelConfig(await readCheckpointIndex(path, extname(filename)));
      return null;
    }
    if (kind === 'vaes') {
      // Read as the engine's VAE loader takes it, from the tensor index only (VAE files are hundreds of MB).
      if (extname(filename).toLowerCase() !== '.safetensors' && (await isLargeLegacyTorch(path))) return null;
      await checkVaeFile(path, extname(filename));
      return null;
    }
    if (kind === 'upscalers') return (await checkAndDescribeAssetFile(kind, path, filename)).problem;
    const { size } = await stat(path);
    if (size > MAX_NETWORK_UPLOAD_BYTES) {
      return { code: 'UPLOAD_TOO_LARGE', message: `${filename}: ${kind} are at most ${MAX_NETWORK_UPLOAD_BYTES} bytes` };
    }
    const bytes = new Uint8Array(await readFile(path));
    if (kind === 'embeddings') await loadEmbedding(bytes, filename);
    else if (kind === 'loras') await loadLoraFile(bytes, filename);
    else await loadHypernetwork(bytes, filename);
    return null;
  } catch (e) {
    return problemOf(e, kind, path, filename);
  }
}

/** A loader's error as the upload's problem, naming the client's file name, never the server's path. */
function problemOf(e: unknown, kind: AssetKind, path: string, filename: string): AssetProblem {
  if (isDarkroomError(e)) {
    const message = withoutPath(e.message, path, filename);
    return { code: e.code, message: message.includes(filename) ? message : `${filename}: ${message}` };
  }
  // A loader tripping over a malformed file (a RangeError deep in a parser) is still the file's fault.
  return { code: 'ASSET_UNREADABLE', message: `${filename}: the file cannot be read as ${kind} (${withoutPath(String((e as Error).message ?? e), path, filename)})` };
}

/** An upload's check, with what the file says of itself that its record keeps (an upscaler's layout and scale). */
export interface AssetCheck {
  readonly problem: AssetProblem | null;
  readonly metadata?: Record<string, unknown>;
}

/**
 * checkAssetFile, and for an upscaler model what listings show of it, read in the same pass: the state dict through
 * the engine's reader (the restricted unpickler for .pth/.pt) and the RRDBNet it describes, so a file the engine
 * would refuse (UPSCALER_UNSUPPORTED naming the key) is refused at upload with that code.
 */
export async function checkAndDescribeAssetFile(kind: AssetKind, path: string, filename: string): Promise<AssetCheck> {
  if (kind !== 'upscalers') return { problem: await checkAssetFile(kind, path, filename) };
  try {
    const { size } = await stat(path);
    if (size > MAX_NETWORK_UPLOAD_BYTES) {
      return { problem: { code: 'UPLOAD_TOO_LARGE', message: `${filename}: ${kind} are at most ${MAX_NETWORK_UPLOAD_BYTES} bytes` } };
    }
    const stateDict = await readUpscalerStateDict(path, extname(filename));
    const { config } = inferRrdb(new Map([...stateDict].map(([k, t]) => [k, t.shape] as const)), filename);
    return { problem: null, metadata: { layout: config.layout, scale: config.scale } };
  } catch (e) {
    return { problem: problemOf(e, kind, path, filename) };
  }
}
