import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import type { Request } from 'express';
import {
  classifyUploadPath, describeFile, FarmError, planDataset, type DatasetLimits, type StagedDatasetFile, type UploadEntry,
} from '@darkroom/farm';

/** The only form field besides files. */
const NAME_FIELD = 'name';
/** Generous for a 100-character name; a longer value is refused as over-long rather than cut. */
const FIELD_BYTES = 1024;

interface ReceivedPart extends UploadEntry {
  localPath: string;
}

interface ReceivedForm {
  fields: Map<string, string>;
  parts: ReceivedPart[];
}

/**
 * Streams a multipart form's files into `dir`, enforcing the limits as bytes arrive. Paths are kept as the
 * client sent them (`preservePath`) so that an unsafe one is refused instead of silently cut to its last segment.
 * On a refusal the rest of the body is drained, so the client reads a 4xx rather than a reset connection.
 */
function receiveForm(req: Request, limits: DatasetLimits, bodyLimit: number, dir: string): Promise<ReceivedForm> {
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: req.headers,
      preservePath: true,
      limits: { files: limits.maxEntries, fileSize: limits.maxFileBytes, fields: 1, fieldSize: FIELD_BYTES, parts: limits.maxEntries + 1 },
    });
  } catch (e) {
    return Promise.reject(new FarmError('INVALID_MULTIPART', 400, `multipart form: ${(e as Error).message}`, 'Content-Type'));
  }
  return new Promise((resolve, reject) => {
    const fields = new Map<string, string>();
    const parts: ReceivedPart[] = [];
    const writes: Promise<void>[] = [];
    const active = new Set<Readable>();
    let failure: unknown = null;
    let received = 0;
    let stored = 0;
    let index = 0;

    const finish = (): void => {
      void Promise.allSettled(writes).then(() => (failure ? reject(failure) : resolve({ fields, parts })));
    };
    const fail = (e: unknown): void => {
      if (failure) return;
      failure = e;
      req.unpipe(bb);
      // With an error: a busboy file stream destroyed without one can leave its pipeline() unsettled.
      for (const s of active) s.destroy(e instanceof Error ? e : new Error(String(e)));
      req.resume();
      finish();
    };

    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > bodyLimit) {
        fail(new FarmError('UPLOAD_TOO_LARGE', 413, `upload exceeds DATASET_MAX_BYTES (${bodyLimit})`, 'body'));
        req.destroy();
      }
    });
    req.on('close', () => {
      if (!req.complete) fail(new FarmError('UPLOAD_ABORTED', 400, 'the upload ended early', 'body'));
    });
    bb.on('field', (name, value, info) => {
      if (failure) return;
      if (name !== NAME_FIELD) return fail(new FarmError('INVALID_REQUEST', 400, `unknown form field "${name}"`, name));
      if (info.valueTruncated) return fail(new FarmError('NAME_TOO_LONG', 400, 'name is too long', name));
      fields.set(name, value);
    });
    bb.on('file', (field, stream, info) => {
      if (failure) {
        stream.resume();
        return;
      }
      const part: ReceivedPart = { field, path: info.filename ?? '', size: 0, localPath: join(dir, `part-${index++}`) };
      let keep = false;
      try {
        keep = classifyUploadPath(part).keep;
      } catch (e) {
        fail(e);
      }
      if (!keep) {
        stream.resume();
        return;
      }
      active.add(stream);
      stream.on('data', (chunk: Buffer) => {
        part.size += chunk.length;
        stored += chunk.length;
        if (stored > limits.maxBytes) {
          fail(new FarmError('DATASET_TOO_LARGE', 413, `the files add up to more than DATASET_MAX_BYTES (${limits.maxBytes})`, field, part.path));
        }
      });
      stream.on('limit', () => {
        fail(new FarmError('FILE_TOO_LARGE', 413, `"${part.path}" is larger than DATASET_MAX_FILE_BYTES (${limits.maxFileBytes})`, field, part.path));
      });
      writes.push(pipeline(stream, createWriteStream(part.localPath))
        .then(() => {
          parts.push(part);
        }, (e: unknown) => fail(e))
        .finally(() => active.delete(stream)));
    });
    const tooMany = (): void => fail(new FarmError('TOO_MANY_ENTRIES', 413, `the form has more than DATASET_MAX_ENTRIES (${limits.maxEntries}) files`, 'body'));
    bb.on('filesLimit', tooMany);
    bb.on('partsLimit', tooMany);
    bb.on('fieldsLimit', () => fail(new FarmError('INVALID_REQUEST', 400, `the only form field is "${NAME_FIELD}", once`, NAME_FIELD)));
    bb.on('error', (e: Error) => fail(new FarmError('INVALID_MULTIPART', 400, `multipart form: ${e.message}`, 'body')));
    bb.on('close', () => {
      if (!failure) finish();
    });
    req.pipe(bb);
  });
}

/** Receives a multipart form, then plans and inspects its files as `stageZip` does. */
export async function stageMultipart(
  req: Request, limits: DatasetLimits, bodyLimit: number, dir: string,
): Promise<{ fields: Map<string, string>; files: StagedDatasetFile[] }> {
  const form = await receiveForm(req, limits, bodyLimit, dir);
  // Parts finish writing in any order; plan in the order the client sent them, so "first" in errors means first.
  const parts = form.parts.sort((a, b) => a.localPath.localeCompare(b.localPath, undefined, { numeric: true }));
  const plan = planDataset(parts, limits, 'body');
  const files: StagedDatasetFile[] = [];
  for (const file of plan) {
    files.push({ info: describeFile(file, await readFile(file.entry.localPath), limits), path: file.entry.localPath });
  }
  return { fields: form.fields, files };
}
