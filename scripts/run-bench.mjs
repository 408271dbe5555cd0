#!/usr/bin/env node
// Runs bench/*.bench.ts one after another (never in parallel: they measure this machine) and writes
// their markdown to BENCHMARKS.md under the machine and date. `npm run bench -- cbf` runs a subset
// and replaces only those sections.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

const words = process.argv.slice(2);
const files = readdirSync('bench')
  .filter((f) => f.endsWith('.bench.ts'))
  .sort()
  .filter((f) => words.length === 0 || words.some((w) => f.includes(w)));
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const date = new Date().toISOString().slice(0, 10);

const sections = new Map();
const path = 'BENCHMARKS.md';
if (existsSync(path)) {
  // Keep sections of benches not run this time.
  const text = readFileSync(path, 'utf8');
  for (const part of text.split(/^<!-- bench: /m).slice(1)) {
    const name = part.slice(0, part.indexOf(' -->'));
    sections.set(name, `<!-- bench: ${part.trimEnd()}\n`);
  }
}
let failed = false;
for (const file of files) {
  console.error(`bench ${file} ...`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', `bench/${file}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 2 ** 20,
  });
  if (run.status !== 0) {
    console.error(`bench ${file} failed with exit ${run.status}`);
    failed = true;
    continue;
  }
  process.stdout.write(run.stdout);
  sections.set(
    file,
    `<!-- bench: ${file} -->\n_${date}, ${machine}, \`npm run bench -- ${file.replace('.bench.ts', '')}\`_\n\n${run.stdout.trim()}\n`,
  );
}
const header = `# Benchmarks\n\nMade by \`npm run bench\` (scripts/run-bench.mjs): each section names the machine, the date and the\ncommand that measured it. Ratios are measured side by side in one run.\n\n`;
writeFileSync(path, header + [...sections.values()].join('\n'));
process.exit(failed ? 1 : 0);
