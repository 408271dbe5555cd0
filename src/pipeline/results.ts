/**
 * Exact accounting where results arrive (the sink's side of any transport). Each message a source
 * sent (its `seq`) counts once: as a result (written by the sinks, added to the collector), a dead
 * letter, or a repeat. A message delivered again (a transport's redelivery after a consumer died)
 * is a duplicate and is dropped. A frame id the source sent twice (a list naming an event twice) is
 * written once: the second is a repeat, accounted but not written. The run is complete when the
 * sources' `end` messages have announced N messages and N are accounted for.
 */
import type { Collector } from './collector.js';
import { type EndMessage, type ErrorMessage, type FrameResult, frameKey, type Sink } from './protocol.js';

export interface ResultRouter {
  result(result: FrameResult): Promise<void>;
  deadLetter(message: ErrorMessage): Promise<void>;
  end(message: EndMessage): void;
  /** Every announced frame accounted for. */
  readonly complete: boolean;
  readonly sourceFrames: number;
  readonly deadLetters: number;
  readonly duplicates: number;
  /** Frames announced and neither written nor dead-lettered. */
  readonly lost: number;
  /** Frame keys accounted since the last call (a Redis sink persists them with its acknowledgements). */
  takeNewKeys(): string[];
  state(): RouterState;
}

/** What an earlier life of the sink accounted for (a restarted Redis sink resumes from it). */
export interface RouterState {
  accounted: number;
  ends: number;
  sourceFrames: number;
  deadLetters: number;
  duplicates: number;
  repeats: number;
}

export function createResultRouter(
  sinks: readonly Sink[],
  collector: Collector,
  options: {
    expectedEnds?: number;
    /** Frames already accounted for, and the counts, from an earlier life of this sink. */
    seen?: Iterable<string>;
    before?: RouterState;
    onResult?: (result: FrameResult) => void;
    /**
     * Keep the keys accounted since the last `takeNewKeys` (a Redis sink persists them with its
     * acknowledgements); off, nothing but `seen` grows.
     */
    trackNewKeys?: boolean;
  } = {},
): ResultRouter {
  const seen = new Set<string>(options.seen ?? []);
  const expectedEnds = options.expectedEnds ?? 1;
  const before = options.before;
  let ends = before?.ends ?? 0;
  let sourceFrames = before?.sourceFrames ?? 0;
  let deadLetters = before?.deadLetters ?? 0;
  let duplicates = before?.duplicates ?? 0;
  let repeats = before?.repeats ?? 0;
  // What the earlier life accounted besides its dead letters and repeats: its frames.
  const framesBefore = (before?.accounted ?? 0) - (before?.deadLetters ?? 0) - (before?.repeats ?? 0);
  const accounted = () => framesBefore + collector.frames + deadLetters + repeats;
  let newKeys: string[] = [];
  /** Adds `key` (persisted with the acknowledgements); false if it was there already. */
  const add = (key: string) => {
    if (seen.has(key)) return false;
    seen.add(key);
    if (options.trackNewKeys) newKeys.push(key);
    return true;
  };
  // A message is its source and running number; a redelivery has both, a repeat only the frame id.
  const messageKey = (m: { id: { source: string }; seq: number }) => `m:${m.id.source}\u0000${m.seq}`;
  return {
    async result(result) {
      if (!add(messageKey(result))) {
        duplicates++;
        return;
      }
      if (!add(`f:${frameKey(result.id)}`)) {
        repeats++;
        return;
      }
      for (const sink of sinks) await sink.write(result);
      collector.add(result);
      options.onResult?.(result);
    },
    async deadLetter(message) {
      if (!add(messageKey(message))) {
        duplicates++;
        return;
      }
      deadLetters++;
      collector.deadLetter(message);
      for (const sink of sinks) await sink.deadLetter?.(message);
    },
    end(message) {
      ends++;
      sourceFrames += message.frames;
    },
    get complete() {
      return ends >= expectedEnds && accounted() >= sourceFrames;
    },
    get sourceFrames() {
      return sourceFrames;
    },
    get deadLetters() {
      return deadLetters;
    },
    /** Frames delivered or sent more than once (redeliveries and repeats), written once. */
    get duplicates() {
      return duplicates + repeats;
    },
    get lost() {
      return Math.max(0, sourceFrames - accounted());
    },
    state: () => ({ accounted: accounted(), ends, sourceFrames, deadLetters, duplicates, repeats }),
    takeNewKeys() {
      const keys = newKeys;
      newKeys = [];
      return keys;
    },
  };
}
