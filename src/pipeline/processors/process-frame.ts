import type { ErrorMessage, FrameMessage, FrameResult, Processor } from '../protocol.js';

/**
 * A frame through a processor: its result (pixels carried on for the sinks), or, when the processor
 * rejects it (a corrupt image), a dead letter with the reason: one bad frame never stops a run.
 */
export async function processFrame(
  processor: Processor,
  frame: FrameMessage,
): Promise<FrameResult | ErrorMessage> {
  try {
    const processed = await processor.process(frame);
    return {
      ...processed,
      id: frame.id,
      seq: frame.seq,
      slabShape: frame.slabShape,
      pixels: frame.pixels,
      photonEnergyEv: frame.photonEnergyEv,
      clenM: frame.clenM,
      sentAtMs: frame.sentAtMs,
      doneAtMs: Date.now(),
      ...(frame.loan === undefined ? {} : { loan: frame.loan }),
    };
  } catch (error) {
    return { kind: 'error', id: frame.id, seq: frame.seq, reason: (error as Error).message };
  }
}
