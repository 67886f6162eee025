import { parityTest } from '../support/parity.js';

// End-to-end txt2img against A1111's own process_images on the tiny checkpoint (see parity/pipeline.ts).
parityTest('pipeline', { allowSkips: true });
