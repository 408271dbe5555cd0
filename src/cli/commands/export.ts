import type { Command } from 'commander';
import { parseFrameRange } from '../../util/frame-range.js';
import { printJson } from '../output.js';

interface ExportCliOptions {
  checkpoint?: string;
  model?: string;
  fp16?: boolean;
  int8?: boolean;
  out: string;
  tile: string;
  overlap: string;
  maxTile?: string;
  margin?: string;
  minPixels?: string;
  calibrate?: string;
  geom?: string;
  calibrateFrames?: string;
  data?: string;
  json?: boolean;
}

async function run(options: ExportCliOptions): Promise<void> {
  const [{ UserError }, { exportModel }, { integerOption }] = await Promise.all([
    import('../../util/errors.js'),
    import('../../infer/export.js'),
    import('../options.js'),
  ]);
  if ((options.checkpoint === undefined) === (options.model === undefined))
    throw new UserError(
      'give one source: --checkpoint C.safetensors or --model M.onnx',
      undefined,
      '--checkpoint',
    );
  if (options.fp16 && options.int8)
    throw new UserError('give --fp16 or --int8, not both', undefined, '--int8');
  if (options.int8 && options.calibrate === undefined)
    throw new UserError(
      'needs calibration frames: --calibrate RUN.cxi --geom G (activation ranges and the F1 change)',
      undefined,
      '--int8',
    );
  const tileMatch = /^(\d+)x(\d+)$/.exec(options.tile);
  if (tileMatch === null)
    throw new UserError(`must be HxW (e.g. 256x256), got '${options.tile}'`, undefined, '--tile');
  const [heightPx, widthPx] = [Number(tileMatch[1]), Number(tileMatch[2])];
  if (heightPx % 32 !== 0 || widthPx % 32 !== 0 || heightPx === 0 || widthPx === 0)
    throw new UserError(`must be multiples of 32, got ${options.tile}`, undefined, '--tile');
  const overlapPx = integerOption('--overlap', options.overlap, 0);
  if (overlapPx >= Math.min(heightPx, widthPx))
    throw new UserError(`must be smaller than the tile, got ${overlapPx}`, undefined, '--overlap');
  let maxPx: number | undefined;
  if (options.maxTile !== undefined) {
    maxPx = integerOption('--max-tile', options.maxTile, 32);
    if (maxPx % 32 !== 0)
      throw new UserError(`must be a multiple of 32, got ${options.maxTile}`, undefined, '--max-tile');
    if (options.model !== undefined)
      throw new UserError(
        'a model file keeps its own tiles; --max-tile is for --checkpoint',
        undefined,
        '--max-tile',
      );
  }
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
  const report = await exportModel({
    checkpointPath: options.checkpoint,
    modelPath: options.model,
    precision: options.int8 ? 'int8' : options.fp16 ? 'fp16' : 'fp32',
    outPath: options.out,
    tile: { heightPx, widthPx, overlapPx, ...(maxPx === undefined ? {} : { maxPx }) },
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
      bytes: report.bytes,
      inputs: report.inputs,
      outputs: report.outputs,
      metadata: report.meta,
      calibration: report.calibration,
    });
    return;
  }
  const { meta } = report;
  const d = meta.decision;
  const lines = [
    `${report.out}: ${meta.config.name} (${meta.params} params, ${meta.precision ?? 'fp32'}, ${(report.bytes / 1e6).toFixed(2)} MB), ` +
      `tile ${meta.tile.heightPx}x${meta.tile.widthPx} overlap ${meta.tile.overlapPx}${meta.tile.maxPx === undefined ? '' : ` (panel-fitted up to ${meta.tile.maxPx})`}, ` +
      `peak pixel where logit margin > ${d.marginLogit}, components >= ${d.minPixels} px (${d.chosenBy})`,
  ];
  const c = report.calibration;
  if (c?.fp32 !== undefined) {
    const ms = (s: number) => `${(1000 * s).toFixed(0)} ms/frame`;
    lines.push(
      `  on the calibration frames: fp32 F1 ${c.fp32.f1.toFixed(3)} (${ms(c.fp32.secondsPerFrame)}), ` +
        `${meta.precision} F1 ${c.f1.toFixed(3)} (${ms(c.secondsPerFrame)}): ` +
        `F1 ${c.f1 - c.fp32.f1 >= 0 ? '+' : ''}${(c.f1 - c.fp32.f1).toFixed(3)}, ` +
        `speed x${(c.fp32.secondsPerFrame / c.secondsPerFrame).toFixed(2)}`,
    );
  }
  if (c?.quantised !== undefined)
    lines.push(
      `  int8: ${c.quantised.convs} convolutions, ${c.quantised.activations} activation ranges from ${c.quantised.tiles} tiles`,
    );
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function register(program: Command): void {
  program
    .command('export')
    .description(
      'Write a model file (ONNX with its preprocessing, tile and decision rule) from a training checkpoint or another model file',
    )
    .option('--checkpoint <file.safetensors>', 'training checkpoint (Trainer.save)')
    .option('--model <file.onnx>', 'or an fp32 model file, re-exported (e.g. --int8) with its metadata')
    .requiredOption('--out <file.onnx>', 'model file to write')
    .option('--tile <HxW>', 'tile the graph is built for (multiples of 32)', '256x256')
    .option('--overlap <px>', 'overlap of tiles on panels larger than the tile', '32')
    .option(
      '--max-tile <px>',
      'serve on panel-fitted tiles up to this side (a model trained on several tile shapes, `shapes`)',
    )
    .option('--margin <logit>', 'decision rule: logit(peak) - logit(bg) above this (default 0 = argmax)')
    .option('--min-pixels <n>', 'decision rule: smallest component (default 2)')
    .option(
      '--calibrate <run.cxi>',
      'choose the rule by peak F1 on these frames and their /entry_1/truth_1 table',
    )
    .option('--geom <file>', 'geometry of the calibration frames')
    .option('--calibrate-frames <a:b>', 'calibration frames a (included) to b (excluded)')
    .option('--data <text>', 'what the model was trained on (provenance)')
    .option('--fp16', 'store the weights in float16 (half the file; fp32 arithmetic on CPU)')
    .option(
      '--int8',
      'static int8 quantisation (QDQ) with activation ranges from the --calibrate frames; reports the F1 change and speed-up',
    )
    .option('--json', 'print inputs, outputs and metadata as JSON')
    .action(run);
}
