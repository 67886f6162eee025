import type { Suite } from './suites.js';

export const suite: Suite = {
  name: 'networks',
  under: 'text',
  marker: 'MANIFEST.json',
  async *run() {
    yield { name: '(all)', status: 'skip', detail: 'suite not implemented yet' };
  },
};
