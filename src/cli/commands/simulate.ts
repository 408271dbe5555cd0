import type { Command } from 'commander';
import { printJson } from '../output.js';

interface SimulateCliOptions {
  geom?: string;
  frames: string;
  seed: string;
  out: string;
  stream?: string;
  hitRate: string;
  preset: string;
  cell?: string;
  centering?: string;
  spaceGroup?: string;
  photonEnergyEv?: string;
  clenM?: string;
  background?: string;
  workers: string;
  gzip: string;
  maxPeaks: string;
  maxCrystals?: string;
  fluenceScale: string;
  truthMinSnr?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('simulate')
    .description(
      'Simulate still diffraction frames with exact truth (CXI frames + truth, CrystFEL stream of predictions)',
    )
    .option('--geom <file>', 'CrystFEL geometry (default: the embedded 1-Mpixel detector)')
    .requiredOption('--out <file.cxi>', 'CXI file to write')
    .option('--frames <n>', 'frames to simulate', '10')
    .option('--seed <n>', 'random seed: the same seed gives the same run', '1')
    .option('--stream <file>', 'CrystFEL stream of predicted reflections (default: beside --out)')
    .option('--hit-rate <p>', 'fraction of frames with crystals', '0.5')
    .option('--preset <name>', 'lysozyme, thermolysin or photosystem', 'thermolysin')
    .option('--cell <"a b c al be ga">', 'unit cell in angstrom and degrees (overrides the preset)')
    .option('--centering <X>', 'lattice centering: P, A, B, C, I, F or R')
    .option('--space-group <name>', 'space group for screw-axis absences, e.g. P6122')
    .option('--photon-energy-ev <eV>', 'photon energy (default: the geometry, else the preset)')
    .option('--clen-m <m>', 'camera length in metres (default: the geometry, else the preset)')
    .option('--background <level>', 'none, water or heavy (default: the preset)')
    .option('--workers <n>', 'worker threads', '1')
    .option('--gzip <level>', 'gzip level 0-9 for the frames', '0')
    .option('--max-peaks <n>', 'width of the truth peak table', '4096')
    .option('--max-crystals <n>', 'most crystals per hit (default: the preset)')
    .option('--fluence-scale <x>', 'multiplies the beam fluence (brighter or weaker frames)', '1')
    .option(
      '--truth-min-snr <x>',
      'truth rule: spots of at least this expected integrated SNR are true (default 3; the shipped model reports 8 and up)',
    )
    .option('--json', 'print a summary as JSON')
    .action(async (options: SimulateCliOptions) => {
      const [{ runSimulation, readGeometryText }, { readGeometry }, defaults, { createProgress }] =
        await Promise.all([
          import('../../simulate/run.js'),
          import('../../io/geom.js'),
          import('../../detector/default-geometry.js'),
          import('../../util/progress.js'),
        ]);
      const geometry = options.geom === undefined ? defaults.defaultGeometry() : readGeometry(options.geom);
      const geometryText =
        options.geom === undefined ? defaults.defaultGeometryText : readGeometryText(options.geom);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      let progress: ReturnType<typeof createProgress> | undefined;
      let peaks = 0;
      const summary = await runSimulation({
        geometry,
        geometryText,
        frames: options.frames,
        seed: options.seed,
        outPath: options.out,
        streamPath: options.stream,
        hitRate: options.hitRate,
        preset: options.preset,
        cell: options.cell,
        centering: options.centering,
        spaceGroup: options.spaceGroup,
        photonEnergyEv: options.photonEnergyEv,
        clenM: options.clenM,
        background: options.background as 'none' | 'water' | 'heavy' | undefined,
        workers: options.workers,
        compression: options.gzip,
        maxPeaks: options.maxPeaks,
        maxCrystals: options.maxCrystals,
        fluenceScale: options.fluenceScale,
        truthMinSnr: options.truthMinSnr,
        reuseFrameBuffers: true, // onFrame below keeps nothing of a frame
        onFrame: (done, total, frame) => {
          progress ??= createProgress('simulate', total, log);
          peaks += frame.rendered.truth.count;
          progress.update(done, `${(peaks / done).toFixed(1)} peaks/frame`);
        },
      });
      progress?.stop();
      if (options.json) printJson(summary);
      else {
        console.log(
          `${summary.frames} frames (${summary.hits} hits, ${summary.crystals} crystals), ` +
            `${summary.peaksPerHit.mean.toFixed(1)} peaks per hit, ${summary.framesPerSecond.toFixed(2)} frames/s`,
        );
        console.log(`wrote ${summary.outputs.cxi} and ${summary.outputs.stream}`);
      }
    });
}
