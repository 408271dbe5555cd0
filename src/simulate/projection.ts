/**
 * Projection of diffracted rays through any CrystFEL geometry, and the spot shapes that go with them.
 *
 * A panel is the plane through O = (corner_x/res + shift_x, corner_y/res + shift_y, clen + coffset)
 * spanned by F = fs/res and S = ss/res (metres per pixel step; fs.z and ss.z tilt it). A ray from
 * the sample along u meets it at t u with t = (O . n) / (u . n), n = F x S, and the panel-relative
 * position (f, s) (0 = the panel's corner, pixel centres at .5) follows from the dual basis of (F, S).
 * The slab position (CXI: 0.0 = centre of the first pixel) is fs = f - 0.5 + min_fs,
 * ss = s - 0.5 + min_ss + the panel's slab row offset (see src/detector/pixel-maps.ts).
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import { type ExcitedReflection, wavelengthA } from './reflections.js';
import type { SimSpot } from './types.js';

interface PanelPlane {
  panel: number;
  /** Origin, normal, dual basis vectors (metres and 1/metres). */
  ox: number;
  oy: number;
  oz: number;
  nx: number;
  ny: number;
  nz: number;
  /** O . n */
  on: number;
  /** |n| (for the angle of incidence). */
  nLen: number;
  fdx: number;
  fdy: number;
  fdz: number;
  sdx: number;
  sdy: number;
  sdz: number;
  width: number;
  height: number;
  minFs: number;
  slabSsStart: number;
  resPxPerM: number;
  /** Inverse of the panel's (fs, ss) x/y block: lab (x, y) direction -> (df, ds). */
  inv00: number;
  inv01: number;
  inv10: number;
  inv11: number;
}

export interface Projector {
  maps: PixelMaps;
  planes: PanelPlane[];
  /** Largest scattering angle 2 theta any pixel sees, radians. */
  maxTwoThetaRad: number;
}

/** Spot-shape inputs of one shot and crystal. */
export interface SpotShapeModel {
  photonEnergyEv: number;
  bandwidth: number;
  divergenceRad: number;
  mosaicityRad: number;
  sizeUm: number;
  /** Width (FWHM) of the illuminated part of the crystal, micrometres: min(beam, crystal). */
  illuminatedUm: number;
}

/** Precomputes each panel's plane for camera lengths `panelClensM` (one per panel, metres). */
export function createProjector(maps: PixelMaps, panelClensM: ArrayLike<number>): Projector {
  const planes: PanelPlane[] = maps.geometry.panels.map((panel, p) => {
    const res = panel.resPxPerM;
    const ox = panel.cornerXPx / res + maps.shiftXM;
    const oy = panel.cornerYPx / res + maps.shiftYM;
    const oz = panelClensM[p] + panel.coffsetM;
    const [fx, fy, fz] = [panel.fs.x / res, panel.fs.y / res, panel.fs.z / res];
    const [sx, sy, sz] = [panel.ss.x / res, panel.ss.y / res, panel.ss.z / res];
    const nx = fy * sz - fz * sy;
    const ny = fz * sx - fx * sz;
    const nz = fx * sy - fy * sx;
    // Dual basis: F' = (S x n) / (F . (S x n)), S' = (n x F) / (S . (n x F)).
    const sxn = [sy * nz - sz * ny, sz * nx - sx * nz, sx * ny - sy * nx];
    const nxf = [ny * fz - nz * fy, nz * fx - nx * fz, nx * fy - ny * fx];
    const fDen = fx * sxn[0] + fy * sxn[1] + fz * sxn[2];
    const sDen = sx * nxf[0] + sy * nxf[1] + sz * nxf[2];
    const det = panel.fs.x * panel.ss.y - panel.ss.x * panel.fs.y;
    return {
      panel: p,
      ox,
      oy,
      oz,
      nx,
      ny,
      nz,
      on: ox * nx + oy * ny + oz * nz,
      nLen: Math.hypot(nx, ny, nz),
      fdx: sxn[0] / fDen,
      fdy: sxn[1] / fDen,
      fdz: sxn[2] / fDen,
      sdx: nxf[0] / sDen,
      sdy: nxf[1] / sDen,
      sdz: nxf[2] / sDen,
      width: panel.maxFs - panel.minFs + 1,
      height: panel.maxSs - panel.minSs + 1,
      minFs: panel.minFs,
      slabSsStart: panel.minSs + maps.layout.panelSsOffset[p],
      resPxPerM: res,
      inv00: det === 0 ? 0 : panel.ss.y / det,
      inv01: det === 0 ? 0 : -panel.ss.x / det,
      inv10: det === 0 ? 0 : -panel.fs.y / det,
      inv11: det === 0 ? 0 : panel.fs.x / det,
    };
  });
  return { maps, planes, maxTwoThetaRad: maxTwoTheta(maps, panelClensM) };
}

/**
 * Largest 2 theta of any pixel centre. A panel is flat, and the set of points of a plane within a given
 * angle of the beam is the plane's section of a convex cone, so convex: over a panel's rectangle of pixel
 * centres the angle is largest at one of its four corners. Four pixels per panel instead of a pass with
 * atan2 over every pixel (~0.4 s on 4 Mpixel, in every worker's set-up).
 */
export function maxTwoTheta(maps: PixelMaps, panelClensM: ArrayLike<number>): number {
  let best = 0;
  const { xM, yM, zOffsetM, panelIndex, fsSize } = maps;
  const { panels } = maps.geometry;
  for (let p = 0; p < panels.length; p++) {
    const panel = panels[p];
    const ss0 = panel.minSs + maps.layout.panelSsOffset[p];
    const ss1 = ss0 + panel.maxSs - panel.minSs;
    for (const i of [
      ss0 * fsSize + panel.minFs,
      ss0 * fsSize + panel.maxFs,
      ss1 * fsSize + panel.minFs,
      ss1 * fsSize + panel.maxFs,
    ]) {
      if (panelIndex[i] !== p) continue;
      const angle = Math.atan2(Math.hypot(xM[i], yM[i]), panelClensM[p] + zOffsetM[i]);
      if (angle > best) best = angle;
    }
  }
  return best;
}

/** Where a ray along (ux, uy, uz) lands: slab position, panel and the ray length; null if on no pixel. */
export interface RayHit {
  panel: number;
  fs: number;
  ss: number;
  /** Distance from the sample to the hit, metres. */
  distanceM: number;
  /** Cosine of the angle between the ray and the panel normal. */
  cosIncidence: number;
  /** Lab x, y of the hit, metres. */
  xM: number;
  yM: number;
}

export function castRay(projector: Projector, ux: number, uy: number, uz: number): RayHit | null {
  const { maps } = projector;
  for (const plane of projector.planes) {
    const un = ux * plane.nx + uy * plane.ny + uz * plane.nz;
    if (un === 0) continue;
    const t = plane.on / un;
    if (!(t > 0)) continue;
    const dx = t * ux - plane.ox;
    const dy = t * uy - plane.oy;
    const dz = t * uz - plane.oz;
    const f = dx * plane.fdx + dy * plane.fdy + dz * plane.fdz;
    const s = dx * plane.sdx + dy * plane.sdy + dz * plane.sdz;
    if (!(f >= 0 && f < plane.width && s >= 0 && s < plane.height)) continue;
    const fs = f - 0.5 + plane.minFs;
    const ss = s - 0.5 + plane.slabSsStart;
    // The pixel must belong to this panel in the slab (a later, overlapping panel wins there).
    const fsPixel = Math.min(maps.fsSize - 1, Math.max(0, Math.round(fs)));
    const ssPixel = Math.min(maps.ssSize - 1, Math.max(0, Math.round(ss)));
    if (maps.panelIndex[ssPixel * maps.fsSize + fsPixel] !== plane.panel) continue;
    return {
      panel: plane.panel,
      fs,
      ss,
      distanceM: t,
      cosIncidence: Math.abs(un) / plane.nLen,
      xM: t * ux,
      yM: t * uy,
    };
  }
  return null;
}

/**
 * The SimSpots of one crystal's excited reflections: those whose diffracted ray lands on a pixel.
 * Spot widths (Gaussian sigmas) come from angular spreads seen from the sample:
 *   radial:     divergence, bandwidth (2 tan(theta) b_eff: Bragg's law, b_eff the part of the band the
 *               mosaic block spans) and mosaicity (2 sin(theta) eta)
 *   tangential: divergence and mosaicity
 * plus the illuminated crystal's footprint; a radial angle spread becomes t sigma / cos(incidence)
 * pixels on the panel (t the ray length), a tangential one t sigma.
 */
export function projectReflections(
  projector: Projector,
  reflections: readonly ExcitedReflection[],
  crystalIndex: number,
  shape: SpotShapeModel,
  out: SimSpot[] = [],
): SimSpot[] {
  const kLen = 1 / wavelengthA(shape.photonEnergyEv);
  const sizeLengthRad = 1 / (shape.sizeUm * 1e4 * kLen);
  const footprintM = (shape.illuminatedUm * 1e-6) / 2.3548;
  for (const reflection of reflections) {
    const kz = kLen + reflection.qz;
    const kOut = Math.hypot(reflection.qx, reflection.qy, kz);
    const ux = reflection.qx / kOut;
    const uy = reflection.qy / kOut;
    const uz = kz / kOut;
    const hit = castRay(projector, ux, uy, uz);
    if (hit === null) continue;
    const plane = projector.planes[hit.panel];
    const sinTheta = Math.min(
      1,
      (reflection.qx ** 2 + reflection.qy ** 2 + reflection.qz ** 2) ** 0.5 / (2 * kLen),
    );
    const theta = Math.asin(sinTheta);
    const mosaic = 2 * sinTheta * shape.mosaicityRad;
    // A lattice point of angular extent eta (mosaic and size) diffracts only the wavelengths whose
    // Bragg angle it spans (relative range eta / tan(theta)): the band that streaks the spot is the
    // overlap of that range with the beam's, a Gaussian product.
    const tanTheta = Math.tan(theta);
    const eta2 = shape.mosaicityRad ** 2 + sizeLengthRad * sizeLengthRad;
    const bandEffective =
      shape.bandwidth > 0 && eta2 > 0
        ? 1 / Math.sqrt(1 / shape.bandwidth ** 2 + (tanTheta * tanTheta) / eta2)
        : 0;
    const band = 2 * tanTheta * bandEffective;
    const common2 = shape.divergenceRad ** 2 + mosaic * mosaic + sizeLengthRad * sizeLengthRad;
    const pxPerRad = hit.distanceM * plane.resPxPerM;
    const footprintPx2 = (footprintM * plane.resPxPerM) ** 2;
    const sigmaTangentialPx = Math.sqrt(common2 * pxPerRad * pxPerRad + footprintPx2);
    const radialPx = (Math.sqrt(common2 + band * band) * pxPerRad) / Math.max(0.05, hit.cosIncidence);
    const sigmaRadialPx = Math.sqrt(radialPx * radialPx + footprintPx2);
    // Radial lab direction at the hit, expressed as a slab step (df, ds).
    const rLen = Math.hypot(hit.xM, hit.yM);
    const rx = rLen > 0 ? hit.xM / rLen : 1;
    const ry = rLen > 0 ? hit.yM / rLen : 0;
    const df = plane.inv00 * rx + plane.inv01 * ry;
    const ds = plane.inv10 * rx + plane.inv11 * ry;
    out.push({
      h: reflection.h,
      k: reflection.k,
      l: reflection.l,
      crystal: crystalIndex,
      panel: hit.panel,
      fs: hit.fs,
      ss: hit.ss,
      dA: reflection.dA,
      partiality: reflection.partiality,
      photons: reflection.fullPhotons * reflection.partiality,
      sigmaRadialPx,
      sigmaTangentialPx,
      radialAngleRad: Math.atan2(ds, df),
    });
  }
  return out;
}
