/**
 * The model oracle's UNet cases (forward, and the hypernetwork gradient through every cross-attention) and one
 * VAE decode, under every attention variant: the chunked and fused graphs must give the oracle's values within
 * the suite's own tolerance. `DARKROOM_ATTENTION=<mode> npm run parity:model` runs the whole suite that way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parityAttention } from '../../parity/attention-variant.js';
import { runModelCases, type CaseSpec } from '../../parity/model.js';
import { oracleRoot } from '../../parity/oracle.js';
import type { CaseResult } from '../../parity/report.js';
import { ATTENTION_MODES } from '../../src/planning/attention.js';

const folder = join(oracleRoot(), 'model');
const skip = existsSync(join(folder, 'cases.json')) ? false : `oracle data not found at ${folder}`;

const representative = (c: CaseSpec): boolean =>
  c.kind === 'unet' || c.kind === 'grad-hypernet' || c.id === 'tiny-sd1/vae-decode-8x12' || c.id === 'tiny-sd2/unet-hypernet-m0.5';

for (const mode of ATTENTION_MODES) {
  test(`model oracle UNet cases under attention "${mode}"`, { skip }, async () => {
    const results: CaseResult[] = [];
    for await (const r of runModelCases(folder, { attention: parityAttention(mode), only: representative })) results.push(r);
    assert.equal(results.length, 10, results.map((r) => r.name).join(', '));
    const bad = results.filter((r) => r.status !== 'pass');
    assert.deepEqual(bad, [], `${mode}: ${bad.map((r) => `${r.name} ${r.status} ${r.detail ?? ''}`).join('; ')}`);
  });
}
