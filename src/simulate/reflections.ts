/**
 * Reflections a still excites: the reciprocal lattice points near the Ewald sphere, their partiality
 * and their expected photons.
 *
 * Lab frame as CrystFEL: the beam travels along +z, x horizontal, y up; wave vectors have length
 * k = 1/lambda (no 2 pi). A reflection's scattering vector is q = h a* + k b* + l c*; its diffracted
 * wave vector is K + q with K = (0, 0, k). The excitation error is how far the lattice point lies
 * from the sphere, eps = |K + q| - k (positive outside).
 *
 * Partiality: the reflection's profile along the sphere normal is a Gaussian of width rho (the
 * "profile radius"), the quadrature sum of what smears a lattice point or the sphere on one shot:
 *   crystal size     1 / L
 *   mosaicity        |q| eta / 2
 *   bandwidth        b |q|^2 lambda / 2   (how far the sphere moves for a relative energy change b)
 *   divergence       |q| delta / 2
 * and the excited fraction is exp(-eps^2 / (2 rho^2)). Lattice points with a smaller fraction than
 * `minPartiality` are not excited.
 *
 * Intensities: acentric Wilson statistics, |F|^2 = Sigma * Exp(1) with Sigma = N_atoms <f^2>, N_atoms
 * from the cell volume and its protein fraction (one non-hydrogen atom per 17 A^3 of protein). The
 * exponential draw is seeded per (run seed, hkl), Friedel mates sharing it, so every frame of a run
 * sees the same |F|^2 for a reflection (a mergeable data set). The full reflection's photons follow
 * Darwin's kinematic formula without the Lorentz factor:
 *   N = I0 r_e^2 P lambda^3 V_xtal |F|^2 exp(-B / (2 d^2)) / V_cell^2
 * with I0 the fluence (photons per A^2), P the polarisation factor of a beam polarised along x
 * (XFELs), V_xtal the crystal volume, times a free `intensityScale` for tuning.
 */
import { UserError } from '../util/errors.js';
import { centeringAllows, reciprocalOf, type ScrewAxis, screwAxesAllow } from './cell.js';

/** Classical electron radius, angstrom. */
export const ELECTRON_RADIUS_A = 2.8179403262e-5;
/** hc in eV angstrom. */
export const HC_EV_A = 12398.41984;

export interface ShotBeam {
  photonEnergyEv: number;
  /** Relative bandwidth (sigma) of this shot's spectrum, e.g. 0.003 for SASE. */
  bandwidth: number;
  /** Beam divergence (sigma), radians. */
  divergenceRad: number;
  /** Photons per square micrometre at the sample on this shot. */
  fluencePhotonsPerUm2: number;
  /** Fraction of the beam polarised along x (1 for an XFEL, 0.5 unpolarised). */
  polarisationX: number;
}

export interface ShotCrystal {
  /** Rows a*, b*, c* in the lab frame, 1/angstrom. */
  reciprocalPerA: Float64Array;
  centering: string;
  screwAxes: readonly ScrewAxis[];
  cellVolumeA3: number;
  /** Fraction of the cell that is protein (1 - solvent content). */
  proteinFraction: number;
  /** Edge of the (cubic) crystal, micrometres. */
  sizeUm: number;
  /** Mosaic spread (sigma), radians. */
  mosaicityRad: number;
  /** Wilson B factor, A^2. */
  bFactorA2: number;
  /** Free multiplier on the photons. */
  intensityScale: number;
  /** Seed of the |F|^2 draws: the same for every frame of a run. */
  structureSeed: number;
}

export interface ExcitedReflection {
  h: number;
  k: number;
  l: number;
  /** Scattering vector q, lab frame, 1/angstrom. */
  qx: number;
  qy: number;
  qz: number;
  dA: number;
  excitationErrorPerA: number;
  profileRadiusPerA: number;
  partiality: number;
  /** Photons of the full reflection (before partiality). */
  fullPhotons: number;
}

export interface PredictOptions {
  /** Highest |q| = 1/d to consider, 1/angstrom (resolution limit and detector edge). */
  maxQPerA: number;
  /** Lattice points excited less than this are left out. */
  minPartiality: number;
}

/** Mean non-hydrogen atoms per cubic angstrom of protein. */
const atomsPerA3 = 1 / 17;
/** <f^2> at low angle for protein atoms (C, N, O, S in protein proportions), electrons^2. */
const meanAtomFSquared = 42;

export function wavelengthA(photonEnergyEv: number): number {
  if (!(photonEnergyEv > 0)) throw new UserError(`photon energy must be positive, got ${photonEnergyEv} eV`);
  return HC_EV_A / photonEnergyEv;
}

/** Wilson's Sigma: mean |F|^2 at zero angle for a protein cell, electrons^2. */
export function wilsonSigma(cellVolumeA3: number, proteinFraction: number): number {
  return cellVolumeA3 * proteinFraction * atomsPerA3 * meanAtomFSquared;
}

/** A uniform number in [0, 1) fixed by (seed, h, k, l); Friedel mates (-h, -k, -l) get the same. */
export function hklUniform(seed: number, h: number, k: number, l: number): number {
  // Friedel: use the sign of the first non-zero index to pick one of the pair.
  if (h < 0 || (h === 0 && (k < 0 || (k === 0 && l < 0)))) {
    h = -h;
    k = -k;
    l = -l;
  }
  let x = seed ^ 0x9e3779b9;
  for (const v of [h, k, l]) {
    x = Math.imul(x ^ (v + 0x7f4a7c15), 0x85ebca6b);
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35);
    x ^= x >>> 16;
  }
  return (x >>> 0) / 4294967296;
}

/** The profile radius (sigma of the excitation-error profile) at |q|, 1/angstrom. */
export function profileRadiusPerA(crystal: ShotCrystal, beam: ShotBeam, qPerA: number): number {
  const lambda = wavelengthA(beam.photonEnergyEv);
  const size = 1 / (crystal.sizeUm * 1e4);
  const mosaic = (qPerA * crystal.mosaicityRad) / 2;
  const band = (beam.bandwidth * qPerA * qPerA * lambda) / 2;
  const divergence = (qPerA * beam.divergenceRad) / 2;
  return Math.sqrt(size * size + mosaic * mosaic + band * band + divergence * divergence);
}

/**
 * Every allowed reflection within `maxQPerA` whose partiality reaches `minPartiality`. For each
 * (h, k) line the excited l lie in two short intervals where the line crosses the shell around the
 * sphere, found from two quadratics, so the cost grows with the sphere's area, not the lattice volume.
 */
export function predictReflections(
  crystal: ShotCrystal,
  beam: ShotBeam,
  options: PredictOptions,
): ExcitedReflection[] {
  const lambda = wavelengthA(beam.photonEnergyEv);
  const kLen = 1 / lambda;
  const qMax = Math.min(options.maxQPerA, 2 * kLen);
  const r = crystal.reciprocalPerA;
  const direct = reciprocalOf(r);
  const rowLength = (m: Float64Array, i: number) => Math.hypot(m[3 * i], m[3 * i + 1], m[3 * i + 2]);
  const hMax = Math.floor(rowLength(direct, 0) * qMax);
  const kMax = Math.floor(rowLength(direct, 1) * qMax);
  // The widest excitation error kept: nSigma profile radii at the largest |q|.
  const nSigma = Math.sqrt(-2 * Math.log(Math.max(1e-12, Math.min(1, options.minPartiality))));
  const shell = nSigma * profileRadiusPerA(crystal, beam, qMax);
  const outer2 = (kLen + shell) ** 2;
  const inner2 = Math.max(0, kLen - shell) ** 2;
  const [cx, cy, cz] = [r[6], r[7], r[8]];
  const cc = cx * cx + cy * cy + cz * cz;

  const sigma = wilsonSigma(crystal.cellVolumeA3, crystal.proteinFraction);
  const fluencePerA2 = beam.fluencePhotonsPerUm2 / 1e8;
  const crystalVolumeA3 = (crystal.sizeUm * 1e4) ** 3;
  const fullScale =
    (crystal.intensityScale * fluencePerA2 * ELECTRON_RADIUS_A ** 2 * lambda ** 3 * crystalVolumeA3 * sigma) /
    crystal.cellVolumeA3 ** 2;

  const out: ExcitedReflection[] = [];
  const tryL = (h: number, k: number, l: number, px: number, py: number, pz: number) => {
    const qx = px + l * cx;
    const qy = py + l * cy;
    const qz = pz + l * cz;
    const q2 = qx * qx + qy * qy + qz * qz;
    if (q2 === 0 || q2 > qMax * qMax) return;
    if (!centeringAllows(h, k, l, crystal.centering) || !screwAxesAllow(h, k, l, crystal.screwAxes)) return;
    const kz = kLen + qz;
    const kOut = Math.sqrt(qx * qx + qy * qy + kz * kz);
    const eps = kOut - kLen;
    const q = Math.sqrt(q2);
    const rho = profileRadiusPerA(crystal, beam, q);
    const partiality = Math.exp(-(eps * eps) / (2 * rho * rho));
    if (partiality < options.minPartiality) return;
    const dA = 1 / q;
    // Polarisation along x: P = 1 - pol (ux)^2 - (1 - pol) (uy)^2 with u the diffracted direction.
    const ux = qx / kOut;
    const uy = qy / kOut;
    const pol = beam.polarisationX;
    const polarisation = 1 - pol * ux * ux - (1 - pol) * uy * uy;
    const fSquared = -Math.log(1 - hklUniform(crystal.structureSeed, h, k, l));
    const fullPhotons = fullScale * fSquared * polarisation * Math.exp(-crystal.bFactorA2 / (2 * dA * dA));
    out.push({
      h,
      k,
      l,
      qx,
      qy,
      qz,
      dA,
      excitationErrorPerA: eps,
      profileRadiusPerA: rho,
      partiality,
      fullPhotons,
    });
  };

  for (let h = -hMax; h <= hMax; h++) {
    for (let k = -kMax; k <= kMax; k++) {
      // p = K + h a* + k b*; |p + l c*|^2 = cc l^2 + 2 (p.c) l + p.p
      const px = h * r[0] + k * r[3];
      const py = h * r[1] + k * r[4];
      const pz = h * r[2] + k * r[5];
      const Kz = pz + kLen;
      const pc = px * cx + py * cy + Kz * cz;
      const pp = px * px + py * py + Kz * Kz;
      const outerDisc = pc * pc - cc * (pp - outer2);
      if (outerDisc < 0) continue;
      const outerRoot = Math.sqrt(outerDisc);
      const lo = Math.ceil((-pc - outerRoot) / cc);
      const hi = Math.floor((-pc + outerRoot) / cc);
      const innerDisc = pc * pc - cc * (pp - inner2);
      if (innerDisc <= 0) {
        for (let l = lo; l <= hi; l++) tryL(h, k, l, px, py, pz);
        continue;
      }
      // Skip the l inside the inner sphere: they cannot be excited.
      const innerRoot = Math.sqrt(innerDisc);
      const innerLo = (-pc - innerRoot) / cc;
      const innerHi = (-pc + innerRoot) / cc;
      for (let l = lo; l <= hi && l <= innerLo; l++) tryL(h, k, l, px, py, pz);
      for (let l = Math.max(lo, Math.ceil(innerHi)); l <= hi; l++) tryL(h, k, l, px, py, pz);
    }
  }
  return out;
}
