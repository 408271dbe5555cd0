/**
 * Presets: a crystal, a beam and imaging overrides that together look like one kind of experiment.
 * Any field can be overridden from the command line (`--cell`, `--photon-energy-ev`, ...).
 *
 * The beam's photon energy and detector distance are used only where the geometry does not give a
 * literal value (a geometry that reads them from the data file, or gives none): explicit options win,
 * then the geometry, then the preset. The distance is sample-to-detector; where the geometry has only
 * coffsets, clen = distance - median(coffset) so the panels sit at about that distance.
 */

import { UserError } from '../util/errors.js';
import type { UnitCell } from './cell.js';
import type { ImagingOptions } from './render.js';

export interface CrystalPreset {
  cell: UnitCell;
  /** Space group without spaces (`P6122`), for screw-axis absences; see cell.ts for those known. */
  spaceGroup: string;
  /** Crystal edge, micrometres: log-normal with this median and log-sigma. */
  sizeMedianUm: number;
  sizeLogSigma: number;
  /** Mosaic spread (sigma), degrees. */
  mosaicityDeg: number;
  bFactorA2: number;
  /** 1 - solvent fraction. */
  proteinFraction: number;
  /** Reflections beyond this are not excited (the crystal's own diffraction limit). */
  resolutionLimitA: number;
  /** Free multiplier on every reflection's photons. */
  intensityScale: number;
  /** Crystals per hit: 1..maxCrystals, each further one with probability `multipleCrystalChance`. */
  maxCrystals: number;
  multipleCrystalChance: number;
}

export interface BeamPreset {
  photonEnergyEv: number;
  /** Shot-to-shot jitter of the central energy (relative sigma). */
  photonEnergyJitter: number;
  /** Relative bandwidth (sigma) of one SASE shot. */
  bandwidth: number;
  divergenceRad: number;
  /** Mean photons per square micrometre, and the shot-to-shot relative sigma (SASE pulse energy). */
  fluencePhotonsPerUm2: number;
  fluenceJitter: number;
  polarisationX: number;
  /** Beam focus FWHM, micrometres. */
  beamSizeUm: number;
  detectorDistanceM: number;
}

export interface SimulationPreset {
  name: string;
  description: string;
  crystal: CrystalPreset;
  beam: BeamPreset;
  imaging: Partial<ImagingOptions>;
}

const lclsBeam: BeamPreset = {
  photonEnergyEv: 9500,
  photonEnergyJitter: 0.001,
  bandwidth: 0.0025,
  divergenceRad: 5e-5,
  fluencePhotonsPerUm2: 1.0e11,
  fluenceJitter: 0.25,
  polarisationX: 1,
  beamSizeUm: 1.5,
  detectorDistanceM: 0.1,
};

export const presets: Record<string, SimulationPreset> = {
  lysozyme: {
    name: 'lysozyme',
    description: 'lysozyme-like: P4(3)2(1)2, 79 x 79 x 38 A, small cell, strong spots to about 1.9 A',
    crystal: {
      cell: { aA: 79.1, bA: 79.1, cA: 37.9, alphaDeg: 90, betaDeg: 90, gammaDeg: 90, centering: 'P' },
      spaceGroup: 'P43212',
      sizeMedianUm: 3,
      sizeLogSigma: 0.4,
      mosaicityDeg: 0.05,
      bFactorA2: 18,
      proteinFraction: 0.6,
      resolutionLimitA: 1.9,
      intensityScale: 1,
      maxCrystals: 2,
      multipleCrystalChance: 0.1,
    },
    beam: { ...lclsBeam, photonEnergyEv: 9500, detectorDistanceM: 0.1 },
    imaging: { background: 'water' },
  },
  thermolysin: {
    name: 'thermolysin',
    description:
      'thermolysin-like: P6(1)22, 93 x 93 x 130 A, medium spots to about 2.1 A; the real CSPAD run (9742 eV, 130 mm)',
    crystal: {
      cell: { aA: 92.9, bA: 92.9, cA: 130.4, alphaDeg: 90, betaDeg: 90, gammaDeg: 120, centering: 'P' },
      spaceGroup: 'P6122',
      sizeMedianUm: 4,
      sizeLogSigma: 0.4,
      mosaicityDeg: 0.04,
      bFactorA2: 25,
      proteinFraction: 0.55,
      resolutionLimitA: 2.1,
      intensityScale: 1,
      maxCrystals: 2,
      multipleCrystalChance: 0.08,
    },
    // Fluence x5 and a 0.1% bandwidth bring spot count and spot size to the real CSPAD thermolysin
    // still's (docs/simulator-realism.md): 1e11 photons/um^2 gave a quarter of its spots.
    beam: {
      ...lclsBeam,
      photonEnergyEv: 9742.5,
      detectorDistanceM: 0.13,
      bandwidth: 0.001,
      fluencePhotonsPerUm2: 5.0e11,
    },
    imaging: { background: 'water' },
  },
  photosystem: {
    name: 'photosystem',
    description:
      'photosystem-like: P2(1)2(1)2(1), 117 x 223 x 310 A, large cell: weak, dense spots to about 3 A',
    crystal: {
      cell: { aA: 117, bA: 223, cA: 310, alphaDeg: 90, betaDeg: 90, gammaDeg: 90, centering: 'P' },
      spaceGroup: 'P212121',
      sizeMedianUm: 8,
      sizeLogSigma: 0.5,
      mosaicityDeg: 0.03,
      bFactorA2: 60,
      proteinFraction: 0.45,
      resolutionLimitA: 3.0,
      intensityScale: 1,
      maxCrystals: 1,
      multipleCrystalChance: 0,
    },
    beam: { ...lclsBeam, photonEnergyEv: 7000, detectorDistanceM: 0.15 },
    imaging: { background: 'heavy' },
  },
};

export const presetNames = Object.keys(presets);

export function presetByName(name: string): SimulationPreset {
  const preset = presets[name];
  if (preset === undefined)
    throw new UserError(`unknown preset '${name}' (known: ${presetNames.join(', ')})`, undefined, '--preset');
  return preset;
}
