/**
 * Detector geometry in use: slab layout, per-pixel maps, masks and lab-frame assembly.
 * (HDF5 mask files live in ./mask-file.js, imported separately so that h5wasm loads only when needed.)
 */
export * from './assemble.js';
export * from './layout.js';
export * from './mask.js';
export * from './pixel-maps.js';
