import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file so commands work from any working directory. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Where the golden data lives: $DARKROOM_ORACLE, else ../shared/oracle beside the checkout. */
export function oracleRoot(): string {
  return process.env.DARKROOM_ORACLE ? resolve(process.env.DARKROOM_ORACLE) : resolve(repoRoot, '../shared/oracle');
}

/** The oracle sub-folder for a suite, or undefined (with the reason) when it is absent. */
export function oracleFolder(sub: string): { folder: string } | { missing: string } {
  const folder = join(oracleRoot(), sub);
  return existsSync(folder) ? { folder } : { missing: `oracle data not found at ${folder} (set DARKROOM_ORACLE)` };
}
