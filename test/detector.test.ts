import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import h5wasm from 'h5wasm/node';
import { assemble, assembleImage, assemblyMap } from '../src/detector/assemble.js';
import { slabLayout } from '../src/detector/layout.js';
import { applyMaskBits, geometryMask } from '../src/detector/mask.js';
import { buildMask } from '../src/detector/mask-file.js';
import {
  computePixelMaps,
  pixelMapsFor,
  resolutionFor,
  resolutionMap,
  slabToLab,
  twoThetaMap,
} from '../src/detector/pixel-maps.js';
import { parseGeometry, readGeometry } from '../src/io/geom.js';
import { UserError } from '../src/util/errors.js';
import { needsShared, sharedPath } from './helpers.js';

/**
 * Two panels, 1 mm pixels, clen 0.1 m, 1 Å (12398.42 eV). Panel A: 4x2 pixels, fs = +x, ss = +y,
 * corner (-2, -2) px. Panel B: 4x1 pixels at slab row 3 (row 2 belongs to no panel), fs tilted into z,
 * corner (10, -0.5) px, coffset 2 mm.
 */
const TINY = `
res = 1000
clen = 0.1
photon_energy = 12398.41984
A/min_fs = 0
A/max_fs = 3
A/min_ss = 0
A/max_ss = 1
A/corner_x = -2
A/corner_y = -2
A/fs = x
A/ss = y
B/min_fs = 0
B/max_fs = 3
B/min_ss = 3
B/max_ss = 3
B/corner_x = 10
B/corner_y = -0.5
B/fs = +1x +1z
B/ss = y
B/coffset = 0.002
`;

function close(actual: number, expected: number, relative = 1e-5): void {
  assert.ok(
    Math.abs(actual - expected) <= relative * Math.max(1, Math.abs(expected)),
    `expected ${expected}, got ${actual}`,
  );
}

test('pixel maps: slab shape, panel index and lab x/y/z at known pixels', () => {
  const maps = computePixelMaps(parseGeometry(TINY));
  assert.deepEqual([maps.ssSize, maps.fsSize], [4, 4]);
  assert.deepEqual(Array.from(maps.panelIndex), [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 1]);
  // A (fs 0, ss 0): centre at corner + 0.5 fs + 0.5 ss = (-1.5, -1.5) px = (-1.5, -1.5) mm.
  close(maps.xM[0], -1.5e-3);
  close(maps.yM[0], -1.5e-3);
  close(maps.radiusPx[0], Math.SQRT2 * 1.5);
  // A (fs 3, ss 1) at slab index 7: (1.5, -0.5) px.
  close(maps.xM[7], 1.5e-3);
  close(maps.yM[7], -0.5e-3);
  close(maps.radiusPx[7], 1.5811388300841898);
  // B (fs 0): x = 10 + 0.5, y = -0.5 + 0.5 = 0, z = coffset + 0.5 px * 1 mm.
  close(maps.xM[12], 10.5e-3);
  close(maps.yM[12], 0);
  close(maps.zOffsetM[12], 0.0025);
  close(maps.radiusPx[12], 10.5);
  // B (fs 2): the z term grows along fs.
  close(maps.zOffsetM[14], 0.002 + 2.5e-3);
  assert.ok(Number.isNaN(maps.xM[8]) && Number.isNaN(maps.radiusPx[9]), 'no-panel pixels are NaN');
});

test('resolution and 2θ maps match hand-computed values, including coffset and z terms', () => {
  const maps = computePixelMaps(parseGeometry(TINY));
  const resolution = resolutionMap(maps);
  // 1/d = 2 sin(θ)/λ with λ = 1 Å; values computed separately (Python).
  close(resolution[0], 212096247.4752226);
  close(resolution[7], 158099062.22476122);
  close(resolution[12], 1020386212.3436756);
  assert.ok(Number.isNaN(resolution[10]));
  const twoTheta = twoThetaMap(maps);
  close(twoTheta[0], 0.02121002231393977);
  close(twoTheta[12], 0.10208294041262635);
  // Explicit values override the geometry: doubling the energy doubles 1/d.
  const doubled = resolutionMap(maps, { photonEnergyEv: 2 * 12398.41984 });
  close(doubled[0], 2 * 212096247.4752226);
  // A longer camera length lowers the resolution at the same pixel.
  assert.ok(resolutionMap(maps, { clenM: 0.5 })[0] < resolution[0]);
});

test('maps and resolution are computed once per geometry and beam values', () => {
  const geometry = parseGeometry(TINY);
  const maps = pixelMapsFor(geometry);
  assert.equal(pixelMapsFor(geometry), maps);
  assert.notEqual(pixelMapsFor(parseGeometry(TINY)), maps, 'another geometry gets its own maps');
  const first = resolutionFor(maps);
  assert.equal(resolutionFor(maps), first);
  const other = resolutionFor(maps, { photonEnergyEv: 2 * 12398.41984 });
  assert.notEqual(other, first);
  close(other[0], 2 * first[0]);
  close(first[0], 212096247.4752226, 1e-5);
});

test('maps need explicit clen / photon energy when the geometry gives data paths', () => {
  const text = TINY.replace('clen = 0.1', 'clen = /LCLS/detectorPosition').replace(
    'photon_energy = 12398.41984',
    'photon_energy = /LCLS/photon_energy_eV',
  );
  const maps = computePixelMaps(parseGeometry(text, 'paths.geom'));
  assert.throws(
    () => twoThetaMap(maps),
    (error: unknown) => error instanceof UserError && /clenM/.test(error.message),
  );
  assert.throws(
    () => resolutionMap(maps, { photonEnergyEv: 12398.41984 }),
    (error: unknown) => error instanceof UserError && /clenM/.test(error.message),
  );
  assert.throws(
    () => resolutionMap(maps, { clenM: 0.1 }),
    (error: unknown) => error instanceof UserError && /photonEnergyEv/.test(error.message),
  );
  close(resolutionMap(maps, { clenM: 0.1, photonEnergyEv: 12398.41984 })[0], 212096247.4752226);
});

test('slabToLab follows the CXI convention (0.0 = first pixel centre) and agrees with the maps', () => {
  const maps = computePixelMaps(parseGeometry(TINY));
  const centre = slabToLab(maps, 0, 0);
  assert.ok(centre !== null);
  close(centre.xM, -1.5e-3);
  close(centre.yM, -1.5e-3);
  const edge = slabToLab(maps, -0.5, -0.5); // the panel's very corner
  assert.ok(edge !== null);
  close(edge.xM, -2e-3);
  close(edge.yM, -2e-3);
  assert.equal(slabToLab(maps, 1, 2), null, 'row 2 has no panel');
  assert.equal(slabToLab(maps, 99, 0), null);
});

test('slabToLab agrees with the maps on every panel of the real CSPAD geometry', needsShared, () => {
  const maps = computePixelMaps(readGeometry(sharedPath('data/real/cspad-thermolysin.geom')));
  for (let k = 0; k < 200; k++) {
    const ss = (k * 7919) % maps.ssSize;
    const fs = (k * 104729) % maps.fsSize;
    const point = slabToLab(maps, fs, ss);
    assert.ok(point !== null);
    const i = ss * maps.fsSize + fs;
    close(point.xM, maps.xM[i], 1e-5);
    close(point.yM, maps.yM[i], 1e-5);
    assert.equal(point.panel, maps.panelIndex[i]);
  }
  assert.equal(maps.overlapPixels, 0);
  let covered = 0;
  for (const p of maps.panelIndex) if (p >= 0) covered++;
  assert.equal(covered, 64 * 194 * 185);
});

test('panels with fixed-index dims are stacked along ss', () => {
  const text = `
res = 1000
clen = 0.1
dim0 = %
dim2 = ss
dim3 = fs
${[0, 1, 2]
  .map(
    (k) => `m${k}/dim1 = ${k}
m${k}/min_fs = 0
m${k}/max_fs = 2
m${k}/min_ss = 0
m${k}/max_ss = 1
m${k}/corner_x = ${k * 10}
m${k}/corner_y = 0
m${k}/fs = x
m${k}/ss = y`,
  )
  .join('\n')}
`;
  const geometry = parseGeometry(text);
  assert.deepEqual(geometry.panels[1].dims, ['%', 1, 'ss', 'fs']);
  const layout = slabLayout(geometry);
  assert.deepEqual([layout.ssSize, layout.fsSize], [6, 3]);
  assert.deepEqual(layout.panelSsOffset, [0, 2, 4]);
  assert.deepEqual(
    layout.blocks.map((block) => block.fixedIndices),
    [[0], [1], [2]],
  );
  const maps = computePixelMaps(geometry);
  // Slab row 4 is panel m2's first row: x = 20 + 0.5.
  assert.equal(maps.panelIndex[4 * 3], 2);
  close(maps.xM[4 * 3], 20.5e-3);
});

test('geometry mask: bad regions in both forms, no_index and edge pixels', () => {
  const text = `${TINY}
bad_a/min_fs = 1
bad_a/max_fs = 2
bad_a/min_ss = 0
bad_a/max_ss = 0
bad_a/panel = A
bad_xy/min_x = 11
bad_xy/max_x = 20
bad_xy/min_y = -5
bad_xy/max_y = 5
`;
  const mask = geometryMask(computePixelMaps(parseGeometry(text)));
  // Row 0: fs 1-2 bad (fs/ss region); row 2: no panel; row 3: B pixels whose corner x (10 + f) lies
  // strictly inside (11, 20): f = 2, 3.
  assert.deepEqual(Array.from(mask), [1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0]);

  const noIndex = geometryMask(computePixelMaps(parseGeometry(`${TINY}\nB/no_index = 1\n`)));
  assert.deepEqual(Array.from(noIndex.slice(12)), [0, 0, 0, 0]);
  assert.deepEqual(Array.from(noIndex.slice(0, 8)), [1, 1, 1, 1, 1, 1, 1, 1]);

  const edges = geometryMask(computePixelMaps(parseGeometry(`mask_edge_pixels = 1\n${TINY}`)));
  assert.deepEqual(Array.from(edges.slice(0, 8)), [0, 0, 0, 0, 0, 0, 0, 0], 'a 2-row panel is all edge');
});

test(
  'fs/ss bad regions without a panel apply in data coordinates to every panel they overlap',
  needsShared,
  () => {
    const geometry = readGeometry(sharedPath('data/geometry/pilatus.geom'));
    const maps = computePixelMaps(geometry);
    const mask = geometryMask(maps);
    // bad_v1: fs 487-493 over all ss.
    assert.equal(mask[100 * maps.fsSize + 490], 0);
    assert.equal(mask[100 * maps.fsSize + 486], 1);
    // bad_h1: ss 195-211.
    assert.equal(mask[200 * maps.fsSize + 10], 0);
  },
);

test('applyMaskBits: bad unless all good bits set, bad if any bad bit set', () => {
  const mask = new Uint8Array(4).fill(1);
  applyMaskBits(mask, 4, [0b01, 0b00, 0b11, 0b101], 0b01, 0b10, { ss0: 0, ss1: 0, fs0: 0, fs1: 3 });
  assert.deepEqual(Array.from(mask), [1, 0, 0, 1]);
});

test('HDF5 mask files: 2-D slab masks and per-event 3-D masks', async () => {
  await h5wasm.ready;
  const dir = mkdtempSync(join(tmpdir(), 'braggflow-mask-'));
  try {
    const words = [1, 0, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1];
    const file = new h5wasm.File(join(dir, 'mask.h5'), 'w');
    file.create_dataset({ name: 'mask', data: new Uint16Array(words), shape: [4, 4] });
    const perEvent = [...new Array(16).fill(0), ...words];
    file.create_dataset({ name: 'events', data: new Uint16Array(perEvent), shape: [2, 4, 4] });
    file.close();

    const geometry = parseGeometry(
      `mask_file = mask.h5\nmask = /mask\nmask_good = 0x1\nmask_bad = 0x2\n${TINY}`,
      join(dir, 'tiny.geom'),
    );
    const expected = [1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1];
    assert.deepEqual(Array.from(await buildMask(computePixelMaps(geometry))), expected);

    // No mask_file: read from the image file the caller names; event 1 of a 3-D mask.
    const fromData = parseGeometry(
      `mask0_data = /events\nmask0_goodbits = 1\nmask0_badbits = 2\n${TINY}`,
      'tiny.geom',
    );
    const maps = computePixelMaps(fromData);
    assert.deepEqual(
      Array.from(await buildMask(maps, { dataFile: join(dir, 'mask.h5'), eventIndex: 1 })),
      expected,
    );
    const event0 = await buildMask(maps, { dataFile: join(dir, 'mask.h5'), eventIndex: 0 });
    assert.equal(
      event0.reduce((sum, v) => sum + v, 0),
      0,
      'event 0 words are all 0, so every pixel lacks the good bit',
    );
    await assert.rejects(
      buildMask(maps),
      (error: unknown) => error instanceof UserError && /data file/.test(error.message),
    );
    await assert.rejects(
      buildMask(maps, { dataFile: join(dir, 'mask.h5'), eventIndex: 5 }),
      (error: unknown) => error instanceof UserError && /no frame 5/.test(error.message),
    );
    const wrongShape = parseGeometry(
      `mask_file = ${join(dir, 'mask.h5')}\nmask = /mask\n${TINY.replace('B/max_fs = 3', 'B/max_fs = 4').replace('A/max_fs = 3', 'A/max_fs = 4')}`,
    );
    await assert.rejects(
      buildMask(computePixelMaps(wrongShape)),
      (error: unknown) => error instanceof UserError && /does not hold/.test(error.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('assembled image: two panels land where the geometry puts them', () => {
  // A: 2x1 pixels, fs = +x, corner (0, 0): pixels cover x in [0,1) and [1,2), y in [0,1).
  // B: 2x1 pixels, fs = -y, ss = -x, corner (0, 0): pixels cover y in (-1,0] and (-2,-1], x in (-1,0].
  const text = `
res = 1000
clen = 0.1
A/min_fs = 0
A/max_fs = 1
A/min_ss = 0
A/max_ss = 0
A/corner_x = 0
A/corner_y = 0
A/fs = x
A/ss = y
B/min_fs = 0
B/max_fs = 1
B/min_ss = 1
B/max_ss = 1
B/corner_x = 0
B/corner_y = 0
B/fs = -y
B/ss = -x
`;
  const maps = computePixelMaps(parseGeometry(text));
  const image = assembleImage(maps, new Float32Array([10, 20, 30, 40]));
  assert.equal(image.widthPx, 3);
  assert.equal(image.heightPx, 3);
  // Row 0 is the top (largest y); column 0 the smallest x.
  const nan = Number.NaN;
  assert.deepEqual(Array.from(image.values), [nan, 10, 20, 30, nan, nan, 40, nan, nan]);
  assert.deepEqual(image.beamCentrePx, { x: 0.5, y: 0.5 });
  const zeros = assemble(assemblyMap(maps), new Float32Array([1, 2, 3, 4]), 0);
  assert.deepEqual(Array.from(zeros.values), [0, 1, 2, 3, 0, 0, 4, 0, 0]);
});

test('assembled real CSPAD image covers every panel pixel about once', needsShared, () => {
  const maps = computePixelMaps(readGeometry(sharedPath('data/real/cspad-thermolysin.geom')));
  const map = assemblyMap(maps);
  const hits = new Uint16Array(maps.ssSize * maps.fsSize);
  for (const source of map.slabIndex) if (source >= 0) hits[source]++;
  let missing = 0;
  let covered = 0;
  for (let i = 0; i < hits.length; i++) {
    if (maps.panelIndex[i] < 0) continue;
    if (hits[i] === 0) missing++;
    else covered++;
  }
  // Panels are rotated by < 0.5°, so nearest-pixel sampling drops only a sliver of pixels.
  assert.ok(missing / (missing + covered) < 0.01, `missing ${missing} of ${missing + covered}`);
  // The beam lies in the central hole of the CSPAD.
  const bx = Math.round(map.beamCentrePx.x);
  const by = Math.round(map.beamCentrePx.y);
  assert.equal(map.slabIndex[by * map.widthPx + bx], -1);
});
