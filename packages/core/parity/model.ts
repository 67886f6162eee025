import type { Suite } from './suites.js';

export const suite: Suite = {
  name: 'model',
  under: 'model',
  marker: 'cases.json',
  async *run() {
    yield { name: '(all)', status: 'skip', detail: 'suite not implemented yet' };
  },
};
