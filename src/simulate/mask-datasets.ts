/**
 * The bad-pixel masks a geometry reads from the image file (`mask = /entry_1/data_1/mask` with
 * `mask_good`/`mask_bad`, CrystFEL 1.0 `maskN_data`/`maskN_goodbits`/`maskN_badbits`, per panel
 * `p0/mask = ...`), made for a simulated run so that CrystFEL and `braggflow peaks` accept its CXI file
 * with the very geometry it was simulated through.
 *
 * A pixel's word is "good" under every mask spec of its panel at that dataset (all good bits set, no
 * bad bit) where the run's detector measures it, and "bad" (a bad bit set, or else a good bit missing)
 * outside panels, in the geometry's bad regions, `no_index` panels and `mask_edge_pixels`, and at the
 * run's dead and hot pixels. Masks in their own `mask_file` are not the image file's: they are left to
 * that file. Locations with a `%` placeholder are left out too (`braggflow peaks` does not read them).
 */
import { panelSlabRect } from '../detector/mask.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import { UserError } from '../util/errors.js';

export interface MaskDataset {
  /** Absolute location in the data file. */
  path: string;
  /** One frame's words in slab layout ([ss, fs], fs fastest); the same for every frame of the run. */
  words: Uint16Array | Uint32Array;
}

interface PanelWords {
  panel: number;
  good: number;
  /** Undefined where the specs have neither good nor bad bits: every word is good to them. */
  bad: number | undefined;
}

const hex = (bits: number) => `0x${bits.toString(16)}`;

/** The good and bad words of one panel's specs at one location (bits combined over its specs). */
function panelWords(
  maps: PixelMaps,
  panel: number,
  goodBits: number,
  badBits: number,
  path: string,
): PanelWords {
  const good = goodBits >>> 0;
  const bad = badBits >>> 0;
  if ((good & bad) !== 0) {
    throw new UserError(
      `panel '${maps.geometry.panels[panel].name}': mask ${path} has good bits ${hex(good)} and bad bits ${hex(bad)} in common, so no pixel can be good`,
      maps.geometry.sourcePath,
    );
  }
  if (bad !== 0) return { panel, good, bad: (good | bad) >>> 0 };
  return { panel, good, bad: good !== 0 ? 0 : undefined };
}

/**
 * The mask datasets the geometry reads from the image file, for a run whose measured pixels are
 * `goodPixels` (slab layout, 1 = good). Empty when the geometry reads no mask from the image file.
 */
export function maskDatasets(maps: PixelMaps, goodPixels: Uint8Array): MaskDataset[] {
  const byPath = new Map<string, Map<number, { goodBits: number; badBits: number }>>();
  maps.geometry.panels.forEach((panel, p) => {
    for (const spec of panel.masks) {
      if (spec.dataPath === undefined || spec.file !== undefined || spec.dataPath.includes('%')) continue;
      let panels = byPath.get(spec.dataPath);
      if (panels === undefined) {
        panels = new Map();
        byPath.set(spec.dataPath, panels);
      }
      const bits = panels.get(p) ?? { goodBits: 0, badBits: 0 };
      bits.goodBits |= spec.goodBits;
      bits.badBits |= spec.badBits;
      panels.set(p, bits);
    }
  });
  const size = maps.ssSize * maps.fsSize;
  const out: MaskDataset[] = [];
  for (const [path, panels] of byPath) {
    const words = [...panels].map(([p, bits]) => panelWords(maps, p, bits.goodBits, bits.badBits, path));
    const widest = words.reduce((all, w) => (all | w.good | (w.bad ?? 0)) >>> 0, 0);
    const values = widest > 0xffff ? new Uint32Array(size) : new Uint16Array(size);
    // Pixels of no panel reading this mask: bad, as the first panel's specs say it.
    values.fill(words.find((w) => w.bad !== undefined)?.bad ?? 0);
    for (const { panel, good, bad } of words) {
      const rect = panelSlabRect(maps, panel);
      for (let ss = rect.ss0; ss <= rect.ss1; ss++) {
        const end = ss * maps.fsSize + rect.fs1;
        for (let i = ss * maps.fsSize + rect.fs0; i <= end; i++)
          values[i] = goodPixels[i] || bad === undefined ? good : bad;
      }
    }
    out.push({ path, words: values });
  }
  return out;
}
