/**
 * Detectors the benches share. The Jungfrau 4M is built here (8 modules of 1024 x 512 = 4.19 Mpixel,
 * 75 um pixels, 120 mm) because ../shared's `jungfrau4M.geom` is, despite its name, a 64-panel
 * 2.3-Mpixel layout; a bench that claims "4M" must run on 4M pixels.
 */

/** A Jungfrau 4M as CrystFEL geometry text: 2 columns x 4 rows of modules with gaps, stacked along ss. */
export function jungfrau4MGeometryText(): string {
  const lines = [
    'photon_energy = 9500',
    'clen = 0.12',
    'res = 13333.333',
    'adu_per_eV = 0.001',
    'max_adu = 60000',
  ];
  for (let m = 0; m < 8; m++) {
    const column = m % 2;
    const row = m >> 1;
    lines.push(
      `m${m}/min_fs = 0`,
      `m${m}/max_fs = 1023`,
      `m${m}/min_ss = ${m * 512}`,
      `m${m}/max_ss = ${m * 512 + 511}`,
      `m${m}/fs = +1x`,
      `m${m}/ss = +1y`,
      `m${m}/corner_x = ${column === 0 ? -1040 : 16}`,
      `m${m}/corner_y = ${-1110 + row * 550}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
