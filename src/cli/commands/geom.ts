import type { Command } from 'commander';
import { formatTable } from '../../util/table.js';
import { printJson } from '../output.js';

const PANEL_ROWS = 8;

function formatNumber(value: number, digits = 6): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(digits)));
}

function formatVector(v: { x: number; y: number; z: number }): string {
  const term = (value: number, axis: string) =>
    value === 0 ? '' : `${value < 0 ? '-' : '+'}${formatNumber(Math.abs(value), 4)}${axis}`;
  return [term(v.x, 'x'), term(v.y, 'y'), term(v.z, 'z')].filter((t) => t !== '').join(' ');
}

async function info(file: string, options: { json?: boolean }): Promise<void> {
  const { readGeometry } = await import('../../io/geom.js');
  const { summariseGeometry } = await import('../../io/inspect/geom.js');
  const geometry = readGeometry(file);
  const summary = summariseGeometry(geometry);
  if (options.json) {
    printJson(summary);
    return;
  }
  const res = summary.resPxPerM;
  const resText = Array.isArray(res)
    ? `${res.map((value) => formatNumber(value)).join(', ')} px/m (panels differ)`
    : `${formatNumber(res as number)} px/m (${formatNumber(1e6 / (res as number), 4)} um pixels)`;
  const clenText =
    summary.clenPath !== undefined
      ? `from data ${summary.clenPath} (x${summary.clenPathScaleToM} to m)`
      : summary.clenM !== null
        ? `${formatNumber(summary.clenM as number)} m`
        : summary.clenPerPanel !== undefined
          ? `per panel: ${JSON.stringify(summary.clenPerPanel)}`
          : 'not given';
  const energyText =
    summary.photonEnergyPath !== undefined
      ? `from data ${summary.photonEnergyPath} (${summary.photonEnergyPathUnit})`
      : summary.photonEnergyEv !== null
        ? `${formatNumber(summary.photonEnergyEv as number)} eV`
        : 'not given';
  const [ss, fs] = summary.slabShape as number[];
  const masks = summary.masks as {
    dataPath: string;
    file: string | null;
    goodBits: string;
    badBits: string;
  }[];
  const lines: string[][] = [
    ['geometry', file],
    ['panels', `${summary.panels} (${summary.pixels} pixels, ${summary.noIndexPanels} no_index)`],
    [
      'slab',
      `${ss} x ${fs} (ss x fs), ${summary.dataBlocks} data block(s) ${(summary.dataPaths as string[]).join(', ')}`,
    ],
    ['res', resText],
    ['clen', clenText],
    [
      'coffset',
      typeof summary.coffsetM === 'number'
        ? `${formatNumber(summary.coffsetM)} m`
        : JSON.stringify(summary.coffsetM),
    ],
    ['photon energy', energyText],
    ['bad regions', `${summary.badRegions} (${summary.badRegionsFsSs} fs/ss, ${summary.badRegionsXy} x/y)`],
    [
      'masks',
      masks.length === 0
        ? 'none'
        : masks
            .map((m) => `${m.file ?? '(image file)'}:${m.dataPath} good ${m.goodBits} bad ${m.badBits}`)
            .join('; '),
    ],
  ];
  process.stdout.write(`${formatTable(lines)}\n\n`);
  const panelRows = [['panel', 'fs', 'ss', 'corner x,y (px)', 'fs vector', 'ss vector', 'res']];
  for (const panel of geometry.panels.slice(0, PANEL_ROWS)) {
    panelRows.push([
      panel.name,
      `${panel.minFs}-${panel.maxFs}`,
      `${panel.minSs}-${panel.maxSs}`,
      `${formatNumber(panel.cornerXPx)}, ${formatNumber(panel.cornerYPx)}`,
      formatVector(panel.fs),
      formatVector(panel.ss),
      formatNumber(panel.resPxPerM),
    ]);
  }
  process.stdout.write(`${formatTable(panelRows)}\n`);
  if (geometry.panels.length > PANEL_ROWS) {
    process.stdout.write(`... ${geometry.panels.length - PANEL_ROWS} more panels (--json for the summary)\n`);
  }
}

export function register(program: Command): void {
  const geom = program.command('geom').description('CrystFEL geometry files');
  geom
    .command('info')
    .description(
      'Summarise a CrystFEL .geom file: panels, slab shape, pixel size, camera length, beam energy',
    )
    .argument('<file>', 'geometry file')
    .option('--json', 'print JSON for scripts')
    .action(info);
}
