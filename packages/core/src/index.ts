export * from './tensor.js';
export * from './errors.js';
export * from './text/index.js';
export * from './formats/infotext.js';
export * from './pipeline/index.js';
export * from './scripts/index.js';
