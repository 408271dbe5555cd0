/**
 * The data engine's labelling (`braggflow label`): pseudo-Voigt fits per second (9 x 9 window, sampled
 * at pixel centres and averaged over 3 x 3 points per pixel), and whole labelling runs on a simulated
 * 1-Mpixel run (read the frame, fit every agreed spot, write the shard) on this thread and on two worker
 * threads. Prints markdown.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultGeometryText } from '../src/detector/default-geometry.js';
import { labelStream, workerExecutor } from '../src/engine/label.js';
import { fitPseudoVoigt, renderPseudoVoigt } from '../src/engine/pseudo-voigt.js';
import { parseGeometry } from '../src/io/geom.js';
import { runSimulation } from '../src/simulate/run.js';

const rows: string[] = [];
const work = mkdtempSync(join(tmpdir(), 'braggflow-label-bench-'));
try {
  // Fits alone: a 32 x 32 panel with one noisy spot, fitted again and again.
  const W = 32;
  const image = new Float32Array(W * W);
  renderPseudoVoigt(
    { amplitude: 300, fsPx: 15.3, ssPx: 16.6, hwhmFsPx: 0.9, hwhmSsPx: 1.2, eta: 0.3 },
    W,
    W,
    image,
    {
      b0: 20,
      bFs: 0.1,
      bSs: -0.05,
      fsRef: 0,
      ssRef: 0,
    },
  );
  let seed = 1;
  for (let i = 0; i < image.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    image[i] += Math.sqrt(image[i]) * ((seed / 2 ** 31) * 3.46 - 1.73);
  }
  for (const supersample of [1, 3]) {
    const options = { weighting: 'border' as const, supersample, allowUnresolved: true, minHwhmPx: 0.3 };
    for (let i = 0; i < 200; i++) fitPseudoVoigt(image, W, W, 15, 17, options);
    const n = 3000;
    const t = performance.now();
    for (let i = 0; i < n; i++) fitPseudoVoigt(image, W, W, 15, 17, options);
    const us = ((performance.now() - t) * 1000) / n;
    rows.push(
      `| one 9 x 9 fit, ${supersample === 1 ? 'pixel centres' : '3 x 3 points per pixel'} | ${us.toFixed(0)} us | ${(1e6 / us).toFixed(0)} fits/s |`,
    );
  }

  const stream = join(work, 'run.stream');
  await runSimulation({
    geometry: parseGeometry(defaultGeometryText),
    geometryText: defaultGeometryText,
    frames: 16,
    seed: 5,
    outPath: join(work, 'run.cxi'),
    streamPath: stream,
    preset: 'lysozyme',
    hitRate: 1,
  });
  for (const workers of [1, 2]) {
    const executor = workerExecutor(workers);
    const t = performance.now();
    const manifest = await labelStream({
      streamPath: stream,
      outDir: join(work, `labels-${workers}`),
      executor,
      choices: { shardFrames: 2, minMatched: 1 },
    }).finally(() => executor.close());
    const s = (performance.now() - t) / 1000;
    const fits = manifest.totals.peaks + manifest.totals.badFits;
    rows.push(
      `| label: 16 simulated 1-Mpixel frames, ${fits} spots fitted, shards of 2, ${workers === 1 ? 'this thread' : `${workers} worker threads`} | ${(s * 1000).toFixed(0)} ms | ${(manifest.totals.labelledFrames / s).toFixed(1)} frames/s |`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

process.stdout.write(
  [
    '## Labelling (`braggflow label`)',
    '',
    `Pseudo-Voigt fits (Levenberg-Marquardt, analytic Jacobian) and whole labelling runs (read, match, fit, write gzip shards). ${cpus().length} cores.`,
    '',
    '| work | time | rate |',
    '| --- | ---: | ---: |',
    ...rows,
    '',
  ].join('\n'),
);
