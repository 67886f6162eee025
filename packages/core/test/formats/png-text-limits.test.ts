import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { isDarkroomError } from '../../src/errors.js';
import { chunkBytes, encodePng, PNG_TEXT_CHUNK_MAX_BYTES, PNG_TEXT_TOTAL_MAX_BYTES, readPngText } from '../../src/formats/png.js';
import { pngInfo } from '../../src/formats/png-info.js';

/** A 1x1 PNG with extra chunks placed before IEND. */
function pngWith(...extra: Uint8Array[]): Uint8Array {
  const base = Buffer.from(encodePng({ width: 1, height: 1, channels: 1, data: Uint8Array.of(0) }));
  return Buffer.concat([base.subarray(0, base.length - 12), ...extra, base.subarray(base.length - 12)]);
}

function zTXt(key: string, text: Uint8Array): Uint8Array {
  return chunkBytes('zTXt', Buffer.concat([Buffer.from(`${key}\0\0`, 'latin1'), deflateSync(text)]));
}

function iTXtCompressed(key: string, text: Uint8Array): Uint8Array {
  return chunkBytes('iTXt', Buffer.concat([Buffer.from(`${key}\0\x01\0\0\0`, 'latin1'), deflateSync(text)]));
}

const tooLarge = (e: unknown) => isDarkroomError(e, 'PNG_TEXT_TOO_LARGE');

test('a compressed text chunk that inflates past the ceiling is refused without inflating it all', () => {
  // 64 MB of zeros deflates to about 64 KB; without a ceiling reading it costs the whole 64 MB.
  const bomb = new Uint8Array(64 * 1024 * 1024);
  const zbomb = pngWith(zTXt('parameters', bomb));
  const ibomb = pngWith(iTXtCompressed('parameters', bomb));
  const before = process.memoryUsage().rss;
  assert.throws(() => readPngText(zbomb), tooLarge);
  assert.throws(() => pngInfo(ibomb), tooLarge);
  assert.ok(process.memoryUsage().rss - before < 32 * 1024 * 1024, 'inflation stopped at the ceiling');
});

test('many compressed chunks share one inflation budget; text within the ceiling reads as before', () => {
  const part = new Uint8Array(PNG_TEXT_CHUNK_MAX_BYTES - 16).fill(0x61);
  const count = Math.ceil(PNG_TEXT_TOTAL_MAX_BYTES / part.length) + 1;
  const many = pngWith(...Array.from({ length: count }, (_, i) => zTXt(`k${i}`, part)));
  assert.throws(() => readPngText(many), tooLarge);
  const fine = pngWith(zTXt('parameters', Buffer.from('a cat\nSteps: 20, Sampler: Euler, Seed: 1')), iTXtCompressed('note', Buffer.from('ünï')));
  const info = pngInfo(fine);
  assert.equal(info.info, 'a cat\nSteps: 20, Sampler: Euler, Seed: 1');
  assert.deepEqual(info.items, { note: 'ünï' });
  assert.equal(info.parameters.Steps, '20');
});
