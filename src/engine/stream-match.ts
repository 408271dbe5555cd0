/**
 * The data engine's first step: per indexed chunk of a CrystFEL stream, the peaks a finder found
 * matched one to one (Hungarian, within a radius, same panel only) to the reflections the indexing
 * solution predicts. What both agree on is a spot; the per-frame precision (matched / found) and
 * recall (matched / predicted) choose which frames are worth labelling.
 *
 * Positions come out in CXI's convention (slab fs/ss, 0.0 = centre of the first pixel): the stream's
 * tables (0.0 = the corner) are shifted by half a pixel as they are read. Found peaks are the chunk's
 * own peak table, or, with `foundPeaks`, one peak list per event of the image file (a `braggflow peaks`
 * CXI table; the simulator's streams predict reflections for its own frames this way).
 */
import { basename } from 'node:path';
import { slabLayout } from '../detector/layout.js';
import type { Geometry } from '../io/geom.js';
import { parseGeometry } from '../io/geom.js';
import { readStream } from '../io/stream/reader.js';
import type { PeakTable, ReflectionTable, StreamChunk } from '../io/stream/types.js';
import type { PeakList } from '../peaks/peak-list.js';
import { linePlotSvg } from '../plot/svg.js';
import { UserError } from '../util/errors.js';
import { matchPeaks } from './match.js';

/** CrystFEL's stream positions put 0.0 at a pixel's corner; CXI's at its centre. */
const CRYSTFEL_TO_CXI_PX = -0.5;

export const DEFAULT_MATCH_RADIUS_PX = 5;

/** The points of one side of a match, CXI convention, with a panel index per point (-1: none). */
export interface PanelPoints {
  count: number;
  fs: Float64Array;
  ss: Float64Array;
  intensity: Float64Array;
  panel: Int32Array;
}

/** One indexed chunk, matched. */
export interface FrameMatch {
  /** 0-based position of the chunk in the stream. */
  chunk: number;
  /** `Image filename:` as the stream writes it. */
  file: string;
  /** `Event:` (`//N`), absent for single-image files. */
  event?: string;
  serial?: number;
  indexedBy?: string;
  crystals: number;
  found: number;
  /** Reflections predicted by all of the chunk's crystals. */
  predicted: number;
  matched: number;
  /** matched / found (1 when nothing was found). */
  precision: number;
  /** matched / predicted (1 when nothing was predicted). */
  recall: number;
  meanDistancePx: number;
}

/** A matched chunk with its points, for the labeller. */
export interface ChunkMatch extends FrameMatch {
  foundPoints: PanelPoints;
  predictedPoints: PanelPoints;
  /** For each found peak, the index of its predicted reflection, or -1. */
  foundToPredicted: Int32Array;
}

export interface MatchSummary {
  /** Chunks read, indexed or not. */
  chunks: number;
  indexedFrames: number;
  found: number;
  predicted: number;
  matched: number;
  /** Totals' ratios: matched / found and matched / predicted over the indexed frames. */
  precision: number;
  recall: number;
}

export interface StreamMatchReport {
  stream: string;
  radiusPx: number;
  frames: FrameMatch[];
  summary: MatchSummary;
}

/**
 * Panel names to indices, shared by both tables of a stream; positions to panels through the geometry.
 * With a geometry, indices are the geometry's panel indices and positions become slab positions: a
 * stream writes positions in the panel's data block, which for geometries whose panels sit in separate
 * blocks (`dim1 = %`, a Jungfrau module per block) is the slab position less the block's ss offset.
 */
export class PanelIndex {
  private readonly byName = new Map<string, number>();
  private readonly rects: { minFs: number; maxFs: number; minSs: number; maxSs: number }[] = [];
  private readonly offsets: number[] = [];

  constructor(geometry?: Geometry, ssOffsets?: ArrayLike<number>) {
    for (const panel of geometry?.panels ?? []) {
      const offset = ssOffsets?.[this.rects.length] ?? 0;
      this.byName.set(panel.name, this.rects.length);
      this.offsets.push(offset);
      this.rects.push({
        minFs: panel.minFs,
        maxFs: panel.maxFs,
        minSs: panel.minSs + offset,
        maxSs: panel.maxSs + offset,
      });
    }
  }

  /** Slab ss offset of a panel's data block (0 without a geometry or for panels it does not name). */
  ssOffset(index: number): number {
    return this.offsets[index] ?? 0;
  }

  named(name: string): number {
    let index = this.byName.get(name);
    if (index === undefined) {
      index = this.byName.size;
      this.byName.set(name, index);
    }
    return index;
  }

  /** The panel holding slab pixel (fs, ss), CXI convention, or -1 (no geometry, or in no panel). */
  at(fs: number, ss: number): number {
    const f = Math.round(fs);
    const s = Math.round(ss);
    for (let i = 0; i < this.rects.length; i++) {
      const r = this.rects[i];
      if (f >= r.minFs && f <= r.maxFs && s >= r.minSs && s <= r.maxSs) return i;
    }
    return -1;
  }
}

function tablePoints(table: PeakTable | ReflectionTable, panels: PanelIndex): PanelPoints {
  const count = table.fsPx.length;
  const points: PanelPoints = {
    count,
    fs: new Float64Array(count),
    ss: new Float64Array(count),
    intensity: Float64Array.from(table.intensity),
    panel: new Int32Array(count),
  };
  const ids = table.panelNames.map((name) => panels.named(name));
  for (let i = 0; i < count; i++) {
    points.fs[i] = table.fsPx[i] + CRYSTFEL_TO_CXI_PX;
    points.ss[i] = table.ssPx[i] + CRYSTFEL_TO_CXI_PX;
    if (table.hasPanelColumn) {
      const panel = ids[table.panelIndex[i]];
      points.panel[i] = panel;
      points.ss[i] += panels.ssOffset(panel);
    } else points.panel[i] = panels.at(points.fs[i], points.ss[i]);
  }
  return points;
}

function concatPoints(parts: PanelPoints[]): PanelPoints {
  const count = parts.reduce((n, p) => n + p.count, 0);
  const out: PanelPoints = {
    count,
    fs: new Float64Array(count),
    ss: new Float64Array(count),
    intensity: new Float64Array(count),
    panel: new Int32Array(count),
  };
  let at = 0;
  for (const p of parts) {
    out.fs.set(p.fs, at);
    out.ss.set(p.ss, at);
    out.intensity.set(p.intensity, at);
    out.panel.set(p.panel, at);
    at += p.count;
  }
  return out;
}

function peakListPoints(list: PeakList, panels: PanelIndex): PanelPoints {
  const count = list.count;
  const points: PanelPoints = {
    count,
    fs: Float64Array.from(list.fs.subarray(0, count)),
    ss: Float64Array.from(list.ss.subarray(0, count)),
    intensity: Float64Array.from(list.totalIntensity.subarray(0, count)),
    panel: new Int32Array(count),
  };
  for (let i = 0; i < count; i++) points.panel[i] = panels.at(points.fs[i], points.ss[i]);
  return points;
}

/** `//N` (CrystFEL's event of a multi-frame HDF5 file) as N; 0 when absent (a single-image file); undefined when not that form. */
export function eventFrameIndex(event: string | undefined): number | undefined {
  if (event === undefined) return 0;
  const match = /^\/\/(\d+)$/.exec(event.trim());
  return match ? Number(match[1]) : undefined;
}

export interface MatchChunkOptions {
  radiusPx?: number;
  /** Found peaks to use instead of the chunk's own table. */
  found?: PeakList;
}

/** True when the chunk carries an indexing solution with predicted reflections. */
export function isIndexed(chunk: StreamChunk): boolean {
  return chunk.crystals.some((crystal) => crystal.reflections !== undefined);
}

/** Matches one indexed chunk (see the module comment). */
export function matchChunk(
  chunk: StreamChunk,
  index: number,
  panels: PanelIndex,
  options: MatchChunkOptions = {},
): ChunkMatch {
  const radiusPx = options.radiusPx ?? DEFAULT_MATCH_RADIUS_PX;
  const foundPoints =
    options.found !== undefined
      ? peakListPoints(options.found, panels)
      : chunk.peaks
        ? tablePoints(chunk.peaks, panels)
        : concatPoints([]);
  const predictedPoints = concatPoints(
    chunk.crystals.flatMap((crystal) =>
      crystal.reflections ? [tablePoints(crystal.reflections, panels)] : [],
    ),
  );
  const result = matchPeaks(foundPoints, predictedPoints, radiusPx, {
    found: foundPoints.panel,
    reference: predictedPoints.panel,
  });
  const frame: ChunkMatch = {
    chunk: index,
    file: chunk.imageFilename,
    crystals: chunk.crystals.length,
    found: result.found,
    predicted: result.reference,
    matched: result.matched,
    precision: result.precision,
    recall: result.recall,
    meanDistancePx: result.meanDistancePx,
    foundPoints,
    predictedPoints,
    foundToPredicted: result.foundToRef,
  };
  if (chunk.event !== undefined) frame.event = chunk.event;
  if (chunk.serial !== undefined) frame.serial = chunk.serial;
  if (chunk.indexedBy !== undefined) frame.indexedBy = chunk.indexedBy;
  return frame;
}

/** The plain per-frame record of a chunk match (what `--json` and the CSV print). */
export function frameRecord(match: ChunkMatch): FrameMatch {
  const { foundPoints: _f, predictedPoints: _p, foundToPredicted: _m, ...frame } = match;
  return frame;
}

export interface StreamMatchOptions {
  radiusPx?: number;
  /**
   * Found peaks per frame of the image file (index = the event's N), replacing the stream's own
   * tables; `foundSource` names where they came from in errors.
   */
  foundPeaks?: PeakList[];
  foundSource?: string;
  onWarning?: (message: string) => void;
  /** Bytes of the stream read so far, after each block of the file. */
  onBytesRead?: (bytes: number) => void;
  /** Every indexed chunk's match with its points, as it is made (the labeller's hook). */
  onMatch?: (match: ChunkMatch, chunk: StreamChunk) => void | Promise<void>;
}

export function summarise(frames: readonly FrameMatch[], chunks: number): MatchSummary {
  let found = 0;
  let predicted = 0;
  let matched = 0;
  for (const f of frames) {
    found += f.found;
    predicted += f.predicted;
    matched += f.matched;
  }
  return {
    chunks,
    indexedFrames: frames.length,
    found,
    predicted,
    matched,
    precision: found === 0 ? 1 : matched / found,
    recall: predicted === 0 ? 1 : matched / predicted,
  };
}

/** Reads a stream chunk by chunk (constant memory) and matches every indexed chunk. */
export async function matchStream(
  path: string,
  options: StreamMatchOptions = {},
): Promise<StreamMatchReport> {
  const radiusPx = options.radiusPx ?? DEFAULT_MATCH_RADIUS_PX;
  if (!(radiusPx > 0)) throw new UserError(`the match radius must be positive, got ${radiusPx}`);
  const file = await readStream(path, { onWarning: options.onWarning, onBytesRead: options.onBytesRead });
  let geometry: Geometry | undefined;
  if (file.geometryText !== undefined && file.geometryText.trim() !== '') {
    try {
      geometry = parseGeometry(file.geometryText, `${path} (its geometry block)`);
    } catch (error) {
      // Only format < 2.3 tables (no panel column) or found peaks from a file need it.
      options.onWarning?.(
        `${path}: the geometry block does not parse (${(error as Error).message}); panels come from the tables only`,
      );
    }
  }
  let offsets: number[] | undefined;
  if (geometry !== undefined) {
    try {
      offsets = slabLayout(geometry).panelSsOffset;
    } catch (error) {
      options.onWarning?.(`${path}: the geometry block's layout does not work (${(error as Error).message})`);
      geometry = undefined;
    }
  }
  if (geometry === undefined && options.foundPeaks !== undefined) {
    throw new UserError(
      "found peaks from a file need the stream's geometry block to know their panels (it has none that parses)",
      path,
    );
  }
  const panels = new PanelIndex(geometry, offsets);
  const frames: FrameMatch[] = [];
  let chunks = 0;
  for await (const chunk of file.chunks) {
    const index = chunks++;
    if (isIndexed(chunk)) {
      let found: PeakList | undefined;
      if (options.foundPeaks !== undefined) {
        const frame = eventFrameIndex(chunk.event);
        const where = options.foundSource ?? 'the found peaks';
        if (frame === undefined)
          throw new UserError(
            `event '${chunk.event}' is not of the form //N`,
            path,
            `line ${chunk.sourceLine}`,
          );
        found = options.foundPeaks[frame];
        if (found === undefined) {
          throw new UserError(
            `${where} has ${options.foundPeaks.length} frames, the stream names frame ${frame}`,
            path,
            `line ${chunk.sourceLine}`,
          );
        }
      }
      const match = matchChunk(chunk, index, panels, { radiusPx, found });
      frames.push(frameRecord(match));
      await options.onMatch?.(match, chunk);
    }
  }
  return { stream: path, radiusPx, frames, summary: summarise(frames, chunks) };
}

/** The precision-recall scatter of the indexed frames: where to put the frame-selection thresholds. */
export function matchPlotSvg(report: StreamMatchReport): string {
  const frames = report.frames;
  return linePlotSvg({
    title: `${basename(report.stream)}: ${frames.length} indexed frames, found peaks vs predicted reflections within ${report.radiusPx} px`,
    xLabel: 'recall (matched / predicted)',
    yLabel: 'precision (matched / found)',
    series: [
      {
        label: `frames (overall P ${report.summary.precision.toFixed(2)}, R ${report.summary.recall.toFixed(2)})`,
        x: frames.map((f) => f.recall),
        y: frames.map((f) => f.precision),
        kind: 'points',
      },
    ],
  });
}

const CSV_COLUMNS = [
  'chunk',
  'file',
  'event',
  'serial',
  'indexedBy',
  'crystals',
  'found',
  'predicted',
  'matched',
  'precision',
  'recall',
  'meanDistancePx',
] as const;

function csvField(value: unknown): string {
  if (value === undefined) return '';
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One row per indexed frame, a header line first. */
export function matchCsv(frames: readonly FrameMatch[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const frame of frames) lines.push(CSV_COLUMNS.map((key) => csvField(frame[key])).join(','));
  return `${lines.join('\n')}\n`;
}
