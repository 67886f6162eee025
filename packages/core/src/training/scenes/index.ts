export * from './scene.js';
export * from './render.js';
export * from './captions.js';
export * from './detect.js';
