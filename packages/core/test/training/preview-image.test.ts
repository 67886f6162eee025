import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPngText } from '../../src/formats/png.js';
import type { Embedding } from '../../src/networks/embeddings/embedding.js';
import { EMBEDDING_TEXT_KEY, loadEmbedding } from '../../src/networks/embeddings/load.js';
import { float32 } from '../../src/tensor.js';
import { rasterizeText, textWidth } from '../../src/training/caption-font.js';
import { captionImageOverlay, darkenEdges, embeddingPreviewCaption, embeddingPreviewPng, gradientAlpha } from '../../src/training/preview-image.js';

// Expected values computed with Pillow's putpixel + Image.alpha_composite on these inputs (A1111's gradient code).
const RGB_2x7 = [11, 48, 85, 122, 159, 196, 233, 14, 51, 88, 125, 162, 199, 236, 17, 54, 91, 128, 165, 202, 239, 20, 57, 94, 131, 168, 205, 242, 23, 60, 97, 134, 171, 208, 245, 26, 63, 100, 137, 174, 211, 248];
const RGB_2x7_OUT = [
  0, 0, 0, 255, 0, 0, 0, 255, 37, 2, 8, 255, 14, 20, 25, 255, 76, 91, 7, 255, 21, 35, 49, 255, 97, 119, 141, 255, 12, 34, 55, 255, 86,
  110, 134, 255, 158, 15, 39, 255, 47, 65, 82, 255, 100, 118, 13, 255, 18, 28, 39, 255, 49, 60, 70, 255,
];
const RGBA_2x5 = [200, 253, 50, 103, 156, 209, 6, 59, 112, 165, 218, 15, 68, 121, 174, 227, 24, 77, 130, 183, 236, 33, 86, 139, 192, 245, 42, 95, 148, 201, 254, 51, 104, 157, 210, 7, 60, 113, 166, 219];
const RGBA_2x5_OUT = [0, 0, 0, 255, 0, 0, 0, 255, 2, 3, 4, 195, 16, 28, 40, 248, 11, 36, 61, 215, 94, 13, 34, 191, 73, 93, 16, 155, 37, 50, 63, 128, 2, 2, 3, 165, 20, 37, 55, 242];

test('the edge gradient is composited as Pillow does, alpha clipped at 255 near the top', () => {
  assert.equal(gradientAlpha(0, 7), 255);
  const rgb = darkenEdges({ width: 2, height: 7, channels: 3, data: Uint8Array.from(RGB_2x7) });
  assert.equal(rgb.channels, 4);
  assert.deepEqual([...rgb.data], RGB_2x7_OUT);
  const rgba = darkenEdges({ width: 2, height: 5, channels: 4, data: Uint8Array.from(RGBA_2x5) });
  assert.deepEqual([...rgba.data], RGBA_2x5_OUT);
});

test('the bitmap font measures and draws printable ASCII, and unknown characters as ?', () => {
  assert.equal(textWidth('', 3), 0);
  assert.equal(textWidth('ab', 2), (2 * 6 - 1) * 2);
  const pixels = (s: string): string[] => {
    const out: string[] = [];
    rasterizeText(s, 0, 0, 1, (x, y) => out.push(`${x},${y}`));
    return out;
  };
  assert.equal(pixels(' ').length, 0);
  assert.deepEqual(pixels('|'), ['2,0', '2,1', '2,2', '2,3', '2,4', '2,5', '2,6']);
  assert.deepEqual(pixels('é'), pixels('?'));
  assert.ok(pixels('g').some((p) => p.endsWith(',7')), 'g has a descender');
});

function embedding(): Embedding {
  const n = 2;
  const width = 16;
  return {
    name: 'tiobj-6',
    vec: float32([n, width], Float32Array.from({ length: n * width }, (_, i) => Math.cos(i) * 0.02)),
    vectors: n,
    width,
    step: 5,
    sdCheckpoint: 'bfcd16918c',
    sdCheckpointName: 'tiny-sd1',
    filename: 'tiobj-6.pt',
    hash: '',
    shorthash: '',
  };
}

test('the caption is A1111\'s: <name>, model, [hash], <n>v <steps>s, in white at alpha 230', () => {
  const e = embedding();
  const caption = embeddingPreviewCaption(e, { checkpoint: { shorthash: 'bfcd16918c', modelName: 'tiny-sd1' }, stepsDone: 6 });
  assert.deepEqual(caption, ['<tiobj-6>', 'tiny-sd1', '[bfcd16918c]', '2v 6s']);
  const img = { width: 96, height: 80, channels: 3 as const, data: new Uint8Array(96 * 80 * 3).fill(128) };
  const out = captionImageOverlay(img, ...caption);
  assert.equal(out.channels, 4);
  let ink = 0;
  for (let i = 0; i < out.data.length; i += 4) if (out.data[i] === 255 && out.data[i + 3] === 230) ink++;
  assert.ok(ink > 0, 'some caption pixels are drawn');
});

test('the preview PNG carries the embedding in its text chunk and in its pixels', async () => {
  const e = embedding();
  const preview = { width: 64, height: 64, channels: 3 as const, data: new Uint8Array(64 * 64 * 3).fill(90) };
  const png = embeddingPreviewPng(e, preview, { checkpoint: { shorthash: 'bfcd16918c', modelName: 'tiny-sd1' }, stepsDone: 6 });
  assert.ok(EMBEDDING_TEXT_KEY in readPngText(png));
  const back = await loadEmbedding(png, 'tiobj-6.png');
  assert.equal(back.name, 'tiobj-6');
  assert.equal(back.step, 5);
  assert.deepEqual(back.vec.data, e.vec.data);
});
