/**
 * A1111's memory modes as engine options. `normal` keeps the text encoder, UNet and VAE sessions open side by
 * side (fastest: nothing is reopened between jobs). `medvram` is A1111's `--medvram`: only one of them is
 * resident at a time; opening one releases the others' idle sessions, so the peak is the largest component and
 * its arena instead of their sum, at the cost of reopening each component (from the compile cache) per job.
 *
 * A1111's `--lowvram` (the UNet itself moved to the device block by block) is not offered: it needs the UNet built
 * as separately loadable parts, and a request for it is refused rather than quietly run as another mode.
 */
import { DarkroomError } from '../errors.js';

export type MemoryMode = 'normal' | 'medvram';

export const MEMORY_MODES: readonly MemoryMode[] = ['normal', 'medvram'];

/** A1111's flag spellings for the same choices (with or without the leading dashes). */
const ALIASES: Readonly<Record<string, MemoryMode>> = {
  'med-vram': 'medvram',
  'medvram-sdxl': 'medvram',
  'always-high-vram': 'normal',
  'always-normal-vram': 'normal',
  highvram: 'normal',
};

const NOT_OFFERED = new Set(['lowvram', 'low-vram', 'always-low-vram', 'always-no-vram']);

/** A memory mode from configuration text: a mode name or one of A1111's flag names. */
export function parseMemoryMode(raw: string): MemoryMode {
  const name = raw.trim().toLowerCase().replace(/^-+/, '');
  if (NOT_OFFERED.has(name)) {
    throw new DarkroomError('MEMORY_MODE_UNSUPPORTED', `memory mode "${raw}" is not supported; use ${MEMORY_MODES.join(' or ')}`, { mode: raw });
  }
  const mode = (MEMORY_MODES as readonly string[]).includes(name) ? (name as MemoryMode) : ALIASES[name];
  if (!mode) {
    throw new DarkroomError(
      'MEMORY_MODE_UNKNOWN',
      `unknown memory mode "${raw}"; use ${MEMORY_MODES.join(', ')} or one of A1111's flags (${Object.keys(ALIASES).join(', ')})`,
      { mode: raw },
    );
  }
  return mode;
}

/** Whether opening a session of one component releases the idle sessions of the others. */
export function oneComponentResident(mode: MemoryMode): boolean {
  return mode === 'medvram';
}
