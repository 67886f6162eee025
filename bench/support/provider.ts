/** The execution provider a bench runs on: BENCH_PROVIDER=cpu|cuda|webgpu (default cpu). */
import { DarkroomError } from '../../packages/core/src/errors.js';
import type { Provider } from '../../packages/core/src/runtime/session.js';

const PROVIDERS: readonly Provider[] = ['cpu', 'cuda', 'webgpu'];

export function benchProvider(env: NodeJS.ProcessEnv = process.env): Provider {
  const raw = (env.BENCH_PROVIDER ?? 'cpu').trim().toLowerCase();
  const found = PROVIDERS.find((p) => p === raw);
  if (!found) {
    throw new DarkroomError('BENCH_BAD_PROVIDER', `BENCH_PROVIDER must be one of ${PROVIDERS.join(', ')}, got "${raw}"`, { provider: raw });
  }
  return found;
}
