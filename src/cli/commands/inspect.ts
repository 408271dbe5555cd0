import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { printJson } from '../output.js';

/** A file summary: JSON for scripts, `key: value` lines for people. */
export type Summary = Record<string, unknown>;

/** Each format's summariser lives beside its reader in src/io/inspect/; loaded only when needed. */
async function summarise(path: string): Promise<Summary> {
  if (!existsSync(path) || !statSync(path).isFile()) throw new UserError('no such file', path);
  const ext = extname(path).toLowerCase();
  switch (ext) {
    case '.geom':
      return (await import('../../io/inspect/geom.js')).inspectGeom(path);
    case '.cxi':
    case '.h5':
    case '.hdf5':
    case '.nxs':
      return (await import('../../io/inspect/hdf5.js')).inspectHdf5(path);
    case '.cbf':
      return (await import('../../io/inspect/cbf.js')).inspectCbf(path);
    case '.stream':
      return (await import('../../io/inspect/stream.js')).inspectStream(path);
    default:
      throw new UserError(`unknown file type '${ext}' (expected .cxi, .h5, .cbf, .stream or .geom)`, path);
  }
}

function printHuman(summary: Summary): void {
  for (const [key, value] of Object.entries(summary)) {
    const text = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    process.stdout.write(`${key}: ${text.length > 200 ? `${text.slice(0, 200)}...` : text}\n`);
  }
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('Summarise a .cxi/.h5, .cbf, .stream or .geom file')
    .argument('<file>', 'file to inspect')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string, options: { json?: boolean }) => {
      const summary = await summarise(file);
      if (options.json) printJson(summary);
      else printHuman(summary);
    });
}
