import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { Engine } from '../../src/pipeline/engine.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { readSafetensorsFile, writeSafetensors } from '../../src/formats/safetensors.js';
import { PyDict, PyOrderedDict } from '../../src/formats/pickle/values.js';
import { torchTensor, writeTorchFile } from '../../src/formats/torch.js';
import { decodePng } from '../../src/formats/png.js';
import { isDarkroomError } from '../../src/errors.js';
import type { HostTensor } from '../../src/tensor.js';

const PREFIX = 'first_stage_model.';

/** The largest per-channel difference between two PNGs of the same size. */
function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  const x = decodePng(a);
  const y = decodePng(b);
  assert.deepEqual([x.width, x.height, x.channels], [y.width, y.height, y.channels]);
  let max = 0;
  for (let i = 0; i < x.data.length; i++) max = Math.max(max, Math.abs(x.data[i]! - y.data[i]!));
  return max;
}

async function countFiles(dir: string): Promise<number> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
}

test('a separate VAE file replaces the checkpoint VAE: same decode as the weights merged by hand, VAE hash and name in the infotext', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-engine-vae-'));
  const demo = await ensureDemoModel(repoRoot);
  const cacheDir = join(dir, 'cache');
  const engine = new Engine({
    root: repoRoot,
    cacheDir,
    threads: 1,
    vaeDir: join(dir, 'VAE'),
    vocabulary: join(repoRoot, '.darkroom', 'models', 'darkroom-tiny-sd1.vocab'),
  });
  try {
    const { tensors } = await readSafetensorsFile(demo.checkpoint);
    // The demo VAE with visibly different output: the last convolution scaled and shifted.
    const vae = new Map<string, HostTensor>();
    for (const [k, t] of tensors) {
      if (!k.startsWith(PREFIX)) continue;
      const name = k.slice(PREFIX.length);
      const data = Float32Array.from(t.data as Float32Array);
      if (name === 'decoder.conv_out.weight') for (let i = 0; i < data.length; i++) data[i] = data[i]! * 1.3;
      if (name === 'decoder.conv_out.bias') for (let i = 0; i < data.length; i++) data[i] = data[i]! + (i === 0 ? 0.4 : -0.2);
      vae.set(name, { dtype: 'float32', shape: t.shape, data });
    }
    // A1111's VAE files carry the autoencoder's loss weights, which load_vae_dict drops.
    const a1111Layout = new Map(vae);
    a1111Layout.set('loss.logvar', { dtype: 'float32', shape: [], data: new Float32Array(1) });
    await mkdir(join(dir, 'VAE'));
    const vaeFile = join(dir, 'VAE', 'changed.safetensors');
    const vaeBytes = writeSafetensors(a1111Layout);
    await writeFile(vaeFile, vaeBytes);
    const vaeHash = createHash('sha256').update(vaeBytes).digest('hex').slice(0, 10);

    const config = `${JSON.stringify(demo.config)}\n`;
    const base = join(dir, 'base.safetensors');
    await writeFile(base, await readFile(demo.checkpoint));
    await writeFile(join(dir, 'base.json'), config);
    const merged = join(dir, 'merged.safetensors');
    const mergedTensors = new Map(tensors);
    for (const [k, t] of vae) mergedTensors.set(PREFIX + k, t);
    await writeFile(merged, writeSafetensors(mergedTensors));
    await writeFile(join(dir, 'merged.json'), config);

    const request = { prompt: 'a castle', steps: 2, seed: 7, width: 64, height: 64, sampler_name: 'Euler' };
    const plain = await engine.txt2img(request, { checkpoint: base });
    const withFile = await engine.txt2img(request, { checkpoint: base, vae: vaeFile });
    const byHand = await engine.txt2img(request, { checkpoint: merged });

    const d = maxPixelDiff(withFile.images[0]!, byHand.images[0]!);
    assert.ok(d <= 1, `VAE file vs merged checkpoint differ by ${d}/255`);
    t.diagnostic(`VAE file vs merged checkpoint: max difference ${d}/255`);
    assert.ok(maxPixelDiff(withFile.images[0]!, plain.images[0]!) > 8, 'the VAE file changes the image');
    assert.match(withFile.infotexts[0]!, new RegExp(`Model: base, VAE hash: ${vaeHash}, VAE: changed\\.safetensors, Version`));
    assert.doesNotMatch(plain.infotexts[0]!, /VAE/);
    assert.doesNotMatch(byHand.infotexts[0]!, /VAE/);

    // Switching back to the checkpoint's own VAE finds its entry still loaded: no graph is built again.
    const graphs = await countFiles(cacheDir);
    const again = await engine.txt2img(request, { checkpoint: base });
    assert.deepEqual(again.images[0], plain.images[0]);
    assert.equal(await countFiles(cacheDir), graphs);

    // By name (sd_vae) from the VAE folder, under the name the job gives the file, and "None".
    const named = await engine.txt2img({ ...request, override_settings: { sd_vae: 'changed.safetensors' } }, { checkpoint: base });
    assert.deepEqual(named.images[0], withFile.images[0]);
    assert.equal(named.infotexts[0], withFile.infotexts[0]);
    const renamed = await engine.txt2img(request, { checkpoint: base, vae: { path: vaeFile, name: 'pretty.vae.pt' } });
    assert.match(renamed.infotexts[0]!, new RegExp(`VAE hash: ${vaeHash}, VAE: pretty\\.vae\\.pt,`));
    await assert.rejects(
      engine.txt2img({ ...request, override_settings: { sd_vae: 'nope.safetensors' } }, { checkpoint: base }),
      (e: unknown) => isDarkroomError(e, 'VAE_NOT_FOUND') && e.details.field === 'override_settings.sd_vae',
    );

    // "Automatic": a torch `<stem>.vae.pt` beside the checkpoint ({state_dict: ...} as vae-ft-mse files are) is used;
    // "None" keeps the checkpoint's own.
    const sd = new PyOrderedDict();
    for (const [k, t] of vae) sd.set(k, torchTensor(t));
    await writeFile(join(dir, 'base.vae.pt'), writeTorchFile(new PyDict([['state_dict', sd]]), { archiveName: 'base.vae' }));
    const automatic = await engine.txt2img(request, { checkpoint: base });
    assert.equal(maxPixelDiff(automatic.images[0]!, withFile.images[0]!), 0);
    assert.match(automatic.infotexts[0]!, /VAE hash: [0-9a-f]{10}, VAE: base\.vae\.pt,/);
    const none = await engine.txt2img({ ...request, override_settings: { sd_vae: 'None' } }, { checkpoint: base });
    assert.deepEqual(none.images[0], plain.images[0]);
    assert.doesNotMatch(none.infotexts[0]!, /VAE/);
    // A name given in sd_vae wins over the file beside the checkpoint, as A1111's default settings have it.
    const explicit = await engine.txt2img({ ...request, override_settings: { sd_vae: 'changed.safetensors' } }, { checkpoint: base });
    assert.equal(explicit.infotexts[0], withFile.infotexts[0]);
  } finally {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  }
});
