/**
 * Connected components of marked pixels on the slab, 8-connected, never across a panel seam: the one
 * labelling behind model segmentation (`src/infer/peaks.ts`). A component grows only into
 * neighbours of the same panel (`panelIndex`), so two panels that sit side by side in the slab (CSPAD
 * ASICs, Jungfrau chips) never merge a spot.
 *
 * pf8 and the dispersion finder keep their own fills because their rules differ from this one: pf8
 * grows from a seed only into pixels above a per-radius threshold and rejects on the fly (ring,
 * SNR, border), dispersion is 4-connected on a thresholded map; neither is "label these pixels".
 */

export interface Components {
  count: number;
  /** Pixel indices of every component, back to back; component k is pixels[start[k] .. start[k+1]). */
  pixels: Int32Array;
  start: Int32Array;
}

/**
 * Labels the pixels where `marked` is nonzero (it is cleared as it goes: pass a copy to keep it).
 * `panelIndex` (-1 = no panel) confines components to one panel; without it the slab is one panel.
 */
export function labelComponents(
  marked: Uint8Array,
  ssSize: number,
  fsSize: number,
  panelIndex?: ArrayLike<number>,
): Components {
  const n = ssSize * fsSize;
  const pixels = new Int32Array(n);
  const starts: number[] = [0];
  let top = 0;
  for (let seed = 0; seed < n; seed++) {
    if (!marked[seed]) continue;
    marked[seed] = 0;
    const panel = panelIndex === undefined ? 0 : panelIndex[seed];
    // The component's pixels double as the flood fill's queue: [head, top) are still to visit.
    let head = top;
    pixels[top++] = seed;
    while (head < top) {
      const p = pixels[head++];
      const ss = Math.floor(p / fsSize);
      const fs = p - ss * fsSize;
      for (let dss = -1; dss <= 1; dss++) {
        const s2 = ss + dss;
        if (s2 < 0 || s2 >= ssSize) continue;
        for (let dfs = -1; dfs <= 1; dfs++) {
          const f2 = fs + dfs;
          if (f2 < 0 || f2 >= fsSize) continue;
          const q = s2 * fsSize + f2;
          if (marked[q] && (panelIndex === undefined || panelIndex[q] === panel)) {
            marked[q] = 0;
            pixels[top++] = q;
          }
        }
      }
    }
    starts.push(top);
  }
  return { count: starts.length - 1, pixels: pixels.subarray(0, top), start: Int32Array.from(starts) };
}
