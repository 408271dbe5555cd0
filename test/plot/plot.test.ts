import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { grayscalePng } from '../../src/plot/png.js';
import { heatmapSvg, linePlotSvg, niceTicks, viridisColor } from '../../src/plot/svg.js';

/** Splits a PNG into its chunks, checking the signature. */
function pngChunks(png: Uint8Array): Map<string, Uint8Array> {
  assert.deepEqual(Array.from(png.subarray(0, 8)), [137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks = new Map<string, Uint8Array>();
  for (let o = 8; o < png.length; ) {
    const length = view.getUint32(o);
    const type = String.fromCharCode(...png.subarray(o + 4, o + 8));
    chunks.set(type, png.subarray(o + 8, o + 8 + length));
    o += 12 + length;
  }
  return chunks;
}

test('grayscalePng encodes the stretch, size and NaN colour', () => {
  const values = Float32Array.from([0, 50, 100, Number.NaN, 200, -5]);
  const png = grayscalePng(values, 3, 2, { min: 0, max: 100 });
  const chunks = pngChunks(png);
  const header = new DataView(chunks.get('IHDR')!.buffer, chunks.get('IHDR')!.byteOffset);
  assert.equal(header.getUint32(0), 3);
  assert.equal(header.getUint32(4), 2);
  assert.ok(chunks.has('IEND'));
  const raw = inflateSync(chunks.get('IDAT')!);
  assert.equal(raw.length, 2 * (1 + 3 * 3));
  const red = (x: number, y: number) => raw[y * 10 + 1 + x * 3];
  assert.deepEqual([red(0, 0), red(1, 0), red(2, 0)], [0, 128, 255]);
  assert.deepEqual(Array.from(raw.subarray(11, 14)), [70, 90, 140], 'NaN is blue-grey');
  assert.equal(red(1, 1), 255, 'above max clips to white');
  assert.equal(red(2, 1), 0, 'below min clips to black');
  assert.throws(() => grayscalePng(values, 4, 2), /6 values for 4 x 2/);
});

test('niceTicks gives round steps covering the range', () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0.13, 0.91, 4), [0.2, 0.4, 0.6, 0.8]);
});

test('linePlotSvg draws each series and skips non-finite and non-positive log values', () => {
  const svg = linePlotSvg({
    title: 'radial <profile>',
    xLabel: 'radius (px)',
    yLabel: 'ADU',
    logY: true,
    series: [
      { label: 'real', x: [1, 2, 3], y: [10, 100, 1000] },
      { label: 'sim', x: [1, 2, 3], y: [0, Number.NaN, 50], kind: 'points' },
    ],
  });
  assert.match(svg, /^<svg xmlns/);
  assert.match(svg, /radial &lt;profile&gt;/);
  assert.equal((svg.match(/<path /g) ?? []).length, 1);
  assert.equal((svg.match(/<circle /g) ?? []).length, 1, 'only the finite positive point is drawn');
  assert.match(svg, />1000</);
});

test('heatmapSvg draws one cell per value with the extremes at the colour ends', () => {
  const svg = heatmapSvg({
    title: 'F1',
    xLabel: 'threshold',
    yLabel: 'min SNR',
    xTicks: ['100', '200', '400'],
    yTicks: ['3', '5'],
    values: [0.1, 0.5, 0.9, 0.2, Number.NaN, 0.3],
    colorLabel: 'F1',
    annotate: true,
  });
  const [r, g, b] = viridisColor(1);
  assert.ok(svg.includes(`fill="rgb(${r},${g},${b})"`), 'the maximum cell is yellow');
  assert.ok(svg.includes('fill="rgb(200,200,200)"'), 'NaN cell is grey');
  assert.equal((svg.match(/font-size="10"/g) ?? []).length, 5, 'finite cells are annotated');
  assert.throws(
    () =>
      heatmapSvg({
        ...{ title: '', xLabel: '', yLabel: '', colorLabel: '' },
        xTicks: ['a'],
        yTicks: ['b'],
        values: [1, 2],
      }),
    /2 values/,
  );
});
