import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { DEMO_ARCHITECTURE, demoModelConfig, initialCheckpointTensors } from '@darkroom/core/pipeline/demo-model.js';
import { buildDemoVocabulary } from '@darkroom/core/text/bpe-vocab.js';
import { ClipTokenizer } from '@darkroom/core/text/tokenizer.js';

/**
 * A demo-size checkpoint of its own in `dir` (a farm's MODELS_DIR): the demo architecture with weights drawn from
 * `seed`, so its content (and its compiled graphs) differ from the demo model's and from other seeds', written as a
 * `.safetensors` file with its config (`<name>.json`) and vocabulary (`<name>.vocab/`) beside it, as the engine
 * looks for them. Returns the file's path; the farm lists it under `name`.
 */
export async function writeDemoSizeCheckpoint(dir: string, name: string, seed: number): Promise<string> {
  const vocab = buildDemoVocabulary();
  const vocabSize = new ClipTokenizer(vocab).vocabSize;
  const vocabDir = join(dir, `${name}.vocab`);
  await mkdir(vocabDir, { recursive: true });
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify(demoModelConfig(vocabSize), null, 1)}\n`);
  await writeFile(join(vocabDir, 'vocab.json'), JSON.stringify(Object.fromEntries(vocab.encoder)));
  await writeFile(join(vocabDir, 'merges.txt'), `#version: 0.2\n${vocab.merges.map(([a, b]) => `${a} ${b}\n`).join('')}`);
  const tensors = initialCheckpointTensors(vocabSize, DEMO_ARCHITECTURE, { unet: seed, vae: seed + 1, text: seed + 2 });
  const path = join(dir, `${name}.safetensors`);
  await writeFile(path, writeSafetensors(tensors, { format: 'pt' }));
  return path;
}
