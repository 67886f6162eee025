import { parityTest } from '../support/parity.js';

// Every case of the model oracle through loadModel, hypernetwork and gradient cases included: none may skip.
parityTest('model');
