/** A checkpoint's explicit config file, whose settings override what its tensors imply (config.ts inferModelConfig). */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { DarkroomError } from '../errors.js';
import { overridesFromJson, type ConfigOverrides } from './config.js';
import { parseYaml } from './yaml.js';

/**
 * The explicit config: the given object or file (JSON, or an ldm yaml), else a `<checkpoint>.yaml` beside the
 * checkpoint as A1111 finds it, else nothing (everything inferred).
 */
export async function readConfigOverrides(config: string | object | undefined, checkpoint: string): Promise<ConfigOverrides> {
  if (config !== undefined && typeof config !== 'string') return overridesFromJson(config);
  let path = config;
  if (path === undefined) {
    const sibling = join(dirname(checkpoint), `${basename(checkpoint, extname(checkpoint))}.yaml`);
    if (!existsSync(sibling)) return {};
    path = sibling;
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DarkroomError('MODEL_CONFIG_INVALID', `${path}: ${(e as Error).message}`);
  }
  const lower = path.toLowerCase();
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return overridesFromJson(parseYaml(text));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DarkroomError('MODEL_CONFIG_INVALID', `${path}: ${(e as Error).message}`);
  }
  return overridesFromJson(json);
}
