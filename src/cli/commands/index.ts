import type { Command } from 'commander';
import * as demo from './demo.js';
import * as geom from './geom.js';
import * as inspect from './inspect.js';
import * as model from './model.js';

/**
 * Each command lives in its own module exporting `register(program)`; adding a command is one line
 * here. Commands import their work lazily so `braggflow --help` stays fast.
 */
export function registerCommands(program: Command): void {
  demo.register(program);
  geom.register(program);
  inspect.register(program);
  model.register(program);
}
