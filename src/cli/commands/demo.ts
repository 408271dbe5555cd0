import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { integerOption } from '../options.js';
import { printJson } from '../output.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description('Run the main job end to end on the embedded default detector (no files or servers needed)')
    .option(
      '--out <dir>',
      'where to write run.cxi, run.stream, pf8-tuned.json and the peak tables',
      join(tmpdir(), 'braggflow-demo'),
    )
    .option('--frames <n>', 'frames in the run (the last third is held out from tuning)', '12')
    .option('--seed <n>', 'random seed', '1')
    .option('--preset <name>', 'simulator preset: thermolysin, lysozyme or photosystem', 'thermolysin')
    .option('--hit-rate <p>', 'fraction of frames with crystals', '0.75')
    .option('--model <file.onnx>', 'model file to serve (default: the shipped models/peaknet-default.onnx)')
    .option(
      '--grid <spec>',
      'pf8 tuning grid as for braggflow tune, e.g. "threshold=10,20;min-snr=4,5" (default: a 270-point grid for this detector)',
    )
    .option('--workers <n>', 'worker threads for simulating and tuning', '2')
    .option('--json', 'print the report as JSON')
    .action(
      async (options: {
        out: string;
        frames: string;
        seed: string;
        preset: string;
        hitRate: string;
        model?: string;
        workers: string;
        grid?: string;
        json?: boolean;
      }) => {
        const hitRate = Number(options.hitRate);
        if (!(hitRate >= 0 && hitRate <= 1))
          throw new UserError(`--hit-rate must be between 0 and 1, got '${options.hitRate}'`);
        const { presetByName } = await import('../../simulate/presets.js');
        presetByName(options.preset);
        const { parseGrid } = await import('../../peaks/tune.js');
        const pf8Grid = options.grid === undefined ? undefined : parseGrid(options.grid);
        const { runDemo } = await import('../../demo/run-demo.js');
        const log = options.json
          ? (line: string) => process.stderr.write(`${line}\n`)
          : (line: string) => console.log(line);
        const report = await runDemo({
          outDir: options.out,
          frames: Math.max(2, integerOption('--frames', options.frames)),
          seed: integerOption('--seed', options.seed),
          preset: options.preset,
          hitRate,
          modelPath: options.model,
          pf8Grid,
          workers: integerOption('--workers', options.workers),
          log,
        });
        if (options.json) printJson(report);
      },
    );
}
