/** The k-diffusion samplers A1111 uses, one function each (k-diffusion ab527a9 semantics). */
export { sampleEuler } from './euler.js';
export { sampleEulerAncestral } from './euler-ancestral.js';
export { sampleHeun } from './heun.js';
export { sampleDpm2 } from './dpm2.js';
export { sampleDpm2Ancestral } from './dpm2-ancestral.js';
export { sampleLms, linearMultistepCoeff } from './lms.js';
export { sampleDpmpp2m } from './dpmpp-2m.js';
export { sampleDpmpp2sAncestral } from './dpmpp-2s-ancestral.js';
export { sampleDpmppSde } from './dpmpp-sde.js';
export { sampleDpmpp2mSde } from './dpmpp-2m-sde.js';
export { sampleDpmpp3mSde } from './dpmpp-3m-sde.js';
export { sampleDpmFast, sampleDpmAdaptive } from './dpm-solver.js';
export { sampleRestart, restartStepList } from './restart.js';
export { karrasSigmas, torchLinspaceF32 } from './karras.js';
export { BatchedBrownianTree, BrownianInterval, FAST_CACHE, UPSTREAM_CACHE, type BrownianCachePolicy } from './brownian-tree.js';
