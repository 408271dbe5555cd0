/** Shared by the pipeline tests. */

// Two 192 x 192 panels beside the beam, 75 um pixels at 80 mm: ~30 photosystem spots a hit.
export const geometryText = `photon_energy = 9500
clen = 0.08
res = 13333
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs

a/min_fs = 0
a/max_fs = 191
a/min_ss = 0
a/max_ss = 191
a/fs = +1.0x
a/ss = +1.0y
a/corner_x = -196
a/corner_y = -96

b/min_fs = 0
b/max_fs = 191
b/min_ss = 192
b/max_ss = 383
b/fs = +1.0x
b/ss = +1.0y
b/corner_x = 4
b/corner_y = -96
`;
