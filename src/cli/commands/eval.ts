import type { Command } from 'commander';
import type { EvalReport } from '../../engine/eval.js';
import { UserError } from '../../util/errors.js';
import { frameRangeWithin } from '../../util/frame-range.js';
import { formatTable } from '../../util/table.js';
import { integerOption, numberOption } from '../options.js';
import { printJson } from '../output.js';

/** Per-frame rows printed before we point to --json instead. */
const MAX_FRAME_ROWS = 20;

interface EvalCliOptions {
  truth: string;
  truthGroup: string;
  pred: string;
  predGroup: string;
  radius: string;
  minPeaks: string;
  truthFrames?: string;
  json?: boolean;
}

const f3 = (x: number) => x.toFixed(3);

function printHuman(report: EvalReport, truthFile: string, predFile: string): void {
  const { micro, macro, hits } = report;
  const lines = [
    `truth ${truthFile}: ${report.truthPeaks} peaks; prediction ${predFile}: ${report.predictedPeaks} peaks`,
    `${report.frames} frames, match radius ${report.radiusPx} px, mean matched distance ${report.meanDistancePx.toFixed(2)} px`,
    '',
    formatTable(
      [
        ['', 'precision', 'recall', 'F1', 'TP', 'FP', 'FN'],
        [
          'micro',
          f3(micro.precision),
          f3(micro.recall),
          f3(micro.f1),
          String(micro.truePositives),
          String(micro.falsePositives),
          String(micro.falseNegatives),
        ],
        ['macro', f3(macro.precision), f3(macro.recall), f3(macro.f1), '', '', ''],
        [
          `hits (>= ${report.minPeaks})`,
          f3(hits.precision),
          f3(hits.recall),
          f3(hits.f1),
          String(hits.bothHits),
          String(hits.predictedHits - hits.bothHits),
          String(hits.truthHits - hits.bothHits),
        ],
      ],
      'right',
    ),
    '',
  ];
  if (report.frames <= MAX_FRAME_ROWS) {
    const rows = [['frame', 'truth', 'pred', 'matched', 'precision', 'recall', 'F1']];
    for (const f of report.perFrame)
      rows.push([
        String(f.frame),
        String(f.truth),
        String(f.predicted),
        String(f.matched),
        f3(f.precision),
        f3(f.recall),
        f3(f.f1),
      ]);
    lines.push(formatTable(rows, 'right'), '');
  } else lines.push('(per-frame scores: --json)', '');
  process.stdout.write(lines.join('\n'));
}

async function run(options: EvalCliOptions): Promise<void> {
  const radiusPx = numberOption('--radius', options.radius);
  const minPeaks = integerOption('--min-peaks', options.minPeaks, 0);
  const { readPeakLists } = await import('../../engine/labels.js');
  const { evaluatePeaks } = await import('../../engine/eval.js');
  let truth = await readPeakLists(options.truth, options.truthGroup);
  if (options.truthFrames !== undefined) {
    const [first, end] = frameRangeWithin(options.truthFrames, truth.length, options.truth, '--truth-frames');
    truth = truth.slice(first, end);
  }
  const predicted = await readPeakLists(options.pred, options.predGroup);
  if (truth.length !== predicted.length) {
    throw new UserError(
      `${options.truth} has ${truth.length} frames but ${options.pred} has ${predicted.length}: both need one entry per frame`,
    );
  }
  const report = evaluatePeaks(truth, predicted, { radiusPx, minPeaks });
  if (options.json) printJson({ truth: options.truth, prediction: options.pred, ...report });
  else printHuman(report, options.truth, options.pred);
}

export function register(program: Command): void {
  program
    .command('eval')
    .description(
      'Score found peaks against reference peaks: optimal one-to-one matching within a radius, precision, recall, F1 per frame and overall, and hit finding',
    )
    .requiredOption(
      '--truth <file>',
      'reference peaks: CXI peak table or JSON lists of [fs, ss, I] per frame',
    )
    .option('--truth-group <group>', 'peak table group in a CXI truth file', '/entry_1/truth_1')
    .requiredOption('--pred <file>', 'found peaks: CXI peak table or JSON lists of [fs, ss, I] per frame')
    .option('--pred-group <group>', 'peak table group in a CXI prediction file', '/entry_1/result_1')
    .option('--radius <px>', 'match radius, pixels', '2')
    .option('--min-peaks <n>', 'a frame is a hit when it has at least this many peaks', '15')
    .option(
      '--truth-frames <a:b>',
      'score against truth frames a (included) to b (excluded) only: the frames a `peaks --frames a:b` run covered',
    )
    .option('--json', 'print everything, per frame too, as JSON')
    .action(run);
}
