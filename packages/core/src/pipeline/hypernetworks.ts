/**
 * Hypernetworks named in prompts (`<hypernet:name:multiplier>`) resolved to a UNet variant: the files a job
 * provides are loaded once (by path) and chained in tag order, as A1111's load_hypernetworks does. A name with
 * no file is an error here (A1111 skips it silently, which gives a different image than the prompt asks for).
 */
import { DarkroomError } from '../errors.js';
import { hypernetworkMultiplierError } from './extra-networks.js';
import { hypernetworkVariant } from '../networks/hypernetworks/graph.js';
import { loadHypernetworkFile, type Hypernetwork } from '../networks/hypernetworks/hypernetwork.js';
import type { HypernetworkProvider, UNetVariant } from './types.js';

export function hypernetworkProvider(
  files: ReadonlyMap<string, string>,
  cache: Map<string, Promise<Hypernetwork>> = new Map(),
): HypernetworkProvider {
  const load = (path: string): Promise<Hypernetwork> => {
    let p = cache.get(path);
    if (!p) {
      p = loadHypernetworkFile(path);
      cache.set(path, p);
      p.catch(() => cache.delete(path));
    }
    return p;
  };
  return {
    async resolve(uses): Promise<UNetVariant | undefined> {
      if (uses.length === 0) return undefined;
      const applications = [];
      for (const { name, multiplier } of uses) {
        const path = files.get(name);
        if (!path) {
          throw new DarkroomError('HYPERNETWORK_NOT_FOUND', `the prompt uses hypernetwork "${name}", which this job did not provide`, {
            name,
            available: [...files.keys()],
          });
        }
        const bad = hypernetworkMultiplierError({ name, multiplier });
        if (bad) throw bad;
        applications.push({ hypernetwork: await load(path), multiplier });
      }
      return hypernetworkVariant(applications);
    },
  };
}
