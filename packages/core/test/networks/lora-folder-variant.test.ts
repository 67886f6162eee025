/**
 * parity:lora on a folder that differs from the shared oracle as other folders in its format do: another
 * network name (with a space), only one model's cases, the checkpoint in another place, no parse.json. Nothing
 * may be taken from the shared folder's names: every case still passes and the missing group is one skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { formatCase, type CaseResult } from '../../parity/report.js';
import { suiteLoaders } from '../../parity/suites.js';

const lora = join(oracleRoot(), 'lora');
const skip = existsSync(join(lora, 'cases.json')) ? false : `oracle data not found at ${lora} (set DARKROOM_ORACLE)`;

type Json = Record<string, unknown>;

/** Every string inside a JSON value with `from` replaced by `to` (names appear in prompts, keys and messages). */
function renameDeep(v: unknown, from: string, to: string): unknown {
  if (typeof v === 'string') return v.replaceAll(from, to);
  if (Array.isArray(v)) return v.map((x) => renameDeep(x, from, to));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replaceAll(from, to), renameDeep(x, from, to)]));
  return v;
}

test('parity:lora reads names, models and groups from the folder', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-lora-variant-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const index = JSON.parse(await readFile(join(lora, 'cases.json'), 'utf8')) as Json;
  const models = index.models as Record<string, Json>;
  const keep = 'tiny-sd2';
  const entry = models[keep]!;
  // The checkpoint moves next to the folder under another directory name.
  const ckptSrc = join(lora, String(entry.checkpoint));
  await mkdir(join(dir, 'weights'), { recursive: true });
  await symlink(ckptSrc, join(dir, 'weights', 'tiny-sd2.safetensors'));
  const configSrc = ckptSrc.replace(/\.safetensors$/, '.json');
  if (existsSync(configSrc)) await symlink(configSrc, join(dir, 'weights', 'tiny-sd2.json'));
  const folder = join(dir, 'lora-other');
  await mkdir(join(folder, 'networks'), { recursive: true });

  const renamed = 'kohya two';
  const networks = Object.entries(index.networks as Record<string, Json>).filter(([, n]) => n.model === keep);
  assert.ok(networks.some(([k]) => k === 'sd2_kohya'), 'the oracle has the network this variant renames');
  for (const [, n] of networks) {
    const file = String(n.file);
    await copyFile(join(lora, file), join(folder, file.replace('sd2_kohya', renamed)));
  }
  const cases = (index.cases as Json[]).filter((c) => c.model === keep);
  for (const c of cases) await symlink(join(lora, String(c.file)), join(folder, String(c.file).replaceAll('sd2_kohya', renamed)));
  await symlink(join(lora, String(entry.inputs)), join(folder, String(entry.inputs)));
  await symlink(join(lora, String(entry.baseline)), join(folder, String(entry.baseline)));
  const variant = {
    ...index,
    models: { [keep]: { ...entry, checkpoint: '../weights/tiny-sd2.safetensors' } },
    networks: renameDeep(Object.fromEntries(networks), 'sd2_kohya', renamed),
    cases: renameDeep(cases, 'sd2_kohya', renamed),
  };
  await writeFile(join(folder, 'cases.json'), JSON.stringify(variant));

  const suite = await suiteLoaders.lora!();
  const results: CaseResult[] = [];
  for await (const r of suite.run(folder)) results.push(r);
  const text = results.map((r) => formatCase('lora', r)).join('\n');
  assert.deepEqual(results.filter((r) => r.status === 'fail'), [], text);
  assert.deepEqual(results.filter((r) => r.status === 'skip').map((r) => r.name), ['parse'], text);
  assert.equal(results.filter((r) => r.name.startsWith('case/') && r.status === 'pass').length, cases.length, text);
  assert.ok(results.some((r) => r.name === `network/${renamed}` && r.status === 'pass'), text);
  assert.ok(results.some((r) => r.name.includes(`${keep}/${renamed}_1`) && r.status === 'pass'), text);
});
