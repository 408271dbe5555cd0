#!/usr/bin/env node
// Runs every test/**/*.test.ts on node's built-in runner (through tsx), so CI reads node's summary.
// Node 20 has no glob in --test, so we list the files. `npm test -- geom cbf` runs files whose path
// contains any of the words.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const words = process.argv.slice(2);
const files = findTests('test').filter((f) => words.length === 0 || words.some((w) => f.includes(w)));
if (files.length === 0) {
  console.error(`no test files match ${words.join(' ')}`);
  process.exit(1);
}
const reporter = process.env.CI ? ['--test-reporter=spec'] : [];
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...reporter, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
