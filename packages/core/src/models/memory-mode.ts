/**
 * A1111's memory modes as engine options. `normal` keeps the text encoder, UNet and VAE sessions open side by
 * side (fastest: nothing is reopened between jobs). `medvram` is A1111's `--medvram`: only one of them is
 * resident at a time; opening one releases the others' idle sessions, so the peak is the largest component and
 * its arena instead of their sum, at the cost of reopening each component (from the compile cache) per job.
 * `lowvram` is A1111's `--lowvram`: as medvram, and the UNet itself runs in parts (consecutive slices of its
 * graph, each a session of its own opened in turn), so only a part of the UNet's weights is resident at a time;
 * every UNet call reopens its parts, which is slow, as A1111's lowvram is.
 */
import type { MemoryMode } from '../catalog/engine-flags.js';

export { MEMORY_MODES, parseMemoryMode, type MemoryMode } from '../catalog/engine-flags.js';

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
