// Re-generates the numbers and the F1 surface plots of docs/pf8-tuning.md:
//   node --import tsx scripts/pf8-tuning.ts [path/to/shared/data/real]
// Tunes peakfinder8 on the real CSPAD thermolysin frame against DIALS' spots (default grid), on the
// whole frame with 1 and 2 workers (timed), then on even 2x1 modules scored on the odd ones and the
// other way round. Prints markdown; writes docs/pf8-tuning-f1*.svg.
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { buildMask } from '../src/detector/mask-file.js';
import { computePixelMaps } from '../src/detector/pixel-maps.js';
import { parseJsonPeakLists } from '../src/engine/labels.js';
import type { PointSet } from '../src/engine/match.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { readGeometry } from '../src/io/geom.js';
import { defaultPf8Params, type Pf8Params } from '../src/peaks/peakfinder8.js';
import {
  createPf8Scorer,
  defaultPf8Grid,
  expandGrid,
  f1Surface,
  f1SurfaceSvg,
  moduleParityMask,
  pointsInMask,
  type Scored,
  scorePf8,
  type TuneResult,
  tunePf8,
} from '../src/peaks/tune.js';

const realDir = resolve(process.argv[2] ?? join(import.meta.dirname, '..', '..', 'shared', 'data', 'real'));
const docsDir = join(import.meta.dirname, '..', 'docs');
const geometry = readGeometry(join(realDir, 'cspad-thermolysin.geom'));
const maps = computePixelMaps(geometry);
const framePath = join(realDir, 'cspad-thermolysin.cxi');
const mask = await buildMask(maps, { dataFile: framePath });
const reader = await openFrameReader(framePath, { expectedSlabShape: [maps.ssSize, maps.fsSize] });
const frame = reader.readFrame(0);
reader.close();
const labelsPath = join(realDir, 'cspad-thermolysin.dials-spots.json');
const labels = parseJsonPeakLists(readFileSync(labelsPath, 'utf8'), labelsPath);
const configs = expandGrid(defaultPf8Grid);
const radiusPx = 2;

async function tuneOn(
  tuneMask: Uint8Array,
  workers: number,
  tuneLabels: PointSet[] = labels,
): Promise<{ result: TuneResult; seconds: number; defaults: Scored }> {
  const started = performance.now();
  const scorer = createPf8Scorer({
    geometry,
    mask: tuneMask,
    frames: [frame],
    labels: tuneLabels,
    radiusPx,
    workers,
  });
  try {
    const result = await tunePf8(scorer, { configs, search: 'grid' });
    const seconds = (performance.now() - started) / 1000;
    const [defaults] = await scorePf8(scorer, [defaultPf8Params]);
    return { result, seconds, defaults };
  } finally {
    await scorer.close();
  }
}

async function scoreOn(
  scoreMask: Uint8Array,
  scoreLabels: PointSet[],
  params: Pf8Params[],
): Promise<Scored[]> {
  const scorer = createPf8Scorer({
    geometry,
    mask: scoreMask,
    frames: [frame],
    labels: scoreLabels,
    radiusPx,
    workers: 0,
  });
  try {
    return await scorePf8(scorer, params);
  } finally {
    await scorer.close();
  }
}

const p = (params: Pf8Params) =>
  `threshold ${params.adcThreshold}, min-snr ${params.minSnr}, min-pix-count ${params.minPixCount}, max-pix-count ${params.maxPixCount}, local-bg-radius ${params.localBgRadius}`;
const row = (label: string, s: Scored) =>
  `| ${label} | ${s.precision.toFixed(3)} | ${s.recall.toFixed(3)} | ${s.f1.toFixed(3)} | ${s.matched} / ${s.found} / ${s.reference} |`;
const header = '| | precision | recall | F1 | matched / found / DIALS |\n|---|---|---|---|---|';

const lines: string[] = [];
lines.push(
  `Grid: ${configs.length} configurations; match radius ${radiusPx} px; ${labels[0].count} DIALS spots.`,
  '',
);

// Whole frame, 1 and 2 workers.
const one = await tuneOn(mask, 1);
const two = await tuneOn(mask, 2);
if (
  JSON.stringify(one.result.firstRound.map((r) => r.f1)) !==
  JSON.stringify(two.result.firstRound.map((r) => r.f1))
)
  throw new Error('1 and 2 workers disagree');
writeFileSync(
  join(docsDir, 'pf8-tuning-f1.svg'),
  f1SurfaceSvg(f1Surface(one.result.firstRound), one.result.best.params),
);
lines.push('### Whole frame', '', `Best: ${p(one.result.best.params)}.`, '', header);
lines.push(row('tuned', one.result.best), row('indexamajig defaults', one.defaults), '');
lines.push(
  `Time (grid search incl. worker start): ${one.seconds.toFixed(1)} s with 1 worker, ${two.seconds.toFixed(1)} s with 2 workers (${(one.seconds / two.seconds).toFixed(2)}x); ${availableParallelism()} cores, load average ${loadavg()[0].toFixed(1)} at the end.`,
  '',
);

// Held-out modules, both ways.
const present = new Uint8Array(mask.length).fill(1);
const halves = ([0, 1] as const).map((parity) => ({
  name: parity === 0 ? 'even' : 'odd',
  mask: moduleParityMask(mask, maps.panelIndex, 2, parity),
  labels: labels.map((l) =>
    pointsInMask(l, moduleParityMask(present, maps.panelIndex, 2, parity), maps.fsSize, maps.ssSize),
  ),
}));
for (const [tuneHalf, heldHalf] of [
  [halves[0], halves[1]],
  [halves[1], halves[0]],
]) {
  const tuned = await tuneOn(tuneHalf.mask, 2, tuneHalf.labels);
  const [held, heldDefaults, heldWhole] = await scoreOn(heldHalf.mask, heldHalf.labels, [
    tuned.result.best.params,
    defaultPf8Params,
    one.result.best.params,
  ]);
  if (tuneHalf.name === 'even') {
    writeFileSync(
      join(docsDir, 'pf8-tuning-f1-even-modules.svg'),
      f1SurfaceSvg(f1Surface(tuned.result.firstRound), tuned.result.best.params),
    );
  }
  lines.push(`### Tuned on ${tuneHalf.name} modules, held out: ${heldHalf.name} modules`, '');
  lines.push(`Best on ${tuneHalf.name} modules: ${p(tuned.result.best.params)}.`, '', header);
  lines.push(
    row(`tuned, ${tuneHalf.name} modules (tuning half)`, tuned.result.best),
    row(`defaults, ${tuneHalf.name} modules`, tuned.defaults),
    row(`tuned, ${heldHalf.name} modules (held out)`, held),
    row(`defaults, ${heldHalf.name} modules`, heldDefaults),
    row(`whole-frame optimum, ${heldHalf.name} modules`, heldWhole),
    '',
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
