/**
 * I/O throughput on one core: CBF decoding (byte offset, packed) and CXI frame reads through h5wasm.
 * Prints markdown. Uses ../shared's CSPAD CBF when present (packed), else synthetic frames only.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cbfToSlab, parseCbf } from '../src/io/cbf.js';
import { decodeByteOffset, decodePacked, encodeByteOffset, encodePacked } from '../src/io/cbf-codecs.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { createCxiWriter } from '../src/io/cxi-writer.js';
import { createPeakList } from '../src/peaks/peak-list.js';

/** Median seconds per call over enough repetitions to fill ~`budgetS` seconds. */
function timeIt(fn: () => void, budgetS = 1.5): number {
  fn(); // warm up (JIT, caches)
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < 5 || (performance.now() - start < budgetS * 1000 && samples.length < 200)) {
    const t = performance.now();
    fn();
    samples.push((performance.now() - t) / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

const mb = (bytes: number) => bytes / 1e6;
const rows: string[] = [];
const row = (...cells: (string | number)[]) => rows.push(`| ${cells.join(' | ')} |`);

/** A detector-like frame: Poisson-ish background, a few bright spots, some dead pixels. */
function syntheticFrame(ss: number, fs: number): Int32Array {
  const out = new Int32Array(ss * fs);
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let i = 0; i < out.length; i++) {
    let v = Math.round(20 + 8 * (rand() + rand() + rand() - 1.5));
    if (rand() < 0.001) v += Math.round(5000 * rand());
    if (rand() < 0.0005) v = -1;
    out[i] = v;
  }
  return out;
}

// --- CBF decoding ---
const frame = syntheticFrame(2167, 2070); // Pilatus 6M size
const byteOffset = encodeByteOffset(frame);
const tBo = timeIt(() => decodeByteOffset(byteOffset, frame.length));
row(
  'CBF byte-offset decode (synthetic Pilatus 6M frame 2167 x 2070)',
  `${mb(frame.length * 4).toFixed(1)} MB int32 / ${mb(byteOffset.length).toFixed(1)} MB compressed`,
  (tBo * 1000).toFixed(2),
  (mb(frame.length * 4) / tBo).toFixed(0),
  (mb(byteOffset.length) / tBo).toFixed(0),
);
const packedDims: [number, number, number] = [2070, 2167, 0];
const packedOpts = { v2: false, flat: false, uncorrelatedSections: false };
const packed = encodePacked(frame, packedDims, packedOpts);
const tPk = timeIt(() => decodePacked(packed, frame.length, packedDims, packedOpts));
row(
  'CBF packed decode, averaged (same frame, our encoder)',
  `${mb(frame.length * 4).toFixed(1)} MB int32 / ${mb(packed.length).toFixed(1)} MB compressed`,
  (tPk * 1000).toFixed(2),
  (mb(frame.length * 4) / tPk).toFixed(0),
  (mb(packed.length) / tPk).toFixed(0),
);

const sharedCbf = resolve('..', 'shared', 'data', 'real', 'cspad-thermolysin.cbf');
if (existsSync(sharedCbf)) {
  const bytes = readFileSync(sharedCbf);
  const parsedOnce = parseCbf(bytes, sharedCbf);
  const pixels = parsedOnce.arrays.reduce((n, a) => n + a.data.length, 0);
  const compressed = parsedOnce.arrays.reduce((n, a) => n + a.compressedBytes, 0);
  const tFile = timeIt(() => cbfToSlab(parseCbf(bytes, sharedCbf, { verifyMd5: false })));
  row(
    'CBF file parse + packed decode + stack (shared CSPAD, 4 x 388 x 185 x 8, CBFlib-written)',
    `${mb(pixels * 4).toFixed(1)} MB int32 / ${mb(compressed).toFixed(2)} MB compressed`,
    (tFile * 1000).toFixed(2),
    (mb(pixels * 4) / tFile).toFixed(0),
    (mb(compressed) / tFile).toFixed(0),
  );
}

// --- CXI frame reads ---
const dir = mkdtempSync(join(tmpdir(), 'braggflow-io-bench-'));
const cxiShape: [number, number] = [1024, 1024];
const nFrames = 16;
const frameSrc = syntheticFrame(cxiShape[0], cxiShape[1]);
const asU16 = Uint16Array.from(frameSrc, (v) => Math.max(0, v));
for (const [label, dtype, compression] of [
  ['uint16, uncompressed', 'uint16', 0],
  ['uint16, gzip 4', 'uint16', 4],
  ['float32, uncompressed', 'float32', 0],
  ['float32, gzip 4', 'float32', 4],
] as const) {
  const path = join(dir, `${dtype}-${compression}.cxi`);
  const writer = await createCxiWriter(path, { frames: { slabShape: cxiShape, dtype, compression } });
  const image = dtype === 'uint16' ? asU16 : Float32Array.from(frameSrc);
  const tw0 = performance.now();
  for (let i = 0; i < nFrames; i++) writer.appendFrame({ peaks: createPeakList(0), image });
  writer.close();
  const tWrite = (performance.now() - tw0) / 1000 / nFrames;
  const reader = await openFrameReader(path);
  const out = new Float32Array(cxiShape[0] * cxiShape[1]);
  let next = 0;
  const tRead = timeIt(() => {
    reader.readFrame(next, out);
    next = (next + 1) % nFrames;
  });
  reader.close();
  const bytesOnDisk = statSync(path).size / nFrames;
  const frameBytes = cxiShape[0] * cxiShape[1] * (dtype === 'uint16' ? 2 : 4);
  row(
    `CXI readFrame ${cxiShape[0]} x ${cxiShape[1]} ${label} (to float32)`,
    `${mb(frameBytes).toFixed(1)} MB/frame in file dtype, ${mb(bytesOnDisk).toFixed(2)} MB/frame on disk`,
    (tRead * 1000).toFixed(2),
    (mb(frameBytes) / tRead).toFixed(0),
    `${(mb(bytesOnDisk) / tRead).toFixed(0)} (write: ${(mb(frameBytes) / tWrite).toFixed(0)} MB/s)`,
  );
}
rmSync(dir, { recursive: true, force: true });

process.stdout.write('## I/O throughput (one core)\n\n');
process.stdout.write(
  '| what | sizes | ms per frame (median) | MB/s decoded | MB/s compressed / on disk |\n|---|---|---|---|---|\n',
);
process.stdout.write(`${rows.join('\n')}\n\n`);
process.stdout.write(
  'Decoded MB/s counts the int32 output for CBF and the file element type for CXI; CXI reads go through h5wasm (libhdf5 in WebAssembly) from the page cache of a freshly written temp file.\n',
);
