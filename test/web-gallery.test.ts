import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePng } from '@darkroom/core/formats/png.js';
import { startFarm, type Farm } from './support/farm.js';
import { seedOutputs } from './support/gallery-seed.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';

interface GalleryPage {
  items: { id: string; index: number; prompt: string; model: string | null; seed: number | null; infotext: string; cursor: string; thumb_url: string; image_url: string }[];
  next_cursor: string | null;
  total: number;
}

describe('web page and /v1/gallery (real API process, Redis, folder storage)', () => {
  let farm: Farm;
  let aliceIds: string[];

  before(async () => {
    farm = await startFarm({ workers: 0, env: { API_KEYS: `alice:${KEY_A},bob:${KEY_B}` } });
    const prompts = Array.from({ length: 25 }, (_, i) => (i % 5 === 0 ? `a lighthouse at dusk ${i}` : `a red fox ${i}`));
    aliceIds = await seedOutputs(farm.env.STORAGE_URL!, 'alice', prompts, 200);
    await seedOutputs(farm.env.STORAGE_URL!, 'bob', ['bob only'], 64);
  });

  after(async () => {
    await farm?.stop();
  });

  test('the page and its modules are served without a key, with a CSP that keeps the page on this origin', async () => {
    const res = await fetch(`${farm.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'.*connect-src 'self'/);
    const html = await res.text();
    assert.match(html, /<script type="module" src="\/web\/js\/main.js">/);
    // Every file the page names is there, and every module the entry imports is preloaded with it.
    const named = [...html.matchAll(/(?:href|src)="(\/web\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(named.includes('/web/app.css') && named.includes('/web/js/main.js'));
    for (const path of named) assert.equal((await fetch(`${farm.url}${path}`)).status, 200, path);
    const main = await (await fetch(`${farm.url}/web/js/main.js`)).text();
    for (const [, mod] of main.matchAll(/from '\.\/([\w-]+\.js)'/g)) assert.ok(named.includes(`/web/js/${mod}`), `${mod} is preloaded`);
    assert.equal((await fetch(`${farm.url}/web/js/nothing.js`)).status, 404);
    const doc = (await farm.request('GET', '/openapi.json')).json as { paths: Record<string, unknown> };
    for (const path of ['/v1/gallery', '/v1/gallery/{id}/{n}/thumb.png', '/v1/gallery/{id}/{n}/image.png']) assert.ok(doc.paths[path], path);
    assert.equal((await fetch(`${farm.url}/web/../src/web.ts`)).status, 404);
  });

  test('the gallery needs a key and lists only that tenant\'s outputs, newest first, in pages', async () => {
    assert.equal((await farm.request('GET', '/v1/gallery')).status, 401);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await farm.request('GET', `/v1/gallery?limit=10${cursor ? `&cursor=${cursor}` : ''}`, { key: KEY_A });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const page = r.json as GalleryPage;
      assert.equal(page.total, 25);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...aliceIds].reverse());

    const bob = (await farm.request('GET', '/v1/gallery', { key: KEY_B })).json as GalleryPage;
    assert.equal(bob.total, 1);
    assert.equal(bob.items[0]!.prompt, 'bob only');
    assert.ok(!bob.items.some((i) => aliceIds.includes(i.id)));
  });

  test('filters by prompt text, model and date; parameters come from the stored infotext', async () => {
    const page = (await farm.request('GET', '/v1/gallery?q=LIGHTHOUSE', { key: KEY_A })).json as GalleryPage;
    assert.equal(page.total, 5);
    assert.ok(page.items.every((i) => i.prompt.startsWith('a lighthouse')));
    assert.equal(page.items[0]!.model, 'demo');
    assert.match(page.items[0]!.infotext, /Steps: 3, Sampler: Euler/);
    assert.equal(typeof page.items[0]!.seed, 'number');
    assert.equal(((await farm.request('GET', '/v1/gallery?model=other', { key: KEY_A })).json as GalleryPage).total, 0);
    assert.equal(((await farm.request('GET', '/v1/gallery?until=2001-01-01', { key: KEY_A })).json as GalleryPage).total, 0);
    assert.equal(((await farm.request('GET', '/v1/gallery?since=2001-01-01', { key: KEY_A })).json as GalleryPage).total, 25);
  });

  test('bad query values are 400s naming the field', async () => {
    for (const [q, field] of [['limit=0', 'limit'], ['limit=abc', 'limit'], ['since=yesterday', 'since'], ['q=a&q=b', 'q']] as const) {
      const r = await farm.request('GET', `/v1/gallery?${q}`, { key: KEY_A });
      assert.equal(r.status, 400, q);
      assert.equal((r.json as { error: { field: string } }).error.field, field, q);
    }
  });

  test('thumbnails are small PNGs made once and cached; another tenant\'s ids answer 404', async () => {
    const first = (await farm.request('GET', '/v1/gallery?limit=1', { key: KEY_A })).json as GalleryPage;
    const item = first.items[0]!;
    const get = (path: string, key: string) => fetch(`${farm.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
    const thumb = await get(item.thumb_url, KEY_A);
    assert.equal(thumb.status, 200);
    const bytes = new Uint8Array(await thumb.arrayBuffer());
    const img = decodePng(bytes);
    assert.equal(Math.max(img.width, img.height), 160);
    const full = new Uint8Array(await (await get(item.image_url, KEY_A)).arrayBuffer());
    assert.equal(decodePng(full).width, 200);
    // The cached copy is what the second request gets.
    assert.deepEqual(new Uint8Array(await (await get(item.thumb_url, KEY_A)).arrayBuffer()), bytes);

    assert.equal((await get(item.thumb_url, KEY_B)).status, 404);
    assert.equal((await get(item.image_url, KEY_B)).status, 404);
    assert.equal((await get('/v1/gallery/not-an-id/0/thumb.png', KEY_A)).status, 404);
  });
});
