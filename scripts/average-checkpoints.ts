/**
 * Averages the weights of two checkpoints of one model (core's training/checkpoint-average.ts) and writes the result
 * as a checkpoint the Engine loads, with the config and vocabulary the two share:
 *
 *   npx tsx scripts/average-checkpoints.ts --a A.safetensors --b B.safetensors --weight 0.65 [--out .darkroom/models] --name NAME
 *
 * Every weight becomes (1 - weight) * A + weight * B. The two must be the same model: the same tensors and shapes,
 * the same `<stem>.json` and the same `<stem>.vocab/`; anything else is refused before a file is written.
 */
import { cp, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { numberArg, stringArg } from '../bench/support/args.js';
import { writeFileAtomically } from '../packages/core/src/atomic-write.js';
import { readSafetensorsFile, writeSafetensors } from '../packages/core/src/formats/safetensors.js';
import { checkpointCompanions } from '../packages/core/src/pipeline/checkpoint-files.js';
import { HF_VOCABULARY_FILES } from '../packages/core/src/text/bpe-vocab.js';
import { averageCheckpoints } from '../packages/core/src/training/checkpoint-average.js';

/** A checkpoint's config and vocabulary files, config first, with their bytes: two checkpoints of one model share them. */
async function companionFiles(path: string): Promise<Array<readonly [string, Buffer]>> {
  const { config, vocabulary } = checkpointCompanions(path);
  const files = [config, ...Object.values(HF_VOCABULARY_FILES).map((f) => join(vocabulary, f))];
  return Promise.all(files.map(async (f) => [f, await readFile(f)] as const));
}

async function main(argv: string[]): Promise<void> {
  const a = resolve(stringArg(argv, 'a', ''));
  const b = resolve(stringArg(argv, 'b', ''));
  const name = stringArg(argv, 'name', '');
  const out = resolve(stringArg(argv, 'out', '.darkroom/models'));
  const weight = numberArg(argv, 'weight', Number.NaN);
  if (!a.endsWith('.safetensors') || !b.endsWith('.safetensors')) throw new RangeError('--a and --b name two .safetensors checkpoints');
  if (name === '') throw new RangeError('--name names the averaged checkpoint');
  const [ca, cb] = await Promise.all([companionFiles(a), companionFiles(b)]);
  ca.forEach(([pathA, bytes], i) => {
    const [pathB, other] = cb[i]!;
    if (!bytes.equals(other)) throw new RangeError(`${pathA} and ${pathB} differ: not one model`);
  });
  const [fa, fb] = await Promise.all([readSafetensorsFile(a), readSafetensorsFile(b)]);
  const tensors = averageCheckpoints(fa.tensors, fb.tensors, weight);
  const metadata = {
    format: 'pt', darkroom: name,
    averaged: JSON.stringify({ a: fa.metadata.darkroom ?? a, b: fb.metadata.darkroom ?? b, weight }),
  };
  const checkpoint = join(out, `${name}.safetensors`);
  const written = checkpointCompanions(checkpoint);
  await mkdir(out, { recursive: true });
  await writeFileAtomically(checkpoint, writeSafetensors(tensors, metadata));
  await writeFileAtomically(written.config, ca[0]![1]);
  await cp(checkpointCompanions(a).vocabulary, written.vocabulary, { recursive: true });
  console.log(JSON.stringify({ checkpoint, a, b, weight }));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
