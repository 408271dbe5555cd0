import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

/** Builds the `braggflow` command tree; exported so tests can drive it without a subprocess. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('braggflow')
    .description(
      'Bragg peak finding for serial crystallography: geometry, files, peak finders, models, pipeline.',
    )
    .version('0.1.0')
    .showHelpAfterError(false)
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  registerCommands(program);
  return program;
}
