import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `../shared` beside the repo: tests may read it; the project never needs it at run time. */
export const sharedDir = resolve(repoRoot, '..', 'shared');
export const haveShared = existsSync(join(sharedDir, 'data'));

export function sharedPath(...parts: string[]): string {
  return join(sharedDir, ...parts);
}

/** Skip option for tests that need ../shared (absent on a bare clone, present in CI). */
export const needsShared = haveShared ? {} : { skip: '../shared is not beside the repo' };

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a subprocess, as a user would. */
export function runCli(args: string[], options: { cwd?: string; input?: string } = {}): CliResult {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], {
    cwd: options.cwd ?? repoRoot,
    encoding: 'utf8',
    input: options.input,
    maxBuffer: 256 * 2 ** 20,
  });
  return { code: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
}

/** The real CLI as a background process (roles of a pipeline run): its pid, output and exit. */
export interface CliProcess {
  child: import('node:child_process').ChildProcess;
  /** Resolves when it exits, with its code (null when killed by a signal) and output. */
  done: Promise<CliResult & { signal: NodeJS.Signals | null }>;
  stdout(): string;
}

export function spawnCli(args: string[], options: { cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], {
    cwd: options.cwd ?? repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code: code ?? -1, stdout, stderr, signal }));
  });
  return { child, done, stdout: () => stdout };
}
