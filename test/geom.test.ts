import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseGeometry, parseVector, readGeometry } from '../src/io/geom.js';
import { inspectGeom, summariseGeometry } from '../src/io/inspect/geom.js';
import { UserError } from '../src/util/errors.js';
import { needsShared, runCli, sharedPath } from './helpers.js';

const EXPECTED_PANELS: Record<string, number> = {
  'geometry/cspad-cxiformat.geom': 64,
  'geometry/cspad-single.geom': 64,
  'geometry/epix10k2M.geom': 64,
  'geometry/jungfrau4M.geom': 64,
  'geometry/jf-swissfel-16M.geom': 32,
  'geometry/lcls-dec.geom': 2,
  'geometry/lcls-june-r0013-r0128.geom': 2,
  'geometry/lcls-xpp-estimate.geom': 1,
  'geometry/simple.geom': 2,
  'geometry/pilatus.geom': 1,
  'geometry/pilatus-om.geom': 1,
  'geometry/rayonix.geom': 1,
  'geometry/Eiger16M-binning2-nativefiles.geom': 1,
  'real/cspad-thermolysin.geom': 64,
};

/** `name/key = value` pairs straight from the file text, independent of the parser. */
function panelValues(text: string, key: string): Map<string, string> {
  const values = new Map<string, string>();
  const pattern = new RegExp(`^\\s*([A-Za-z0-9_]+)/${key}\\s*=\\s*([^;\\n]*?)\\s*(;.*)?$`, 'gm');
  for (const match of text.matchAll(pattern)) if (!match[1].startsWith('bad')) values.set(match[1], match[2]);
  return values;
}

test('every shared geometry parses, with the expected panel count (library and CLI)', needsShared, () => {
  for (const [name, panels] of Object.entries(EXPECTED_PANELS)) {
    const path = sharedPath('data', name);
    const geometry = readGeometry(path);
    assert.equal(geometry.panels.length, panels, name);
    assert.equal(geometry.sourcePath, path);
    const result = runCli(['geom', 'info', path, '--json']);
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.panels, panels, name);
    const pixels = geometry.panels.reduce(
      (sum, p) => sum + (p.maxFs - p.minFs + 1) * (p.maxSs - p.minSs + 1),
      0,
    );
    assert.equal(summary.pixels, pixels, name);
    assert.equal(summary.badRegions, geometry.badRegions.length, name);
  }
});

test('CSPAD panels match the file text: ranges, corners, fs/ss vectors', needsShared, () => {
  for (const name of [
    'geometry/cspad-cxiformat.geom',
    'geometry/cspad-single.geom',
    'real/cspad-thermolysin.geom',
  ]) {
    const path = sharedPath('data', name);
    const text = readFileSync(path, 'utf8');
    const geometry = readGeometry(path);
    const cornerX = panelValues(text, 'corner_x');
    const minSs = panelValues(text, 'min_ss');
    const fsText = panelValues(text, 'fs');
    assert.equal(cornerX.size, geometry.panels.length);
    for (const panel of geometry.panels) {
      assert.equal(panel.cornerXPx, Number(cornerX.get(panel.name)), `${name} ${panel.name}`);
      assert.equal(panel.minSs, Number(minSs.get(panel.name)));
      const terms = (fsText.get(panel.name) ?? '').match(/[+-]?[0-9.]+(?=x)|[+-]?[0-9.]+(?=y)/g) ?? [];
      assert.equal(panel.fs.x, Number(terms[0]), `${name} ${panel.name} fs.x`);
      assert.equal(panel.fs.y, Number(terms[1]), `${name} ${panel.name} fs.y`);
      assert.equal(panel.fs.z, 0);
    }
  }
  const cxi = readGeometry(sharedPath('data/geometry/cspad-cxiformat.geom'));
  const q0a0 = cxi.panels[0];
  assert.equal(q0a0.name, 'q0a0');
  assert.deepEqual([q0a0.cornerXPx, q0a0.cornerYPx], [443.819, -49.8719]);
  assert.deepEqual(q0a0.fs, { x: 0.004806, y: 0.999989, z: 0 });
  assert.deepEqual(q0a0.ss, { x: -0.999989, y: 0.004806, z: 0 });
  assert.equal(q0a0.resPxPerM, 9090.91);
  assert.equal(q0a0.aduPerEv, 0.00338);
  assert.equal(q0a0.coffsetM, 0.573224);
  // A data-file camera length without units is in millimetres (CrystFEL).
  assert.deepEqual(q0a0.clen, { kind: 'path', path: '/LCLS/detector_1/EncoderValue', scaleToM: 1e-3 });
  assert.deepEqual(q0a0.photonEnergy, { kind: 'path', path: '/LCLS/photon_energy_eV', unit: 'eV', scale: 1 });
  assert.deepEqual(q0a0.dims, ['%', 'ss', 'fs']);
  assert.equal(q0a0.dataPath, '/entry_1/data_1/data');
  assert.deepEqual(q0a0.masks, [
    { index: 0, dataPath: '/entry_1/data_1/mask', file: undefined, goodBits: 0, badBits: 0xffff },
  ]);
  assert.deepEqual(cxi.groups.q0, ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7']);
  assert.deepEqual(cxi.groups.all, ['q0', 'q1', 'q2', 'q3']);

  const real = readGeometry(sharedPath('data/real/cspad-thermolysin.geom'));
  assert.deepEqual(real.panels[0].clen, { kind: 'value', clenM: 0.130107 });
  assert.deepEqual(real.panels[63].photonEnergy, { kind: 'value', photonEnergyEv: 9742.54 });
  assert.equal(real.panels[5].aduPerPhoton, 25);
  assert.equal(real.panels[5].maxAdu, 90000);
});

test(
  'lcls-dec: globals before panels, per-panel overrides, x/y bad regions, legacy mask keys',
  needsShared,
  () => {
    const geometry = readGeometry(sharedPath('data/geometry/lcls-dec.geom'));
    const [upper, lower] = geometry.panels;
    assert.equal(upper.name, 'upper');
    assert.equal(upper.aduPerEv, 0.0835);
    assert.equal(lower.aduPerEv, 0.0835);
    assert.equal(upper.coffsetM, 0);
    assert.equal(lower.coffsetM, 3e-3);
    assert.deepEqual(upper.clen, { kind: 'value', clenM: 67.8e-3 });
    assert.equal(upper.photonEnergy, undefined);
    assert.deepEqual(upper.masks, [
      { index: 0, dataPath: '/processing/hitfinder/masks', file: undefined, goodBits: 7, badBits: 0 },
    ]);
    assert.equal(upper.extraKeys.badrow_direction, 'y', 'unknown keys are kept');
    assert.deepEqual(
      geometry.badRegions.map(
        (region) => region.kind === 'xy' && [region.name, region.minX, region.maxX, region.minY, region.maxY],
      ),
      [
        ['bad_jetneartobeam', -15, 15, 71.3, 159.3],
        ['bad_jetfarfrombeam', -25, 25, 159.3, 600],
      ],
    );
  },
);

test(
  'jf-swissfel-16M: units on clen and photon_energy, "0.0" indices, panel bad regions, mask file',
  needsShared,
  () => {
    const geometry = readGeometry(sharedPath('data/geometry/jf-swissfel-16M.geom'));
    const m1 = geometry.panels[1];
    assert.deepEqual(m1.clen, { kind: 'value', clenM: 0.0953 });
    assert.deepEqual(m1.photonEnergy, { kind: 'value', photonEnergyEv: 4570 });
    assert.deepEqual([m1.minFs, m1.maxFs, m1.minSs, m1.maxSs], [0, 1029, 514, 1027]);
    assert.equal(m1.coffsetM, -0.000085);
    assert.equal(m1.aduPerPhoton, 1);
    assert.deepEqual(m1.masks, [
      { index: 0, dataPath: '/mask', file: 'run47.JF06T32V01.mask.h5', goodBits: 1, badBits: 0 },
    ]);
    const bs1 = geometry.badRegions[0];
    assert.equal(bs1.kind, 'fsss');
    assert.equal(bs1.panel, 'm15');
    assert.ok(bs1.kind === 'fsss' && bs1.minSs === 7710 && bs1.maxFs === 1029);
  },
);

test(
  'pilatus-om / rayonix: repeated dim0 (last wins), rigid groups, per-panel clen (CrystFEL 0.x)',
  needsShared,
  () => {
    const rayonix = readGeometry(sharedPath('data/geometry/rayonix.geom'));
    assert.deepEqual(rayonix.panels[0].dims, ['ss', 'fs']);
    assert.deepEqual(rayonix.panels[0].clen, { kind: 'value', clenM: 0.05 });
    assert.equal(rayonix.clen, undefined, 'no top-level clen');
    assert.deepEqual(rayonix.rigidGroups, { d0: ['0'] });
    assert.deepEqual(rayonix.rigidGroupCollections, { quadrants: ['d0'], asics: ['d0'] });
    const eiger = readGeometry(sharedPath('data/geometry/Eiger16M-binning2-nativefiles.geom'));
    assert.deepEqual(eiger.panels[0].dims, ['%', 'ss', 'fs']);
    assert.equal(eiger.badRegions.length, 4);
    assert.ok(eiger.badRegions.every((region) => region.kind === 'fsss' && region.panel === undefined));
    assert.deepEqual(eiger.panels[0].masks, [], 'commented-out mask lines are ignored');
  },
);

const PANEL = (name: string, extra = '') => `
${name}/min_fs = 0
${name}/max_fs = 9
${name}/min_ss = 0
${name}/max_ss = 4
${name}/corner_x = -5
${name}/corner_y = -2.5
${name}/fs = x
${name}/ss = y
${extra}`;

test('top-level panel keys apply only to panels first mentioned after them', () => {
  const text = `res = 100\nadu_per_eV = 0.5\n${PANEL('a')}\nres = 200\ncoffset = 0.01\n${PANEL('b', 'b/res = 300')}\n${PANEL('c')}\na/max_adu = 7`;
  const geometry = parseGeometry(text);
  const [a, b, c] = geometry.panels;
  assert.deepEqual([a.resPxPerM, b.resPxPerM, c.resPxPerM], [100, 300, 200]);
  assert.deepEqual([a.coffsetM, b.coffsetM, c.coffsetM], [0, 0.01, 0.01]);
  assert.deepEqual([a.aduPerEv, c.aduPerEv], [0.5, 0.5]);
  assert.equal(a.maxAdu, 7, 'a panel key may come after other panels');
  assert.equal(b.maxAdu, Number.POSITIVE_INFINITY);
});

test('clen and beam energy: anywhere in the file, with units, wavelength, keV and 0.x forms', () => {
  const base = `res = 100\n${PANEL('a')}`;
  assert.deepEqual(parseGeometry(`${base}\nclen = 0.2\nphoton_energy = 9.5 keV`).panels[0].clen, {
    kind: 'value',
    clenM: 0.2,
  });
  assert.deepEqual(parseGeometry(`${base}\nphoton_energy = 9.5 keV`).panels[0].photonEnergy, {
    kind: 'value',
    photonEnergyEv: 9500,
  });
  const wavelength = parseGeometry(`${base}\nwavelength = 1.0 A`).panels[0].photonEnergy;
  assert.ok(wavelength?.kind === 'value' && Math.abs(wavelength.photonEnergyEv - 12398.42) < 0.01);
  assert.deepEqual(parseGeometry(`clen = 120 mm\n${base}`).panels[0].clen, { kind: 'value', clenM: 0.12 });
  assert.deepEqual(parseGeometry(`clen = /det/z m\n${base}`).panels[0].clen, {
    kind: 'path',
    path: '/det/z',
    scaleToM: 1,
  });
  const beam = parseGeometry(`beam/photon_energy = /LCLS/eV\nbeam/photon_energy_scale = 1000\n${base}`);
  assert.deepEqual(beam.photonEnergy, { kind: 'path', path: '/LCLS/eV', unit: 'eV', scale: 1000 });
  // A panel takes the value in force when first mentioned.
  const twoClens = parseGeometry(`clen = 0.1\n${base}\nclen = 0.3\n${PANEL('b', 'b/res = 1')}`);
  assert.deepEqual(
    twoClens.panels.map((panel) => panel.clen?.kind === 'value' && panel.clen.clenM),
    [0.1, 0.3],
  );
});

test('Windows line endings and a byte-order mark are accepted', () => {
  const text = `\uFEFFres = 100\r\nclen = 0.1\r\n${PANEL('a').replaceAll('\n', '\r\n')}`;
  const geometry = parseGeometry(text);
  assert.equal(geometry.panels[0].resPxPerM, 100);
  assert.equal(geometry.panels[0].cornerYPx, -2.5);
});

test('fs/ss vectors: signs, implicit 1, z terms, spaces', () => {
  assert.deepEqual(parseVector('+0.0055x -0.9999y', 'fs'), { x: 0.0055, y: -0.9999, z: 0 });
  assert.deepEqual(parseVector('-x', 'fs'), { x: -1, y: 0, z: 0 });
  assert.deepEqual(parseVector('x', 'fs'), { x: 1, y: 0, z: 0 });
  assert.deepEqual(parseVector('1.0x +0.2y +0.1z', 'fs'), { x: 1, y: 0.2, z: 0.1 });
  assert.deepEqual(parseVector('0.0003420x -0.9999310y', 'fs'), { x: 0.000342, y: -0.999931, z: 0 });
  assert.deepEqual(parseVector('+ 0.5x - 0.5 y', 'fs'), { x: 0.5, y: -0.5, z: 0 });
  for (const bad of ['2q', '1x2y', 'x y', '+-x', '0x', '1.2.3x', 'xx1']) {
    assert.throws(() => parseVector(bad, 'fs'), /fs/, bad);
  }
});

interface BadCase {
  name: string;
  text: string;
  line: number;
  message: RegExp;
}

const GOOD_HEAD = 'res = 100\nclen = 0.1\n'; // lines 1-2

const BAD_CASES: BadCase[] = [
  {
    name: 'no equals sign',
    text: `${GOOD_HEAD}${PANEL('a')}\nthis line is wrong`,
    line: 13,
    message: /key = value/,
  },
  { name: 'bad number', text: `${GOOD_HEAD}res = 1OO\n${PANEL('a')}`, line: 3, message: /expected a number/ },
  { name: 'bad index', text: `${GOOD_HEAD}${PANEL('a')}\na/min_fs = 1.5`, line: 13, message: /whole number/ },
  { name: 'bad vector', text: `${GOOD_HEAD}${PANEL('a')}\na/ss = 1q`, line: 13, message: /direction/ },
  {
    name: 'min > max',
    text: `${GOOD_HEAD}${PANEL('a')}\na/min_ss = 8`,
    line: 13,
    message: /min_ss 8 > max_ss 4/,
  },
  {
    name: 'missing fs',
    text: `${GOOD_HEAD}${PANEL('a').replace('a/fs = x\n', '')}`,
    line: 4,
    message: /no fs/,
  },
  {
    name: 'missing corner',
    text: `${GOOD_HEAD}${PANEL('a').replace('a/corner_y = -2.5\n', '')}`,
    line: 4,
    message: /no corner_y/,
  },
  { name: 'missing res', text: `clen = 0.1\n${PANEL('a')}`, line: 3, message: /no res/ },
  { name: 'no panels', text: `${GOOD_HEAD}; nothing else\n`, line: 4, message: /no panels/ },
  { name: 'empty value', text: `${GOOD_HEAD}${PANEL('a')}\ncoffset =`, line: 13, message: /missing value/ },
  { name: 'bad clen', text: `clen = near\n${GOOD_HEAD}${PANEL('a')}`, line: 1, message: /clen/ },
  { name: 'bad clen unit', text: `clen = 5 cm\n${GOOD_HEAD}${PANEL('a')}`, line: 1, message: /unit 'cm'/ },
  {
    name: 'bad photon unit',
    text: `photon_energy = 5 J\n${GOOD_HEAD}${PANEL('a')}`,
    line: 1,
    message: /unit 'J'/,
  },
  { name: 'bad dim', text: `${GOOD_HEAD}dim0 = zz\n${PANEL('a')}`, line: 3, message: /dim0/ },
  {
    name: 'fs before ss',
    text: `${GOOD_HEAD}dim0 = fs\ndim1 = ss\n${PANEL('a')}`,
    line: 6,
    message: /after the ss/,
  },
  { name: 'bad mask bits', text: `${GOOD_HEAD}mask_good = lots\n${PANEL('a')}`, line: 3, message: /bits/ },
  {
    name: 'mask file without data',
    text: `${GOOD_HEAD}mask_file = m.h5\n${PANEL('a')}`,
    line: 3,
    message: /no data location/,
  },
  {
    name: 'bad region mixing forms',
    text: `${GOOD_HEAD}${PANEL('a')}\nbad_x/min_x = 1\nbad_x/min_fs = 1`,
    line: 14,
    message: /mixes/,
  },
  {
    name: 'bad region incomplete',
    text: `${GOOD_HEAD}${PANEL('a')}\nbad_x/min_x = 1\nbad_x/max_x = 2\nbad_x/min_y = 1`,
    line: 13,
    message: /no max_y/,
  },
  {
    name: 'bad region min > max',
    text: `${GOOD_HEAD}${PANEL('a')}\nbad_x/min_x = 3\nbad_x/max_x = 2\nbad_x/min_y = 1\nbad_x/max_y = 2`,
    line: 14,
    message: /min_x 3 > max_x 2/,
  },
  {
    name: 'bad region unknown panel',
    text: `${GOOD_HEAD}${PANEL('a')}\nbad_r/min_fs = 0\nbad_r/max_fs = 1\nbad_r/min_ss = 0\nbad_r/max_ss = 1\nbad_r/panel = zz`,
    line: 13,
    message: /no panel named 'zz'/,
  },
  {
    name: 'bad region outside its panel',
    text: `${GOOD_HEAD}${PANEL('a')}\nbad_r/min_fs = 0\nbad_r/max_fs = 20\nbad_r/min_ss = 0\nbad_r/max_ss = 1\nbad_r/panel = a`,
    line: 13,
    message: /outside panel 'a'/,
  },
  {
    name: 'group with unknown member',
    text: `${GOOD_HEAD}${PANEL('a')}\ngroup_all = a,b`,
    line: 13,
    message: /'b' is neither/,
  },
  {
    name: 'missing panel name',
    text: `${GOOD_HEAD}${PANEL('a')}\n/min_fs = 0`,
    line: 13,
    message: /panel name/,
  },
];

test('malformed lines give a UserError naming the file and the line', () => {
  for (const bad of BAD_CASES) {
    assert.throws(
      () => parseGeometry(bad.text, 'bad.geom'),
      (error: unknown) => {
        assert.ok(error instanceof UserError, `${bad.name}: ${error}`);
        assert.equal(error.file, 'bad.geom', bad.name);
        assert.equal(error.where, `line ${bad.line}`, `${bad.name}: ${error.message}`);
        assert.match(error.message, bad.message, bad.name);
        return true;
      },
      bad.name,
    );
  }
});

test('the CLI reports a missing geometry file in one line with exit code 2', () => {
  const missing = runCli(['geom', 'info', 'no/such/file.geom', '--json']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'braggflow: no/such/file.geom: no such file\n');
});

test('the CLI names file and line for a malformed geometry', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'braggflow-geom-'));
  try {
    const path = join(dir, 'broken.geom');
    writeFileSync(path, `${GOOD_HEAD}${PANEL('a')}\na/fs = sideways\n`);
    const result = runCli(['geom', 'info', path]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0],
      new RegExp(`^braggflow: ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line 13: fs: `),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('geom info: human table and summary fields', needsShared, () => {
  const path = sharedPath('data/geometry/cspad-cxiformat.geom');
  const human = runCli(['geom', 'info', path]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^panels\s+64 /m);
  assert.match(human.stdout, /^slab\s+1480 x 1552 \(ss x fs\)/m);
  assert.match(human.stdout, /^clen\s+from data \/LCLS\/detector_1\/EncoderValue/m);
  assert.match(human.stdout, /^q0a0\s+0-193\s+0-184\s+443\.819, -49\.8719/m);
  const summary = inspectGeom(path);
  assert.deepEqual(summary.slabShape, [1480, 1552]);
  assert.equal(summary.resPxPerM, 9090.91);
  assert.equal(summary.resPxPerMCommon, true);
  assert.equal(summary.clenPath, '/LCLS/detector_1/EncoderValue');
  assert.equal(summary.photonEnergyPath, '/LCLS/photon_energy_eV');
  const thermolysin = inspectGeom(sharedPath('data/real/cspad-thermolysin.geom'));
  assert.deepEqual(thermolysin.slabShape, [11840, 194]);
  assert.equal(thermolysin.clenM, 0.130107);
  assert.equal(thermolysin.photonEnergyEv, 9742.54);
  const viaInspect = runCli(['inspect', sharedPath('data/geometry/lcls-dec.geom'), '--json']);
  assert.equal(viaInspect.code, 0, viaInspect.stderr);
  assert.equal(JSON.parse(viaInspect.stdout).badRegions, 2);
});

test('panels with different pixel sizes are listed as such', () => {
  const summary = inspectFromText(`clen = 0.1\nres = 100\n${PANEL('a')}\nres = 50\n${PANEL('b')}`);
  assert.deepEqual(summary.resPxPerM, [50, 100]);
  assert.equal(summary.resPxPerMCommon, false);
});

function inspectFromText(text: string): Record<string, unknown> {
  return summariseGeometry(parseGeometry(text));
}

test('odd names are kept as data, not as object machinery', () => {
  const geometry = parseGeometry(
    `res = 1\n__proto__ = 5\n${PANEL('constructor', 'constructor/__proto__ = x')}`,
  );
  assert.equal(geometry.panels[0].name, 'constructor');
  assert.equal(Object.getOwnPropertyDescriptor(geometry.extraKeys, '__proto__')?.value, '5');
  assert.equal(Object.getOwnPropertyDescriptor(geometry.panels[0].extraKeys, '__proto__')?.value, 'x');
  assert.equal(Object.getPrototypeOf(geometry.extraKeys), Object.prototype);
});
