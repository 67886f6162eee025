import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { encodePng } from '@darkroom/core/formats/png.js';
import {
  checkCaption, classifyUploadPath, describeFile, FarmError, inspectImage, parseDatasetName, planDataset, zipEntryIsSymlink,
  type DatasetLimits, type UploadEntry,
} from '../src/index.js';

const LIMITS: DatasetLimits = {
  maxFiles: 10, maxEntries: 20, maxBytes: 10_000, maxFileBytes: 4_000, maxImageSide: 1024, maxImagePixels: 300_000,
};

function entry(path: string, size = 10, extra: Partial<UploadEntry> = {}): UploadEntry {
  return { field: 'body', path, size, ...extra };
}

/** Asserts a FarmError with this code, naming `file` when given. */
function refused(fn: () => unknown, code: string, file?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FarmError, String(e));
    assert.equal(e.code, code, e.message);
    if (file !== undefined) assert.equal(e.file, file);
    return true;
  });
}

function png(width = 2, height = 3): Uint8Array {
  return encodePng({ width, height, channels: 3, data: new Uint8Array(width * height * 3).fill(128) });
}

/** A real PNG whose IHDR is rewritten (CRC fixed up): the header claims what the test needs, the data does not follow. */
function pngClaiming(width: number, height: number, interlace = 0): Uint8Array {
  const bytes = png(1, 1).slice();
  const v = new DataView(bytes.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  bytes[28] = interlace;
  v.setUint32(29, crc32(bytes.subarray(12, 29)) >>> 0);
  return bytes;
}

test('paths: folders are flattened, metadata and dotfiles skipped', () => {
  assert.deepEqual(classifyUploadPath(entry('cat.png')), { keep: true, name: 'cat.png' });
  assert.deepEqual(classifyUploadPath(entry('set/sub/cat.png')), { keep: true, name: 'cat.png' });
  assert.deepEqual(classifyUploadPath(entry('./cat.png')), { keep: true, name: 'cat.png' });
  assert.deepEqual(classifyUploadPath(entry('set/')), { keep: false, reason: 'directory' });
  assert.deepEqual(classifyUploadPath(entry('__MACOSX/set/._cat.png')), { keep: false, reason: 'metadata' });
  assert.deepEqual(classifyUploadPath(entry('set/.DS_Store')), { keep: false, reason: 'hidden' });
  assert.deepEqual(classifyUploadPath(entry('.git/config')), { keep: false, reason: 'hidden' });
});

test('paths: traversal, absolute paths, backslashes, drive letters, NUL and symlinks are refused', () => {
  for (const p of ['../cat.png', 'set/../../cat.png', '..', '/etc/cat.png', 'C:/cat.png', 'c:cat.png', 'set\\cat.png', '..\\cat.png', 'a\0.png']) {
    refused(() => classifyUploadPath(entry(p)), 'UNSAFE_PATH', p);
  }
  // Refused even where it would otherwise be skipped: an archive carrying one is not trusted at all.
  refused(() => classifyUploadPath(entry('__MACOSX/../../x')), 'UNSAFE_PATH');
  refused(() => classifyUploadPath(entry('link.png', 10, { symlink: true })), 'SYMLINK_NOT_ALLOWED', 'link.png');
});

test('zip symlinks are recognised from Unix mode bits', () => {
  assert.equal(zipEntryIsSymlink({ versionMadeBy: (3 << 8) | 30, externalAttributes: (0o120777 << 16) >>> 0 }), true);
  assert.equal(zipEntryIsSymlink({ versionMadeBy: (19 << 8) | 30, externalAttributes: (0o120755 << 16) >>> 0 }), true);
  assert.equal(zipEntryIsSymlink({ versionMadeBy: (3 << 8) | 30, externalAttributes: (0o100644 << 16) >>> 0 }), false);
  // A DOS host keeps DOS attributes there; the same bits mean nothing.
  assert.equal(zipEntryIsSymlink({ versionMadeBy: 20, externalAttributes: (0o120777 << 16) >>> 0 }), false);
});

test('plan: captions pair with images by stem, output sorted by name', () => {
  const plan = planDataset([entry('set/dog.png'), entry('set/cat.txt'), entry('set/cat.png'), entry('__MACOSX/x'), entry('set/')], LIMITS, 'body');
  assert.deepEqual(plan.map((p) => [p.name, p.kind, p.partner]), [
    ['cat.png', 'image', 'cat.txt'], ['cat.txt', 'caption', 'cat.png'], ['dog.png', 'image', null],
  ]);
  assert.equal(planDataset([entry('CAT.PNG')], LIMITS, 'body')[0]!.kind, 'image');
});

test('plan: duplicates, including after flattening and by case, are refused naming both files', () => {
  refused(() => planDataset([entry('a/cat.png'), entry('b/cat.png')], LIMITS, 'body'), 'DUPLICATE_NAME', 'b/cat.png');
  refused(() => planDataset([entry('cat.png'), entry('Cat.PNG')], LIMITS, 'body'), 'DUPLICATE_NAME', 'Cat.PNG');
});

test('plan: kinds — other image formats by name, anything else as unsupported', () => {
  refused(() => planDataset([entry('cat.png'), entry('dog.jpg')], LIMITS, 'body'), 'UNSUPPORTED_IMAGE_FORMAT', 'dog.jpg');
  refused(() => planDataset([entry('cat.png'), entry('x/dog.WEBP')], LIMITS, 'body'), 'UNSUPPORTED_IMAGE_FORMAT', 'x/dog.WEBP');
  refused(() => planDataset([entry('cat.png'), entry('run.sh')], LIMITS, 'body'), 'UNSUPPORTED_FILE', 'run.sh');
  refused(() => planDataset([entry('cat.png'), entry('README')], LIMITS, 'body'), 'UNSUPPORTED_FILE', 'README');
});

test('plan: no images, orphan captions, empty and over-long names', () => {
  refused(() => planDataset([], LIMITS, 'body'), 'NO_IMAGES');
  refused(() => planDataset([entry('cat.txt'), entry('.hidden.png')], LIMITS, 'body'), 'NO_IMAGES');
  refused(() => planDataset([entry('cat.png'), entry('dgo.txt')], LIMITS, 'body'), 'ORPHAN_CAPTION', 'dgo.txt');
  refused(() => planDataset([entry('')], LIMITS, 'files'), 'NAME_EMPTY', '');
  const long = `${'x'.repeat(252)}.png`;
  refused(() => planDataset([entry(long)], LIMITS, 'body'), 'NAME_TOO_LONG', long);
  assert.equal(planDataset([entry(`${'x'.repeat(251)}.png`)], LIMITS, 'body').length, 1);
  // Multi-byte names count in bytes, as filesystems do.
  refused(() => planDataset([entry(`${'é'.repeat(126)}.png`)], LIMITS, 'body'), 'NAME_TOO_LONG');
  refused(() => planDataset([entry('cat:v2.png')], LIMITS, 'body'), 'NAME_INVALID', 'cat:v2.png');
  refused(() => planDataset([entry('a\u0007.png')], LIMITS, 'body'), 'NAME_INVALID');
});

test('plan: counts and sizes from declared sizes, before anything is read', () => {
  const many = Array.from({ length: 11 }, (_, i) => entry(`${i}.png`));
  refused(() => planDataset(many, LIMITS, 'body'), 'TOO_MANY_FILES', '10.png');
  const entries = Array.from({ length: 21 }, (_, i) => entry(`d${i}/`));
  refused(() => planDataset(entries, LIMITS, 'body'), 'TOO_MANY_ENTRIES');
  refused(() => planDataset([entry('big.png', 4_001)], LIMITS, 'body'), 'FILE_TOO_LARGE', 'big.png');
  const heavy = [entry('a.png', 4_000), entry('b.png', 4_000), entry('c.png', 2_001)];
  refused(() => planDataset(heavy, LIMITS, 'body'), 'DATASET_TOO_LARGE', 'c.png');
  // Unsafe paths refuse the upload whatever else is wrong with it.
  refused(() => planDataset([...many, entry('../x.png')], LIMITS, 'body'), 'UNSAFE_PATH', '../x.png');
});

test('images: size from the header; bombs, fakes, other formats, damage and interlacing refused', () => {
  const e = entry('cat.png');
  assert.deepEqual(inspectImage(png(5, 7), e, LIMITS), { width: 5, height: 7 });
  refused(() => inspectImage(pngClaiming(50_000, 50_000), e, LIMITS), 'IMAGE_TOO_LARGE', 'cat.png');
  refused(() => inspectImage(pngClaiming(1024, 1024), e, LIMITS), 'IMAGE_TOO_LARGE');
  refused(() => inspectImage(pngClaiming(1025, 1), e, LIMITS), 'IMAGE_TOO_LARGE');
  refused(() => inspectImage(new TextEncoder().encode('not an image at all, just text'), e, LIMITS), 'INVALID_IMAGE', 'cat.png');
  refused(() => inspectImage(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16), e, LIMITS), 'UNSUPPORTED_IMAGE_FORMAT');
  refused(() => inspectImage(new TextEncoder().encode('RIFF\0\0\0\0WEBPVP8 '), e, LIMITS), 'UNSUPPORTED_IMAGE_FORMAT');
  const good = png(4, 4);
  refused(() => inspectImage(good.subarray(0, 20), e, LIMITS), 'INVALID_IMAGE');
  refused(() => inspectImage(good.subarray(0, good.length - 12), e, LIMITS), 'INVALID_IMAGE');
  const flipped = good.slice();
  flipped[40] ^= 0xff;
  refused(() => inspectImage(flipped, e, LIMITS), 'INVALID_IMAGE');
  const badHeader = good.slice();
  badHeader[17] ^= 1;
  refused(() => inspectImage(badHeader, e, LIMITS), 'INVALID_IMAGE');
  refused(() => inspectImage(pngClaiming(1, 1, 1), e, LIMITS), 'UNSUPPORTED_IMAGE');
  refused(() => inspectImage(pngClaiming(0, 4), e, LIMITS), 'INVALID_IMAGE');
});

test('captions must be UTF-8 text', () => {
  checkCaption(new TextEncoder().encode('a photo of a cat, 𝓯𝓪𝓷𝓬𝔂'), entry('cat.txt'));
  checkCaption(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61), entry('cat.txt'));
  refused(() => checkCaption(Uint8Array.of(0x61, 0xff, 0xfe), entry('cat.txt')), 'INVALID_CAPTION', 'cat.txt');
  refused(() => checkCaption(Uint8Array.of(0x61, 0, 0x62), entry('cat.txt')), 'INVALID_CAPTION');
});

test('describeFile gives the manifest record', () => {
  const [image, caption] = planDataset([entry('cat.png'), entry('cat.txt')], LIMITS, 'body');
  const bytes = png(3, 2);
  const info = describeFile(image!, bytes, LIMITS);
  assert.deepEqual({ ...info, sha256: info.sha256.length }, { kind: 'image', name: 'cat.png', bytes: bytes.length, sha256: 64, width: 3, height: 2, caption: 'cat.txt' });
  const text = new TextEncoder().encode('a cat');
  assert.deepEqual(describeFile(caption!, text, LIMITS),
    { kind: 'caption', name: 'cat.txt', bytes: 5, sha256: createHash('sha256').update(text).digest('hex'), image: 'cat.png' });
});

test('dataset names', () => {
  assert.equal(parseDatasetName('My cats (2024)'), 'My cats (2024)');
  assert.equal(parseDatasetName('Katzen_ä'), 'Katzen_ä');
  for (const [raw, code] of [[undefined, 'NAME_EMPTY'], ['', 'NAME_EMPTY'], ['x'.repeat(101), 'NAME_TOO_LONG'], ['a/b', 'NAME_INVALID'],
    ['.hidden', 'NAME_INVALID'], ['   ', 'NAME_INVALID'], [['a', 'b'], 'NAME_INVALID']] as const) {
    assert.throws(() => parseDatasetName(raw), (e: unknown) => e instanceof FarmError && e.code === code && e.field === 'name', String(raw));
  }
});
