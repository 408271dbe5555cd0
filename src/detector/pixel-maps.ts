/**
 * Per-pixel lab-frame maps over the slab, computed once per geometry and reused by the peak finder
 * (radius bins), the simulator and the renderer.
 *
 * CrystFEL positions: a panel-relative point (f, s), with (0, 0) at the panel's corner, lies at
 * `corner + f*fsVec + s*ssVec` pixels in x and y, and at `(clen + coffset)*res + f*fs.z + s*ss.z` pixels
 * in z; dividing by res gives metres. Pixel centres are at f + 0.5, s + 0.5. In slab coordinates
 * (CXI convention, 0.0 = centre of the first pixel) the panel-relative point is
 * f = fs - minFs + 0.5, s = ss - minSs - ssOffset + 0.5.
 */
import { type Geometry, HC_EV_M, type Panel } from '../io/geom.js';
import { UserError } from '../util/errors.js';
import { type SlabLayout, slabLayout } from './layout.js';

export interface PixelMaps {
  geometry: Geometry;
  layout: SlabLayout;
  ssSize: number;
  fsSize: number;
  /** Panel index per slab pixel; -1 where no panel. */
  panelIndex: Int16Array | Int32Array;
  /** Lab x and y of each pixel centre, metres; NaN where no panel. */
  xM: Float32Array;
  yM: Float32Array;
  /** z of each pixel centre minus clen (coffset plus tilt), metres; NaN where no panel. */
  zOffsetM: Float32Array;
  /** Distance of each pixel centre from the beam axis, in that panel's pixels; NaN where no panel. */
  radiusPx: Float32Array;
  /** Pixels claimed by more than one panel (the later panel wins). */
  overlapPixels: number;
  /** Detector shift applied to every panel (literal `detector_shift_x/y`), metres. */
  shiftXM: number;
  shiftYM: number;
}

/** Slab index of (ss, fs). */
export function slabIndex(maps: Pick<PixelMaps, 'fsSize'>, ss: number, fs: number): number {
  return ss * maps.fsSize + fs;
}

/** Builds the maps; O(pixels), no per-pixel allocation. */
export function computePixelMaps(geometry: Geometry): PixelMaps {
  const layout = slabLayout(geometry);
  const { ssSize, fsSize } = layout;
  const size = ssSize * fsSize;
  const panelIndex = geometry.panels.length < 32767 ? new Int16Array(size) : new Int32Array(size);
  panelIndex.fill(-1);
  const xM = new Float32Array(size).fill(Number.NaN);
  const yM = new Float32Array(size).fill(Number.NaN);
  const zOffsetM = new Float32Array(size).fill(Number.NaN);
  const radiusPx = new Float32Array(size).fill(Number.NaN);
  const shiftXM = geometry.detectorShiftX?.kind === 'value' ? geometry.detectorShiftX.valueM : 0;
  const shiftYM = geometry.detectorShiftY?.kind === 'value' ? geometry.detectorShiftY.valueM : 0;
  let overlapPixels = 0;

  geometry.panels.forEach((panel, p) => {
    const res = panel.resPxPerM;
    const cornerX = panel.cornerXPx + shiftXM * res;
    const cornerY = panel.cornerYPx + shiftYM * res;
    const { fs, ss } = panel;
    const width = panel.maxFs - panel.minFs + 1;
    const height = panel.maxSs - panel.minSs + 1;
    const rowOffset = layout.panelSsOffset[p] + panel.minSs;
    for (let s = 0; s < height; s++) {
      const sc = s + 0.5;
      const rowX = cornerX + sc * ss.x;
      const rowY = cornerY + sc * ss.y;
      const rowZ = sc * ss.z;
      let i = (rowOffset + s) * fsSize + panel.minFs;
      for (let f = 0; f < width; f++, i++) {
        const fc = f + 0.5;
        const x = rowX + fc * fs.x;
        const y = rowY + fc * fs.y;
        if (panelIndex[i] >= 0) overlapPixels++;
        panelIndex[i] = p;
        xM[i] = x / res;
        yM[i] = y / res;
        zOffsetM[i] = panel.coffsetM + (rowZ + fc * fs.z) / res;
        radiusPx[i] = Math.sqrt(x * x + y * y);
      }
    }
  });

  return {
    geometry,
    layout,
    ssSize,
    fsSize,
    panelIndex,
    xM,
    yM,
    zOffsetM,
    radiusPx,
    overlapPixels,
    shiftXM,
    shiftYM,
  };
}

const mapsCache = new WeakMap<Geometry, PixelMaps>();

/**
 * The maps for a geometry, computed on first use and shared afterwards: the peak finder, simulator and
 * renderer given the same Geometry object reuse one set. Treat geometries as immutable once mapped.
 */
export function pixelMapsFor(geometry: Geometry): PixelMaps {
  let maps = mapsCache.get(geometry);
  if (maps === undefined) {
    maps = computePixelMaps(geometry);
    mapsCache.set(geometry, maps);
  }
  return maps;
}

/** Explicit beam and detector values; they override the geometry (needed when it gives data paths). */
export interface BeamOptions {
  photonEnergyEv?: number;
  clenM?: number;
}

/** Camera length per panel in metres: the override, else the panel's literal clen; a path is an error. */
export function panelClensM(geometry: Geometry, clenM?: number): Float64Array {
  const out = new Float64Array(geometry.panels.length);
  geometry.panels.forEach((panel, p) => {
    if (clenM !== undefined) {
      out[p] = clenM;
      return;
    }
    const clen = panel.clen;
    if (clen?.kind === 'value') out[p] = clen.clenM;
    else if (clen?.kind === 'path') {
      throw new UserError(
        `camera length comes from the data (${clen.path}); give clenM explicitly`,
        geometry.sourcePath,
      );
    } else
      throw new UserError(
        `panel '${panel.name}' has no camera length (clen); give clenM explicitly`,
        geometry.sourcePath,
      );
  });
  return out;
}

/** Photon energy in eV: the override, else the geometry's literal value (first panel, as CrystFEL). */
export function geometryPhotonEnergyEv(geometry: Geometry, photonEnergyEv?: number): number {
  if (photonEnergyEv !== undefined) {
    if (!(photonEnergyEv > 0)) throw new UserError(`photon energy must be positive, got ${photonEnergyEv}`);
    return photonEnergyEv;
  }
  const energy = geometry.panels[0]?.photonEnergy ?? geometry.photonEnergy;
  if (energy?.kind === 'value') return energy.photonEnergyEv;
  if (energy?.kind === 'path') {
    throw new UserError(
      `photon energy comes from the data (${energy.path}); give photonEnergyEv explicitly`,
      geometry.sourcePath,
    );
  }
  throw new UserError('geometry has no photon energy; give photonEnergyEv explicitly', geometry.sourcePath);
}

/**
 * ADU per photon as the geometry gives it: `adu_per_photon`, or `adu_per_eV` x the photon energy
 * (`photonEnergyEv`, else the geometry's literal one); undefined when it says neither.
 */
export function geometryAduPerPhoton(geometry: Geometry, photonEnergyEv?: number): number | undefined {
  const panel = geometry.panels[0];
  if (panel?.aduPerPhoton !== undefined) return panel.aduPerPhoton;
  if (panel?.aduPerEv === undefined) return undefined;
  const energy = photonEnergyEv ?? panel.photonEnergy ?? geometry.photonEnergy;
  const ev =
    typeof energy === 'number' ? energy : energy?.kind === 'value' ? energy.photonEnergyEv : undefined;
  return ev === undefined ? undefined : panel.aduPerEv * ev;
}

/** Scattering angle 2θ (radians) per pixel; NaN where no panel. */
export function twoThetaMap(maps: PixelMaps, options: BeamOptions = {}, out?: Float32Array): Float32Array {
  const clens = panelClensM(maps.geometry, options.clenM);
  const size = maps.ssSize * maps.fsSize;
  const result = out ?? new Float32Array(size);
  const { xM, yM, zOffsetM, panelIndex } = maps;
  for (let i = 0; i < size; i++) {
    const p = panelIndex[i];
    if (p < 0) {
      result[i] = Number.NaN;
      continue;
    }
    const z = clens[p] + zOffsetM[i];
    result[i] = Math.atan2(Math.sqrt(xM[i] * xM[i] + yM[i] * yM[i]), z);
  }
  return result;
}

/** Resolution 1/d in 1/m per pixel (1/d = 2 sin θ / λ); NaN where no panel. */
export function resolutionMap(maps: PixelMaps, options: BeamOptions = {}, out?: Float32Array): Float32Array {
  const photonEnergyEv = geometryPhotonEnergyEv(maps.geometry, options.photonEnergyEv);
  const twoOverLambda = (2 * photonEnergyEv) / HC_EV_M;
  const result = twoThetaMap(maps, options, out);
  for (let i = 0; i < result.length; i++) result[i] = twoOverLambda * Math.sin(result[i] / 2);
  return result;
}

const resolutionCache = new WeakMap<PixelMaps, { key: string; values: Float32Array }>();

/** `resolutionMap`, remembered per maps for the last beam values asked (per-frame callers ask often). */
export function resolutionFor(maps: PixelMaps, options: BeamOptions = {}): Float32Array {
  const key = `${options.photonEnergyEv}:${options.clenM}`;
  const cached = resolutionCache.get(maps);
  if (cached?.key === key) return cached.values;
  const values = resolutionMap(maps, options);
  resolutionCache.set(maps, { key, values });
  return values;
}

/** Resolution 1/d (1/m) of one lab point; for checks and single peaks. */
export function resolutionAt(xM: number, yM: number, zM: number, photonEnergyEv: number): number {
  const twoTheta = Math.atan2(Math.hypot(xM, yM), zM);
  return ((2 * photonEnergyEv) / HC_EV_M) * Math.sin(twoTheta / 2);
}

export interface LabPoint {
  panel: number;
  xM: number;
  yM: number;
  /** z minus clen, metres. */
  zOffsetM: number;
}

/**
 * Lab position of a continuous slab position (CXI convention: 0.0 = centre of the first pixel), e.g. a
 * peak centroid; null when it falls outside every panel.
 */
export function slabToLab(maps: PixelMaps, fs: number, ss: number): LabPoint | null {
  const ssPixel = Math.round(ss);
  const fsPixel = Math.round(fs);
  if (ssPixel < 0 || ssPixel >= maps.ssSize || fsPixel < 0 || fsPixel >= maps.fsSize) return null;
  const p = maps.panelIndex[ssPixel * maps.fsSize + fsPixel];
  if (p < 0) return null;
  const panel: Panel = maps.geometry.panels[p];
  const f = fs - panel.minFs + 0.5;
  const s = ss - panel.minSs - maps.layout.panelSsOffset[p] + 0.5;
  const res = panel.resPxPerM;
  return {
    panel: p,
    xM: (panel.cornerXPx + f * panel.fs.x + s * panel.ss.x) / res + maps.shiftXM,
    yM: (panel.cornerYPx + f * panel.fs.y + s * panel.ss.y) / res + maps.shiftYM,
    zOffsetM: panel.coffsetM + (f * panel.fs.z + s * panel.ss.z) / res,
  };
}
