/**
 * Exact accounting where results arrive (the sink's side of any transport): each frame id counts
 * once, as a result (written by the sinks, added to the collector) or as a dead letter; a frame
 * delivered again (a transport's redelivery after a consumer died) is a duplicate and is dropped.
 * The run is complete when the sources' `end` messages have announced N frames and N are accounted.
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
  } = {},
): ResultRouter {
  const seen = new Set<string>(options.seen ?? []);
  const expectedEnds = options.expectedEnds ?? 1;
  const before = options.before;
  let ends = before?.ends ?? 0;
  let sourceFrames = before?.sourceFrames ?? 0;
  let deadLetters = before?.deadLetters ?? 0;
  let duplicates = before?.duplicates ?? 0;
  const accountedBefore = (before?.accounted ?? 0) - (before?.deadLetters ?? 0);
  const accounted = () => accountedBefore + collector.stats().frames + deadLetters;
  let newKeys: string[] = [];
  const fresh = (key: string) => {
    if (seen.has(key)) {
      duplicates++;
      return false;
    }
    seen.add(key);
    newKeys.push(key);
    return true;
  };
  return {
    async result(result) {
      if (!fresh(frameKey(result.id))) return;
      for (const sink of sinks) await sink.write(result);
      collector.add(result);
      options.onResult?.(result);
    },
    async deadLetter(message) {
      if (!fresh(frameKey(message.id))) return;
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
    get duplicates() {
      return duplicates;
    },
    get lost() {
      return Math.max(0, sourceFrames - accounted());
    },
    state: () => ({ accounted: accounted(), ends, sourceFrames, deadLetters, duplicates }),
    takeNewKeys() {
      const keys = newKeys;
      newKeys = [];
      return keys;
    },
  };
}
