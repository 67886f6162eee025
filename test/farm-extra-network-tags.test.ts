/**
 * One corpus of extra-network tags and requests through the three layers that read them: the API's validation
 * (POST /v1/txt2img), the worker (which fetches the files the tags name and renders), and the pipeline (the engine
 * in this process, given the same hypernetwork under the same name). Each request is accepted by all three or
 * refused by the API and the pipeline alike, for the same hypernetwork: a multiplier Python's float() refuses is
 * HYPERNETWORK_BAD_MULTIPLIER in both; a name with no file is the API's UNKNOWN_HYPERNETWORK (not uploaded) and the
 * pipeline's HYPERNETWORK_NOT_FOUND (not provided), naming the same name, spaces included.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { createHypernetwork } from '@darkroom/core/networks/hypernetworks/create.js';
import { saveHypernetworkPt } from '@darkroom/core/networks/hypernetworks/save.js';
import { Engine } from '@darkroom/core/pipeline/engine.js';
import { startFarm, waitFor, type Farm } from './support/farm.js';

const KEY = 'tags-key-0123456789';
const BASE = { width: 64, height: 64, steps: 2, seed: 3 };

type Outcome = 'rendered' | { code: string; name: string };

interface Case {
  what: string;
  body: { prompt: string; negative_prompt?: string; disable_extra_networks?: boolean };
  /** The pipeline's outcome; the API refuses a missing file as UNKNOWN_HYPERNETWORK instead. */
  expect: Outcome;
}

const NOT_FOUND = (name: string): Outcome => ({ code: 'HYPERNETWORK_NOT_FOUND', name });
const BAD_MULTIPLIER = (name: string): Outcome => ({ code: 'HYPERNETWORK_BAD_MULTIPLIER', name });

const CORPUS: Case[] = [
  { what: 'name and multiplier', body: { prompt: 'a fox <hypernet:anime:0.8>' }, expect: 'rendered' },
  { what: 'no multiplier (1)', body: { prompt: 'a fox <hypernet:anime>' }, expect: 'rendered' },
  { what: 'spaces around the multiplier (float() strips them)', body: { prompt: 'a fox <hypernet:anime: 0.5 >' }, expect: 'rendered' },
  { what: 'a third item is ignored', body: { prompt: 'a fox <hypernet:anime:0.5:extra>' }, expect: 'rendered' },
  { what: 'the same name twice, exponent notation', body: { prompt: 'a fox <hypernet:anime:1e-1> <hypernet:anime:0.2>' }, expect: 'rendered' },
  { what: 'a LoRA with no file is left out, as A1111 does', body: { prompt: 'a fox <lora:not-uploaded:1> <hypernet:anime:0.5>' }, expect: 'rendered' },
  { what: 'tag kinds are case-sensitive', body: { prompt: 'a fox <HYPERNET:nothere:1>' }, expect: 'rendered' },
  { what: "a negative prompt's tags activate nothing", body: { prompt: 'a fox', negative_prompt: 'blurry <hypernet:nothere:1>' }, expect: 'rendered' },
  { what: 'disable_extra_networks', body: { prompt: 'a fox <hypernet:nothere:1>', disable_extra_networks: true }, expect: 'rendered' },
  { what: 'a space before the name is part of it', body: { prompt: 'a fox <hypernet: anime:0.8>' }, expect: NOT_FOUND(' anime') },
  { what: 'a name with no file', body: { prompt: 'a fox <hypernet:nothere:1>' }, expect: NOT_FOUND('nothere') },
  { what: 'an empty name', body: { prompt: 'a fox <hypernet::0.5>' }, expect: NOT_FOUND('') },
  { what: 'a word as multiplier', body: { prompt: 'a fox <hypernet:anime:abc>' }, expect: BAD_MULTIPLIER('anime') },
  { what: 'an empty multiplier', body: { prompt: 'a fox <hypernet:anime:>' }, expect: BAD_MULTIPLIER('anime') },
  { what: 'hexadecimal is no Python float', body: { prompt: 'a fox <hypernet:anime:0x10>' }, expect: BAD_MULTIPLIER('anime') },
  { what: 'tags are checked in order', body: { prompt: 'a fox <hypernet:anime:1> <hypernet:nothere:abc>' }, expect: NOT_FOUND('nothere') },
];

function apiCode(o: Exclude<Outcome, 'rendered'>): string {
  return o.code === 'HYPERNETWORK_NOT_FOUND' ? 'UNKNOWN_HYPERNETWORK' : o.code;
}

describe('extra-network tags: API validation, worker and pipeline agree', () => {
  let farm: Farm;
  let engine: Engine;
  let dir: string;
  let hnPath: string;

  before(async () => {
    let state = 11;
    const uniform = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
    const random = { uniform, normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()) };
    // The demo model's attention widths: context 32, UNet channels 32 and 64.
    const bytes = saveHypernetworkPt(createHypernetwork({ name: 'anime', sizes: [32, 64], weightInit: 'KaimingNormal', random }));
    dir = await mkdtemp(join(tmpdir(), 'darkroom-tags-'));
    hnPath = join(dir, 'anime.pt');
    await writeFile(hnPath, bytes);
    // Its own root (demo model and compile cache): the worker process builds and reads the repository's at the
    // same time, and an engine reading cache entries another process is writing has crashed this process.
    engine = new Engine({ root: dir, threads: 1 });
    farm = await startFarm({ workers: 1, env: { API_KEYS: `tags:${KEY}` } });
    const up = await farm.request('PUT', '/v1/hypernetworks/anime.pt', { key: KEY, body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(up.status, 201, JSON.stringify(up.json));
  });

  after(async () => {
    await farm?.stop();
    await engine?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const c of CORPUS) {
    test(`${c.what}: ${JSON.stringify(c.body)}`, async () => {
      // the pipeline
      let pipeline: Outcome;
      try {
        await engine.txt2img({ ...BASE, ...c.body }, { hypernetworks: [{ path: hnPath, name: 'anime' }] });
        pipeline = 'rendered';
      } catch (e) {
        if (!isDarkroomError(e)) throw e;
        pipeline = { code: e.code, name: String(e.details.name) };
      }
      assert.deepEqual(pipeline, c.expect, 'pipeline');

      // the API's validation, then the worker
      const sub = await farm.request('POST', '/v1/txt2img', { key: KEY, body: { ...BASE, ...c.body } });
      if (c.expect === 'rendered') {
        assert.equal(sub.status, 202, JSON.stringify(sub.json));
        const { id } = sub.json as { id: string };
        const job = await waitFor('job finished', async () => {
          const v = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY })).json as { state: string; error: unknown };
          return v.state === 'completed' || v.state === 'failed' ? v : null;
        }, 60_000);
        assert.equal(job.state, 'completed', `worker: ${JSON.stringify(job.error)}`);
      } else {
        assert.equal(sub.status, 400, JSON.stringify(sub.json));
        const { error } = sub.json as { error: { code: string; message: string; field: string } };
        assert.equal(error.code, apiCode(c.expect), 'API');
        assert.equal(error.field, 'prompt');
        assert.ok(error.message.includes(`hypernetwork "${c.expect.name}"`), `the API names "${c.expect.name}": ${error.message}`);
      }
    });
  }
});
