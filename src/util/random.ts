/**
 * Mulberry32: a tiny seeded PRNG for data (frames, fixtures, crops), so a seed gives the same numbers
 * on every machine. Model weights use `Rng` in src/nn/init.ts, which derives one stream per param name.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + MULBERRY32_STEP) >>> 0;
    return mulberry32Hash(state) / 4294967296;
  };
}

/** Mulberry32's counter increment: draw n of a stream seeded s is mulberry32Hash(s + n x step). */
export const MULBERRY32_STEP = 0x6d2b79f5;

/**
 * Mulberry32's output (a uint32) for counter value `counter`. The generator is counter based, so
 * separate draws of one stream can be computed independently (the simulator's SIMD kernel hashes four
 * counters at once).
 */
export function mulberry32Hash(counter: number): number {
  let t = Math.imul(counter ^ (counter >>> 15), counter | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}
