import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import type { PointSet } from '../../engine/match.js';
import type { Pf8Params } from '../../peaks/peakfinder8.js';
import type { F1Surface, Scored, SearchKind, TuneResult } from '../../peaks/tune.js';
import { UserError } from '../../util/errors.js';
import { frameRangeWithin } from '../../util/frame-range.js';
import { createProgress, type Progress } from '../../util/progress.js';
import { integerOption, numberOption } from '../options.js';
import { printJson } from '../output.js';

interface TuneCliOptions {
  method: string;
  geom: string;
  in: string;
  dataPath?: string;
  labels: string;
  labelGroup?: string;
  out: string;
  search: string;
  grid?: string;
  eta: string;
  workers?: string;
  radius: string;
  frames?: string;
  plot?: string;
  heldoutModules?: string;
  json?: boolean;
}

const f3 = (x: number) => x.toFixed(3);

function paramsLine(p: Pf8Params): string {
  return [
    `--threshold=${p.adcThreshold}`,
    `--min-snr=${p.minSnr}`,
    `--min-pix-count=${p.minPixCount}`,
    `--max-pix-count=${p.maxPixCount}`,
    `--local-bg-radius=${p.localBgRadius}`,
    ...(p.minResPx > 0 ? [`--min-res=${p.minResPx}`] : []),
    ...(Number.isFinite(p.maxResPx) ? [`--max-res=${p.maxResPx}`] : []),
  ].join(' ');
}

function scoreLine(label: string, s: Scored): string {
  return `${label.padEnd(24)} precision ${f3(s.precision)}  recall ${f3(s.recall)}  F1 ${f3(s.f1)}  (${s.matched} matched, ${s.found} found, ${s.reference} reference)`;
}

async function run(options: TuneCliOptions): Promise<void> {
  if (options.method !== 'pf8') throw new UserError(`--method ${options.method}: only pf8 can be tuned`);
  if (options.search !== 'grid' && options.search !== 'halving')
    throw new UserError(`--search must be grid or halving, got '${options.search}'`);
  const search = options.search as SearchKind;
  const radiusPx = numberOption('--radius', options.radius);
  const eta = integerOption('--eta', options.eta, 2);
  const workers =
    options.workers === undefined
      ? Math.min(4, availableParallelism())
      : integerOption('--workers', options.workers, 0);
  const panelsPerModule =
    options.heldoutModules === undefined
      ? undefined
      : integerOption('--heldout-modules', options.heldoutModules);

  const tune = await import('../../peaks/tune.js');
  const { defaultPf8Params } = await import('../../peaks/peakfinder8.js');
  const { pf8ParamsToJson } = await import('../../peaks/pf8-params.js');
  const givenGrid = options.grid === undefined ? undefined : tune.parseGrid(options.grid);

  const { readGeometry } = await import('../../io/geom.js');
  const { computePixelMaps, geometryAduPerPhoton } = await import('../../detector/pixel-maps.js');
  const { buildMask } = await import('../../detector/mask-file.js');
  const { openFrameReader } = await import('../../io/cxi-reader.js');
  const { readLabelLists } = await import('../../engine/labels.js');
  const geometry = readGeometry(options.geom);
  const maps = computePixelMaps(geometry);
  const fullMask = await buildMask(maps, { dataFile: options.in });
  const reader = await openFrameReader(options.in, {
    dataPath: options.dataPath ?? maps.layout.blocks[0]?.dataPath,
    expectedSlabShape: [maps.ssSize, maps.fsSize],
  });
  let frames: Float32Array[];
  let range: [number, number];
  try {
    range =
      options.frames === undefined
        ? [0, reader.frameCount]
        : frameRangeWithin(options.frames, reader.frameCount, options.in);
    frames = [];
    for (let f = range[0]; f < range[1]; f++) frames.push(reader.readFrame(f));
  } finally {
    reader.close();
  }
  const allLabels = await readLabelLists(options.labels, options.labelGroup);
  if (allLabels.length !== reader.frameCount) {
    throw new UserError(
      `${options.in} has ${reader.frameCount} frames but ${options.labels} has ${allLabels.length} label lists: one list per frame`,
    );
  }
  const labels: PointSet[] = allLabels.slice(range[0], range[1]);
  // Without --grid, the search space comes from these frames' own background (and the geometry's
  // ADU per photon): the same search on a photon-counting Pilatus and on a CSPAD in raw ADU.
  const basis =
    givenGrid === undefined
      ? tune.backgroundBasis(frames, maps, fullMask, geometryAduPerPhoton(geometry))
      : undefined;
  const grid = givenGrid ?? tune.defaultGridFor(basis!);
  const configs = tune.expandGrid(grid, defaultPf8Params);

  // Held-out check: tune on even modules, score the result on the odd ones.
  const present = new Uint8Array(fullMask.length).fill(1);
  const split =
    panelsPerModule === undefined
      ? undefined
      : ([0, 1] as const).map((parity) => {
          const mask = tune.moduleParityMask(fullMask, maps.panelIndex, panelsPerModule, parity);
          const area = tune.moduleParityMask(present, maps.panelIndex, panelsPerModule, parity);
          return { mask, labels: labels.map((l) => tune.pointsInMask(l, area, maps.fsSize, maps.ssSize)) };
        });
  const tuneMask = split?.[0].mask ?? fullMask;
  const tuneLabels = split?.[0].labels ?? labels;

  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = performance.now();
  const scorer = tune.createPf8Scorer({
    geometry,
    mask: tuneMask,
    frames,
    labels: tuneLabels,
    radiusPx,
    workers,
  });
  let result: TuneResult;
  let defaults: Scored;
  let heldOut: { tuned: Scored; defaults: Scored } | undefined;
  try {
    log(
      `tune: ${configs.length} configurations, ${frames.length} frame(s), ${search}, ${workers} worker(s)${split ? ', even modules (odd held out)' : ''}`,
    );
    log(
      basis !== undefined
        ? `tune: grid from the frames (background noise ${basis.noiseAdu.toPrecision(3)} ADU, 99th percentile ${basis.backgroundP99Adu.toPrecision(3)} ADU${basis.aduPerPhoton === undefined ? '' : `, ${basis.aduPerPhoton} ADU/photon`}): ${tune.gridToSpec(grid)}`
        : `tune: grid ${tune.gridToSpec(grid)}`,
    );
    let bar: Progress | undefined;
    result = await tune.tunePf8(scorer, {
      configs,
      search,
      eta,
      onProgress(done, planned, best) {
        bar ??= createProgress('tune', planned, log, Math.max(1, Math.ceil(planned / 10)));
        bar.update(done, `best F1 ${f3(best)}`);
      },
    });
    bar?.stop();
    [defaults] = await tune.scorePf8(scorer, [defaultPf8Params]);
  } finally {
    await scorer.close();
  }
  if (split !== undefined) {
    const held = tune.createPf8Scorer({
      geometry,
      mask: split[1].mask,
      frames,
      labels: split[1].labels,
      radiusPx,
      workers: 0,
    });
    try {
      const [tuned, base] = await tune.scorePf8(held, [result.best.params, defaultPf8Params]);
      heldOut = { tuned, defaults: base };
    } finally {
      await held.close();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const best = result.best;
  const surface: F1Surface = tune.f1Surface(result.firstRound);

  // Exactly what `peaks --params` reads (readPeakParamsFile rejects other fields); the rest of the
  // report goes to stdout.
  const tuning = {
    grid: tune.gridToSpec(grid),
    gridFrom: givenGrid === undefined ? 'the frames' : '--grid',
    ...(basis === undefined ? {} : { basis }),
    search,
    frames: frames.length,
    radiusPx,
  };
  const paramsFile = { method: 'pf8' as const, params: pf8ParamsToJson(best.params), f1: best.f1, tuning };
  const report = {
    ...paramsFile,
    precision: best.precision,
    recall: best.recall,
    matched: best.matched,
    found: best.found,
    reference: best.reference,
    radiusPx,
    search,
    configurations: configs.length,
    frames: frames.length,
    input: options.in,
    labels: options.labels,
    defaults,
    ...(heldOut === undefined
      ? {}
      : { heldOut: { panelsPerModule, tunedOn: 'even modules', scoredOn: 'odd modules', ...heldOut } }),
  };
  writeFileSync(options.out, `${JSON.stringify(paramsFile, null, 2)}\n`);
  if (options.plot !== undefined) writeFileSync(options.plot, tune.f1SurfaceSvg(surface, best.params));

  if (options.json) {
    printJson({
      ...report,
      out: options.out,
      seconds,
      workers,
      evaluations: result.evaluations,
      rounds: result.rounds,
      surface: {
        thresholds: surface.thresholds,
        minSnrs: surface.minSnrs,
        f1: surface.f1,
        frames: surface.frames,
      },
    });
    return;
  }
  const lines = [
    `best: ${paramsLine(best.params)}`,
    scoreLine(split ? 'tuned (even modules)' : 'tuned', best),
    scoreLine(split ? 'defaults (even modules)' : 'defaults', defaults),
    ...(heldOut
      ? [
          scoreLine('tuned (odd, held out)', heldOut.tuned),
          scoreLine('defaults (odd modules)', heldOut.defaults),
        ]
      : []),
    `${result.evaluations} evaluations (configuration x frame) in ${seconds.toFixed(1)} s on ${workers} worker(s); rounds: ${result.rounds.map((r) => `${r.configs} configs on ${r.frames} frame(s)`).join(', ')}`,
    `wrote ${options.out}${options.plot ? ` and ${options.plot}` : ''}`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

export function register(program: Command): void {
  program
    .command('tune')
    .description(
      'Search peak-finder parameters (grid or successive halving, in parallel) that maximise F1 against reference peaks; writes a params file for peaks --params',
    )
    .requiredOption('--method <name>', 'peak finder to tune (pf8)')
    .requiredOption('--geom <file>', 'CrystFEL geometry file')
    .requiredOption('--in <file>', 'CXI/HDF5 file of frames')
    .option('--data-path <path>', "frames dataset (default: the geometry's data path)")
    .requiredOption(
      '--labels <file>',
      'reference peaks: CXI peak table (simulator truth preferred) or JSON lists of [fs, ss, I] per frame',
    )
    .option('--label-group <group>', 'peak table group in a CXI labels file')
    .requiredOption(
      '--out <file>',
      'params file to write: JSON {method, params, f1}, what peaks --params reads',
    )
    .option('--search <kind>', 'grid or halving (successive halving over frames)', 'grid')
    .option(
      '--grid <spec>',
      'the search space, values per parameter, e.g. "threshold=100,200;min-snr=3,5;min-pix-count=1,2;max-pix-count=200;local-bg-radius=3"; parameters not named stay at the defaults (default: thresholds from the frames\' background noise to above their strongest background, log-spaced, with 3, 5, 10 photons\' worth where the geometry gives ADU per photon; SNR 3-8, 1-3 pixels, background radius 2-4)',
    )
    .option('--eta <n>', 'successive halving: keep 1/eta of the configurations per round', '3')
    .option('--workers <n>', 'worker threads (0: the main thread)')
    .option('--radius <px>', 'match radius, pixels', '2')
    .option('--frames <a:b>', 'frames to use, 0-based, end excluded')
    .option('--plot <file>', 'write the F1 surface (threshold x min-snr) as SVG')
    .option(
      '--heldout-modules <n>',
      'held-out check: tune on even modules of n consecutive panels, score the result on the odd ones',
    )
    .option('--json', 'print the result as JSON')
    .action(run);
}
