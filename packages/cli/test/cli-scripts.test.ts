import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { decodePng, readPngText } from '@darkroom/core/formats/png.js';
import { parseScriptCli } from '../src/script-flags.js';

/** `darkroom xyz` and `darkroom seed-travel` through the command's entry, on the built-in model at 64x64. */
const bin = resolve(import.meta.dirname, '../bin/darkroom.js');
const GEN = ['-p', 'a red castle', '--steps', '3', '--sampler', 'Euler', '--width', '64', '--height', '64', '--quiet'];

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'darkroom-cli-scripts-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function darkroom(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
}

/** A plain `darkroom txt2img` render's pixels. */
function plain(name: string, args: readonly string[]): Uint8Array {
  const out = join(dir, `${name}.png`);
  const run = darkroom(['txt2img', ...GEN, ...args, '-o', out]);
  assert.equal(run.status, 0, run.stderr);
  return decodePng(new Uint8Array(readFileSync(out))).data;
}

const pixels = (file: string) => decodePng(new Uint8Array(readFileSync(file))).data;

test('script flags become A1111\'s script_args in the script\'s order; the rest are generation flags', () => {
  const xyz = parseScriptCli('xyz', ['--x-type', 'Seed', '--x-values', '1-3', '--y-type=CFG Scale', '--y-values', '5,9', '--margin', '4', '-p', 'a kite', '--steps', '4']);
  assert.equal(xyz.script, 'x/y/z plot');
  assert.deepEqual(xyz.scriptArgs, ['Seed', '1-3', [], 'CFG Scale', '5,9', [], null, null, [], true, false, false, false, false, false, false, 4, true]);
  assert.equal(xyz.generation.txt2img?.prompt, 'a kite');
  assert.equal(xyz.generation.txt2img?.steps, 4);
  const travel = parseScriptCli('seed-travel', ['--dest-seeds', '2, 3', '--travel-steps', '4', '--fps', '12', '--loop-back', '--seed', '1', '--gif']);
  assert.equal(travel.script, 'seed travel');
  assert.deepEqual(travel.scriptArgs.slice(0, 13), [false, null, '2, 3', 4, null, null, true, 12, true, false, false, null, null]);
  assert.equal(travel.generation.txt2img?.seed, 1);
  assert.equal(travel.gif, true);
  assert.equal(parseScriptCli('seed-travel', ['--init-image', 'in.png', '--dest-seeds', '2']).generation.command, 'img2img');
  assert.throws(() => parseScriptCli('xyz', ['--z-values', '1']), /--z-values needs --z-type/);
  assert.throws(() => parseScriptCli('seed-travel', ['--fps']), /--fps needs a value/);
  assert.throws(() => parseScriptCli('seed-travel', ['--travel-steps', '2.5']), /--travel-steps must be an integer/);
  assert.throws(() => parseScriptCli('seed-travel', ['--gif=yes']), /--gif takes no value/);
  assert.throws(() => parseScriptCli('xyz', ['--bogus']), /bogus/);
});

test('darkroom seed-travel writes the frames and the animation; the end frames are the seeds\' own renders', async () => {
  const out = join(dir, 'travel');
  const run = darkroom(['seed-travel', ...GEN, '--seed', '1', '--dest-seeds', '2, 3', '--travel-steps', '2', '--fps', '10', '--lead-in-out', '1', '--gif', '-o', out, '--json']);
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { grids: string[]; images: string[]; animations: string[]; cells: { seeds: number[] }[] };
  assert.deepEqual(result.grids, []);
  assert.deepEqual(result.images, [0, 1, 2, 3, 4].map((f) => join(out, `frame-0000${f}.png`)));
  assert.deepEqual(result.animations, [join(out, 'travel-0.webp'), join(out, 'travel-0.gif')]);
  assert.deepEqual(result.cells.map((c) => c.seeds[0]), [1, 1, 2, 2, 3]);
  assert.deepEqual(pixels(result.images[0]!), plain('seed-1', ['--seed', '1']));
  assert.deepEqual(pixels(result.images[4]!), plain('seed-3', ['--seed', '3']));
  assert.match(readPngText(new Uint8Array(readFileSync(result.images[1]!))).parameters ?? '', /Variation seed: 2, Variation seed strength: 0\.5/);
  // libwebp stores a frame equal to the one before as a longer showing of it: the lead in/out frames.
  const webp = readFileSync(result.animations[0]!);
  const meta = await sharp(webp, { pages: -1 }).metadata();
  assert.equal(meta.pages, 5);
  assert.deepEqual(meta.delay, [200, 100, 100, 100, 200]);
  const { data } = await sharp(webp, { pages: -1 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual(new Uint8Array(data.subarray(0, 64 * 64 * 3)), pixels(result.images[0]!), 'lossless: the first page is the first frame');
  assert.equal((await sharp(readFileSync(result.animations[1]!), { pages: -1 }).metadata()).pages, 5);
});

test('darkroom xyz writes the labelled grid and each cell, a cell equal to its plain render; bad script flags are named', () => {
  const out = join(dir, 'xyz');
  const run = darkroom(['xyz', ...GEN, '--seed', '5', '--x-type', 'Seed', '--x-values', '5,6', '--y-type', 'CFG Scale', '--y-values', '5,9', '-o', out]);
  assert.equal(run.status, 0, run.stderr);
  const files = run.stdout.trim().split('\n');
  assert.deepEqual(files, ['grid-0.png', 'cell-0000.png', 'cell-0001.png', 'cell-0002.png', 'cell-0003.png'].map((f) => join(out, f)));
  const grid = decodePng(new Uint8Array(readFileSync(files[0]!)));
  assert.ok(grid.width > 128 && grid.height > 128, `the 2x2 grid with its labels: ${grid.width}x${grid.height}`);
  assert.match(readPngText(new Uint8Array(readFileSync(files[0]!))).parameters ?? '', /X Type: Seed, X Values: "5,6".*Y Type: CFG Scale/);
  // Cells run X fastest: the last is seed 6 at CFG 9.
  assert.deepEqual(pixels(files[4]!), plain('seed-6-cfg-9', ['--seed', '6', '--cfg-scale', '9']));

  const bad = darkroom(['xyz', ...GEN, '--x-type', 'Bogus', '--x-values', '1', '-o', out]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /darkroom xyz: --x-type: must be a txt2img X\/Y\/Z plot axis/);
  const rate = darkroom(['seed-travel', ...GEN, '--dest-seeds', '2', '--rate', 'Fast', '-o', out]);
  assert.equal(rate.status, 2);
  assert.match(rate.stderr, /--rate: must be one of "Linear"/);
});
