/**
 * The precision of a worker's weights: float32 (the reference, every provider) or float16 (A1111's default on a
 * GPU: half the weights' memory, graphs built with float16 weights and compute and float32 inputs and outputs).
 *
 * float16 is refused on the CPU provider. onnxruntime's CPU execution provider has float16 kernels for few
 * operators: for the others it inserts Casts to float32 around them at session init, and a Cast of a weight is
 * constant-folded into a float32 copy, so those weights are held in float32 after all (no memory saved: the demo
 * UNet's session measured 390 MiB in float16 against 375 in float32), activations are rounded to half between
 * operators and the casts cost time. The float16 graph itself still runs there, which is how it is validated
 * without a GPU.
 */
export { checkWeightsDtype, parseWeightsDtype, WEIGHTS_DTYPES } from '../catalog/engine-flags.js';
