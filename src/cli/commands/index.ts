import type { Command } from 'commander';
import * as inspect from './inspect.js';

/**
 * Each command lives in its own module exporting `register(program)`; adding a command is one line
 * here. Commands import their work lazily so `braggflow --help` stays fast.
 */
export function registerCommands(program: Command): void {
  inspect.register(program);
}
