/// <reference lib="dom" />
// The live monitor driven in headless Debian chromium (playwright-core, executablePath
// /usr/bin/chromium; never `playwright install`): what a person sees on the page, and Prometheus.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parsePf8ParamsPartial, resolvePf8Params } from '../../src/peaks/pf8-params.js';
import { parseListen } from '../../src/pipeline/monitor/server.js';
import { runPipeline } from '../../src/pipeline/run.js';
import { geometryText } from './fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const needsChromium = existsSync(CHROMIUM)
  ? {}
  : { skip: 'Debian chromium is not installed (apt-get install chromium)' };

const dir = mkdtempSync(join(tmpdir(), 'braggflow-monitor-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const geom = join(dir, 'pipeline.geom');
writeFileSync(geom, geometryText);

test('--monitor parses HOST:PORT or PORT, binding loopback by default', () => {
  assert.deepEqual(parseListen('8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
  assert.throws(() => parseListen('localhost'), /must be HOST:PORT or PORT/);
});

test(
  'monitor: live counts, the latest hit with its peaks circled, the gallery, the peakogram; /metrics for Prometheus',
  needsChromium,
  async () => {
    const { chromium } = await import('playwright-core');
    let stop = false;
    let url: string | undefined;
    const running = runPipeline({
      // An endless detector at 8 Hz, stopped by the test as Ctrl-C would.
      source: 'sim:photosystem?hitRate=0.8&seed=2',
      rateHz: 8,
      geometryPath: geom,
      processor: {
        method: 'pf8',
        finder: {
          method: 'pf8',
          params: resolvePf8Params(
            {},
            parsePf8ParamsPartial({ threshold: '20', 'min-snr': '5', 'min-pix-count': '1' }),
          ),
        },
        workers: 1,
      },
      minPeaks: 10,
      outPath: join(dir, 'live.cxi'),
      monitor: '127.0.0.1:0',
      onMonitor: (address) => {
        url = address;
      },
      stopped: () => stop,
    });
    while (url === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(url);
      await page.waitForFunction(
        () =>
          Number(document.getElementById('frames')?.textContent) >= 6 &&
          (document.getElementById('latest') as HTMLImageElement).naturalWidth > 0 &&
          document.querySelectorAll('#gallery img').length >= 2 &&
          document.querySelectorAll('#rateChart polyline').length === 2,
        null,
        { timeout: 60_000 },
      );
      assert.equal(await page.textContent('#status'), 'live');
      assert.ok(Number(await page.textContent('#hits')) >= 1);
      assert.match((await page.textContent('#hitRate')) ?? '', /^\d+\.\d %$/);
      // The hit as drawn: the assembled detector, and orange rings around its peaks.
      const seen = await page.evaluate(() => {
        const img = document.getElementById('latest') as HTMLImageElement;
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let ring = 0;
        let grey = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i] === 255 && data[i + 1] === 140 && data[i + 2] === 0) ring++;
          else if (data[i] === data[i + 1] && data[i + 1] === data[i + 2]) grey++;
        }
        const peaks = Number(
          /: (\d+) peaks/.exec(document.getElementById('latestInfo')?.textContent ?? '')?.[1],
        );
        return { ring, grey, peaks, width: img.naturalWidth };
      });
      assert.ok(seen.peaks >= 10, `latest hit has ${seen.peaks} peaks`);
      assert.ok(seen.ring >= seen.peaks * 10, `${seen.ring} ring pixels for ${seen.peaks} peaks`);
      assert.ok(seen.grey > seen.width * 50, 'the detector image itself');
      // The peakogram has counts drawn (the rate chart's two lines were waited for above).
      const lit = await page.evaluate(() => {
        const c = document.getElementById('peakogram') as HTMLCanvasElement;
        const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
      });
      assert.ok(lit > 0, 'peakogram bins lit');
      const shot = join(dir, 'monitor.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 20_000);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      const frames = Number(/^braggflow_frames_total (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(frames >= 6, metrics.slice(0, 400));
      assert.match(metrics, /^braggflow_hits_total \d+$/m);
      assert.match(metrics, /^braggflow_latency_seconds_bucket\{le="0.5"\} \d+$/m);
      assert.match(metrics, /^braggflow_queue_depth \d+$/m);
    } finally {
      await browser.close();
      stop = true;
    }
    const summary = await running;
    assert.ok(summary.frames >= 6);
    assert.equal(summary.lost, 0);
    // The monitor is gone with the run.
    await assert.rejects(fetch(`${url}/metrics`));
  },
);
