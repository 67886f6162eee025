/**
 * scripts/average-checkpoints.ts as a person runs it: two checkpoints of one model in, one checkpoint out that
 * loads like them (its config and vocabulary beside it), and a pair that is not one model refused before any file
 * is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readSafetensorsFile } from '@darkroom/core/formats/safetensors.js';
import { checkpointCompanions, checkpointFiles, writeVocabularyFolder } from '@darkroom/core/pipeline/checkpoint-files.js';
import { buildDemoVocabulary } from '@darkroom/core/text/bpe-vocab.js';
import { toFloat32 } from '@darkroom/core/tensor.js';
import { writeDemoSizeCheckpoint } from './support/checkpoints.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const script = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/average-checkpoints.ts', ...args], { cwd: ROOT });

test('average-checkpoints writes (1 - w) A + w B with the shared config and vocabulary, and refuses two models', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'average-script-'));
  try {
    const a = await writeDemoSizeCheckpoint(dir, 'first', 11);
    const b = await writeDemoSizeCheckpoint(dir, 'second', 12);
    const out = join(dir, 'out');
    await script(['--a', a, '--b', b, '--weight', '0.25', '--out', out, '--name', 'blend']);
    const blend = join(out, 'blend.safetensors');
    const [fa, fb, fm] = await Promise.all([a, b, blend].map((p) => readSafetensorsFile(p)));
    let compared = 0;
    for (const [name, t] of fm!.tensors) {
      if (!t.dtype.startsWith('float')) continue;
      const [x, y, m] = [fa!.tensors.get(name)!, fb!.tensors.get(name)!, t].map((u) => toFloat32(u).data);
      for (let i = 0; i < m!.length; i += 97) {
        assert.ok(Math.abs(m![i]! - (0.75 * x![i]! + 0.25 * y![i]!)) <= 1e-5 * (1 + Math.abs(m![i]!)), `${name}[${i}]`);
        compared++;
      }
    }
    assert.ok(compared > 1000, `${compared} weights compared`);
    const written = checkpointCompanions(blend);
    assert.deepEqual(await readFile(written.config), await readFile(checkpointCompanions(a).config));
    const files = await checkpointFiles(blend);
    assert.equal(files.config, written.config, 'the config beside it is the one it loads with');
    assert.ok(files.tokenizer.vocabSize > 0);

    // Another vocabulary: not one model, refused, nothing written.
    const other = await writeDemoSizeCheckpoint(dir, 'other', 13);
    await writeVocabularyFolder(checkpointCompanions(other).vocabulary, buildDemoVocabulary(['zeppelin']));
    await assert.rejects(
      script(['--a', a, '--b', other, '--weight', '0.5', '--out', out, '--name', 'refused']),
      (e: Error & { stderr?: string }) => /differ: not one model/.test(e.stderr ?? ''),
    );
    assert.equal(existsSync(join(out, 'refused.safetensors')), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
