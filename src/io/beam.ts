/**
 * A frame's photon energy (eV) and camera length (m) as the geometry defines them: a literal value,
 * or a dataset of the data file read per frame (`photon_energy = /LCLS/photon_energy_eV`), units
 * and 0.x scale applied. Undefined where the geometry has neither (or the frame has no file).
 */
import { readPerFrameScalar } from './cxi-reader.js';
import { type Geometry, photonEnergyEvFromStored } from './geom.js';

/** Per-frame beam values the geometry reads from the data file, else its literal values. */
export function createBeamReader(geometry: Geometry) {
  const energy = geometry.panels[0]?.photonEnergy ?? geometry.photonEnergy;
  const clen = geometry.panels[0]?.clen ?? geometry.clen;
  return async (path: string | undefined, event: number) => {
    let photonEnergyEv: number | undefined;
    let clenM: number | undefined;
    if (energy?.kind === 'value') photonEnergyEv = energy.photonEnergyEv;
    else if (energy?.kind === 'path' && path !== undefined)
      photonEnergyEv = photonEnergyEvFromStored(energy, await readPerFrameScalar(path, energy.path, event));
    if (clen?.kind === 'value') clenM = clen.clenM;
    else if (clen?.kind === 'path' && path !== undefined)
      clenM = (await readPerFrameScalar(path, clen.path, event)) * clen.scaleToM;
    return { photonEnergyEv, clenM };
  };
}
