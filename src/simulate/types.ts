/**
 * The data that crosses the simulator's two halves: crystal physics (cell, orientation, Ewald sphere,
 * partiality, intensities, projection through the geometry) produces `SimSpot`s; image formation
 * (spot profiles, background, detector response) turns them into a frame and its exact truth.
 *
 * Positions follow CXI: slab `fs`/`ss` in pixels, 0.0 = centre of the first pixel.
 */

/** One excited reflection of one crystal, projected onto one panel. */
export interface SimSpot {
  h: number;
  k: number;
  l: number;
  /** Index into the frame's crystals. */
  crystal: number;
  /** Panel the spot centre falls on (index into geometry.panels). */
  panel: number;
  /** Spot centre, slab pixels (CXI convention). */
  fs: number;
  ss: number;
  /** Resolution of the reflection, d in angstrom. */
  dA: number;
  /** Fraction of the full reflection excited on this shot (0..1], from the excitation error. */
  partiality: number;
  /** Expected photons reaching the detector from this spot (full intensity x partiality x scale). */
  photons: number;
  /**
   * Spot profile: a 2-D Gaussian with these widths along the radial direction (away from the beam
   * centre, where divergence, bandwidth and mosaicity stretch spots) and across it, in pixels.
   */
  sigmaRadialPx: number;
  sigmaTangentialPx: number;
  /** Direction of the radial axis in the slab: angle of (dfs, dss) from +fs, radians. */
  radialAngleRad: number;
}

/** One crystal in the beam for one frame. */
export interface SimCrystal {
  /** Cell edges (angstrom) and angles (degrees). */
  cellA: [number, number, number];
  anglesDeg: [number, number, number];
  centering: string;
  /**
   * Reciprocal basis in the lab frame, rows a*, b*, c*, in 1/angstrom (row-major 3x3): the
   * orientation matrix the truth records. CrystFEL's stream uses nm^-1 (x10).
   */
  reciprocalPerA: Float64Array;
}

/** Beam and detector conditions of one frame. */
export interface FrameConditions {
  photonEnergyEv: number;
  clenM: number;
  /** Frame index in the run. */
  frameIndex: number;
  /** False for a miss: no crystal, background and detector only. */
  hit: boolean;
}
