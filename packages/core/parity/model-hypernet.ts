/**
 * The `unet-hypernet` cases of the model oracle: A1111 hypernetworks (read from the oracle's .pt files) run
 * inside the UNet through the attention hook, with weights and multipliers fed as graph inputs. Checks `out`
 * with the model tolerance, and `context_k` / `context_v` (the text-context outputs) from the reference forward.
 */
import { join } from 'node:path';
import { hypernetworkVariant } from '../src/networks/hypernetworks/graph.js';
import { loadHypernetworkFile, type Hypernetwork } from '../src/networks/hypernetworks/hypernetwork.js';
import { applyHypernetworks } from '../src/networks/hypernetworks/reference.js';
import type { CaseContext, ModelCaseHandler } from './model.js';
import { combine, type Closeness } from './report.js';

interface HypernetMeta {
  readonly hypernetworks: ReadonlyArray<{ file: string; multiplier: number }>;
}

const loaded = new Map<string, Promise<Hypernetwork>>();

export const runHypernetCase: ModelCaseHandler = async (ctx: CaseContext) => {
  const meta = ctx.spec.meta as unknown as HypernetMeta;
  const applications = await Promise.all(
    meta.hypernetworks.map(async (h) => {
      const path = join(ctx.folder, h.file);
      if (!loaded.has(path)) loaded.set(path, loadHypernetworkFile(path));
      return { hypernetwork: await loaded.get(path)!, multiplier: h.multiplier };
    }),
  );
  const x = ctx.ref('x');
  const t = ctx.ref('t');
  const context = ctx.ref('context');
  const out = await ctx.model.unet.run(x, t.data, context, context, hypernetworkVariant(applications));
  const { contextK, contextV } = applyHypernetworks(applications, context);
  const checks: [string, Closeness][] = [
    ['out', ctx.close(out, 'out')],
    ['context_k', ctx.close(contextK, 'context_k')],
    ['context_v', ctx.close(contextV, 'context_v')],
  ];
  return combine(ctx.spec.id, checks);
};
