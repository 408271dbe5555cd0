/** Median seconds of `fn` over at least 3 runs and about `budgetS` seconds (at most 50), after one warm-up run. */
export async function timeIt(fn: () => unknown, budgetS = 3): Promise<number> {
  await fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < 3 || (performance.now() - start < budgetS * 1000 && samples.length < 50)) {
    const t = performance.now();
    await fn();
    samples.push((performance.now() - t) / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}
