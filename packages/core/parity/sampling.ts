import type { Suite } from './suites.js';

export const suite: Suite = {
  name: 'sampling',
  under: '',
  marker: 'samplers/trajectories.json',
  async *run() {
    yield { name: '(all)', status: 'skip', detail: 'suite not implemented yet' };
  },
};
