import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { printJson } from '../output.js';

function positiveInt(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new UserError(`${name} must be a positive integer, got '${text}'`);
  return value;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('Run the main job end to end on the embedded default detector (no files or servers needed)')
    .option('--out <dir>', 'where to write run.cxi and peaks.cxi', join(tmpdir(), 'braggflow-demo'))
    .option('--frames <n>', 'frames in the run', '8')
    .option('--seed <n>', 'random seed', '1')
    .option('--model <name>', 'PeakNet configuration to train', 'peaknet-yocto-1x16-h16')
    .option('--steps <n>', 'training steps', '400')
    .option('--crop <px>', 'training crop size, a multiple of 32', '256')
    .option('--batch <n>', 'training batch', '2')
    .option('--json', 'print the report as JSON')
    .action(
      async (options: {
        out: string;
        frames: string;
        seed: string;
        model: string;
        steps: string;
        crop: string;
        batch: string;
        json?: boolean;
      }) => {
        const { runDemo } = await import('../../demo/run-demo.js');
        const log = options.json
          ? (line: string) => process.stderr.write(`${line}\n`)
          : (line: string) => console.log(line);
        const report = await runDemo({
          outDir: options.out,
          frames: Math.max(2, positiveInt('--frames', options.frames)),
          seed: positiveInt('--seed', options.seed),
          model: options.model,
          trainSteps: positiveInt('--steps', options.steps),
          cropPx: Number(options.crop),
          batch: Number(options.batch),
          log,
        });
        if (options.json) printJson(report);
      },
    );
}
