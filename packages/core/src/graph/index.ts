/** ONNX graph building, serialization and reverse-mode autodiff. */
export { GraphBuilder, hostTensor, type ConvOptions, type GraphBuilderOptions, type OpOptions, type ToModelOptions } from './builder.js';
export type { Attr, BuiltModel, Initializer, Node, Value } from './ir.js';
export { backprop, grad, NON_DIFFERENTIABLE, VJP_RULES, type VjpContext, type VjpRule } from './autodiff.js';
export { sumToShape } from './vjp.js';
export { SHAPE_RULES, type OutputInfo, type ShapeRule } from './shapes.js';
