/**
 * The simulator as a detector: `sim:PRESET?frames=N&seed=S&hitRate=P` on the run's geometry, frames
 * made one after another in this thread (pace it with `--rate`, as a detector's repetition rate).
 * Without `frames` it runs until stopped (the pipeline's stop signal, e.g. Ctrl-C), then sends its
 * `end` like any source.
 */
import type { PixelMaps } from '../../detector/pixel-maps.js';
import type { Geometry } from '../../io/geom.js';
import { createFrameContext, simulateFrame } from '../../simulate/frame.js';
import { parseSimulateOptions } from '../../simulate/options.js';
import { resolveSetup } from '../../simulate/run.js';
import type { SourceMessage } from '../protocol.js';

export interface SimSourceOptions {
  name: string;
  preset: string;
  /** Frames to send (default: until `stop`). */
  frames?: number;
  seed?: number;
  hitRate?: number;
  geometry: Geometry;
  maps: PixelMaps;
  /** Checked before each frame: true ends the source. */
  stopped?: () => boolean;
}

export function createSimSource(options: SimSourceOptions) {
  const { name, geometry, maps } = options;
  const simulate = parseSimulateOptions({
    frames: 1,
    outPath: '(pipeline)',
    preset: options.preset,
    seed: options.seed ?? 1,
    hitRate: options.hitRate ?? 0.5,
  });
  const setup = resolveSetup(geometry, simulate);
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  return {
    name,
    async *messages(): AsyncGenerator<SourceMessage> {
      const context = createFrameContext(setup, maps);
      const total = options.frames ?? Number.POSITIVE_INFINITY;
      let seq = 0;
      while (seq < total && !(options.stopped?.() ?? false)) {
        // Fresh buffers each frame: the image goes down the pipeline (and may move to a worker).
        const frame = simulateFrame(context, seq);
        yield {
          kind: 'frame',
          id: { source: name, file: '', event: seq },
          seq,
          slabShape,
          pixels: frame.rendered.imageAdu,
          photonEnergyEv: frame.conditions.photonEnergyEv,
          clenM: frame.conditions.clenM,
          sentAtMs: Date.now(),
        };
        seq++;
        // Let the consumer run between frames (simulating is synchronous).
        await new Promise((resolve) => setImmediate(resolve));
      }
      yield { kind: 'end', source: name, frames: seq };
    },
  };
}
