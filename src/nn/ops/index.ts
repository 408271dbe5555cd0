/** Every op as a free function on Tensor handles; see ../API.md. */
export { type ConvOptions, conv, convGradLowering, convTranspose } from './conv.js';
export { broadcastShapes, type TensorLike } from './core.js';
export {
  abs,
  add,
  and,
  cast,
  clip,
  div,
  equal,
  erf,
  exp,
  gelu,
  greater,
  identity,
  less,
  log,
  mul,
  neg,
  pow,
  relu,
  sigmoid,
  sign,
  sqrt,
  sub,
  sum,
  tanh,
  where,
} from './elementwise.js';
export { gemm, linear, matmul } from './matmul.js';
export { channelNorm, groupNorm, layerNorm, normalize } from './norm.js';
export { averagePool, maxPool, type PoolOptions } from './pool.js';
export { argMax, reduceL2, reduceMax, reduceMean, reduceSum } from './reduce.js';
export { resize } from './resize.js';
export {
  concat,
  expand,
  flatten,
  pad,
  reshape,
  slice,
  split,
  squeeze,
  sumTo,
  transpose,
  unsqueeze,
  zerosLike,
} from './shape.js';
export { logSoftmax, softmax } from './softmax.js';
