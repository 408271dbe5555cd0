/**
 * What a simulated CXI file holds for the geometry it was simulated through: the bad-pixel mask the
 * geometry reads from it (`mask = ...`, `mask_good`/`mask_bad`), and the camera length CrystFEL
 * computes for its frames (a clen read from the file, in millimetres, plus coffset) equal to the
 * distance the simulator placed the panels at, in the CXI file and in the stream.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildMask } from '../../src/detector/mask-file.js';
import { computePixelMaps } from '../../src/detector/pixel-maps.js';
import { parseGeometry, readGeometry } from '../../src/io/geom.js';
import { getDataset, openHdf5, readSlice } from '../../src/io/hdf5.js';
import { defaultPf8Params } from '../../src/peaks/peakfinder8.js';
import { runPeaks } from '../../src/peaks/run-peaks.js';
import { createDetectorState, detectorGoodPixels } from '../../src/simulate/detector.js';
import { createPhysicsContext } from '../../src/simulate/frame.js';
import { parseSimulateOptions } from '../../src/simulate/options.js';
import { presets } from '../../src/simulate/presets.js';
import { createRenderContext, defaultImagingOptions } from '../../src/simulate/render.js';
import { readGeometryText, resolveSetup, runSimulation } from '../../src/simulate/run.js';
import { UserError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { needsShared, sharedPath } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-simulate-datasets-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const panelsText = `a/min_fs = 0
a/max_fs = 127
a/min_ss = 0
a/max_ss = 127
a/fs = +1.0x
a/ss = +1.0y
a/corner_x = 4
a/corner_y = -64
b/min_fs = 0
b/max_fs = 127
b/min_ss = 128
b/max_ss = 255
b/fs = -1.0x
b/ss = -1.0y
b/corner_x = -4
b/corner_y = 64
`;

/**
 * Two 128 x 128 modules of 100 um pixels, as the CSPAD's CXI geometry reads its data: clen (mm) from
 * the file plus a coffset (panel b's own), and a mask in the file with its good and bad bits. A bad
 * region on panel a, edge pixels masked on panel b.
 */
const geometryText = `photon_energy = 9500
clen = /LCLS/detector_1/EncoderValue
coffset = 0.6
res = 10000
adu_per_photon = 1
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs
mask = /entry_1/data_1/mask
mask_good = 0x1
mask_bad = 0x4
${panelsText}b/coffset = 0.62
b/mask_edge_pixels = 1
badstrip/min_fs = 0
badstrip/max_fs = 9
badstrip/min_ss = 0
badstrip/max_ss = 127
badstrip/panel = a
`;
const geometryPath = join(dir, 'mask-clen.geom');
writeFileSync(geometryPath, geometryText);

async function readDataset(path: string, dataset: string) {
  const handle = await openHdf5(path);
  try {
    const found = getDataset(handle.file, path, dataset);
    return { shape: found.shape ?? [], dtype: found.dtype, values: readSlice(found, path, []) };
  } finally {
    handle.release();
  }
}

const streamCameraLengths = (path: string) =>
  [...readFileSync(path, 'utf8').matchAll(/^average_camera_length = (\S+) m$/gm)].map((m) => Number(m[1]));

const pf8 = { method: 'pf8' as const, params: { ...defaultPf8Params, adcThreshold: 20, minSnr: 5 } };

test('a geometry reading clen (mm) from the file: the files record clen + coffset, the distance simulated', async () => {
  const geometry = parseGeometry(geometryText, geometryPath);
  const input = { frames: 2, seed: 3, hitRate: 1, preset: 'lysozyme', background: 'none' as const };
  const summary = await runSimulation({
    geometry,
    geometryText,
    ...input,
    outPath: join(dir, 'clen.cxi'),
  });
  // The distance the physics placed each panel at, averaged over panels as CrystFEL's stream does.
  const setup = resolveSetup(geometry, parseSimulateOptions({ ...input, outPath: 'x' }));
  const planes = createPhysicsContext(setup).projector.planes;
  const simulated = (planes[0].oz + planes[1].oz) / 2;
  // No literal clen: the panels sit around the preset's distance (median coffset 0.62 m).
  assert.ok(Math.abs(planes[1].oz - presets.lysozyme.beam.detectorDistanceM) < 1e-12);
  assert.ok(Math.abs(planes[0].oz - (presets.lysozyme.beam.detectorDistanceM - 0.02)) < 1e-12);

  const encoder = await readDataset(summary.outputs.cxi, '/LCLS/detector_1/EncoderValue');
  const distance = await readDataset(summary.outputs.cxi, '/entry_1/instrument_1/detector_1/distance');
  assert.deepEqual(encoder.shape, [2]);
  for (let i = 0; i < 2; i++) {
    // CrystFEL: the unitless location is in mm; each panel adds its coffset (0.6 and 0.62 m).
    const crystfel = Number(encoder.values[i]) * 1e-3 + (0.6 + 0.62) / 2;
    assert.ok(Math.abs(crystfel - simulated) < 1e-12, `frame ${i}: ${crystfel} m vs ${simulated} m`);
    assert.ok(
      Math.abs(Number(distance.values[i]) - simulated) < 1e-12,
      `frame ${i}: ${distance.values[i]} m`,
    );
  }
  assert.ok(Math.abs(summary.cameraLengthM - simulated) < 1e-12);
  // The stream's average_camera_length, to its six decimals, is that distance, not the clen alone.
  const lengths = streamCameraLengths(summary.outputs.stream);
  assert.equal(lengths.length, 2);
  for (const length of lengths) assert.ok(Math.abs(length - simulated) <= 5e-7, `${length} m`);
  assert.ok(simulated > 0 && summary.clenM < 0, 'the clen alone is negative, the distance is not');
});

test('the mask the geometry names is in the file: good under mask_good/mask_bad where the detector measures', async () => {
  const geometry = parseGeometry(geometryText, geometryPath);
  const input = { frames: 2, seed: 5, hitRate: 1, preset: 'lysozyme', background: 'none' as const };
  const summary = await runSimulation({ geometry, geometryText, ...input, outPath: join(dir, 'mask.cxi') });
  const cxiPath = summary.outputs.cxi;
  const mask = await readDataset(cxiPath, '/entry_1/data_1/mask');
  assert.deepEqual(mask.shape, [2, 256, 128]);
  const size = 256 * 128;

  // The detector every frame was rendered with: measured and not hot is good (0x1), else bad (0x5).
  const maps = computePixelMaps(geometry);
  const setup = resolveSetup(geometry, parseSimulateOptions({ ...input, outPath: 'x' }));
  const { detector } = createRenderContext(maps, setup.imaging, setup.seed);
  let bad = 0;
  for (let frame = 0; frame < 2; frame++) {
    for (let i = 0; i < size; i++) {
      const good = detector.measured[i] === 1 && detector.hot[i] === 0;
      assert.equal(mask.values[frame * size + i], good ? 0x1 : 0x5, `frame ${frame} pixel ${i}`);
      if (!good && frame === 0) bad++;
    }
  }
  // The bad region (10 columns of panel a) and panel b's edge are bad; the rest of the panels good.
  assert.equal(mask.values[5 * 128 + 3], 0x5);
  assert.equal(mask.values[128 * 128 + 60], 0x5);
  assert.equal(mask.values[60 * 128 + 60], 0x1);
  assert.ok(bad >= 10 * 128 + (4 * 128 - 4), `${bad} bad pixels`);
  assert.ok(bad < 10 * 128 + 4 * 128 + 20, `${bad} bad pixels`);

  // `braggflow peaks` reads it with the same geometry: the mask it builds is the detector's...
  const peaksMask = await buildMask(maps, { dataFile: cxiPath });
  for (let i = 0; i < size; i++) assert.equal(peaksMask[i], mask.values[i] === 0x1 ? 1 : 0, `pixel ${i}`);
  // ...and the whole run goes through, finding peaks on the hits.
  const peaks = await runPeaks({
    geometryPath,
    inputs: [cxiPath],
    outPath: join(dir, 'mask-peaks.cxi'),
    spec: pf8,
  });
  assert.equal(peaks.frames, 2);
  assert.ok(peaks.peaks > 0, `${peaks.peaks} peaks`);
});

test("the run's bad pixels are the ones its frames' detector draws", () => {
  const maps = computePixelMaps(parseGeometry(`clen = 0.1\nres = 10000\n${panelsText}`));
  // Many dead and hot pixels, so both kinds are there.
  const params = { ...defaultImagingOptions, deadPixelFraction: 0.01, hotPixelFraction: 0.02 };
  const state = createDetectorState(maps, params, seededRandom(11));
  const good = detectorGoodPixels(maps, params, seededRandom(11));
  assert.ok(state.deadPixels.length > 100 && state.hotPixels.length > 200);
  for (let i = 0; i < good.length; i++) assert.equal(good[i], state.measured[i] && !state.hot[i] ? 1 : 0);
});

test('per-panel and numbered masks: each location written with its own bits, mask files left alone', async () => {
  const text = `photon_energy = 9500
clen = /entry_1/instrument_1/detector_1/distance
res = 10000
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs
mask0_data = /masks/shared
mask0_goodbits = 0x10000
mask1_data = /masks/shared
mask1_badbits = 0x2
mask2_file = not-there.h5
mask2_data = /data/data
a/mask3_data = /masks/a
a/mask3_goodbits = 0x0
a/mask3_badbits = 0xff
${panelsText}`;
  const path = join(dir, 'masks.geom');
  writeFileSync(path, text);
  const geometry = parseGeometry(text, path);
  const summary = await runSimulation({
    geometry,
    geometryText: text,
    frames: 1,
    seed: 2,
    hitRate: 0,
    preset: 'lysozyme',
    background: 'none',
    clenM: 0.07,
    outPath: join(dir, 'masks.cxi'),
  });
  const shared = await readDataset(summary.outputs.cxi, '/masks/shared');
  const own = await readDataset(summary.outputs.cxi, '/masks/a');
  // Bits beyond 16: 32-bit words. Good: all good bits, no bad bit; bad: a bad bit set.
  assert.deepEqual(shared.shape, [1, 256, 128]);
  assert.ok(shared.values instanceof Uint32Array);
  assert.ok(own.values instanceof Uint16Array);
  assert.equal(shared.values[60 * 128 + 60], 0x10000);
  assert.equal(shared.values[200 * 128 + 60], 0x10000);
  assert.equal(own.values[60 * 128 + 60], 0);
  assert.ok(!existsSync(join(dir, 'not-there.h5')));
  // The geometry reads its clen from the file's own camera length: that holds the clen in the
  // geometry's unit (mm: a location without one), not the distance in metres.
  const distance = await readDataset(summary.outputs.cxi, '/entry_1/instrument_1/detector_1/distance');
  assert.ok(Math.abs(Number(distance.values[0]) - 70) < 1e-9, `${distance.values[0]}`);
});

test('a mask location on one of the datasets the simulator writes is refused', async () => {
  const text = `photon_energy = 9500\nclen = 0.1\nres = 10000\nmask = /entry_1/truth_1/mask\n${panelsText}`;
  const out = join(dir, 'clash.cxi');
  await assert.rejects(
    runSimulation({
      geometry: parseGeometry(text, 'clash.geom'),
      geometryText: text,
      frames: 1,
      outPath: out,
    }),
    (error: unknown) =>
      error instanceof UserError &&
      /mask location \/entry_1\/truth_1\/mask is one of the datasets/.test(error.toLine()),
  );
  assert.ok(!existsSync(out));
});

test(
  'the CSPAD CXI geometry: the file has its mask, CrystFEL camera length 130 mm, and peaks reads it',
  needsShared,
  async () => {
    const path = sharedPath('data/geometry', 'cspad-cxiformat.geom');
    const summary = await runSimulation({
      geometry: readGeometry(path),
      geometryText: readGeometryText(path),
      frames: 1,
      seed: 1,
      hitRate: 1,
      preset: 'thermolysin',
      background: 'none',
      outPath: join(dir, 'cspad.cxi'),
    });
    const mask = await readDataset(summary.outputs.cxi, '/entry_1/data_1/mask');
    assert.deepEqual(mask.shape, [1, 1480, 1552]);
    // mask_good = 0x0000, mask_bad = 0xffff: 0 is good; the run's few dead and hot pixels are bad.
    let bad = 0;
    for (const word of mask.values as Uint16Array) if (word !== 0) bad++;
    assert.ok(bad > 20 && bad < 300, `${bad} bad pixels`);
    const encoder = await readDataset(summary.outputs.cxi, '/LCLS/detector_1/EncoderValue');
    const distance = await readDataset(summary.outputs.cxi, '/entry_1/instrument_1/detector_1/distance');
    assert.ok(Math.abs(Number(encoder.values[0]) * 1e-3 + 0.573224 - 0.13) < 1e-12);
    assert.ok(Math.abs(Number(distance.values[0]) - 0.13) < 1e-12);
    assert.deepEqual(streamCameraLengths(summary.outputs.stream), [0.13]);
    const peaks = await runPeaks({
      geometryPath: path,
      inputs: [summary.outputs.cxi],
      outPath: join(dir, 'cspad-peaks.cxi'),
      spec: pf8,
    });
    assert.equal(peaks.frames, 1);
    assert.ok(peaks.peaks > 20, `${peaks.peaks} peaks`);
  },
);
