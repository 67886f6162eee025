import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, createReadStream, readFileSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { oracleRoot } from '../packages/core/parity/oracle.js';
import { attentionMemory } from '@darkroom/core/pipeline/memory-estimate.js';
import { jobMemoryBytes, Txt2ImgRequest } from '@darkroom/farm';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { sd15KeysAvailable, writeSd15Checkpoint } from './support/sd15-checkpoint.js';

/**
 * Issue 10's large-file case: a ~3 GB checkpoint of SD 1.5's layout (random weights) uploaded through the API
 * renders on a worker, and the worker's peak memory stays below the file's size plus what the model itself
 * needs (the farm's own estimate of the job, which admission uses). Before, the worker's cache read the whole
 * object into one buffer (any file over 2 GiB failed, a 1 GB one kept 2.3 GB). Minutes of work and ~10 GB of
 * memory on a CPU worker, so it runs only with DARKROOM_LARGE_TESTS=1.
 *
 * Measured once on the shared 2-core, 24 GiB development host (busy with other work): a 2.94 GiB file; API peak
 * RSS 0.19 GiB through the upload; worker peak RSS 7.15 GiB against a bound of 13.09 GiB (file 2.94 + the job's
 * estimate 10.15, which takes the larger of the SD 1.x and SD 2.x configs since the API never reads the file).
 * The peak is below the estimate alone: the download added nothing on top of what the model needs. 30 minutes in
 * all, most of it building and loading the full-size graphs on two busy cores.
 */
const VOCAB = join(oracleRoot(), 'text', 'vocab');
const enabled = process.env.DARKROOM_LARGE_TESTS === '1';
const skip = !enabled
  ? 'set DARKROOM_LARGE_TESTS=1 to run: writes a 3.2 GB checkpoint to the temp folder, takes minutes and ~10 GB of memory'
  : !sd15KeysAvailable() || !existsSync(VOCAB) ? `needs SD 1.5's key list and the CLIP vocabulary under ${oracleRoot()}` : false;

const GiB = 1024 ** 3;

/** Peak and current resident memory of a process, from /proc (kB -> bytes). */
function memoryOf(pid: number): { hwm: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? 0) * 1024;
  return { hwm: kb('VmHWM:'), rss: kb('VmRSS:') };
}

/** SD 1.5's tensors with the UNet's output blocks in F32 and the rest in F16: 3.2 GB, past 2 GiB. */
function writeCheckpoint(path: string): Promise<number> {
  return writeSd15Checkpoint(path, (name) => (name.startsWith('model.diffusion_model.output_blocks.') ? 'F32' : 'F16'));
}

describe('a 3 GB checkpoint through the API (DARKROOM_LARGE_TESTS=1)', { skip }, () => {
  let farm: Farm;
  const file = join(tmpdir(), `darkroom-large-${process.pid}.safetensors`);

  before(async () => {
    farm = await startFarm({ workers: 1, env: { DARKROOM_CLIP_VOCAB: VOCAB, LOG_LEVEL: 'warn' } });
  });

  after(async () => {
    await rm(file, { force: true });
    await farm?.stop();
  });

  test('uploads, renders 64x64 in one step, and the worker stays below file size + the model\'s own needs', { timeout: 90 * 60_000 }, async () => {
    const t0 = performance.now();
    const size = await writeCheckpoint(file);
    assert.ok(size > 2 * GiB, `the file is past 2 GiB (${size})`);
    const tWrite = performance.now();
    const api = farm.api.child.pid!;
    const worker = farm.workers[0]!.child.pid!;
    // node:http with pipe, so the client too reads the file only as fast as it sends it (fetch with a web stream
    // reads ahead without bound in Node 20).
    const put = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest(`${farm.url}/v1/models/big-sd15.safetensors`, {
        method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      r.on('error', reject);
      createReadStream(file).pipe(r);
    });
    const uploaded = JSON.parse(put.body) as { size: number; sha256: string };
    assert.equal(put.status, 201, put.body);
    assert.equal(uploaded.size, size);
    const apiPeak = memoryOf(api).hwm;
    const tUpload = performance.now();

    const request = { prompt: 'a red fox in the snow', width: 64, height: 64, steps: 1, seed: 1, model: 'big-sd15' };
    const sub = await fetch(`${farm.url}/v1/txt2img`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    const { id } = (await sub.json()) as { id: string };
    assert.equal(sub.status, 202);
    let rssMax = 0;
    const job = await waitFor('render finished', async () => {
      rssMax = Math.max(rssMax, memoryOf(worker).rss);
      const j = (await (await fetch(`${farm.url}/v1/jobs/${id}`)).json()) as { state: string; error: unknown; outputs: { url: string; infotext: string }[] };
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 80 * 60_000, 250);
    assert.equal(job.state, 'completed', JSON.stringify(job.error));
    const png = new Uint8Array(await (await fetch(job.outputs[0]!.url)).arrayBuffer());
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    assert.match(job.outputs[0]!.infotext, /Model: big-sd15/);
    const workerPeak = memoryOf(worker).hwm;
    const tRender = performance.now();

    // The model's own needs: the farm's estimate of this job (what admission holds a worker's budget against).
    const needs = jobMemoryBytes(
      { kind: 'txt2img', request: Txt2ImgRequest.parse(request), checkpointBytes: size },
      { attention: attentionMemory('auto', 'cpu') },
    );
    const bound = size + needs;
    const gib = (n: number) => `${(n / GiB).toFixed(2)} GiB`;
    console.log(`# checkpoint ${gib(size)} written in ${((tWrite - t0) / 1000).toFixed(0)} s; uploaded in ${((tUpload - tWrite) / 1000).toFixed(0)} s (API peak RSS ${gib(apiPeak)})`);
    console.log(`# rendered in ${((tRender - tUpload) / 1000).toFixed(0)} s; worker peak RSS ${gib(workerPeak)} (largest sampled RSS ${gib(rssMax)}); bound: file ${gib(size)} + estimate ${gib(needs)} = ${gib(bound)}`);
    assert.ok(apiPeak < 1 * GiB, `the API streamed the upload (peak ${gib(apiPeak)})`);
    assert.ok(workerPeak < bound, `worker peak ${gib(workerPeak)} stays below ${gib(bound)}`);
    assert.equal((await fetch(`${farm.url}/v1/models/big-sd15`, { method: 'DELETE' })).status, 204);
    const cached = join(farm.env.CACHE_DIR!, 'assets', 'models', uploaded.sha256);
    await waitFor('the worker dropped its copy', async () => !(await stat(cached).then(() => true, () => false)), 30_000, 200);
  });
});
