import type { Suite } from './suites.js';

export const suite: Suite = {
  name: 'pipeline',
  under: 'pipeline',
  marker: 'cases.json',
  async *run() {
    yield { name: '(all)', status: 'skip', detail: 'suite not implemented yet' };
  },
};
