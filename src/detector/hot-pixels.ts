/** Hot pixels found from the data itself, as a beamline builds a bad-pixel mask from a run. */

/**
 * Pixels that read bright on most frames of a run: detector defects (hot pixels), since a Bragg spot
 * of a randomly oriented crystal does not come back to the same pixel frame after frame. Bright means
 * at least `minPhotons` photons' worth of ADU, far above any background; flagged when bright on at
 * least `fraction` of the frames (and on two at least). Returns 1 for flagged pixels.
 */
export function persistentHotPixels(
  framesAdu: readonly Float32Array[],
  aduPerPhoton: number,
  minPhotons = 100,
  fraction = 0.75,
): Uint8Array {
  const size = framesAdu[0]?.length ?? 0;
  const need = Math.max(2, Math.ceil(fraction * framesAdu.length));
  const bright = new Uint16Array(size);
  const cut = minPhotons * aduPerPhoton;
  for (const frame of framesAdu) for (let i = 0; i < size; i++) if (frame[i] >= cut) bright[i]++;
  const hot = new Uint8Array(size);
  for (let i = 0; i < size; i++) if (bright[i] >= need) hot[i] = 1;
  return hot;
}
