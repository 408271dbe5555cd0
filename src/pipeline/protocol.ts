/**
 * The pipeline's three small protocols (after OnDA Monitor's data retrieval, processing and
 * collecting layers) and the one message union that travels between them.
 *
 *   Source --SourceMessage--> Transport --> Processor --FrameResult--> Sink(s) + Collector
 *
 * Messages say what they are (`kind`): a frame, the end of a source, or an error about one frame.
 * No sentinel values: "no frame yet" is waiting, "no more frames" is an `end` message that states
 * how many frames the source sent, so a sink knows when every frame is accounted for (written,
 * dead-lettered) and can report what was lost.
 */
import type { PeakList } from '../peaks/peak-list.js';
import type { PixelLoan } from './pixels.js';

/** Which frame: the source it came from, the file (or stream) inside it, the event there. */
export interface FrameId {
  /** The source's name as given (`file:run.lst`, `sim:lysozyme`, `zmq:tcp://...`). */
  source: string;
  /** The file the frame was read from ('' for streams and the simulator). */
  file: string;
  /** Frame index in that file (or the stream's running number). */
  event: number;
}

/** The key exactly-once accounting uses: one string per frame. */
export function frameKey(id: FrameId): string {
  return `${id.source}\u0000${id.file}\u0000${id.event}`;
}

/** Pixel values in the detector's own type: uint16 frames stay 2 bytes a pixel on the wire. */
export type PixelArray = Uint16Array | Int16Array | Int32Array | Uint32Array | Float32Array;

export interface FrameMessage {
  kind: 'frame';
  id: FrameId;
  /** The source's running number, from 0: the order frames were sent in. */
  seq: number;
  /** [ss, fs] of the slab (the geometry's). */
  slabShape: [number, number];
  /** ss * fs values, fs fastest. */
  pixels: PixelArray;
  /** Per frame where the source knows them (a data file's dataset, the simulator); else the geometry's. */
  photonEnergyEv?: number;
  clenM?: number;
  /** When the source produced the frame, ms since the epoch (latency is measured from here). */
  sentAtMs: number;
  /** Where the source lends the pixels' memory (pixels.ts): it reuses it once everyone let go. */
  loan?: PixelLoan;
}

export interface EndMessage {
  kind: 'end';
  source: string;
  /** Frames this source sent (seq 0 .. frames - 1). */
  frames: number;
}

/** A frame that could not be read or processed: it goes to the dead letters with its reason. */
export interface ErrorMessage {
  kind: 'error';
  id: FrameId;
  seq: number;
  reason: string;
}

export type SourceMessage = FrameMessage | EndMessage | ErrorMessage;

/** Layer 1: where frames come from. */
export interface Source {
  /** As given on the command line. */
  readonly name: string;
  /** Frames in order, then one `end`; unreadable frames become `error` messages and the run goes on. */
  messages(): AsyncIterable<SourceMessage>;
}

/** What a processor makes of a frame. */
export interface ProcessedFrame {
  peaks: PeakList;
  /** The hit decision (e.g. at least 10 peaks). */
  hit: boolean;
}

/** Layer 2: frames to peaks. */
export interface Processor {
  /** In words, for the summary (`pf8 --threshold=...`, `peaknet model.onnx`). */
  readonly description: string;
  /** Frames it can take at once (worker threads, in-flight batches); the pipeline keeps this many busy. */
  readonly concurrency: number;
  /** Leaves `frame.pixels` as they are (the sinks write the frames of hits). */
  process(frame: FrameMessage): Promise<ProcessedFrame>;
  release(): Promise<void>;
}

/** A processed frame as the sinks see it; the pixels travel on for hits (and for all frames on request). */
export interface FrameResult extends ProcessedFrame {
  id: FrameId;
  seq: number;
  slabShape: [number, number];
  pixels?: PixelArray;
  photonEnergyEv?: number;
  clenM?: number;
  sentAtMs: number;
  /** When processing finished, ms since the epoch. */
  doneAtMs: number;
  /**
   * The source's loan of the pixels (FrameMessage.loan): a sink or an onResult that keeps them past
   * its call holds it (or copies them); once the run is done with the frame they may be reused.
   */
  loan?: PixelLoan;
}

/** Layer 3: where results go (CXI, lists, the monitor). */
export interface Sink {
  write(result: FrameResult): Promise<void> | void;
  /** A frame that was not processed, with why (the CXI sink records it; the run goes on). */
  deadLetter?(message: ErrorMessage): Promise<void> | void;
  close(): Promise<void> | void;
}
