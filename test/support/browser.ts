import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where browser tests write their screenshots (git-ignored test artifacts). */
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/web/', import.meta.url));

/**
 * Debian's Chromium, or CHROMIUM_PATH alone when it is set: the tests drive an installed browser and never
 * download one.
 */
export function findChromium(): string | null {
  const candidates = process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p): p is string => Boolean(p) && existsSync(p!)) ?? null;
}

export async function artifactPath(name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
