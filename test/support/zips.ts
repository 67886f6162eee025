import { crc32, deflateRawSync } from 'node:zlib';
import { writeZip, type ZipMemberInput } from '@darkroom/core/formats/zip.js';

/**
 * Zips for upload tests, built with the engine's own writer (stored members) and then edited in the central
 * directory, which is all the reader trusts: that is how deflated members, lying sizes and symlinks are made.
 */

function centralOffsets(zip: Uint8Array): number[] {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const eocd = zip.length - 22;
  const count = v.getUint16(eocd + 10, true);
  let at = v.getUint32(eocd + 16, true);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(at);
    at += 46 + v.getUint16(at + 28, true) + v.getUint16(at + 30, true) + v.getUint16(at + 32, true);
  }
  return out;
}

/** Edits the central directory record of member `index` in place. */
export function patchCentral(zip: Uint8Array, index: number, edit: (v: DataView, at: number) => void): Uint8Array {
  edit(new DataView(zip.buffer, zip.byteOffset, zip.byteLength), centralOffsets(zip)[index]!);
  return zip;
}

export function storedZip(members: readonly ZipMemberInput[]): Uint8Array {
  return writeZip(members);
}

/** Deflated members; `declaredSizes[i]` overrides what member i claims to inflate to (a lie, for bomb tests). */
export function deflatedZip(members: readonly ZipMemberInput[], declaredSizes: readonly (number | undefined)[] = []): Uint8Array {
  const zip = writeZip(members.map((m) => ({ name: m.name, data: deflateRawSync(m.data) })));
  members.forEach((m, i) => patchCentral(zip, i, (v, at) => {
    v.setUint16(at + 10, 8, true);
    v.setUint32(at + 16, crc32(m.data) >>> 0, true);
    v.setUint32(at + 24, declaredSizes[i] ?? m.data.length, true);
  }));
  return zip;
}

/** Marks member `index` as a Unix symlink (mode 0120777), as `zip --symlinks` writes one. */
export function asSymlink(zip: Uint8Array, index: number): Uint8Array {
  return patchCentral(zip, index, (v, at) => {
    v.setUint16(at + 4, (3 << 8) | 30, true);
    v.setUint32(at + 38, (0o120777 << 16) >>> 0, true);
  });
}
