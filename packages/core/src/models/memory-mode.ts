/**
 * A1111's memory modes as engine options. `normal` keeps the text encoder, UNet and VAE sessions open side by
 * side (fastest: nothing is reopened between jobs). `medvram` is A1111's `--medvram`: only one of them is
 * resident at a time; opening one releases the others' idle sessions, so the peak is the largest component and
 * its arena instead of their sum, at the cost of reopening each component (from the compile cache) per job.
 * `lowvram` is A1111's `--lowvram`: as medvram, and the UNet itself runs in parts (consecutive slices of its
 * graph, each a session of its own opened in turn), so only a part of the UNet's weights is resident at a time;
 * every UNet call reopens its parts, which is slow, as A1111's lowvram is.
 */
import { DarkroomError } from '../errors.js';

export type MemoryMode = 'normal' | 'medvram' | 'lowvram';

export const MEMORY_MODES: readonly MemoryMode[] = ['normal', 'medvram', 'lowvram'];

/** A1111's flag spellings for the same choices (with or without the leading dashes). */
const ALIASES: Readonly<Record<string, MemoryMode>> = {
  'med-vram': 'medvram',
  'low-vram': 'lowvram',
  'always-low-vram': 'lowvram',
  'always-no-vram': 'lowvram',
  'medvram-sdxl': 'medvram',
  'always-high-vram': 'normal',
  'always-normal-vram': 'normal',
  highvram: 'normal',
};


/** A memory mode from configuration text: a mode name or one of A1111's flag names. */
export function parseMemoryMode(raw: string): MemoryMode {
  const name = raw.trim().toLowerCase().replace(/^-+/, '');
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
  return mode === 'medvram' || mode === 'lowvram';
}

/** How many parts the UNet runs in: lowvram's three, else the whole graph at once. */
export function unetParts(mode: MemoryMode): number {
  return mode === 'lowvram' ? 3 : 1;
}

/**
 * Whether sessions keep onnxruntime's CPU arena and memory pattern by default: in normal mode, for speed; not in
 * medvram and lowvram, where the arena would keep each run's largest intermediates after the run (a tiled VAE
 * decode's blocks beside the UNet's), which is what those modes exist to avoid.
 */
export function sessionArena(mode: MemoryMode): boolean {
  return mode === 'normal';
}
