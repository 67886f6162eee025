import { parityTest } from '../support/parity.js';

parityTest('training');
