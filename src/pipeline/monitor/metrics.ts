/**
 * Prometheus metrics of a run (`/metrics`), names prefixed `braggflow_`. Counts are read from the
 * run's collector and accounting when scraped, so they are never out of step with the summary.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunStats } from '../collector.js';
import type { FrameResult } from '../protocol.js';

export interface RunAccounting {
  duplicates: number;
  lost: number;
  queueDepth: number;
}

export function createRunMetrics(runStats: () => RunStats, accounting: () => RunAccounting) {
  const registry = new Registry();
  // One scrape reads every metric: compute the run's statistics once for it (they sort latencies).
  let cached: { atMs: number; stats: RunStats } | undefined;
  const stats = () => {
    const now = Date.now();
    if (cached === undefined || now - cached.atMs > 100) cached = { atMs: now, stats: runStats() };
    return cached.stats;
  };
  const counter = (name: string, help: string, value: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value());
      },
    });
  counter('braggflow_frames_total', 'Frames processed (each frame id once)', () => stats().frames);
  counter(
    'braggflow_hits_total',
    'Frames with at least the hit decision minimum of peaks',
    () => stats().hits,
  );
  counter('braggflow_peaks_total', 'Peaks found in all frames', () => stats().peaks);
  counter(
    'braggflow_dead_letters_total',
    'Frames not processed (unreadable, corrupt), with a reason in the summary',
    () => stats().deadLetters.length,
  );
  counter(
    'braggflow_duplicate_frames_total',
    'Frames delivered again and dropped (a transport redelivery)',
    () => accounting().duplicates,
  );
  gauge(
    'braggflow_lost_frames',
    'Frames announced by the source and not accounted for (yet)',
    () => accounting().lost,
  );
  gauge(
    'braggflow_queue_depth',
    'Frames waiting between source and processors',
    () => accounting().queueDepth,
  );
  gauge('braggflow_hit_rate', 'Hits per frame so far', () => stats().hitRate);
  gauge('braggflow_frames_per_second', 'Frames per second so far', () => stats().framesPerSecond);
  const latency = new Histogram({
    name: 'braggflow_latency_seconds',
    help: 'From the source sending a frame to its result',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    registry,
    observe(result: FrameResult) {
      latency.observe(Math.max(0, result.doneAtMs - result.sentAtMs) / 1000);
    },
  };
}
