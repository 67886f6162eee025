/**
 * Averages the weights of two checkpoints of one model (core's training/checkpoint-average.ts) and writes the result
 * as a checkpoint the Engine loads, with the config and vocabulary the two share:
 *
 *   npx tsx scripts/average-checkpoints.ts --a A.safetensors --b B.safetensors --weight 0.65 [--out .darkroom/models] --name NAME
 *
 * Every weight becomes (1 - weight) * A + weight * B. The two must be the same model: the same tensors and shapes,
 * the same `<stem>.json` and the same `<stem>.vocab/`; anything else is refused before a file is written.
 */
import { cp, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { numberArg, stringArg } from '../bench/support/args.js';
import { writeFileAtomically } from '../packages/core/src/atomic-write.js';
import { readSafetensorsFile, writeSafetensors } from '../packages/core/src/formats/safetensors.js';
import { averageCheckpoints } from '../packages/core/src/training/checkpoint-average.js';

const stem = (path: string): string => path.replace(/\.safetensors$/, '');
const VOCAB_FILES = ['vocab.json', 'merges.txt'];

/** The config and vocabulary files of a checkpoint, as bytes, to check that two checkpoints share them. */
async function companions(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  out.set('.json', await readFile(`${stem(path)}.json`));
  for (const f of VOCAB_FILES) out.set(`.vocab/${f}`, await readFile(join(`${stem(path)}.vocab`, f)));
  return out;
}

async function main(argv: string[]): Promise<void> {
  const a = resolve(stringArg(argv, 'a', ''));
  const b = resolve(stringArg(argv, 'b', ''));
  const name = stringArg(argv, 'name', '');
  const out = resolve(stringArg(argv, 'out', '.darkroom/models'));
  const weight = numberArg(argv, 'weight', Number.NaN);
  if (!a.endsWith('.safetensors') || !b.endsWith('.safetensors')) throw new RangeError('--a and --b name two .safetensors checkpoints');
  if (name === '') throw new RangeError('--name names the averaged checkpoint');
  const [ca, cb] = await Promise.all([companions(a), companions(b)]);
  for (const [suffix, bytes] of ca) {
    if (!bytes.equals(cb.get(suffix)!)) throw new RangeError(`${stem(a)}${suffix} and ${stem(b)}${suffix} differ: not one model`);
  }
  const [fa, fb] = await Promise.all([readSafetensorsFile(a), readSafetensorsFile(b)]);
  const tensors = averageCheckpoints(fa.tensors, fb.tensors, weight);
  const metadata = {
    format: 'pt', darkroom: name,
    averaged: JSON.stringify({ a: fa.metadata.darkroom ?? a, b: fb.metadata.darkroom ?? b, weight }),
  };
  const checkpoint = join(out, `${name}.safetensors`);
  await writeFileAtomically(checkpoint, writeSafetensors(tensors, metadata));
  await writeFileAtomically(join(out, `${name}.json`), ca.get('.json')!);
  await cp(`${stem(a)}.vocab`, join(out, `${name}.vocab`), { recursive: true });
  console.log(JSON.stringify({ checkpoint, a, b, weight }));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
