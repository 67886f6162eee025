/** The text side of the engine: prompt syntax, CLIP tokenization, 75-token chunks, emphasis. */
export * from './bpe-vocab.js';
export * from './tokenizer.js';
export * from './text-cleanup.js';
export * from './prompt-parser.js';
export * from './chunking.js';
export * from './emphasis.js';
export * from './conditioning-plan.js';
export { blendedPrompts, blendWeightSyntax, type WeightedText } from './prompt-blend.js';
export { pyFloatRepr } from './python-compat.js';
export { torchSumF32, torchMeanF32 } from './torch-sum.js';
