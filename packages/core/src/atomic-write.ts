/**
 * A file written whole or not at all: the bytes go to a temporary file, renamed over the target, so a reader
 * (another process, a run that resumes) never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';

/**
 * Runs `write(tmp)`, then renames `tmp` over `path`; on any failure `tmp` is removed and `path` left as it was.
 * `tmp` must be on the same file system as `path` (beside it, or in a temporary folder of the same store).
 */
export async function replaceAtomically(path: string, tmp: string, write: (tmp: string) => Promise<void>): Promise<void> {
  try {
    await write(tmp);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** A temporary name beside `path`, unique to this process and call. */
export function temporaryBeside(path: string): string {
  return `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}

export async function writeFileAtomically(path: string, bytes: Uint8Array | string): Promise<void> {
  await replaceAtomically(path, temporaryBeside(path), (tmp) => writeFile(tmp, bytes));
}
