import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { oracleRoot } from '../../parity/oracle.js';
import { readSafetensorsFile } from '../../src/formats/safetensors.js';
import { isDarkroomError } from '../../src/errors.js';
import {
  decodePng,
  encodePng,
  readPngChunks,
  readPngText,
  type RasterImage,
} from '../../src/formats/png.js';

function gradient(width: number, height: number, channels: 1 | 2 | 3 | 4): RasterImage {
  const data = new Uint8Array(width * height * channels);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    // mix of smooth and noisy content so every filter type gets picked somewhere
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = i % 7 === 0 ? s >>> 24 : (i * 3 + (i >> 5)) & 0xff;
  }
  return { width, height, channels, data };
}

test('encode/decode round-trips every channel count', () => {
  for (const ch of [1, 2, 3, 4] as const) {
    const img = gradient(37, 23, ch);
    const back = decodePng(encodePng(img));
    assert.equal(back.width, 37);
    assert.equal(back.height, 23);
    assert.equal(back.channels, ch);
    assert.deepEqual(back.data, img.data);
  }
});

test('encoding is deterministic and text chunks come back', () => {
  const img = gradient(16, 16, 3);
  const params = 'a castle\nNegative prompt: fog\nSteps: 6, Sampler: Euler a';
  const a = encodePng(img, [['parameters', params], ['comment', 'käse']]);
  const b = encodePng(img, [['parameters', params], ['comment', 'käse']]);
  assert.deepEqual(a, b);
  const types = readPngChunks(a).map((c) => c.type);
  assert.deepEqual(types, ['IHDR', 'tEXt', 'tEXt', 'IDAT', 'IEND']);
  assert.deepEqual(readPngText(a), { parameters: params, comment: 'käse' });
});

test('non-Latin-1 text is written as iTXt and read back', () => {
  const text = 'портрет, 城 <hypernet:x:0.8>';
  const png = encodePng(gradient(4, 4, 3), [['parameters', text]]);
  assert.deepEqual(readPngChunks(png).map((c) => c.type), ['IHDR', 'iTXt', 'IDAT', 'IEND']);
  assert.equal(readPngText(png).parameters, text);
});

function chunk(type: string, data: Uint8Array): Uint8Array {
  // build by encoding a PNG around it is overkill; reuse encodePng's format via a tiny CRC-correct writer
  const table = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const body = new Uint8Array(4 + data.length);
  body.set(Uint8Array.from(type, (ch) => ch.charCodeAt(0)));
  body.set(data, 4);
  let c = 0xffffffff;
  for (const b of body) c = table[(c ^ b) & 0xff]! ^ (c >>> 8);
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(body, 4);
  v.setUint32(8 + data.length, (c ^ 0xffffffff) >>> 0);
  return out;
}

function withChunks(png: Uint8Array, extra: Uint8Array[]): Uint8Array {
  // insert after IHDR (8 + 25 bytes)
  const head = png.subarray(0, 33);
  const tail = png.subarray(33);
  const parts = [head, ...extra, tail];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('zTXt and compressed iTXt are read', () => {
  const base = encodePng(gradient(4, 4, 3));
  const enc = new TextEncoder();
  const z = [...enc.encode('zkey'), 0, 0, ...deflateSync(Buffer.from('compressed latin text', 'latin1'))];
  const it = [...enc.encode('ikey'), 0, 1, 0, ...enc.encode('en'), 0, ...enc.encode('Ikey'), 0, ...deflateSync(enc.encode('ünïcode ✓'))];
  const png = withChunks(base, [chunk('zTXt', Uint8Array.from(z)), chunk('iTXt', Uint8Array.from(it))]);
  assert.deepEqual(readPngText(png), { zkey: 'compressed latin text', ikey: 'ünïcode ✓' });
});

test('palette and low bit depth gray images decode', () => {
  // 3x2 palette image, 2-bit indices, with tRNS
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, 3);
  v.setUint32(4, 2);
  ihdr[8] = 2;
  ihdr[9] = 3;
  const plte = Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9);
  const trns = Uint8Array.of(255, 128);
  // rows: indices [0,1,2] -> 00 01 10 00 = 0x18 ; [3,2,1] -> 11 10 01 00 = 0xe4 ; filter 0
  const raw = Uint8Array.of(0, 0x18, 0, 0xe4);
  const sig = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
  const parts = [sig, chunk('IHDR', ihdr), chunk('PLTE', plte), chunk('tRNS', trns), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())];
  const png = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    png.set(p, at);
    at += p.length;
  }
  const img = decodePng(png);
  assert.equal(img.channels, 4);
  assert.deepEqual([...img.data], [255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 255, 9, 9, 9, 255, 0, 0, 255, 255, 0, 255, 0, 128]);
});

test('corrupt files give typed errors', () => {
  const png = encodePng(gradient(8, 8, 3), [['parameters', 'x']]);
  const badSig = png.slice();
  badSig[1] = 0;
  assert.throws(() => readPngChunks(badSig), (e) => isDarkroomError(e, 'PNG_BAD_SIGNATURE'));
  const badCrc = png.slice();
  badCrc[40] ^= 0xff; // inside the tEXt chunk
  assert.throws(() => readPngChunks(badCrc), (e) => isDarkroomError(e, 'PNG_BAD_CRC'));
  assert.throws(() => readPngChunks(png.subarray(0, png.length - 6)), (e) => isDarkroomError(e, 'PNG_TRUNCATED'));
  assert.throws(() => readPngChunks(png.subarray(0, 20)), (e) => isDarkroomError(e, 'PNG_TRUNCATED'));
});

const pipelineOracle = join(oracleRoot(), 'pipeline');

test('oracle PNGs: parameters chunk equals the recorded infotext and pixels equal image.uint8', async (t) => {
  if (!existsSync(join(pipelineOracle, 'cases.json'))) {
    t.skip(`oracle data not found at ${pipelineOracle}`);
    return;
  }
  const index = JSON.parse(readFileSync(join(pipelineOracle, 'cases.json'), 'utf8')) as {
    cases: { id: string; png: string[]; infotexts: string[]; file: string }[];
  };
  for (const c of index.cases.slice(0, 4)) {
    const { tensors } = await readSafetensorsFile(join(pipelineOracle, c.file));
    const ref = tensors.get('image.uint8')!;
    for (let i = 0; i < c.png.length; i++) {
      const bytes = new Uint8Array(readFileSync(join(pipelineOracle, c.png[i]!)));
      assert.equal(readPngText(bytes).parameters, c.infotexts[i]);
      const img = decodePng(bytes);
      assert.equal(img.channels, 3);
      const per = img.width * img.height * 3;
      assert.deepEqual(img.data, (ref.data as Uint8Array).subarray(i * per, (i + 1) * per));
    }
  }
});
