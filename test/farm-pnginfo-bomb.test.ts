import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { chunkBytes, encodePng } from '@darkroom/core/formats/png.js';
import { startFarm, type Farm } from './support/farm.js';

const KEY = 'dora-key-0123456789';
/** What the API process may grow by while it answers the bombs (each is refused at 1 MiB of inflated text). */
const API_GROWTH_BOUND_MIB = 256;
/**
 * /healthz while png-info bombs arrive: the median within the 100 ms the issue asks, every probe within a second
 * (before the reader thread and the inflation ceiling one bomb held the loop for seconds). The worst probe is
 * reported, not held to 100 ms: on a shared 2-core host another process's burst decides it.
 */
const HEALTHZ_MEDIAN_BOUND_MS = 100;
const HEALTHZ_WORST_BOUND_MS = 1000;

function statusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

let farm: Farm;

before(async () => {
  farm = await startFarm({ workers: 0, env: { API_KEYS: `dora:${KEY}`, RATE_LIMIT_PER_MINUTE: '0' } });
});

after(async () => {
  await farm?.stop();
});

test('png-info text bombs: each refused 413, the API stays responsive (/healthz) and within a memory bound', async (t) => {
  const png = Buffer.from(encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(12) }, [['parameters', 'a cat']]));
  // 256 MiB of zeros deflate to about 256 KB: the request is ~350 KB, as in the report that found the bomb
  const zbomb = chunkBytes('zTXt', Buffer.concat([Buffer.from('parameters\0\0', 'latin1'), deflateSync(Buffer.alloc(256 * 1024 * 1024), { level: 9 })]));
  const bomb = Buffer.concat([png.subarray(0, png.length - 12), zbomb, png.subarray(png.length - 12)]);
  const body = JSON.stringify({ image: bomb.toString('base64') });
  const pid = farm.api.child.pid!;
  const before = statusMiB(pid, 'VmRSS');

  const latencies: number[] = [];
  let done = false;
  const probe = (async () => {
    while (!done) {
      const t0 = performance.now();
      const r = await fetch(`${farm.url}/healthz`);
      await r.arrayBuffer();
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const statuses: number[] = [];
  for (let round = 0; round < 8; round++) {
    const answers = await Promise.all(Array.from({ length: 4 }, () => fetch(`${farm.url}/sdapi/v1/png-info`, {
      method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body,
    }).then(async (r) => (await r.arrayBuffer(), r.status))));
    statuses.push(...answers);
  }
  done = true;
  await probe;

  assert.deepEqual([...new Set(statuses)], [413], 'every bomb refused');
  const peak = statusMiB(pid, 'VmHWM');
  const sorted = [...latencies].sort((a, b) => a - b);
  const worst = sorted.at(-1)!;
  t.diagnostic(`${(bomb.length / 1024).toFixed(0)} KB bombs x ${statuses.length}; /healthz ${latencies.length} probes, median ${sorted[sorted.length >> 1]!.toFixed(1)} ms, worst ${worst.toFixed(1)} ms; API RSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB`);
  assert.ok(latencies.length >= 5, 'the probe ran during the bombs');
  const median = sorted[sorted.length >> 1]!;
  assert.ok(median < HEALTHZ_MEDIAN_BOUND_MS, `/healthz took ${median.toFixed(1)} ms at the median`);
  assert.ok(worst < HEALTHZ_WORST_BOUND_MS, `/healthz took ${worst.toFixed(1)} ms at worst`);
  assert.ok(peak - before < API_GROWTH_BOUND_MIB, `the API grew by ${(peak - before).toFixed(0)} MiB`);
});
