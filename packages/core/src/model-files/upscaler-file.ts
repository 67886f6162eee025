/**
 * ESRGAN-family upscaler files: the state dict read through the safe readers (the restricted unpickler for
 * `.pth`/`.pt`/`.ckpt`, safetensors) and the RRDBNet weights it holds. No sessions here: checking an upload needs
 * none.
 */
import { extname } from 'node:path';
import { DarkroomError } from '../errors.js';
import { SafetensorsFile } from '../formats/safetensors.js';
import { dictGet, isDict, isTensor, readTorchFile, type PyValue } from '../formats/torch.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../tensor.js';
import { inferRrdb, type RrdbWeights } from './rrdbnet.js';

/**
 * A state dict's tensors from a `.pth`/`.pt`/`.ckpt` (restricted unpickler) or `.safetensors` file. `format` is
 * the extension that says how to read it (an upload's temporary file has none of its own).
 */
export async function readUpscalerStateDict(path: string, format: string = extname(path)): Promise<Map<string, HostTensor>> {
  const ext = format.toLowerCase();
  if (ext === '.safetensors') {
    const file = await SafetensorsFile.open(path);
    try {
      return await file.readAll();
    } finally {
      await file.close();
    }
  }
  if (ext !== '.pth' && ext !== '.pt' && ext !== '.ckpt') {
    throw new DarkroomError('UPSCALER_UNSUPPORTED', `${path}: unknown upscaler file type "${ext}" (.pth, .pt or .safetensors)`, { file: path });
  }
  let value: PyValue = (await readTorchFile(path)).value;
  // Real-ESRGAN's training saves wrap the weights as {params_ema: ...} or {params: ...}; others as state_dict.
  for (const wrapper of ['params_ema', 'params', 'state_dict']) {
    const inner = isDict(value) ? dictGet(value, wrapper) : undefined;
    if (inner !== undefined && isDict(inner)) {
      value = inner;
      break;
    }
  }
  if (!isDict(value)) throw new DarkroomError('UPSCALER_UNSUPPORTED', `${path}: the file is not a dict of tensors`, { file: path });
  const out = new Map<string, HostTensor>();
  for (const [k, v] of value) if (typeof k === 'string' && isTensor(v)) out.set(k, v);
  return out;
}

/** The RRDBNet weights of a state dict, under Real-ESRGAN's names (throws UPSCALER_UNSUPPORTED otherwise). */
export function rrdbWeightsFrom(stateDict: ReadonlyMap<string, HostTensor>, file = 'upscaler'): RrdbWeights {
  const { config, names } = inferRrdb(new Map([...stateDict].map(([k, t]) => [k, t.shape] as const)), file);
  const tensors = new Map<string, Float32Tensor>();
  for (const [canon, key] of names) tensors.set(canon, toFloat32(stateDict.get(key)!));
  return { config, tensors };
}
