import type { Command } from 'commander';
import { parseFrameRange } from '../../util/frame-range.js';
import { printJson } from '../output.js';

interface ExportCliOptions {
  checkpoint: string;
  out: string;
  tile: string;
  overlap: string;
  margin?: string;
  minPixels?: string;
  calibrate?: string;
  geom?: string;
  calibrateFrames?: string;
  data?: string;
  json?: boolean;
}

async function run(options: ExportCliOptions): Promise<void> {
  const [{ UserError }, { exportCheckpoint }, { integerOption }] = await Promise.all([
    import('../../util/errors.js'),
    import('../../infer/export.js'),
    import('../options.js'),
  ]);
  const tileMatch = /^(\d+)x(\d+)$/.exec(options.tile);
  if (tileMatch === null)
    throw new UserError(`must be HxW (e.g. 256x256), got '${options.tile}'`, undefined, '--tile');
  const [heightPx, widthPx] = [Number(tileMatch[1]), Number(tileMatch[2])];
  if (heightPx % 32 !== 0 || widthPx % 32 !== 0 || heightPx === 0 || widthPx === 0)
    throw new UserError(`must be multiples of 32, got ${options.tile}`, undefined, '--tile');
  const overlapPx = integerOption('--overlap', options.overlap, 0);
  if (overlapPx >= Math.min(heightPx, widthPx))
    throw new UserError(`must be smaller than the tile, got ${overlapPx}`, undefined, '--overlap');
  if (options.calibrate !== undefined && options.geom === undefined)
    throw new UserError(
      '--calibrate needs --geom (the geometry of the calibration frames)',
      undefined,
      '--geom',
    );
  const given = options.margin !== undefined || options.minPixels !== undefined;
  if (given && options.calibrate !== undefined)
    throw new UserError('give --margin/--min-pixels or --calibrate, not both', undefined, '--calibrate');
  let margin = 0;
  if (options.margin !== undefined) {
    margin = Number(options.margin);
    if (options.margin.trim() === '' || !Number.isFinite(margin))
      throw new UserError(`must be a number, got '${options.margin}'`, undefined, '--margin');
  }
  const range = options.calibrateFrames === undefined ? undefined : parseFrameRange(options.calibrateFrames);
  const report = await exportCheckpoint({
    checkpointPath: options.checkpoint,
    outPath: options.out,
    tile: { heightPx, widthPx, overlapPx },
    decision: given
      ? { marginLogit: margin, minPixels: integerOption('--min-pixels', options.minPixels ?? '2') }
      : undefined,
    calibration:
      options.calibrate === undefined
        ? undefined
        : {
            geometryPath: options.geom as string,
            cxiPath: options.calibrate,
            frames: range === undefined ? undefined : [range[0], range[1] ?? Number.MAX_SAFE_INTEGER],
          },
    data: options.data,
  });
  if (options.json) {
    printJson({
      out: report.out,
      inputs: [{ name: 'image', dataType: 'float32', dims: [1, 1, heightPx, widthPx] }],
      outputs: [{ name: 'logits', dataType: 'float32', dims: [1, 2, heightPx, widthPx] }],
      metadata: report.meta,
      calibration: report.calibration,
    });
    return;
  }
  const d = report.meta.decision;
  process.stdout.write(
    `${report.out}: ${report.meta.config.name} (${report.meta.params} params), tile ${heightPx}x${widthPx} overlap ${overlapPx}, ` +
      `peak pixel where logit margin > ${d.marginLogit}, components >= ${d.minPixels} px (${d.chosenBy})\n`,
  );
}

export function register(program: Command): void {
  program
    .command('export')
    .description(
      'Write a model file (ONNX with its preprocessing, tile and decision rule) from a training checkpoint',
    )
    .requiredOption('--checkpoint <file.safetensors>', 'training checkpoint (Trainer.save)')
    .requiredOption('--out <file.onnx>', 'model file to write')
    .option('--tile <HxW>', 'tile the graph is built for (multiples of 32)', '256x256')
    .option('--overlap <px>', 'overlap of tiles on panels larger than the tile', '32')
    .option('--margin <logit>', 'decision rule: logit(peak) - logit(bg) above this (default 0 = argmax)')
    .option('--min-pixels <n>', 'decision rule: smallest component (default 2)')
    .option(
      '--calibrate <run.cxi>',
      'choose the rule by peak F1 on these frames and their /entry_1/truth_1 table',
    )
    .option('--geom <file>', 'geometry of the calibration frames')
    .option('--calibrate-frames <a:b>', 'calibration frames a (included) to b (excluded)')
    .option('--data <text>', 'what the model was trained on (provenance)')
    .option('--json', 'print inputs, outputs and metadata as JSON')
    .action(run);
}
