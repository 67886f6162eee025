/**
 * What an oversized init image costs now that its declared size is checked from the header: POST /v1/img2img
 * with a 62 KB PNG claiming 8000x8000 (refused, 413) against the same request with a 64x64 PNG (accepted and
 * queued) in the same run, and, for scale, what decoding that PNG costs (the engine's decoder, in this process:
 * what a worker paid before the check).
 *
 *   npm run bench -- input-image-refusal -- --runs 30
 *
 * Needs Redis at REDIS_URL / 127.0.0.1:6379. The API is the real service; no worker is started.
 */
import { crc32, deflateSync } from 'node:zlib';
import { decodePng, encodePng } from '../packages/core/src/formats/png.js';
import { numberArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { median, nowMs } from './support/stats.js';
import { startFarm } from '../test/support/farm.js';

const argv = process.argv.slice(2);
const RUNS = numberArg(argv, 'runs', 30);
const SIDE = numberArg(argv, 'side', 8000);

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A real black gray PNG of side x side: the zero rows deflate ~1000:1. */
function blackPng(side: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc((side + 1) * side), { level: 9 })), chunk('IEND', Buffer.alloc(0)),
  ]);
}

const huge = blackPng(SIDE);
const small = Buffer.from(encodePng({ width: 64, height: 64, channels: 3, data: new Uint8Array(64 * 64 * 3) }));
const farm = await startFarm({ workers: 0, env: { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn' } });
const rows: Row[] = [];
try {
  const post = async (png: Buffer, expect: number): Promise<number> => {
    const t = nowMs();
    const r = await farm.request('POST', '/v1/img2img', { body: { prompt: 'x', steps: 1, init_images: [png.toString('base64')] } });
    const ms = nowMs() - t;
    if (r.status !== expect) throw new Error(`expected ${expect}, got ${r.status} ${JSON.stringify(r.json)}`);
    return ms;
  };
  const accepted: number[] = [];
  const refused: number[] = [];
  await post(small, 202);
  await post(huge, 413);
  // Interleaved, so load on a shared host weighs on both alike.
  for (let i = 0; i < RUNS; i++) {
    accepted.push(await post(small, 202));
    refused.push(await post(huge, 413));
  }
  const base = median(accepted);
  rows.push({ case: '64x64 PNG accepted (baseline)', bytes: small.length, ms: base, ratio: 1 });
  rows.push({ case: `${SIDE}x${SIDE} PNG refused (413)`, bytes: huge.length, ms: median(refused), ratio: median(refused) / base });
  const t = nowMs();
  decodePng(huge);
  const decodeMs = nowMs() - t;
  rows.push({ case: `decoding that ${SIDE}x${SIDE} PNG (once)`, bytes: huge.length, ms: decodeMs, ratio: decodeMs / base });
} finally {
  await farm.stop();
}

printTable(`Init image refusal by declared size (median of ${RUNS} requests each, ms; ratio against the accepted request)`, [
  { key: 'case', label: 'case' },
  { key: 'bytes', label: 'bytes', digits: 0 },
  { key: 'ms', label: 'ms', digits: 1 },
  { key: 'ratio', label: 'x baseline', digits: 2 },
], rows);
writeResult({ bench: 'input-image-refusal', date: new Date().toISOString(), machine: machineInfo('cpu'), parameters: { runs: RUNS, side: SIDE }, rows });
