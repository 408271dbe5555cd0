/**
 * Detector images as PNG files a person can open: 8-bit greyscale-on-RGB with a linear or log stretch,
 * NaN (no pixel, masked) drawn in a muted blue so gaps are visibly not "dark". Encoded with node's zlib;
 * no dependencies.
 */
import { deflateSync } from 'node:zlib';

export interface PngStretch {
  /** Value drawn black; default the 1st percentile of the finite values. */
  min?: number;
  /** Value drawn white; default the 99.5th percentile. */
  max?: number;
  /** Stretch log(1 + v - min) instead of v: makes weak spots and a bright ring visible together. */
  log?: boolean;
}

const nanColor = [70, 90, 140];

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Value at quantile q of the finite values (sampled for large images). */
export function finiteQuantile(values: ArrayLike<number>, q: number): number {
  const step = Math.max(1, Math.floor(values.length / 200_000));
  const sample: number[] = [];
  for (let i = 0; i < values.length; i += step) if (Number.isFinite(values[i])) sample.push(values[i]);
  if (sample.length === 0) return 0;
  sample.sort((a, b) => a - b);
  return sample[Math.min(sample.length - 1, Math.floor(q * sample.length))];
}

/** `values` ([height * width], row-major) as RGB bytes (3 per pixel) under the stretch. */
export function grayscaleRgb(
  values: ArrayLike<number>,
  width: number,
  height: number,
  stretch: PngStretch = {},
): Uint8Array {
  if (values.length !== width * height)
    throw new Error(`png: ${values.length} values for ${width} x ${height}`);
  const min = stretch.min ?? finiteQuantile(values, 0.01);
  const max = stretch.max ?? finiteQuantile(values, 0.995);
  const map = stretch.log ? (v: number) => Math.log1p(Math.max(0, v - min)) : (v: number) => v - min;
  const span = Math.max(map(max), 1e-12);
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < width * height; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      rgb[o++] = nanColor[0];
      rgb[o++] = nanColor[1];
      rgb[o++] = nanColor[2];
      continue;
    }
    const level = Math.round(255 * Math.min(1, Math.max(0, map(v) / span)));
    rgb[o++] = level;
    rgb[o++] = level;
    rgb[o++] = level;
  }
  return rgb;
}

/** Encodes RGB bytes ([height * width * 3], row-major) as a PNG file. */
export function rgbPng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  if (rgb.length !== width * height * 3)
    throw new Error(`png: ${rgb.length} bytes for ${width} x ${height} RGB`);
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    const o = y * (1 + width * 3);
    raw[o] = 0; // filter: none
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), o + 1);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  const signature = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);
  const parts = [
    signature,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Encodes `values` ([height * width], row-major) as a PNG file. */
export function grayscalePng(
  values: ArrayLike<number>,
  width: number,
  height: number,
  stretch: PngStretch = {},
): Uint8Array {
  return rgbPng(grayscaleRgb(values, width, height, stretch), width, height);
}
