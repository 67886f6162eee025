/**
 * The parity suites on folders that differ from the shared oracle the way other folders in the same formats do:
 * other file names, missing groups, other coefficients and seeds. Each variant is a small copy of the oracle
 * (big read-only files linked, edited files copied) run through the suite objects.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { formatCase, type CaseResult } from '../../parity/report.js';
import { suiteLoaders } from '../../parity/suites.js';
import { REFUSALS_BY_KIND, type HostileEntry } from '../../parity/hostile.js';
import { samplerByName } from '../../src/sampling/samplers.js';

const root = oracleRoot();
const skip = existsSync(root) ? false : `oracle data not found at ${root} (set DARKROOM_ORACLE)`;

type JsonObject = Record<string, unknown>;

async function run(suiteName: string, folder: string): Promise<CaseResult[]> {
  const suite = await suiteLoaders[suiteName]!();
  const out: CaseResult[] = [];
  for await (const r of suite.run(folder)) out.push(r);
  return out;
}

function byName(results: readonly CaseResult[], name: string): CaseResult {
  const r = results.find((x) => x.name === name);
  assert.ok(r, `no result line ${name}; got ${results.map((x) => x.name).join(', ')}`);
  return r;
}

function lines(suite: string, results: readonly CaseResult[]): string {
  return results.map((r) => formatCase(suite, r)).join('\n');
}

/** A scratch oracle root, removed when the test ends. */
async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-folder-variant-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Links an oracle file or folder into the scratch root (for what the variant leaves unchanged). */
async function link(dst: string, rel: string): Promise<void> {
  await mkdir(dirname(join(dst, rel)), { recursive: true });
  await symlink(join(root, rel), join(dst, rel));
}

/** Copies an oracle file into the scratch root (for what the variant edits or renames). */
async function copy(dst: string, rel: string): Promise<void> {
  await mkdir(dirname(join(dst, rel)), { recursive: true });
  await copyFile(join(root, rel), join(dst, rel));
}

async function readJson(path: string): Promise<JsonObject> {
  return JSON.parse(await readFile(path, 'utf-8')) as JsonObject;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(value, null, 1));
}

/** A text folder holding only the oracle's hostile files and their expected.json (no TI or hypernetwork groups). */
async function hostileOnly(t: TestContext): Promise<{ dst: string; hostile: string; index: JsonObject; entries: HostileEntry[] }> {
  const dst = await scratch(t);
  const hostileRel = join('text', 'hostile');
  const index = await readJson(join(root, hostileRel, 'expected.json'));
  const entries = index.cases as HostileEntry[];
  await copy(dst, join('text', 'MANIFEST.json'));
  for (const e of entries) await copy(dst, join(hostileRel, e.file));
  return { dst, hostile: join(dst, hostileRel), index, entries };
}

test('hostile files are judged by their expected.json entry, not their names; absent groups are skipped', { skip }, async (t) => {
  const { dst, hostile, index, entries } = await hostileOnly(t);

  // One file under a name no table could know; two files of different kinds trading names.
  const renamed = entries.find((e) => e.kind === 'malicious_pickle') ?? entries[0]!;
  const newName = `renamed-upload-7${extname(renamed.file)}`;
  await rename(join(hostile, renamed.file), join(hostile, newName));
  const pair = entries
    .flatMap((a) => entries.filter((b) => b !== a && b !== renamed && a !== renamed && extname(a.file) === extname(b.file) && a.kind !== b.kind).map((b) => [a, b] as const))
    .at(0);
  assert.ok(pair, 'two hostile files of different kinds with the same extension');
  const [a, b] = pair;
  await rename(join(hostile, a.file), join(hostile, 'swap.tmp'));
  await rename(join(hostile, b.file), join(hostile, a.file));
  await rename(join(hostile, 'swap.tmp'), join(hostile, b.file));
  const fileOf = (e: HostileEntry): string => (e === renamed ? newName : e === a ? b.file : e === b ? a.file : e.file);
  const variant = entries.map((e) => ({ ...e, file: fileOf(e) }));
  await writeJson(join(hostile, 'expected.json'), { ...index, cases: variant });

  const results = await run('networks', join(dst, 'text'));
  const text = lines('networks', results);
  assert.equal(results.filter((r) => r.status === 'fail').length, 0, text);
  assert.match(byName(results, 'ti').detail ?? '', /no ti\/loader_results\.json/, 'the TI group is absent');
  assert.match(byName(results, 'hypernetworks').detail ?? '', /no hypernetworks\/hypernetwork_cases\.json/);
  assert.equal(byName(results, 'ti').status, 'skip');
  for (const e of variant) {
    const r = byName(results, `hostile/${e.file}`);
    const codes = REFUSALS_BY_KIND[e.kind]!.map((x) => x.code);
    assert.ok(codes.includes(r.detail ?? ''), `${e.file} (${e.kind}) refused with ${r.detail}, want one of ${codes.join(', ')}`);
  }
  assert.equal(byName(results, 'hostile/(no payload ran)').status, 'pass');

  // The entry decides: give the renamed file a kind whose codes exclude its refusal, and another file an
  // outcome the format does not define; exactly those two lines must fail.
  const actual = byName(results, `hostile/${newName}`).detail!;
  const otherKind = Object.keys(REFUSALS_BY_KIND).find((k) => !REFUSALS_BY_KIND[k]!.some((x) => x.code === actual))!;
  const odd = variant.find((e) => e.file !== newName)!;
  const edited = variant.map((e) => (e.file === newName ? { ...e, kind: otherKind } : e === odd ? { ...e, expected: 'load' } : e));
  await writeJson(join(hostile, 'expected.json'), { ...index, cases: edited });
  const again = await run('networks', join(dst, 'text'));
  const failed = again.filter((r) => r.status === 'fail');
  assert.deepEqual(failed.map((r) => r.name).sort(), [`hostile/${newName}`, `hostile/${odd.file}`].sort(), lines('networks', again));
  assert.match(byName(again, `hostile/${newName}`).detail!, new RegExp(`kind ${otherKind} expects`));
  assert.match(byName(again, `hostile/${odd.file}`).detail!, /expected outcome "load"/);
});

test('text: a missing sub-folder and a missing JSON section are skipped lines, every other group still passes', { skip }, async (t) => {
  const dst = await scratch(t);
  for (const rel of ['MANIFEST.json', 'vocab', 'tokenizer', 'prompt_parser']) await link(dst, join('text', rel));
  await link(dst, join('text', 'chunking', 'emphasis_cases.json'));
  await link(dst, join('text', 'chunking', 'emphasis_cases.safetensors'));
  const chunking = await readJson(join(root, 'text', 'chunking', 'chunking_cases.json'));
  delete chunking.option_variants;
  await writeJson(join(dst, 'text', 'chunking', 'chunking_cases.json'), chunking);
  // No infotext/ at all.

  const results = await run('text', join(dst, 'text'));
  const text = lines('text', results);
  const skipped = results.filter((r) => r.status === 'skip');
  assert.deepEqual(skipped.map((r) => r.name).sort(), ['chunking option_variants', 'infotext', 'infotext/create'], text);
  assert.match(byName(results, 'infotext').detail!, /no infotext\/infotext_cases\.json/);
  assert.match(byName(results, 'chunking option_variants').detail!, /has no "option_variants" section/);
  assert.equal(results.filter((r) => r.status === 'fail').length, 0, text);
  for (const name of ['tokenizer/tokenizer_cases.json', 'prompt_parser/prompt_parser_cases.json', 'chunking/chunking_cases.json', 'chunking batch_cases']) {
    assert.equal(byName(results, name).status, 'pass', name);
  }
});

/**
 * A samplers folder with two recorded runs (one k-diffusion, one timestep sampler), its sigma table, and no rng/,
 * schedules.json or conversions: those groups are skipped and the runs are replayed.
 */
async function samplingVariant(t: TestContext): Promise<{ dst: string; index: JsonObject; ids: string[] }> {
  const dst = await scratch(t);
  const index = await readJson(join(root, 'samplers', 'trajectories.json'));
  const cases = index.cases as Array<{ id: string; file: string; sampler: string }>;
  const pick = (family: string) => cases.find((c) => samplerByName(c.sampler)?.family === family);
  const chosen = [pick('kdiffusion'), pick('timestep')].filter((c) => c !== undefined);
  assert.equal(chosen.length, 2, 'a k-diffusion and a timestep trajectory');
  for (const c of chosen) await link(dst, join('samplers', c.file));
  await link(dst, join('samplers', 'sigma_table.safetensors'));
  const small = { ...index, cases: chosen };
  await writeJson(join(dst, 'samplers', 'trajectories.json'), small);
  return { dst, index: small, ids: chosen.map((c) => c.id) };
}

test('sampling: trajectories are replayed with the coefficients and seeds the folder records', { skip }, async (t) => {
  const { dst, index, ids } = await samplingVariant(t);
  const file = join(dst, 'samplers', 'trajectories.json');

  const plain = await run('sampling', dst);
  const text = lines('sampling', plain);
  for (const group of ['rng', 'schedules', 'sigma-t-conversions']) assert.equal(byName(plain, group).status, 'skip', text);
  assert.match(byName(plain, 'rng').detail!, /no rng\/rng\.json/);
  assert.equal(byName(plain, 'sigma-table').status, 'pass', text);
  for (const id of ids) assert.equal(byName(plain, id).status, 'pass', text);

  // Other coefficients: the same noise, but every model output differs from the recording.
  const coeffs = index.coeffs as JsonObject;
  await writeJson(file, { ...index, coeffs: { ...coeffs, a0: (coeffs.a0 as number) + 0.25 } });
  const moved = await run('sampling', dst);
  for (const id of ids) {
    const r = byName(moved, id);
    assert.equal(r.status, 'fail', `${id} must not match its recording under other coefficients`);
    assert.match(r.detail!, /call out \(first at #0\)/);
    assert.doesNotMatch(r.detail!, /x_init_noise/);
  }

  // Another seed: the initial noise no longer matches the recording.
  const reseeded = (index.cases as JsonObject[]).map((c) => ({ ...c, seeds: (c.seeds as number[]).map((s) => s + 1) }));
  await writeJson(file, { ...index, cases: reseeded });
  const other = await run('sampling', dst);
  for (const id of ids) assert.match(byName(other, id).detail ?? '', /x_init_noise/, `${id} replays the seed the folder states`);

  // No coefficients: nothing is replayed with assumed ones.
  const { coeffs: _dropped, ...without } = index;
  await writeJson(file, without);
  const none = await run('sampling', dst);
  const group = byName(none, 'trajectories');
  assert.equal(group.status, 'fail');
  assert.match(group.detail!, /no usable analytic-model coeffs \(absent\)/);
  for (const id of ids) assert.ok(!none.some((r) => r.name === id), `${id} not replayed without coeffs`);
});

test('model and pipeline: a model the folder lacks is one skipped line, the rest still runs', { skip }, async (t) => {
  const dst = await scratch(t);
  const index = await readJson(join(root, 'model', 'cases.json'));
  const cases = index.cases as Array<{ id: string; model: string; kind: string; file: string; checkpoint: string; config: string }>;
  const kept = cases.find((c) => c.kind === 'text')!;
  const dropped = cases.find((c) => c.model !== kept.model)!;
  // One case of one model with its files; every case of another model without its checkpoint.
  const subset = [kept, ...cases.filter((c) => c.model === dropped.model)];
  for (const rel of [kept.checkpoint, kept.config, kept.file]) await link(dst, join('model', rel));
  await writeJson(join(dst, 'model', 'cases.json'), { ...index, cases: subset });
  const model = await run('model', join(dst, 'model'));
  const text = lines('model', model);
  assert.deepEqual(
    model.map((r) => [r.name, r.status]),
    [
      [kept.id, 'pass'],
      [dropped.model, 'skip'],
    ],
    text,
  );
  assert.match(byName(model, dropped.model).detail!, new RegExp(`no ${dropped.checkpoint.replace(/[.]/g, '\\.')}`));

  // The pipeline folder alone: its model lives in a sibling folder this copy does not have.
  const alone = await scratch(t);
  await link(alone, join('pipeline', 'cases.json'));
  const pipeline = await run('pipeline', join(alone, 'pipeline'));
  assert.deepEqual(
    pipeline.map((r) => [r.name, r.status]),
    [['model', 'skip']],
    lines('pipeline', pipeline),
  );
  assert.match(pipeline[0]!.detail!, /checkpoint .* not found/);
});

test('the parity command on a changed copy: a renamed hostile file is refused as its entry says, absent groups are skipped lines, exit 0', { skip }, async (t) => {
  const { dst, hostile, index, entries } = await hostileOnly(t);
  // A name no table could know, for a file whose kind only its expected.json entry gives.
  const renamed = entries.find((e) => e.kind === 'malicious_pickle') ?? entries[0]!;
  const newName = `upload-${Date.now()}${extname(renamed.file)}`;
  await rename(join(hostile, renamed.file), join(hostile, newName));
  await writeJson(join(hostile, 'expected.json'), { ...index, cases: entries.map((e) => (e === renamed ? { ...e, file: newName } : e)) });

  const cli = join(dirname(new URL(import.meta.url).pathname), '../../parity/cli.ts');
  const run = spawnSync(process.execPath, ['--import', 'tsx', cli, 'networks', join(dst, 'text')], { encoding: 'utf8', timeout: 120_000 });
  const out = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, out);
  const line = out.split('\n').find((l) => l.includes(`networks/hostile/${newName}`));
  assert.ok(line, `no line for ${newName}\n${out}`);
  assert.ok(line.startsWith('PASS'), `the renamed file's line: ${line}\n${out}`);
  const codes = REFUSALS_BY_KIND[renamed.kind]!.map((x) => x.code);
  assert.ok(codes.some((c) => line.includes(`(${c})`)), `${newName} refused with one of ${codes.join(', ')}: ${line}`);
  assert.match(out, /^SKIP\s+networks\/ti\s+\(the folder has no ti\/loader_results\.json/m, 'the absent TI group is a skipped line with its reason');
  assert.match(out, /^SKIP\s+networks\/hypernetworks\s+\(the folder has no hypernetworks\/hypernetwork_cases\.json/m);
  assert.match(out, /^\d+ passed, 0 failed, \d+ skipped$/m);
  assert.ok(Number(/^(\d+) passed/m.exec(out)![1]) >= entries.length, 'every hostile file was still checked');
});
