/**
 * Plots as standalone SVG text: line/point/step plots and annotated heatmaps, for docs and reports a
 * person would rather look at than read (radial profiles, histograms, F1 surfaces). No dependencies,
 * no fonts to embed; the output opens in any browser and renders on GitHub.
 */

export interface PlotSeries {
  label: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** `line` (default) joins points, `points` draws dots, `step` draws a histogram outline. */
  kind?: 'line' | 'points' | 'step';
  color?: string;
}

export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
}

export interface HeatmapOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  xTicks: string[];
  yTicks: string[];
  /** Row-major, `yTicks.length` rows of `xTicks.length`; NaN cells are drawn grey. */
  values: ArrayLike<number>;
  colorLabel: string;
  /** Print each cell's value in it. */
  annotate?: boolean;
  width?: number;
  height?: number;
}

/** Tableau-10: distinguishable, colour-blind friendly enough for a handful of series. */
const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7'];

const margin = { left: 72, right: 24, top: 40, bottom: 56 };

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Short, readable number text for ticks and annotations. */
export function formatTick(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) return value.toExponential(0).replace('e+', 'e');
  if (magnitude >= 100) return value.toFixed(0);
  return Number(value.toPrecision(3)).toString();
}

/** About `count` round tick values covering [min, max] (1, 2, 5 x 10^k steps). */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!(max > min)) return [min];
  const rough = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    const v = 10 ** e;
    if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
  }
  return ticks.length >= 2 ? ticks : [min, max];
}

interface Axis {
  toPx: (value: number) => number;
  ticks: number[];
}

function makeAxis(values: number[], log: boolean, fromPx: number, toPx: number): Axis {
  const usable = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let min = usable.length > 0 ? Math.min(...usable) : 0;
  let max = usable.length > 0 ? Math.max(...usable) : 1;
  if (min === max) {
    min = log ? min / 2 : min - 1;
    max = log ? max * 2 : max + 1;
  }
  const forward = log ? Math.log10 : (v: number) => v;
  const lo = forward(min);
  const hi = forward(max);
  return {
    toPx: (value) => fromPx + ((forward(value) - lo) / (hi - lo)) * (toPx - fromPx),
    ticks: log ? logTicks(min, max) : niceTicks(min, max),
  };
}

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** A line, point or step plot of one or more series, with a legend. */
export function linePlotSvg(options: LinePlotOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 440;
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const allX = options.series.flatMap((s) => Array.from(s.x));
  const allY = options.series.flatMap((s) => Array.from(s.y));
  const xAxis = makeAxis(allX, options.logX === true, x0, x1);
  const yAxis = makeAxis(allY, options.logY === true, y0, y1);
  const body: string[] = [];

  for (const t of xAxis.ticks) {
    const px = xAxis.toPx(t).toFixed(1);
    body.push(`<line x1="${px}" y1="${y1}" x2="${px}" y2="${y0}" stroke="#e5e5e5"/>`);
    body.push(`<text x="${px}" y="${y0 + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  for (const t of yAxis.ticks) {
    const py = yAxis.toPx(t).toFixed(1);
    body.push(`<line x1="${x0}" y1="${py}" x2="${x1}" y2="${py}" stroke="#e5e5e5"/>`);
    body.push(
      `<text x="${x0 - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`,
    );
  }
  body.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333"/>`);
  body.push(
    `<text x="${(x0 + x1) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
  );
  body.push(
    `<text transform="translate(16 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );

  options.series.forEach((series, index) => {
    const color = series.color ?? palette[index % palette.length];
    const points: [number, number][] = [];
    for (let i = 0; i < Math.min(series.x.length, series.y.length); i++) {
      const x = series.x[i];
      const y = series.y[i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      if ((options.logX && x <= 0) || (options.logY && y <= 0)) continue;
      points.push([xAxis.toPx(x), yAxis.toPx(y)]);
    }
    const kind = series.kind ?? 'line';
    if (kind === 'points') {
      for (const [px, py] of points)
        body.push(
          `<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="2.5" fill="${color}" fill-opacity="0.8"/>`,
        );
    } else if (points.length > 0) {
      const path: string[] = [];
      points.forEach(([px, py], i) => {
        if (i === 0) path.push(`M${px.toFixed(1)},${py.toFixed(1)}`);
        else if (kind === 'step') path.push(`H${px.toFixed(1)}V${py.toFixed(1)}`);
        else path.push(`L${px.toFixed(1)},${py.toFixed(1)}`);
      });
      body.push(`<path d="${path.join('')}" fill="none" stroke="${color}" stroke-width="1.6"/>`);
    }
    const ly = y1 + 14 + index * 16;
    body.push(`<rect x="${x1 - 170}" y="${ly - 8}" width="12" height="10" fill="${color}"/>`);
    body.push(`<text x="${x1 - 152}" y="${ly + 1}">${escapeXml(series.label)}</text>`);
  });
  return frame(width, height, options.title, body);
}

/** Viridis, sampled at 9 stops and interpolated: perceptually even, readable in grey. */
const viridis = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** Colour for t in [0, 1]. */
export function viridisColor(t: number): [number, number, number] {
  const clamped = Math.min(1, Math.max(0, t));
  const position = clamped * (viridis.length - 1);
  const i = Math.min(viridis.length - 2, Math.floor(position));
  const f = position - i;
  const a = viridis[i];
  const b = viridis[i + 1];
  return [0, 1, 2].map((c) => Math.round(a[c] + f * (b[c] - a[c]))) as [number, number, number];
}

/** A grid of coloured cells (for example F1 over threshold x SNR) with a colour bar. */
export function heatmapSvg(options: HeatmapOptions): string {
  const { xTicks, yTicks, values } = options;
  if (values.length !== xTicks.length * yTicks.length)
    throw new Error(`heatmap has ${values.length} values for ${yTicks.length} x ${xTicks.length} cells`);
  const width = options.width ?? 720;
  const height = options.height ?? 480;
  const x0 = margin.left + 24;
  const x1 = width - margin.right - 80;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const cellW = (x1 - x0) / xTicks.length;
  const cellH = (y0 - y1) / yTicks.length;
  const finite = Array.from(values).filter(Number.isFinite);
  const min = finite.length > 0 ? Math.min(...finite) : 0;
  const max = finite.length > 0 ? Math.max(...finite) : 1;
  const scale = (v: number) => (max > min ? (v - min) / (max - min) : 0.5);
  const body: string[] = [];

  for (let row = 0; row < yTicks.length; row++) {
    // Row 0 at the bottom, like a plot's y axis.
    const y = y0 - (row + 1) * cellH;
    for (let col = 0; col < xTicks.length; col++) {
      const v = values[row * xTicks.length + col];
      const x = x0 + col * cellW;
      const [r, g, b] = Number.isFinite(v) ? viridisColor(scale(v)) : [200, 200, 200];
      body.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(cellW + 0.5).toFixed(1)}" height="${(cellH + 0.5).toFixed(1)}" fill="rgb(${r},${g},${b})"/>`,
      );
      if (options.annotate && Number.isFinite(v)) {
        const ink = scale(v) > 0.6 ? '#000' : '#fff';
        body.push(
          `<text x="${(x + cellW / 2).toFixed(1)}" y="${(y + cellH / 2).toFixed(1)}" text-anchor="middle" dominant-baseline="middle" font-size="10" fill="${ink}">${formatTick(v)}</text>`,
        );
      }
    }
    body.push(
      `<text x="${x0 - 6}" y="${(y + cellH / 2).toFixed(1)}" text-anchor="end" dominant-baseline="middle">${escapeXml(yTicks[row])}</text>`,
    );
  }
  xTicks.forEach((tick, col) => {
    body.push(
      `<text x="${(x0 + (col + 0.5) * cellW).toFixed(1)}" y="${y0 + 16}" text-anchor="middle">${escapeXml(tick)}</text>`,
    );
  });
  body.push(
    `<text x="${(x0 + x1) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
  );
  body.push(
    `<text transform="translate(16 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );

  // Colour bar: 32 bands from min (bottom) to max (top).
  const barX = x1 + 24;
  const bands = 32;
  for (let i = 0; i < bands; i++) {
    const [r, g, b] = viridisColor((i + 0.5) / bands);
    const y = y0 - ((i + 1) * (y0 - y1)) / bands;
    body.push(
      `<rect x="${barX}" y="${y.toFixed(1)}" width="14" height="${((y0 - y1) / bands + 0.5).toFixed(1)}" fill="rgb(${r},${g},${b})"/>`,
    );
  }
  body.push(`<text x="${barX + 18}" y="${y0}" dominant-baseline="middle">${formatTick(min)}</text>`);
  body.push(`<text x="${barX + 18}" y="${y1}" dominant-baseline="middle">${formatTick(max)}</text>`);
  body.push(
    `<text transform="translate(${barX + 60} ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.colorLabel)}</text>`,
  );
  return frame(width, height, options.title, body);
}
