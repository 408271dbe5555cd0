// docs/monitor.png: the live monitor as a person sees it, on the embedded detector with the
// simulator at 10 Hz served by the shipped model. `node --import tsx scripts/monitor-screenshot.ts`
// (needs Debian's chromium).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { defaultGeometryText } from '../src/detector/default-geometry.js';
import { defaultModelPath } from '../src/infer/default-model.js';
import { runPipeline } from '../src/pipeline/run.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-shot-'));
const geom = join(dir, 'quad.geom');
writeFileSync(geom, defaultGeometryText);
let stop = false;
let url: string | undefined;
const running = runPipeline({
  source: 'sim:lysozyme?hitRate=0.6&seed=11',
  rateHz: 10,
  geometryPath: geom,
  processor: { method: 'peaknet', modelPath: defaultModelPath(), workers: 1 },
  minPeaks: 10,
  outPath: join(dir, 'live.cxi'),
  monitor: '127.0.0.1:0',
  onMonitor: (u) => {
    url = u;
  },
  stopped: () => stop,
});
while (url === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
await page.goto(url);
await new Promise((resolve) => setTimeout(resolve, 25_000));
await page.screenshot({ path: 'docs/monitor.png', fullPage: true });
await browser.close();
stop = true;
const summary = await running;
console.log(`${summary.frames} frames, ${summary.hits} hits; wrote docs/monitor.png`);
rmSync(dir, { recursive: true, force: true });
