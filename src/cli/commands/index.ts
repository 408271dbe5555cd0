import type { Command } from 'commander';
import * as demo from './demo.js';
import * as evaluate from './eval.js';
import * as exportModel from './export.js';
import * as geom from './geom.js';
import * as inspect from './inspect.js';
import * as label from './label.js';
import * as match from './match.js';
import * as model from './model.js';
import * as peaks from './peaks.js';
import * as replay from './replay.js';
import * as runPipeline from './run.js';
import * as simulate from './simulate.js';
import * as train from './train.js';
import * as tune from './tune.js';

/**
 * Each command lives in its own module exporting `register(program)`; adding a command is one line
 * here. Commands import their work lazily so `braggflow --help` stays fast.
 */
export function registerCommands(program: Command): void {
  demo.register(program);
  evaluate.register(program);
  exportModel.register(program);
  geom.register(program);
  inspect.register(program);
  label.register(program);
  label.registerWorker(program);
  match.register(program);
  model.register(program);
  peaks.register(program);
  replay.register(program);
  runPipeline.register(program);
  simulate.register(program);
  train.register(program);
  tune.register(program);
}
