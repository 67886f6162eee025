import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { readSafetensorsFile } from '../../src/formats/safetensors.js';
import {
  PyDict,
  PyFloat,
  PyOrderedDict,
  PyTuple,
  TorchTensor,
  readTorch,
  readTorchFile,
  torchTensor,
  writeTorchFile,
} from '../../src/formats/torch.js';
import { float32, toFloat32 } from '../../src/tensor.js';

const text = join(oracleRoot(), 'text');
const haveOracle = existsSync(join(text, 'MANIFEST.json'));
const MARKER = '/tmp/pwned-marker';

const hostileTorchFiles: Record<string, { code: string; global?: string }> = {
  'evil_os_system.pt': { code: 'TORCH_FORBIDDEN_GLOBAL', global: 'posix.system' },
  'evil_exec.pt': { code: 'TORCH_FORBIDDEN_GLOBAL', global: '__builtin__.exec' },
  'evil_builtins_eval.bin': { code: 'TORCH_FORBIDDEN_GLOBAL', global: 'builtins.eval' },
  'evil_legacy_raw_pickle.pt': { code: 'TORCH_FORBIDDEN_GLOBAL', global: 'posix.system' },
  'evil_torch_load_global.pt': { code: 'TORCH_FORBIDDEN_GLOBAL', global: 'torch.load' },
  'zip_extra_member.pt': { code: 'TORCH_BAD_ZIP_MEMBER' },
  'truncated.pt': { code: 'TORCH_TRUNCATED' },
  'empty.pt': { code: 'TORCH_EMPTY' },
  'garbage.pt': { code: 'TORCH_BAD_FORMAT' },
};

function markerState(): string {
  return existsSync(MARKER) ? `present, mtime ${statSync(MARKER).mtimeMs}` : 'absent';
}

test('hostile torch files are refused with typed errors and nothing runs', { skip: !haveOracle && 'oracle absent' }, async () => {
  const before = markerState();
  for (const [file, want] of Object.entries(hostileTorchFiles)) {
    const path = join(text, 'hostile', file);
    await assert.rejects(readTorchFile(path), (e: unknown) => {
      assert.ok(isDarkroomError(e, want.code), `${file}: expected ${want.code}, got ${String(e)}`);
      assert.ok(e.message.includes(path), `${file}: message names the file`);
      if (want.global) {
        assert.equal(e.details.global, want.global);
        assert.ok(e.message.includes(want.global));
      }
      return true;
    });
  }
  assert.equal(markerState(), before, `${MARKER} must not be created or touched`);
});

test('A1111 .pt embeddings read back their vectors exactly (zip, legacy, half)', { skip: !haveOracle && 'oracle absent' }, async () => {
  for (const stem of ['pekora', 'mignon', 'legacy_format', 'halfprec']) {
    const f = await readTorchFile(join(text, 'ti', `${stem}.pt`));
    assert.equal(f.container, stem === 'legacy_format' ? 'legacy' : 'zip');
    const d = f.value as PyDict;
    const param = (d.get('string_to_param') as PyDict).get('*');
    assert.ok(param instanceof TorchTensor);
    const want = (await readSafetensorsFile(join(text, 'ti', `${stem}.expected.safetensors`))).tensors.get('vectors')!;
    assert.deepEqual(param.shape, want.shape);
    assert.deepEqual(toFloat32(param).data, want.data);
    assert.equal((d.get('string_to_token') as PyDict).get('*'), 265);
  }
});

test('the old textual_inversion layout (ParameterDict, Parameter) is understood', { skip: !haveOracle && 'oracle absent' }, async () => {
  const f = await readTorchFile(join(text, 'ti', 'oldstyle.pt'));
  assert.ok(f.globals.includes('torch.nn.modules.container.ParameterDict'));
  const token = ((f.value as PyDict).get('string_to_token') as PyDict).get('*');
  assert.ok(token instanceof TorchTensor);
  assert.equal(token.dtype, 'int64');
  assert.deepEqual([...(token.data as BigInt64Array)], [265n]);
});

test('written torch files read back identically', async () => {
  const vec = float32([2, 3], Float32Array.from([1, -2.5, 3, 0.125, 1e-8, -0]));
  const sd = new PyOrderedDict([
    ['linear.0.weight', torchTensor(vec)],
    ['linear.0.bias', torchTensor(float32([3], Float32Array.from([7, 8, 9])), { requiresGrad: true })],
  ]);
  const value = new PyDict([
    ['string_to_token', new PyDict([['*', 265]])],
    ['string_to_param', new PyDict([['*', torchTensor(vec, { parameter: true, requiresGrad: true })]])],
    ['name', 'héllo'],
    ['step', 123456789012],
    ['sd_checkpoint', null],
    ['layer_structure', [new PyFloat(1), new PyFloat(2.5), new PyFloat(1)]],
    ['flag', true],
    [768, new PyTuple([sd, sd])],
    ['neg', -70000],
  ]);
  const bytes = writeTorchFile(value, { archiveName: 'roundtrip' });
  const back = await readTorch(bytes, 'roundtrip.pt');
  assert.deepEqual(back.members, ['roundtrip/data.pkl', 'roundtrip/data/0', 'roundtrip/data/1', 'roundtrip/data/2', 'roundtrip/version']);
  const d = back.value as PyDict;
  assert.deepEqual([...d.keys()], [...value.keys()]);
  assert.equal(d.get('name'), 'héllo');
  assert.equal(d.get('step'), 123456789012);
  assert.equal(d.get('neg'), -70000);
  assert.equal(d.get('sd_checkpoint'), null);
  assert.deepEqual(d.get('layer_structure'), [1, 2.5, 1]);
  const p = (d.get('string_to_param') as PyDict).get('*') as TorchTensor;
  assert.ok(p.isParameter && p.requiresGrad);
  assert.deepEqual(p.data, vec.data);
  const pair = d.get(768) as PyTuple;
  assert.ok(pair.items[0] instanceof PyOrderedDict);
  assert.equal(pair.items[0], pair.items[1], 'the same object pickled twice stays one object');
  const bias = (pair.items[0] as PyDict).get('linear.0.bias') as TorchTensor;
  assert.ok(bias.requiresGrad);
  assert.deepEqual([...(bias.data as Float32Array)], [7, 8, 9]);
});

test('a truncated pickle inside a valid zip is TORCH_TRUNCATED; an unknown opcode is TORCH_BAD_PICKLE', async () => {
  const good = writeTorchFile(new PyDict([['a', 1]]));
  const back = await readTorch(good);
  assert.equal((back.value as PyDict).get('a'), 1);
  const { writeZip } = await import('../../src/formats/zip.js');
  const cut = writeZip([{ name: 'x/data.pkl', data: Uint8Array.from([0x80, 0x02, 0x7d, 0x71]) }]);
  await assert.rejects(readTorch(cut), (e: unknown) => isDarkroomError(e, 'TORCH_TRUNCATED'));
  const odd = writeZip([{ name: 'x/data.pkl', data: Uint8Array.from([0x80, 0x02, 0xff, 0x2e]) }]);
  await assert.rejects(readTorch(odd), (e: unknown) => isDarkroomError(e, 'TORCH_BAD_PICKLE'));
});

/** Hand-assembled protocol-2 pickle pieces, for layouts our writer never produces. */
const P = {
  proto: [0x80, 0x02],
  global: (m: string, n: string) => [0x63, ...new TextEncoder().encode(`${m}\n${n}\n`)],
  str: (s: string) => {
    const b = new TextEncoder().encode(s);
    return [0x58, b.length, 0, 0, 0, ...b];
  },
  int: (n: number) => [0x4b, n],
  mark: [0x28],
  tuple: [0x74],
  emptyTuple: [0x29],
  reduce: [0x52],
  binpersid: [0x51],
  false: [0x89],
  stop: [0x2e],
};

function tensorPickle(storage: string, numel: number, offset: number, size: number[], stride: number[]): Uint8Array {
  return Uint8Array.from([
    ...P.proto,
    ...P.global('torch._utils', '_rebuild_tensor_v2'),
    ...P.mark,
    ...P.mark, ...P.str('storage'), ...P.global('torch', storage), ...P.str('0'), ...P.str('cpu'), ...P.int(numel), ...P.tuple,
    ...P.binpersid,
    ...P.int(offset),
    ...P.mark, ...size.flatMap(P.int), ...P.tuple,
    ...P.mark, ...stride.flatMap(P.int), ...P.tuple,
    ...P.false,
    ...P.global('collections', 'OrderedDict'), ...P.emptyTuple, ...P.reduce,
    ...P.tuple,
    ...P.reduce,
    ...P.stop,
  ]);
}

test('strided views (offset + strides) are resolved; torch >= 2.1 members and big-endian storages are read', async () => {
  const { writeZip } = await import('../../src/formats/zip.js');
  const storage = new Uint8Array(Float32Array.from([0, 1, 2, 3, 4, 5, 6]).buffer);
  // A transposed 2x3 view starting at element 1: rows are columns of [[1,2,3],[4,5,6]].
  const zip = writeZip([
    { name: 'a/data.pkl', data: tensorPickle('FloatStorage', 7, 1, [3, 2], [1, 3]) },
    { name: 'a/data/0', data: storage },
    { name: 'a/version', data: new TextEncoder().encode('3\n') },
    { name: 'a/byteorder', data: new TextEncoder().encode('little') },
    { name: 'a/.data/serialization_id', data: new TextEncoder().encode('1234') },
  ]);
  const t = (await readTorch(zip)).value as TorchTensor;
  assert.deepEqual(t.shape, [3, 2]);
  assert.deepEqual([...(t.data as Float32Array)], [1, 4, 2, 5, 3, 6]);

  const be = new Uint8Array(8);
  new DataView(be.buffer).setFloat32(0, 1.5, false);
  new DataView(be.buffer).setFloat32(4, -2.25, false);
  const bigEndian = writeZip([
    { name: 'b/data.pkl', data: tensorPickle('FloatStorage', 2, 0, [2], [1]) },
    { name: 'b/data/0', data: be },
    { name: 'b/byteorder', data: new TextEncoder().encode('big') },
  ]);
  assert.deepEqual([...((await readTorch(bigEndian)).value as TorchTensor).data as Float32Array], [1.5, -2.25]);

  const pastEnd = writeZip([
    { name: 'c/data.pkl', data: tensorPickle('FloatStorage', 7, 4, [3, 2], [1, 3]) },
    { name: 'c/data/0', data: storage },
  ]);
  await assert.rejects(readTorch(pastEnd), (e: unknown) => isDarkroomError(e, 'TORCH_BAD_FORMAT'));
});

test('an allowed global used as a callable it is not (REDUCE on a storage class) is refused, not run', async () => {
  const { writeZip } = await import('../../src/formats/zip.js');
  const pkl = Uint8Array.from([...P.proto, ...P.global('torch', 'FloatStorage'), ...P.mark, ...P.int(3), ...P.tuple, ...P.reduce, ...P.stop]);
  await assert.rejects(readTorch(writeZip([{ name: 'd/data.pkl', data: pkl }])), (e: unknown) => isDarkroomError(e, 'TORCH_UNSUPPORTED'));
  const builtin = Uint8Array.from([...P.proto, ...P.global('builtins', 'getattr'), ...P.stop]);
  await assert.rejects(readTorch(writeZip([{ name: 'd/data.pkl', data: builtin }])), (e: unknown) => isDarkroomError(e, 'TORCH_FORBIDDEN_GLOBAL'));
});

test('resource bombs are refused before allocating: a deflated member lying about its size, a zero-stride giant view', async () => {
  const { writeZip } = await import('../../src/formats/zip.js');
  const zip = writeZip([{ name: 'e/data.pkl', data: Uint8Array.from([...P.proto, ...P.int(1), ...P.stop]) }]);
  const central = [...zip.keys()].find((i) => zip[i] === 0x50 && zip[i + 1] === 0x4b && zip[i + 2] === 0x01 && zip[i + 3] === 0x02)!;
  assert.ok(central > 0);
  const dv = new DataView(zip.buffer);
  dv.setUint16(central + 10, 8, true); // deflate
  dv.setUint32(central + 24, 2_000_000_000, true); // 2 GB out of a few bytes
  // Refused on its declared sizes, before anything is read or inflated: the default ratio cap, then (without
  // it) the size deflate could never reach.
  await assert.rejects(readTorch(zip), (e: unknown) => isDarkroomError(e, 'ZIP_RATIO_TOO_HIGH'));
  await assert.rejects(readTorch(zip, 'x', { zipLimits: {} }), (e: unknown) => isDarkroomError(e, 'TORCH_TRUNCATED') && /impossible size/.test(e.message));

  const giant = writeZip([
    { name: 'f/data.pkl', data: tensorPickle('FloatStorage', 1, 0, [200, 200, 200], [0, 0, 0]) },
    { name: 'f/data/0', data: new Uint8Array(4) },
  ]);
  await assert.rejects(readTorch(giant), (e: unknown) => isDarkroomError(e, 'TORCH_BAD_FORMAT') && /larger than storage/.test(e.message));
});

test('numpy scalars (allowed by A1111) become numbers', async () => {
  const { writeZip } = await import('../../src/formats/zip.js');
  const f8 = new Uint8Array(8);
  new DataView(f8.buffer).setFloat64(0, 0.125, true);
  const latin1 = String.fromCharCode(...f8);
  const pkl = Uint8Array.from([
    ...P.proto,
    ...P.global('numpy.core.multiarray', 'scalar'),
    ...P.mark,
    ...P.global('numpy', 'dtype'), ...P.mark, ...P.str('f8'), 0x89, 0x88, ...P.tuple, ...P.reduce,
    ...P.mark, ...P.int(3), ...P.str('<'), 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, ...P.int(0), ...P.tuple, 0x62,
    ...P.global('_codecs', 'encode'), ...P.mark, ...P.str(latin1), ...P.str('latin1'), ...P.tuple, ...P.reduce,
    ...P.tuple,
    ...P.reduce,
    ...P.stop,
  ]);
  assert.equal((await readTorch(writeZip([{ name: 'g/data.pkl', data: pkl }]))).value, 0.125);
});

test('zip bombs are refused on declared sizes: a member, the whole archive, and the ratio of a deflated member', async () => {
  const { deflateRawSync, crc32 } = await import('node:zlib');
  const { readZipDirectory, memorySource, checkZipLimits } = await import('../../src/formats/zip.js');
  // 8 MiB of zeros deflates to a few KB: a 1000x member, as the 522 KB / 512 MB .pt bomb was.
  const zeros = new Uint8Array(8 << 20);
  const packed = deflateRawSync(zeros);
  const file = writeTorchFile(new PyDict([['t', torchTensor(float32([2 << 20], new Float32Array(2 << 20)))]]));
  const dir = await readZipDirectory(memorySource(file), 'x');
  const data = dir.find((e) => e.name.endsWith('/data/0'))!;
  const bomb = { ...data, method: 8, compressedSize: packed.length, size: zeros.length, crc: crc32(zeros) >>> 0 };
  assert.throws(() => checkZipLimits([bomb], { maxRatio: 100, ratioFloorBytes: 1 << 20 }, 'b.pt'), (e: unknown) => isDarkroomError(e, 'ZIP_RATIO_TOO_HIGH') && /b\.pt/.test(e.message));
  assert.throws(() => checkZipLimits([bomb], { maxMemberBytes: 1 << 20 }, 'b.pt'), (e: unknown) => isDarkroomError(e, 'ZIP_MEMBER_TOO_LARGE'));
  assert.throws(() => checkZipLimits([bomb, bomb], { maxTotalBytes: 12 << 20 }, 'b.pt'), (e: unknown) => isDarkroomError(e, 'ZIP_TOTAL_TOO_LARGE'));
  // A small member is exempt from the ratio (a zero bias compresses as well as a bomb); a stored one always is.
  checkZipLimits([{ ...bomb, size: 1 << 19 }, data], { maxRatio: 100, ratioFloorBytes: 1 << 20 }, 'b.pt');
  // torch.save's own layout (stored members) passes the default limits.
  assert.equal((await readTorch(file)).container, 'zip');
});
