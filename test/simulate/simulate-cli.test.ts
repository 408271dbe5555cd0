import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { computePixelMaps } from '../../src/detector/pixel-maps.js';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { openFrameReader } from '../../src/io/cxi-reader.js';
import { parseGeometry, readGeometry } from '../../src/io/geom.js';
import { getDataset, openHdf5, readSlice } from '../../src/io/hdf5.js';
import { readStream } from '../../src/io/stream/reader.js';
import { createPhysicsContext, type SimulatedFrame, simulateFramePhysics } from '../../src/simulate/frame.js';
import { parseSimulateOptions } from '../../src/simulate/options.js';
import { presetNames, presets } from '../../src/simulate/presets.js';
import { readGeometryText, resolveSetup, runSimulation } from '../../src/simulate/run.js';
import { UserError } from '../../src/util/errors.js';
import { needsShared, runCli, sharedPath } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-simulate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Two 128 x 128 modules of 100 um pixels beside the beam, stacked along ss in the slab. */
const smallGeometryText = `photon_energy = 9500
clen = 0.05
res = 10000
adu_per_photon = 1
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs
a/min_fs = 0
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
const smallGeometryPath = join(dir, 'small.geom');
writeFileSync(smallGeometryPath, smallGeometryText);

/** With `reuseFrameBuffers`, frames are not collected: their buffers are overwritten by later ones. */
async function simulateSmall(name: string, workers: number, frames = 6, reuseFrameBuffers = false) {
  const collected: SimulatedFrame[] = [];
  const summary = await runSimulation({
    geometry: parseGeometry(smallGeometryText, smallGeometryPath),
    geometryText: smallGeometryText,
    frames,
    seed: 7,
    hitRate: 0.5,
    preset: 'lysozyme',
    outPath: join(dir, `${name}.cxi`),
    workers,
    reuseFrameBuffers,
    onFrame: (_done, _total, frame) => {
      if (!reuseFrameBuffers) collected.push(frame);
    },
  });
  return { summary, collected };
}

async function readDataset(path: string, dataset: string) {
  const handle = await openHdf5(path);
  try {
    const found = getDataset(handle.file, path, dataset);
    return { shape: found.shape ?? [], values: readSlice(found, path, []) };
  } finally {
    handle.release();
  }
}

test('a run writes frames, truth and a stream that read back, identically for 1 and 2 workers', async () => {
  const one = await simulateSmall('one', 1);
  // Two workers rendering into the buffers of frames already written, as the CLI runs.
  const two = await simulateSmall('two', 2, 6, true);
  assert.equal(one.summary.frames, 6);
  assert.ok(one.summary.hits > 0 && one.summary.hits < 6, `hits ${one.summary.hits}`);
  assert.ok(one.summary.peaksPerHit.max > 0);

  // The stream is the same text; every CXI dataset holds the same values.
  const streamOne = readFileSync(one.summary.outputs.stream, 'utf8');
  assert.equal(
    streamOne.replaceAll('one.cxi', 'X'),
    readFileSync(two.summary.outputs.stream, 'utf8').replaceAll('two.cxi', 'X'),
  );
  // (HDF5 object headers carry creation times, so the files' bytes differ; their datasets must not.)
  const truthNames = [
    'nPeaks',
    'peakXPosRaw',
    'peakYPosRaw',
    'peakTotalIntensity',
    'mask',
    'h',
    'k',
    'l',
    'panel',
  ];
  truthNames.push('crystal', 'dA', 'partiality', 'photons', 'nCrystals', 'orientation');
  for (const dataset of [
    '/entry_1/data_1/data',
    ...truthNames.map((name) => `/entry_1/truth_1/${name}`),
    '/entry_1/instrument_1/source_1/photon_energy_eV',
    '/entry_1/instrument_1/detector_1/distance',
  ]) {
    const a = await readDataset(one.summary.outputs.cxi, dataset);
    const b = await readDataset(two.summary.outputs.cxi, dataset);
    assert.deepEqual(a.shape, b.shape, dataset);
    assert.deepEqual(Buffer.from(a.values.buffer), Buffer.from(b.values.buffer), dataset);
  }

  // Frames and truth read back through the CXI readers.
  const cxiPath = one.summary.outputs.cxi;
  const reader = await openFrameReader(cxiPath);
  assert.equal(reader.frameCount, 6);
  assert.deepEqual(reader.slabShape, [256, 128]);
  const truth = await readPeakTable(cxiPath, '/entry_1/truth_1');
  const mask = await readDataset(cxiPath, '/entry_1/truth_1/mask');
  assert.deepEqual(mask.shape, [6, 256, 128]);
  const h = await readDataset(cxiPath, '/entry_1/truth_1/h');
  const panel = await readDataset(cxiPath, '/entry_1/truth_1/panel');
  const nCrystals = await readDataset(cxiPath, '/entry_1/truth_1/nCrystals');
  const orientation = await readDataset(cxiPath, '/entry_1/truth_1/orientation');
  const clen = await readDataset(cxiPath, '/entry_1/instrument_1/detector_1/distance');
  const maxPeaks = h.shape[1];
  const maxCrystals = orientation.shape[1];
  one.collected.forEach((frame, i) => {
    const rendered = frame.rendered;
    assert.equal(truth[i].count, rendered.truth.count);
    assert.equal(nCrystals.values[i], frame.crystals.length);
    assert.equal(clen.values[i], 0.05);
    const image = reader.readFrame(i);
    assert.deepEqual(image, rendered.imageAdu);
    for (let p = 0; p < truth[i].count; p++) {
      const spot = frame.spots[rendered.truthSpotIndex[p]];
      assert.equal(truth[i].fs[p], Math.fround(spot.fs));
      assert.equal(h.values[i * maxPeaks + p], spot.h);
      assert.equal(panel.values[i * maxPeaks + p], spot.panel);
      // The spot centre is a peak pixel of the mask.
      const pixel = Math.round(spot.ss) * 128 + Math.round(spot.fs);
      assert.equal(mask.values[i * 256 * 128 + pixel], rendered.peakMask[pixel]);
    }
    for (let c = 0; c < maxCrystals; c++) {
      const value = orientation.values[(i * maxCrystals + c) * 9];
      if (c < frame.crystals.length) assert.equal(value, frame.crystals[c].reciprocalPerA[0]);
      else assert.ok(Number.isNaN(value));
    }
  });
  reader.close();

  // The stream: one chunk per frame, crystals in nm^-1, reflections = the projected spots.
  const stream = await readStream(one.summary.outputs.stream);
  assert.equal(stream.geometryText?.trim(), smallGeometryText.trim());
  assert.equal(stream.unitCell?.centering, 'P');
  let index = 0;
  for await (const chunk of stream.chunks) {
    const frame = one.collected[index];
    assert.equal(chunk.event, `//${index}`);
    assert.equal(chunk.imageFilename, cxiPath);
    assert.equal(chunk.hit, frame.conditions.hit);
    assert.equal(chunk.crystals.length, frame.crystals.length);
    assert.equal(chunk.peaks?.fsPx.length, frame.rendered.truth.count);
    chunk.crystals.forEach((crystal, c) => {
      const r = frame.crystals[c].reciprocalPerA;
      assert.ok(Math.abs((crystal.astarPerNm?.[0] ?? 0) - 10 * r[0]) < 1e-6);
      assert.ok(Math.abs((crystal.cellNm?.[2] ?? 0) - 3.79) < 1e-6);
      const spots = frame.spots.filter((spot) => spot.crystal === c);
      const table = crystal.reflections;
      assert.ok(table !== undefined);
      assert.equal(table.h.length, spots.length);
      spots.forEach((spot, row) => {
        assert.deepEqual([table.h[row], table.k[row], table.l[row]], [spot.h, spot.k, spot.l]);
        // CrystFEL convention: half a pixel more than CXI; the table prints one decimal.
        assert.ok(Math.abs(table.fsPx[row] - (spot.fs + 0.5)) <= 0.05 + 1e-9);
        assert.ok(Math.abs(table.ssPx[row] - (spot.ss + 0.5)) <= 0.05 + 1e-9);
        assert.equal(table.panelNames[table.panelIndex[row]], spot.panel === 0 ? 'a' : 'b');
      });
    });
    index++;
  }
  assert.equal(index, 6);
});

test('the CLI runs with --json and a progress line', () => {
  const out = join(dir, 'cli.cxi');
  const result = runCli([
    'simulate',
    '--geom',
    smallGeometryPath,
    '--frames',
    '3',
    '--seed',
    '2',
    '--out',
    out,
    '--json',
    '--hit-rate',
    '1',
    '--background',
    'none',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout);
  assert.equal(summary.frames, 3);
  assert.equal(summary.hits, 3);
  assert.equal(summary.outputs.stream, join(dir, 'cli.stream'));
  assert.ok(summary.peaksPerFrame.mean > 0);
  assert.match(result.stderr, /simulate 3\/3/);
});

test('bad input is one line and exit 2', async () => {
  const emptyGeometry = join(dir, 'empty.geom');
  writeFileSync(emptyGeometry, '; nothing here\nclen = 0.1\n');
  const out = join(dir, 'bad.cxi');
  // Through the CLI: an impossible cell and a geometry with no panels.
  const cliCases: [string[], RegExp][] = [
    [
      ['--geom', smallGeometryPath, '--cell', '10 10 10 60 60 150'],
      /--cell: angles 60, 60, 150 degrees cannot close a cell/,
    ],
    [['--geom', emptyGeometry], /empty\.geom: line \d+: no panels defined/],
  ];
  for (const [args, message] of cliCases) {
    const result = runCli(['simulate', '--frames', '1', '--out', out, ...args]);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], message);
  }
  // The same validation in process (the CLI prints UserError.toLine()).
  const cases: [Record<string, string>, RegExp][] = [
    [{ photonEnergyEv: '-5' }, /^--photon-energy-ev: must be a positive energy/],
    [{ preset: 'nope' }, /^--preset: unknown preset 'nope'/],
    [{ hitRate: '2' }, /^--hit-rate: must be between 0 and 1/],
    [{ frames: '0' }, /^--frames: must be an integer from 1/],
    [{ workers: 'many' }, /^--workers: must be an integer/],
    [{ cell: '10 10' }, /^--cell: expected six numbers/],
    [{ centering: 'Q' }, /^--centering: unknown centering 'Q'/],
    [{ clenM: '-0.2' }, /small\.geom: panel 'a' would sit at z = -0\.2000 m/],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(
      runSimulation({
        geometry: parseGeometry(smallGeometryText, smallGeometryPath),
        geometryText: smallGeometryText,
        frames: '1',
        outPath: out,
        ...options,
      }),
      (error: unknown) => error instanceof UserError && message.test(error.toLine()),
      JSON.stringify(options),
    );
  }
  assert.throws(
    () =>
      resolveSetup(
        { ...parseGeometry(smallGeometryText), panels: [] },
        parseSimulateOptions({ frames: 1, outPath: out }),
      ),
    /geometry has no panels/,
  );
});

const realGeometries = [
  'cspad-cxiformat.geom',
  'jungfrau4M.geom',
  'epix10k2M.geom',
  'rayonix.geom',
  'pilatus.geom',
];

test('every preset runs on the CSPAD, Jungfrau 4M, ePix10k2M, Rayonix and Pilatus', needsShared, async () => {
  for (const [g, name] of realGeometries.entries()) {
    const path = sharedPath('data/geometry', name);
    const geometry = readGeometry(path);
    // One full frame (image, truth, files) per detector, presets taking turns; the physics of every preset.
    const fullPreset = presetNames[g % presetNames.length];
    const summary = await runSimulation({
      geometry,
      geometryText: readGeometryText(path),
      frames: 1,
      hitRate: 1,
      preset: fullPreset,
      outPath: join(dir, `${name}.cxi`),
    });
    assert.equal(summary.hits, 1);
    assert.ok(
      summary.predictedPerHit.max > 20,
      `${name} ${fullPreset}: ${summary.predictedPerHit.max} predicted`,
    );
    assert.ok(summary.peaksPerHit.max > 5, `${name} ${fullPreset}: ${summary.peaksPerHit.max} truth peaks`);
    if (name === 'cspad-cxiformat.geom') {
      // The geometry reads clen (mm) from the data: the file holds it there, putting the detector at the
      // preset's distance once CrystFEL adds the coffset.
      const encoder = await readDataset(summary.outputs.cxi, '/LCLS/detector_1/EncoderValue');
      const coffsets = geometry.panels.map((panel) => panel.coffsetM).sort((a, b) => a - b);
      const distance = Number(encoder.values[0]) * 1e-3 + coffsets[coffsets.length >> 1];
      assert.ok(Math.abs(distance - presets[fullPreset].beam.detectorDistanceM) < 1e-9, `${distance} m`);
      const energy = await readDataset(summary.outputs.cxi, '/LCLS/photon_energy_eV');
      assert.ok(Math.abs(Number(energy.values[0]) / presets[fullPreset].beam.photonEnergyEv - 1) < 0.01);
    }
    rmSync(summary.outputs.cxi);
    const maps = computePixelMaps(geometry);
    for (const preset of presetNames) {
      const setup = resolveSetup(
        geometry,
        parseSimulateOptions({ frames: 1, outPath: 'x', preset, hitRate: 1 }),
      );
      const context = createPhysicsContext(setup, maps);
      const physics = simulateFramePhysics(context, 0);
      assert.ok(physics.spots.length > 20, `${name} ${preset}: ${physics.spots.length} spots`);
    }
  }
});
