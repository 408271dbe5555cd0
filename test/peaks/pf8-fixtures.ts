/**
 * Small hand-made detector and frames for the peak finder tests: two 64 x 64 panels stacked along ss,
 * the beam off to one side, seeded uniform noise so the radial statistics have a spread.
 */
import { computePixelMaps, type PixelMaps } from '../../src/detector/pixel-maps.js';
import { parseGeometry } from '../../src/io/geom.js';
import { seededRandom } from '../../src/util/random.js';

export const smallGeometryText = `photon_energy = 9000
clen = 0.1
res = 10000
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs

a/min_fs = 0
a/max_fs = 63
a/min_ss = 0
a/max_ss = 63
a/fs = +1.0x
a/ss = +1.0y
a/corner_x = -80
a/corner_y = -32

b/min_fs = 0
b/max_fs = 63
b/min_ss = 64
b/max_ss = 127
b/fs = +1.0x
b/ss = +1.0y
b/corner_x = 16
b/corner_y = -32
`;

export function smallMaps(): PixelMaps {
  return computePixelMaps(parseGeometry(smallGeometryText, 'small.geom'));
}

export const smallFs = 64;

/** Uniform noise in [low, high) on every pixel. */
export function noiseFrame(maps: PixelMaps, seed = 1, low = 0, high = 20): Float32Array {
  const random = seededRandom(seed);
  const image = new Float32Array(maps.ssSize * maps.fsSize);
  for (let i = 0; i < image.length; i++) image[i] = low + random() * (high - low);
  return image;
}

/** Sets `values` (row-major, `width` wide) with its top-left pixel at (ss, fs). */
export function paint(image: Float32Array, ss: number, fs: number, width: number, values: number[]): void {
  for (let k = 0; k < values.length; k++) {
    image[(ss + Math.floor(k / width)) * smallFs + fs + (k % width)] = values[k];
  }
}

/** A filled square block of one value. */
export function block(image: Float32Array, ss: number, fs: number, size: number, value: number): void {
  paint(image, ss, fs, size, new Array(size * size).fill(value));
}
