import { after, before } from 'node:test';
import { repoRoot } from '../../parity/oracle.js';
import { decodePng, type RasterImage } from '../../src/formats/png.js';
import { Engine } from '../../src/pipeline/engine.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';

/** The small request the script render tests plan from: the demo model at 64x64, three Euler steps. */
export const DEMO_BASE: Txt2ImgParams = { prompt: 'a red castle', negative_prompt: 'fog', steps: 3, sampler_name: 'Euler', cfg_scale: 6, seed: 77, width: 64, height: 64 };

export interface DemoRenderer {
  /** The engine, open between the file's `before` and `after`. */
  engine(): Engine;
  /** The first image of a txt2img, decoded. */
  render(p: Txt2ImgParams): Promise<RasterImage>;
}

/** One demo-model Engine for a test file: opened before its tests, closed after them. */
export function demoRenderer(): DemoRenderer {
  let engine: Engine | undefined;
  before(() => {
    engine = new Engine({ root: repoRoot, threads: 1 });
  });
  after(async () => {
    await engine?.close();
  });
  const open = (): Engine => {
    if (!engine) throw new Error('the demo engine opens in the test file\'s before hook');
    return engine;
  };
  return { engine: open, render: async (p) => decodePng((await open().txt2img(p)).images[0]!) };
}
