import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { checkpointCompanions, writeVocabularyFolder } from '@darkroom/core/pipeline/checkpoint-files.js';
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
  const path = join(dir, `${name}.safetensors`);
  const companions = checkpointCompanions(path);
  await mkdir(dir, { recursive: true });
  await writeFile(companions.config, `${JSON.stringify(demoModelConfig(vocabSize), null, 1)}\n`);
  await writeVocabularyFolder(companions.vocabulary, vocab);
  const tensors = initialCheckpointTensors(vocabSize, DEMO_ARCHITECTURE, { unet: seed, vae: seed + 1, text: seed + 2 });
  await writeFile(path, writeSafetensors(tensors, { format: 'pt' }));
  return path;
}
