/**
 * Pixel conventions. CrystFEL streams give slab positions with 0.0 at the CORNER of the first pixel
 * (the centre of pixel 0 is at 0.5): that is how CrystFEL's geometry maps fs/ss to the lab frame, and
 * why indexamajig adds half a pixel to peaks it loads from Cheetah/CXI peak lists (its
 * `--no-half-pixel-shift` turns that off). braggflow uses the CXI convention, 0.0 = centre of the first
 * pixel, so a stream position is half a pixel more than the same point in braggflow's coordinates.
 */

/** Add to a CrystFEL stream position to get the CXI/braggflow position of the same point. */
export const CRYSTFEL_TO_CXI_OFFSET_PX = -0.5;

export function crystfelToCxiPx(positionPx: number): number {
  return positionPx + CRYSTFEL_TO_CXI_OFFSET_PX;
}

export function cxiToCrystfelPx(positionPx: number): number {
  return positionPx - CRYSTFEL_TO_CXI_OFFSET_PX;
}

/** A column of stream positions (`fsPx`/`ssPx` of a peak or reflection table) in CXI convention. */
export function crystfelColumnToCxi(columnPx: ArrayLike<number>): Float64Array {
  const out = new Float64Array(columnPx.length);
  for (let i = 0; i < out.length; i++) out[i] = columnPx[i] + CRYSTFEL_TO_CXI_OFFSET_PX;
  return out;
}

/** A column of CXI positions in the convention a stream is written in. */
export function cxiColumnToCrystfel(columnPx: ArrayLike<number>): Float64Array {
  const out = new Float64Array(columnPx.length);
  for (let i = 0; i < out.length; i++) out[i] = columnPx[i] - CRYSTFEL_TO_CXI_OFFSET_PX;
  return out;
}
