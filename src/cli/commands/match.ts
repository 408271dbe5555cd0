import { statSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { StreamMatchReport } from '../../engine/stream-match.js';
import { formatTable } from '../../util/table.js';
import { numberOption } from '../options.js';
import { printJson } from '../output.js';

/** Per-frame rows printed before we point to --json or --csv instead. */
const MAX_FRAME_ROWS = 20;

interface MatchCliOptions {
  stream: string;
  radius: string;
  peaks?: string;
  peaksGroup: string;
  csv?: string;
  plot?: string;
  json?: boolean;
}

const f3 = (x: number) => x.toFixed(3);

function printHuman(report: StreamMatchReport, written: string[]): void {
  const { summary } = report;
  const lines = [
    `${report.stream}: ${summary.chunks} chunks, ${summary.indexedFrames} indexed; match radius ${report.radiusPx} px, same panel only`,
    '',
    formatTable(
      [
        ['', 'found', 'predicted', 'matched', 'precision', 'recall'],
        [
          'all indexed frames',
          String(summary.found),
          String(summary.predicted),
          String(summary.matched),
          f3(summary.precision),
          f3(summary.recall),
        ],
      ],
      'right',
    ),
    '',
  ];
  if (report.frames.length > 0 && report.frames.length <= MAX_FRAME_ROWS) {
    const rows = [
      ['chunk', 'image', 'event', 'crystals', 'found', 'predicted', 'matched', 'precision', 'recall'],
    ];
    for (const f of report.frames)
      rows.push([
        String(f.chunk),
        f.file,
        f.event ?? '',
        String(f.crystals),
        String(f.found),
        String(f.predicted),
        String(f.matched),
        f3(f.precision),
        f3(f.recall),
      ]);
    lines.push(formatTable(rows, 'right'), '');
  } else if (report.frames.length > MAX_FRAME_ROWS) lines.push('(per-frame figures: --csv F or --json)', '');
  for (const path of written) lines.push(`wrote ${path}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function run(options: MatchCliOptions): Promise<void> {
  const radiusPx = numberOption('--radius', options.radius);
  const [{ matchStream, matchPlotSvg, matchCsv }, { createProgress }] = await Promise.all([
    import('../../engine/stream-match.js'),
    import('../../util/progress.js'),
  ]);
  const foundPeaks =
    options.peaks === undefined
      ? undefined
      : await (await import('../../engine/labels.js')).readPeakLists(options.peaks, options.peaksGroup);
  let sizeBytes = 0;
  try {
    sizeBytes = statSync(options.stream).size;
  } catch {
    // readStream reports a missing file in its own words.
  }
  const progress = createProgress('match', 100, (line) => process.stderr.write(`${line}\n`), 25);
  let shown = -1;
  const report = await matchStream(options.stream, {
    radiusPx,
    foundPeaks,
    foundSource: options.peaks,
    onWarning: (message) => process.stderr.write(`braggflow: warning: ${message}\n`),
    onBytesRead: (bytes) => {
      const percent = sizeBytes > 0 ? Math.floor((100 * bytes) / sizeBytes) : 0;
      if (percent === shown) return;
      shown = percent;
      progress.update(percent, 'of the stream read');
    },
  }).finally(() => progress.stop());
  const written: string[] = [];
  if (options.csv !== undefined) {
    writeFileSync(options.csv, matchCsv(report.frames));
    written.push(options.csv);
  }
  if (options.plot !== undefined) {
    writeFileSync(options.plot, matchPlotSvg(report));
    written.push(options.plot);
  }
  if (options.json) printJson(report);
  else printHuman(report, written);
}

export function register(program: Command): void {
  program
    .command('match')
    .description(
      "Match a CrystFEL stream's found peaks to the reflections its indexing predicts (one to one, Hungarian, same panel, within a radius): per indexed frame and overall precision and recall, to choose the frames worth labelling",
    )
    .requiredOption('--stream <file>', 'CrystFEL stream (format 2.1-2.3, CrystFEL 0.9 to 0.12)')
    .option('--radius <px>', 'match radius, pixels', '5')
    .option(
      '--peaks <file>',
      "found peaks to use instead of the stream's own: a CXI peak table with a row per frame of the image file (event //N is row N), as `braggflow peaks --out` writes",
    )
    .option('--peaks-group <group>', 'peak table group in the --peaks file', '/entry_1/result_1')
    .option('--csv <file>', 'write one row per indexed frame')
    .option('--plot <file.svg>', 'write the precision-recall scatter of the indexed frames')
    .option('--json', 'print {stream, radiusPx, frames: [...], summary} as JSON')
    .action(run);
}
