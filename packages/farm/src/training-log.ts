import { z } from 'zod';
import type { TrainingKind } from './training-schemas.js';

/**
 * A training's log folder: A1111's `log_directory`, which here is a prefix in the farm's storage and never a
 * path on a server. A1111 lays a training's files out as
 *
 *   <log_directory>/<YYYY-MM-DD>/<name>/embeddings/<name>-<step>.pt     (hypernetworks/ for a hypernetwork)
 *   <log_directory>/<YYYY-MM-DD>/<name>/image_embeddings/<name>-<step>.png
 *   <log_directory>/<YYYY-MM-DD>/<name>/images/<name>-<step>.png
 *   <log_directory>/<YYYY-MM-DD>/<name>/textual_inversion_loss.csv
 *
 * and a trainer writes the same layout under `logs/<tenant>/`, beside the training's own files.
 */

/**
 * Parts that each start with a letter, digit or `_=-`: that refuses `/etc`, `../x`, `.`, hidden folders,
 * backslashes and drive letters, and keeps every key within what storage keys allow.
 */
const PART = '[A-Za-z0-9_=-][A-Za-z0-9_.=-]{0,99}';
const LOG_DIRECTORY_RE = new RegExp(`^${PART}(?:/${PART}){0,7}/?$`);

export const LogDirectory = z
  .string()
  .max(200)
  .regex(LOG_DIRECTORY_RE, 'a storage prefix: up to 8 /-separated parts of letters, digits and _.=-, none starting with "." (never a path on the server)')
  .transform((s) => s.replace(/\/$/, ''));

/** The folder of one training, dated by the day it was accepted so that every attempt writes to the same one. */
export function trainingLogPrefix(tenant: string, logDirectory: string, acceptedAt: number, name: string): string {
  return `logs/${tenant}/${logDirectory}/${new Date(acceptedAt).toISOString().slice(0, 10)}/${name}/`;
}

/** True for `<name>-<digits>.<ext>`: a file of an intermediate save rather than a final one. */
function isStepFile(name: string, fileName: string): boolean {
  if (!fileName.startsWith(`${name}-`)) return false;
  const rest = fileName.slice(name.length + 1);
  return /^\d+\./.test(rest);
}

/** Where A1111 puts a file of a training in its log folder. */
export function trainingLogKey(prefix: string, kind: TrainingKind, name: string, fileName: string, area: 'files' | 'images'): string {
  if (area === 'images') return `${prefix}images/${fileName}`;
  // The loss CSV and the final files sit at the top (A1111 keeps the final file in its embeddings folder instead).
  if (!isStepFile(name, fileName)) return `${prefix}${fileName}`;
  if (kind === 'embedding' && fileName.endsWith('.png')) return `${prefix}image_embeddings/${fileName}`;
  return `${prefix}${kind === 'embedding' ? 'embeddings' : 'hypernetworks'}/${fileName}`;
}
