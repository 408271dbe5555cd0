/**
 * The detector's per-pixel pass in WebAssembly SIMD: background photons to ADU for a panel's rows,
 * four pixels at a time. It replaced a JavaScript loop that V8 compiled to ~31 ns per pixel (the same
 * arithmetic in a stripped-down JS loop took 4-5 ns; which details of the full loop cost the rest moved
 * between runs). WebAssembly is compiled ahead of use with no type feedback to lose, and its SIMD does
 * the random-number hashing and the arithmetic for four pixels per instruction.
 *
 * The kernel's text is built here and assembled by src/util/wasm-assembler.ts when first needed, then
 * instantiated once per detector state over a memory that holds the random tables (poisson.ts), the
 * packed gain/pedestal words, the background map and the image.
 *
 * Per group of 4 pixels (lanes l = 0..3), with the frame's Mulberry32 counter c (the scalar generator,
 * interleaved: lane l of word A is draw c + (l + 1) C, of word B draw c + (l + 5) C; then c += 8 C):
 * - mu = f32(background x scale); the Poisson mean is rounded stochastically onto the table grid with
 *   B's low 8 bits, j = trunc(mu x 32 + (B & 255) / 256), and the count k drawn from the tables with the
 *   24-bit uniform A >>> 8. Lanes with mu >= POISSON_NORMAL_ABOVE_MEAN (rare in a background: bright
 *   pixels come from spots, drawn in detector.ts's sparse pass) take k = max(0, round(mu + sqrt(mu) z))
 *   with z the 2^16-table quantile of A's top 16 bits.
 * - One Gaussian for dark noise and photon spread together, since their sum is Gaussian:
 *   sd = sqrt(dark^2 + spread^2 k), z from the 2^12-level table at B's top 12 bits (its two outermost
 *   levels look B's top 16 bits up in the 2^16 table, so tails reach 4.3 sigma).
 * - adu = k x gain x relativeGain + pedestal + offset + sd z, then min(adu, maxAdu), rounded to whole
 *   ADU (ties to even, and -0 made 0) when asked, and 0 where the packed word is 0 (not measured).
 * All float arithmetic is f32 in that order; test/simulate/expose-kernel.test.ts repeats it in scalar
 * JavaScript with Math.fround and checks the images are bit-identical.
 */
import { MULBERRY32_STEP } from '../util/random.js';
import {
  assembleWasm,
  compileWasm,
  instantiateWithMemory,
  type WasmCompiledModule,
  type WasmModuleSpec,
} from '../util/wasm-assembler.js';
import {
  normalQuantiles,
  POISSON_GRID_STEPS_PER_PHOTON,
  POISSON_GUIDE_BITS,
  POISSON_NORMAL_ABOVE_MEAN,
  POISSON_TABLE_MEANS,
  POISSON_UNIFORM_BITS,
  poissonTables,
  SMALL_NORMAL_TABLE_BITS,
  smallNormalQuantiles,
} from './poisson.js';

/** Relative gain step of the packed gain/pedestal word (see DetectorState in detector.ts). */
export const GAIN_UNIT = 2 ** -13;
/** Pedestal step of the packed word, ADU. */
export const PEDESTAL_UNIT_ADU = 2 ** -6;

/** Byte offsets of the tables at the start of every kernel memory. */
interface TableLayout {
  small: number;
  big: number;
  offset: number;
  cdf: number;
  guide: number;
  /** First byte after the tables, 64-byte aligned. */
  end: number;
}

let layoutCache: TableLayout | undefined;
function tableLayout(): TableLayout {
  if (layoutCache) return layoutCache;
  const { guide, offset, cdf } = poissonTables();
  const small = 0;
  const big = small + 4 * smallNormalQuantiles().length;
  const offsetAt = big + 4 * normalQuantiles().length;
  const cdfAt = offsetAt + 4 * offset.length;
  const guideAt = cdfAt + 4 * cdf.length;
  const end = Math.ceil((guideAt + guide.length) / 64) * 64;
  layoutCache = { small, big, offset: offsetAt, cdf: cdfAt, guide: guideAt, end };
  return layoutCache;
}

const i32 = (x: number) => x | 0;
const hashInto = (counter: string, word: string) => `
  ;; ${word} = mulberry32(${counter})
  local.get ${counter} local.get ${counter} i32.const 15 i32x4.shr_u v128.xor
  local.get ${counter} i32.const 1 i32x4.splat v128.or
  i32x4.mul local.set $t
  local.get $t
  local.get $t local.get $t i32.const 7 i32x4.shr_u v128.xor
  local.get $t i32.const 61 i32x4.splat v128.or
  i32x4.mul local.get $t i32x4.add
  v128.xor local.set $t
  local.get $t local.get $t i32.const 14 i32x4.shr_u v128.xor local.set ${word}`;

/** Poisson count and small-table quantile of lane `l` (scalar: the tables are gathers). */
const laneDraw = (l: number, layout: TableLayout) => `
  ;; lane ${l}: Poisson count by guide table and CDF steps
  local.get $A i32x4.extract_lane ${l} i32.const ${32 - POISSON_UNIFORM_BITS} i32.shr_u local.set $u
  local.get $jv i32x4.extract_lane ${l} local.tee $j
  i32.const 2 i32.shl i32.load offset=${layout.offset} local.set $first
  local.get $j i32.const ${POISSON_GUIDE_BITS} i32.shl
  local.get $u i32.const ${POISSON_UNIFORM_BITS - POISSON_GUIDE_BITS} i32.shr_u i32.or
  i32.load8_u offset=${layout.guide} local.set $k
  block $found loop $step
    local.get $u
    local.get $first local.get $k i32.add i32.const 2 i32.shl i32.load offset=${layout.cdf}
    i32.lt_s br_if $found
    local.get $k i32.const 1 i32.add local.set $k
    br $step
  end end
  local.get $kv local.get $k i32x4.replace_lane ${l} local.set $kv
  local.get $zv
  local.get $B i32x4.extract_lane ${l} i32.const ${32 - SMALL_NORMAL_TABLE_BITS} i32.shr_u i32.const 2 i32.shl
  f32.load offset=${layout.small}
  f32x4.replace_lane ${l} local.set $zv`;

/** The rare per-lane fix-ups: normal approximation for large means, outer Gaussian levels. */
const laneNormalMean = (l: number, layout: TableLayout) => `
  local.get $mu f32x4.extract_lane ${l} f32.const ${POISSON_NORMAL_ABOVE_MEAN} f32.ge
  if
    local.get $kv
    local.get $mu f32x4.extract_lane ${l}
    local.get $mu f32x4.extract_lane ${l} f32.sqrt
    local.get $A i32x4.extract_lane ${l} i32.const 16 i32.shr_u i32.const 2 i32.shl f32.load offset=${layout.big}
    f32.mul f32.add f32.nearest f32.const 0 f32.max i32.trunc_sat_f32_s
    i32x4.replace_lane ${l} local.set $kv
  end`;
const laneOuterQuantile = (l: number, layout: TableLayout) => `
  local.get $B i32x4.extract_lane ${l} i32.const ${32 - SMALL_NORMAL_TABLE_BITS} i32.shr_u
  i32.const 1 i32.add i32.const ${(1 << SMALL_NORMAL_TABLE_BITS) - 1} i32.and i32.const 2 i32.lt_u
  if
    local.get $zv
    local.get $B i32x4.extract_lane ${l} i32.const 16 i32.shr_u i32.const 2 i32.shl f32.load offset=${layout.big}
    f32x4.replace_lane ${l} local.set $zv
  end`;

function kernelSource(layout: TableLayout): WasmModuleSpec {
  const step = (k: number) => i32(Math.imul(MULBERRY32_STEP, k));
  const lanes = [0, 1, 2, 3];
  const body = `
  ;; Splat the per-panel scalars once.
  local.get $seed i32x4.splat local.set $S
  local.get $scale f32x4.splat local.set $scaleV
  local.get $gain f32x4.splat local.set $gainV
  local.get $offsetAdu f32x4.splat local.set $offsetV
  local.get $maxAdu f32x4.splat local.set $maxV
  local.get $darkSq f32x4.splat local.set $darkSqV
  local.get $spreadSq f32x4.splat local.set $spreadSqV
  i32.const 0 local.set $r
  block $rowsDone loop $row
    local.get $r local.get $rows i32.ge_s br_if $rowsDone
    local.get $start local.get $r local.get $stride i32.mul i32.add i32.const 2 i32.shl local.set $p
    i32.const 0 local.set $x
    block $rowDone loop $group
      local.get $x local.get $width i32.ge_s br_if $rowDone
      local.get $S v128.const i32x4 ${lanes.map((l) => step(l + 1)).join(' ')} i32x4.add local.set $counter
      ${hashInto('$counter', '$A')}
      local.get $S v128.const i32x4 ${lanes.map((l) => step(l + 5)).join(' ')} i32x4.add local.set $counter
      ${hashInto('$counter', '$B')}
      local.get $S i32.const ${step(8)} i32x4.splat i32x4.add local.set $S
      local.get $gp local.get $p i32.add v128.load align=4 local.set $g
      local.get $bg local.get $p i32.add v128.load align=4 local.get $scaleV f32x4.mul local.set $mu
      ;; j = min(trunc(mu x steps + (B & 255) / 256), last tabulated mean)
      local.get $mu f32.const ${POISSON_GRID_STEPS_PER_PHOTON} f32x4.splat f32x4.mul
      local.get $B i32.const 255 i32x4.splat v128.and f32x4.convert_i32x4_s
      f32.const 0.00390625 f32x4.splat f32x4.mul
      f32x4.add i32x4.trunc_sat_f32x4_s
      i32.const ${POISSON_TABLE_MEANS - 1} i32x4.splat i32x4.min_s local.set $jv
      ${lanes.map((l) => laneDraw(l, layout)).join('\n')}
      local.get $mu f32.const ${POISSON_NORMAL_ABOVE_MEAN} f32x4.splat f32x4.ge v128.any_true
      if
        ${lanes.map((l) => laneNormalMean(l, layout)).join('\n')}
      end
      local.get $B i32.const ${32 - SMALL_NORMAL_TABLE_BITS} i32x4.shr_u i32.const 1 i32x4.splat i32x4.add
      i32.const ${(1 << SMALL_NORMAL_TABLE_BITS) - 1} i32x4.splat v128.and i32.const 2 i32x4.splat i32x4.lt_u
      v128.any_true
      if
        ${lanes.map((l) => laneOuterQuantile(l, layout)).join('\n')}
      end
      ;; adu = k gain relGain + pedestal + offset + sqrt(dark^2 + spread^2 k) z
      local.get $kv f32x4.convert_i32x4_s local.set $kf
      local.get $kf
      local.get $g i32.const 16 i32x4.shr_u f32x4.convert_i32x4_s local.get $gainV f32x4.mul
      f32x4.mul
      local.get $g i32.const 16 i32x4.shl i32.const 16 i32x4.shr_s f32x4.convert_i32x4_s
      f32.const ${PEDESTAL_UNIT_ADU} f32x4.splat f32x4.mul
      f32x4.add
      local.get $offsetV f32x4.add
      local.get $darkSqV local.get $spreadSqV local.get $kf f32x4.mul f32x4.add f32x4.sqrt
      local.get $zv f32x4.mul
      f32x4.add
      local.get $maxV f32x4.pmin local.set $adu
      local.get $round
      ;; (+ 0 turns the -0 that nearest gives for small negative values into 0)
      if local.get $adu f32x4.nearest v128.const f32x4 0 0 0 0 f32x4.add local.set $adu end
      local.get $adu local.get $g i32.const 0 i32x4.splat i32x4.ne v128.and local.set $adu
      local.get $x i32.const 4 i32.add local.get $width i32.le_s
      if
        local.get $out local.get $p i32.add local.get $adu v128.store align=4
      else
        ${lanes
          .map(
            (l) => `local.get $x i32.const ${l} i32.add local.get $width i32.lt_s
        if local.get $out local.get $p i32.add i32.const ${4 * l} i32.add local.get $adu v128.store32_lane align=4 ${l} end`,
          )
          .join('\n')}
      end
      local.get $p i32.const 16 i32.add local.set $p
      local.get $x i32.const 4 i32.add local.set $x
      br $group
    end end
    local.get $r i32.const 1 i32.add local.set $r
    br $row
  end end
  local.get $S i32x4.extract_lane 0`;
  return {
    memoryImport: ['env', 'memory'],
    memoryMinPages: 1,
    functions: [
      {
        name: 'expose_rows',
        params: [
          ['$gp', 'i32'],
          ['$bg', 'i32'],
          ['$out', 'i32'],
          ['$start', 'i32'],
          ['$rows', 'i32'],
          ['$width', 'i32'],
          ['$stride', 'i32'],
          ['$seed', 'i32'],
          ['$scale', 'f32'],
          ['$gain', 'f32'],
          ['$offsetAdu', 'f32'],
          ['$maxAdu', 'f32'],
          ['$darkSq', 'f32'],
          ['$spreadSq', 'f32'],
          ['$round', 'i32'],
        ],
        results: ['i32'],
        locals: [
          ['$r', 'i32'],
          ['$x', 'i32'],
          ['$p', 'i32'],
          ['$u', 'i32'],
          ['$j', 'i32'],
          ['$first', 'i32'],
          ['$k', 'i32'],
          ...(
            [
              '$S',
              '$counter',
              '$t',
              '$A',
              '$B',
              '$g',
              '$mu',
              '$jv',
              '$kv',
              '$kf',
              '$zv',
              '$adu',
              '$scaleV',
              '$gainV',
              '$offsetV',
              '$maxV',
              '$darkSqV',
              '$spreadSqV',
            ] as const
          ).map((name) => [name, 'v128'] as const),
        ],
        body,
      },
    ],
  };
}

let compiled: { module: WasmCompiledModule; spec: WasmModuleSpec } | undefined;
function kernelModule(): { module: WasmCompiledModule; spec: WasmModuleSpec } {
  if (!compiled) {
    const spec = kernelSource(tableLayout());
    compiled = { module: compileWasm(assembleWasm(spec)), spec };
  }
  return compiled;
}

/** What the kernel needs of one panel for one frame. */
export interface PanelExposure {
  /** Multiplies the background map (the frame's intensity jitter and background level). */
  backgroundScale: number;
  /** ADU per photon at relative gain 1. */
  aduPerPhoton: number;
  /** The panel's common-mode offset, ADU. */
  offsetAdu: number;
  maxAdu: number;
  darkNoiseAdu: number;
  /** Sigma of one photon's ADU (photonAduSpreadFraction x aduPerPhoton). */
  photonSpreadAdu: number;
  roundAdu: boolean;
}

/** One kernel instance: its memory and the slab-sized arrays in it. */
export interface ExposureKernel {
  pixelCount: number;
  /** Packed gain/pedestal per pixel (DetectorState.gainPedestal is this array). */
  gainPedestal: Int32Array;
  /** Expected background photons per pixel for the loaded map. */
  background: Float32Array;
  /** The image the kernel writes, ADU. */
  image: Float32Array;
  /** Key of the map in `background` (set by the caller), to skip copying the same map again. */
  backgroundKey: string | undefined;
  /**
   * Exposes `rows` rows of `width` pixels from pixel `start`, `stride` pixels apart, into `image`;
   * returns the generator counter to continue from.
   */
  exposeRows(
    start: number,
    rows: number,
    width: number,
    stride: number,
    seed: number,
    panel: PanelExposure,
  ): number;
}

/** A kernel instance for a slab of `pixelCount` pixels (arrays padded by a group for the row tails). */
export function createExposureKernel(pixelCount: number): ExposureKernel {
  const layout = tableLayout();
  const arrayBytes = Math.ceil((4 * pixelCount + 16) / 64) * 64;
  const gpAt = layout.end;
  const bgAt = gpAt + arrayBytes;
  const imageAt = bgAt + arrayBytes;
  const bytes = imageAt + arrayBytes;
  const { module, spec } = kernelModule();
  const { memory, exports } = instantiateWithMemory(module, spec, bytes);
  const { buffer } = memory;
  const { guide, offset, cdf } = poissonTables();
  new Float32Array(buffer, layout.small).set(smallNormalQuantiles());
  new Float32Array(buffer, layout.big).set(normalQuantiles());
  new Int32Array(buffer, layout.offset).set(offset);
  new Int32Array(buffer, layout.cdf).set(cdf);
  new Uint8Array(buffer, layout.guide).set(guide);
  const exposeRowsWasm = exports.expose_rows as (...args: number[]) => number;
  return {
    pixelCount,
    gainPedestal: new Int32Array(buffer, gpAt, pixelCount),
    background: new Float32Array(buffer, bgAt, pixelCount),
    image: new Float32Array(buffer, imageAt, pixelCount),
    backgroundKey: undefined,
    exposeRows(start, rows, width, stride, seed, panel) {
      if (start < 0 || rows < 0 || width < 0 || start + (rows - 1) * stride + width > pixelCount)
        throw new RangeError(`exposeRows: rows ${start}+${rows}x${stride} outside ${pixelCount} pixels`);
      return exposeRowsWasm(
        gpAt,
        bgAt,
        imageAt,
        start,
        rows,
        width,
        stride,
        seed | 0,
        panel.backgroundScale,
        panel.aduPerPhoton * GAIN_UNIT,
        panel.offsetAdu,
        panel.maxAdu,
        panel.darkNoiseAdu * panel.darkNoiseAdu,
        panel.photonSpreadAdu * panel.photonSpreadAdu,
        panel.roundAdu ? 1 : 0,
      );
    },
  };
}
