import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { readZipDirectory, readZipEntry, type ByteSource, type ZipEntry } from '@darkroom/core/formats/zip.js';
import {
  describeFile, FarmError, planDataset, zipEntryIsSymlink, type DatasetLimits, type StagedDatasetFile, type UploadEntry,
} from '@darkroom/farm';

/** A zip upload is the request body, so its problems name the field `body` and the entry's path in the archive. */
const FIELD = 'body';
const SOURCE = 'the upload';

interface ZipUploadEntry extends UploadEntry {
  zip: ZipEntry;
}

function fileSource(handle: import('node:fs/promises').FileHandle, size: number): ByteSource {
  return {
    size,
    async read(offset, length) {
      const buf = new Uint8Array(length);
      const { bytesRead } = await handle.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    },
  };
}

/** zlib's deflateBound with room to spare: no compressor worth accepting grows data by more. */
function maxCompressedSize(size: number): number {
  return size + Math.ceil(size / 1024) + 1024;
}

function zipError(e: unknown, path?: string): unknown {
  if (!isDarkroomError(e)) return e;
  if (e.code === 'ZIP_TOO_MANY_ENTRIES') return new FarmError('TOO_MANY_ENTRIES', 413, `${e.message} (DATASET_MAX_ENTRIES)`, FIELD);
  return new FarmError('INVALID_ZIP', 400, e.message, FIELD, path);
}

/**
 * Validates a received zip and extracts its dataset files into `dir`. Every name, path and declared size is
 * checked from the central directory before anything is inflated; inflating then never goes past an entry's
 * declared size (readZipEntry's output cap), so declared totals bound what is written.
 */
export async function stageZip(zipPath: string, size: number, limits: DatasetLimits, dir: string): Promise<StagedDatasetFile[]> {
  const handle = await open(zipPath, 'r');
  try {
    const src = fileSource(handle, size);
    let entries: ZipEntry[];
    try {
      entries = await readZipDirectory(src, SOURCE, { maxEntries: limits.maxEntries });
    } catch (e) {
      throw zipError(e);
    }
    const uploads: ZipUploadEntry[] = entries.map((zip) => ({ field: FIELD, path: zip.name, size: zip.size, symlink: zipEntryIsSymlink(zip), zip }));
    const plan = planDataset(uploads, limits, FIELD);
    for (const { entry } of plan) {
      if (entry.zip.flags & 1) throw new FarmError('INVALID_ZIP', 400, `"${entry.path}" is encrypted`, FIELD, entry.path);
      // A member's compressed bytes are read whole before inflating; bound them by its (already limited) size.
      if (entry.zip.compressedSize > maxCompressedSize(entry.zip.size)) {
        throw new FarmError('INVALID_ZIP', 400, `"${entry.path}" has ${entry.zip.compressedSize} compressed bytes for ${entry.zip.size}`, FIELD, entry.path);
      }
      if (entry.zip.method !== 0 && entry.zip.method !== 8) {
        throw new FarmError('INVALID_ZIP', 400, `"${entry.path}" uses compression method ${entry.zip.method}; only stored and deflated entries are read`, FIELD, entry.path);
      }
    }
    const staged: StagedDatasetFile[] = [];
    for (const [i, file] of plan.entries()) {
      let data: Uint8Array;
      try {
        data = await readZipEntry(src, file.entry.zip, SOURCE);
      } catch (e) {
        throw zipError(e, file.entry.path);
      }
      const info = describeFile(file, data, limits);
      const path = join(dir, `file-${i}`);
      await writeFile(path, data);
      staged.push({ info, path });
    }
    return staged;
  } finally {
    await handle.close();
  }
}
