/**
 * The embedded default detector: what `npm run demo` and tests use when no `.geom` is given, so the
 * project runs with nothing beside it. A 1-Mpixel, four-module detector of 75 um pixels around a
 * central hole, written as a CrystFEL geometry so it goes through the same parser as real files.
 * The modules are stacked along ss in the slab (CXI style), like the CSPAD files, and two of them are
 * rotated so a slab row is not always a lab row.
 */
import { type Geometry, parseGeometry } from '../io/geom.js';

export const defaultGeometryName = 'braggflow-quad-1M (embedded)';

export const defaultGeometryText = `; braggflow's embedded default detector: 4 modules of 512 x 512 pixels, 75 um
; (res 13333.33 px/m), camera length 80 mm, 9.5 keV. Modules are stacked along ss in the slab.
photon_energy = 9500
clen = 0.080
res = 13333.333
adu_per_photon = 1.0
max_adu = 65535
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs

q0/min_fs = 0
q0/max_fs = 511
q0/min_ss = 0
q0/max_ss = 511
q0/fs = +1.0x
q0/ss = +1.0y
q0/corner_x = -524
q0/corner_y = 12

q1/min_fs = 0
q1/max_fs = 511
q1/min_ss = 512
q1/max_ss = 1023
q1/fs = -1.0y
q1/ss = +1.0x
q1/corner_x = 12
q1/corner_y = 524

q2/min_fs = 0
q2/max_fs = 511
q2/min_ss = 1024
q2/max_ss = 1535
q2/fs = -1.0x
q2/ss = -1.0y
q2/corner_x = 524
q2/corner_y = -12

q3/min_fs = 0
q3/max_fs = 511
q3/min_ss = 1536
q3/max_ss = 2047
q3/fs = +1.0y
q3/ss = -1.0x
q3/corner_x = -12
q3/corner_y = -524

; the beamstop shadow
bad_beamstop/min_x = -30
bad_beamstop/max_x = 30
bad_beamstop/min_y = -30
bad_beamstop/max_y = 30
`;

export function defaultGeometry(): Geometry {
  return parseGeometry(defaultGeometryText, defaultGeometryName);
}
