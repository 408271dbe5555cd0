/**
 * The data engine validated where the truth is known, and shown where it is not (docs/data-engine.md):
 *
 * 1. Simulated runs on several detectors: simulate -> pf8 -> `match` against the simulator's
 *    predicted reflections -> `label`; the labels against the simulator's `/entry_1/truth_1/mask`
 *    (pixel precision, recall, IoU) and their peaks (components of the label mask) against the truth
 *    peaks (one to one within 2 px). Also with the truth peaks as the found peaks ("perfect finder"),
 *    which isolates the fit-and-label step from the finder.
 * 2. The real shared CSPAD frame through its CrystFEL 0.12.0 stream: the labels drawn over the frame
 *    (docs/labels-cspad-thermolysin.png), with the matched statistics.
 *
 *   node --import tsx scripts/data-engine-validation.ts [--frames 6] [--json out.json]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultGeometryText } from '../src/detector/default-geometry.js';
import { panelSlabRect } from '../src/detector/mask.js';
import { computePixelMaps, geometryAduPerPhoton } from '../src/detector/pixel-maps.js';
import { labelStream } from '../src/engine/label.js';
import { readPeakLists } from '../src/engine/labels.js';
import { matchPeaks } from '../src/engine/match.js';
import { matchStream } from '../src/engine/stream-match.js';
import { componentPeaks } from '../src/infer/peaks.js';
import { readPeakTable } from '../src/io/cxi-peaks.js';
import { openFrameReader, readPerFrameScalar } from '../src/io/cxi-reader.js';
import { parseGeometry, readGeometry } from '../src/io/geom.js';
import { defaultPf8Params } from '../src/peaks/peakfinder8.js';
import { runPeaks } from '../src/peaks/run-peaks.js';
import { rgbPng } from '../src/plot/png.js';
import { runSimulation } from '../src/simulate/run.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const frames = Number(flag('--frames') ?? 6);
const jsonOut = flag('--json');
const shared = resolve('..', 'shared', 'data');

interface Row {
  detector: string;
  finder: string;
  frames: number;
  found: number;
  predicted: number;
  matched: number;
  labelledPeaks: number;
  badFits: number;
  pixelPrecision: number;
  pixelRecall: number;
  pixelIoU: number;
  peakPrecision: number;
  peakRecall: number;
  peakF1: number;
  /** Pixel IoU over the truth spots the labels found (the shape of what is labelled). */
  spotIoU: number;
}

const work = mkdtempSync(join(tmpdir(), 'braggflow-engine-validation-'));
const rows: Row[] = [];

async function scoreShard(
  shardDir: string,
  cxiPath: string,
  geometryText: string,
): Promise<
  Omit<Row, 'detector' | 'finder' | 'found' | 'predicted' | 'matched' | 'labelledPeaks' | 'badFits'>
> {
  const manifest = JSON.parse(readFileSync(join(shardDir, 'manifest.json'), 'utf8'));
  const geometry = parseGeometry(geometryText);
  const maps = computePixelMaps(geometry);
  const truthMasks = await openFrameReader(cxiPath, { dataPath: '/entry_1/truth_1/mask' });
  const truthPeaks = await readPeakTable(cxiPath, '/entry_1/truth_1');
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let spotInter = 0;
  let spotUnion = 0;
  let matched = 0;
  let labelled = 0;
  let truthCount = 0;
  let framesScored = 0;
  for (const shard of manifest.shards) {
    const path = join(shardDir, shard.file);
    const labels = await openFrameReader(path, { dataPath: '/entry_1/truth_1/mask' });
    const images = await openFrameReader(path);
    for (let f = 0; f < labels.frameCount; f++) {
      const event = await readPerFrameScalar(path, '/entry_1/truth_1/sourceEvent', f);
      const label = Uint8Array.from(labels.readFrame(f));
      const truth = Uint8Array.from(truthMasks.readFrame(event));
      for (let i = 0; i < label.length; i++) {
        if (label[i] && truth[i]) tp++;
        else if (label[i]) fp++;
        else if (truth[i]) fn++;
      }
      const peaks = componentPeaks(
        label,
        images.readFrame(f),
        maps.ssSize,
        maps.fsSize,
        maps.panelIndex,
        undefined,
        {
          minPixels: 1,
          maxPeaks: 100000,
        },
      );
      const truthList = truthPeaks[event];
      const m = matchPeaks(peaks, truthList, 2);
      matched += m.matched;
      labelled += peaks.count;
      truthCount += truthList.count;
      // Spot shapes: within a window around each matched truth peak, labels vs truth pixels.
      for (let i = 0; i < peaks.count; i++) {
        const j = m.foundToRef[i];
        if (j < 0) continue;
        const fs = Math.round(truthList.fs[j]);
        const ss = Math.round(truthList.ss[j]);
        for (let s = ss - 4; s <= ss + 4; s++) {
          for (let c = fs - 4; c <= fs + 4; c++) {
            if (s < 0 || c < 0 || s >= maps.ssSize || c >= maps.fsSize) continue;
            const k = s * maps.fsSize + c;
            if (label[k] && truth[k]) spotInter++;
            if (label[k] || truth[k]) spotUnion++;
          }
        }
      }
      framesScored++;
    }
    labels.close();
    images.close();
  }
  truthMasks.close();
  const peakPrecision = labelled === 0 ? 1 : matched / labelled;
  const peakRecall = truthCount === 0 ? 1 : matched / truthCount;
  return {
    frames: framesScored,
    pixelPrecision: tp / Math.max(1, tp + fp),
    pixelRecall: tp / Math.max(1, tp + fn),
    pixelIoU: tp / Math.max(1, tp + fp + fn),
    peakPrecision,
    peakRecall,
    peakF1: (2 * peakPrecision * peakRecall) / Math.max(1e-12, peakPrecision + peakRecall),
    spotIoU: spotInter / Math.max(1, spotUnion),
  };
}

async function simulatedRun(name: string, geometryText: string, seed: number): Promise<void> {
  const dir = join(work, name);
  const geometry = parseGeometry(geometryText, name);
  const cxi = join(dir, 'run.cxi');
  const stream = join(dir, 'run.stream');
  const geomPath = join(dir, 'run.geom');
  mkdirSync(dir, { recursive: true });
  writeFileSync(geomPath, geometryText);
  const summary = await runSimulation({
    geometry,
    geometryText,
    frames,
    seed,
    outPath: cxi,
    streamPath: stream,
    preset: 'lysozyme',
    hitRate: 1,
  });
  const adu = geometryAduPerPhoton(geometry, summary.photonEnergyEv) ?? 1;
  // pf8 on the detector's own scale: 6 photons' worth of ADU, SNR 5, at least 2 pixels.
  const pf8 = join(dir, 'pf8.cxi');
  await runPeaks({
    geometryPath: geomPath,
    inputs: [cxi],
    outPath: pf8,
    spec: {
      method: 'pf8',
      params: { ...defaultPf8Params, adcThreshold: 6 * adu, minSnr: 5, minPixCount: 2 },
    },
  });
  for (const [finder, found] of [
    ['pf8', await readPeakLists(pf8, '/entry_1/result_1')],
    ['truth peaks (perfect finder)', undefined],
  ] as const) {
    const out = join(dir, finder === 'pf8' ? 'labels-pf8' : 'labels-truth');
    const report = await matchStream(stream, { foundPeaks: found ? [...found] : undefined });
    const manifest = await labelStream({
      streamPath: stream,
      outDir: out,
      foundPeaks: found ? [...found] : undefined,
      dataPath: '/entry_1/data_1/data',
      choices: { minMatched: 1, minPrecision: 0 },
    });
    const scores = await scoreShard(out, cxi, geometryText);
    rows.push({
      detector: `${name} (${adu.toFixed(adu < 10 ? 1 : 0)} ADU/photon)`,
      finder,
      found: report.summary.found,
      predicted: report.summary.predicted,
      matched: report.summary.matched,
      labelledPeaks: manifest.totals.peaks,
      badFits: manifest.totals.badFits,
      ...scores,
    });
    process.stderr.write(`${name} ${finder}: done\n`);
  }
}

async function realFrame(): Promise<string[]> {
  const streamPath = join(shared, 'real', 'cspad-thermolysin.stream');
  const out = join(work, 'real');
  const manifest = await labelStream({ streamPath, outDir: out });
  const shard = join(out, manifest.shards[0].file);
  const images = await openFrameReader(shard);
  const labels = await openFrameReader(shard, { dataPath: '/entry_1/truth_1/mask' });
  const image = images.readFrame(0);
  const label = labels.readFrame(0);
  const geometry = readGeometry(join(shared, 'real', 'cspad-thermolysin.geom'));
  const maps = computePixelMaps(geometry);
  // A gallery of labelled spots: 15 x 15 pixels around each of the first 32 (by panel), x10, each
  // crop stretched from its median to its maximum; label pixels outlined in red.
  const table = (await readPeakTable(shard, '/entry_1/truth_1'))[0];
  const crop = 15;
  const scale = 10;
  const cols = 8;
  const chosen = Array.from({ length: Math.min(32, table.count) }, (_, i) => i);
  const cell = crop * scale + 6;
  const width = cols * cell;
  const height = Math.ceil(chosen.length / cols) * cell;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  const put = (x: number, y: number, c: readonly number[]) => {
    const o = (y * width + x) * 3;
    rgb[o] = c[0];
    rgb[o + 1] = c[1];
    rgb[o + 2] = c[2];
  };
  chosen.forEach((i, k) => {
    const p = maps.panelIndex[Math.round(table.ss[i]) * maps.fsSize + Math.round(table.fs[i])];
    const r = panelSlabRect(maps, p);
    const fs0 = Math.min(Math.max(Math.round(table.fs[i]) - 7, r.fs0), r.fs1 - crop + 1);
    const ss0 = Math.min(Math.max(Math.round(table.ss[i]) - 7, r.ss0), r.ss1 - crop + 1);
    const values: number[] = [];
    for (let s = 0; s < crop; s++)
      for (let c = 0; c < crop; c++) values.push(image[(ss0 + s) * maps.fsSize + fs0 + c]);
    const sorted = [...values].sort((a, b) => a - b);
    const low = sorted[Math.floor(sorted.length / 2)];
    const high = Math.max(low + 1, sorted[sorted.length - 1]);
    const ox = (k % cols) * cell + 3;
    const oy = Math.floor(k / cols) * cell + 3;
    const labelled = (s: number, c: number) =>
      s >= 0 && c >= 0 && s < crop && c < crop && label[(ss0 + s) * maps.fsSize + fs0 + c] !== 0;
    for (let s = 0; s < crop; s++) {
      for (let c = 0; c < crop; c++) {
        const g = Math.round(255 * Math.min(1, Math.max(0, (values[s * crop + c] - low) / (high - low))));
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const edge =
              labelled(s, c) &&
              ((dx === 0 && !labelled(s, c - 1)) ||
                (dx === scale - 1 && !labelled(s, c + 1)) ||
                (dy === 0 && !labelled(s - 1, c)) ||
                (dy === scale - 1 && !labelled(s + 1, c)));
            put(ox + c * scale + dx, oy + s * scale + dy, edge ? [230, 30, 30] : [g, g, g]);
          }
        }
      }
    }
  });
  writeFileSync('docs/labels-cspad-thermolysin.png', rgbPng(rgb, width, height));
  images.close();
  labels.close();
  const t = manifest.totals;
  const reasons = Object.entries(t.badReasons)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const match = await matchStream(streamPath);
  return [
    `Real CSPAD frame (its CrystFEL 0.12.0 stream): pf8 found ${match.summary.found}, indexing predicts ${match.summary.predicted}, matched ${match.summary.matched} within ${match.radiusPx} px; ${t.peaks} peaks labelled (${t.labelledPixels} pixels), ${t.badFits} fits bad (${reasons}).`,
    `The first ${chosen.length} labelled spots: ${crop} x ${crop} pixels around each, x${scale}, each crop stretched from its median to its maximum; label pixels outlined in red.`,
  ];
}

try {
  const geometries: [string, string][] = [
    ['embedded 1-Mpixel', defaultGeometryText],
    ['jungfrau4M', readFileSync(join(shared, 'geometry', 'jungfrau4M.geom'), 'utf8')],
    ['pilatus', readFileSync(join(shared, 'geometry', 'pilatus.geom'), 'utf8')],
  ];
  let seed = 11;
  for (const [name, text] of geometries) await simulatedRun(name, text, seed++);
  const real = await realFrame();
  const f2 = (x: number) => x.toFixed(2);
  const lines = [
    `Simulated runs (lysozyme, ${frames} frames each, every frame a hit): labels against the simulator's truth.`,
    '',
    '| detector | found peaks from | found / predicted / matched | labelled / bad fits | pixels P / R / IoU | spot IoU | label peaks vs truth peaks P / R / F1 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.detector} | ${r.finder} | ${r.found} / ${r.predicted} / ${r.matched} | ${r.labelledPeaks} / ${r.badFits} | ${f2(r.pixelPrecision)} / ${f2(r.pixelRecall)} / ${f2(r.pixelIoU)} | ${f2(r.spotIoU)} | ${f2(r.peakPrecision)} / ${f2(r.peakRecall)} / ${f2(r.peakF1)} |`,
    ),
    '',
    ...real,
    '',
  ];
  process.stdout.write(lines.join('\n'));
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ rows, real }, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
