import type { Command } from 'commander';
import { printJson } from '../output.js';

interface TrainCliOptions {
  config: string;
  out: string;
  resume: boolean;
  steps?: string;
  maxMinutes?: string;
  workers: string;
  threads?: string;
  json?: boolean;
  /** distill only */
  teacher?: string;
  student?: string;
  teacherCache?: string;
  temperature?: string;
}

async function run(options: TrainCliOptions): Promise<void> {
  const [{ readTrainConfig }, { runTraining }, { integerOption, numberOption }] = await Promise.all([
    import('../../train/config.js'),
    import('../../train/run-training.js'),
    import('../options.js'),
  ]);
  const config = readTrainConfig(options.config);
  if (options.steps !== undefined) config.steps = integerOption('--steps', options.steps);
  if (options.student !== undefined) {
    const { resolveConfig } = await import('../../nn/models/registry.js');
    resolveConfig(options.student);
    config.model = options.student;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const report = await runTraining({
    config,
    outDir: options.out,
    resume: options.resume,
    maxSeconds:
      options.maxMinutes === undefined ? undefined : 60 * numberOption('--max-minutes', options.maxMinutes),
    workers: integerOption('--workers', options.workers, 0),
    intraOpThreads: options.threads === undefined ? undefined : integerOption('--threads', options.threads),
    distill:
      options.teacher === undefined
        ? undefined
        : {
            teacher: options.teacher,
            cacheDir: options.teacherCache,
            temperature:
              options.temperature === undefined
                ? 2
                : numberOption('--temperature', options.temperature, 0.01),
          },
    log: options.json ? () => {} : log,
  });
  if (options.json) {
    printJson(report);
    return;
  }
  const v = report.validation;
  process.stdout.write(
    `${report.finished ? 'finished' : 'paused'} at step ${report.step}/${report.steps} (${report.stepsPerSecond.toFixed(2)} steps/s this run, ${(report.totalSeconds / 60).toFixed(1)} min in all)` +
      (v ? `; held-out F1 ${v.f1.toFixed(3)} (P ${v.precision.toFixed(3)}, R ${v.recall.toFixed(3)})` : '') +
      (report.teacher ? `, teacher ${report.teacher.validation.f1.toFixed(3)} on the same frames` : '') +
      (report.modelPath ? `; model file ${report.modelPath}` : `; resume with the same command`) +
      '\n',
  );
}

function common(command: Command): Command {
  return command
    .requiredOption(
      '--config <file.json>',
      'training config (model, data sources, tile, batch, schedule, ...)',
    )
    .requiredOption('--out <dir>', 'run folder: checkpoint, metrics, curves, model file')
    .option('--no-resume', 'start afresh even if the folder holds a checkpoint')
    .option('--steps <n>', "override the config's total steps")
    .option('--max-minutes <m>', 'save a checkpoint and stop after this long (resume later)')
    .option('--workers <n>', 'loader threads making batches (0: in this thread)', '1')
    .option('--threads <n>', "onnxruntime's threads per op")
    .option('--json', 'print the report as JSON');
}

export function register(program: Command): void {
  common(
    program
      .command('train')
      .description(
        'Train a PeakNet on labelled datasets and frames simulated on the fly; resumable, with held-out validation (peak F1, pixel IoU), metrics.jsonl and curves.svg; ends with a model file',
      ),
  ).action(run);
  common(
    program
      .command('distill')
      .description(
        "Train a student on a teacher's logits (0.4 MSE + 0.4 T^2 KL + 0.2 focal on the teacher's argmax); both validated on the same held-out frames",
      ),
  )
    .requiredOption(
      '--teacher <model.onnx|checkpoint.safetensors>',
      'the teacher: a model file or a checkpoint',
    )
    .requiredOption('--student <name>', 'PeakNet configuration of the student (braggflow model list)')
    .option(
      '--teacher-cache <dir>',
      "keep the teacher's logits per step here, and read them back on later runs",
    )
    .option('--temperature <T>', 'softmax temperature of the KL term', '2')
    .action(run);
}
