import { UserError } from '../util/errors.js';
import { buildProgram } from './program.js';

/**
 * Entry point. A UserError (bad file, field, option) prints one line and exits 2; anything else is a
 * bug and keeps its stack trace so it can be reported.
 */
async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof UserError) {
      process.stderr.write(`braggflow: ${error.toLine()}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
}

// `braggflow inspect big.stream | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

await main(process.argv);
