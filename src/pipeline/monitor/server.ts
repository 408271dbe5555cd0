/**
 * The live monitor (`run --monitor HOST:PORT`), OnDA-style, on fastify: one page with the latest hit
 * assembled by the geometry with its peaks circled (log or linear), hit rate and frames/s over time,
 * the peakogram, a gallery of recent hits, and the numbers of the summary; WebSocket updates every
 * second. Prometheus scrapes `/metrics`. Binds 127.0.0.1 unless told otherwise: a beamline network
 * is not the place to expose a port by surprise.
 *
 *   GET /               the page (monitor/page.ts; no external assets)
 *   GET /api/state      the state the page shows, as JSON
 *   GET /hit/SEQ.png    a recent hit (?size=N longest side, ?linear=1)
 *   GET /metrics        Prometheus text format
 *   WS  /ws             the state, pushed every second
 */
import { assemblyMap } from '../../detector/assemble.js';
import type { PixelMaps } from '../../detector/pixel-maps.js';
import { hitImagePng } from '../../plot/hit-image.js';
import { UserError } from '../../util/errors.js';
import type { RunStats } from '../collector.js';
import type { FrameResult } from '../protocol.js';
import { createRunMetrics, type RunAccounting } from './metrics.js';
import { monitorPage } from './page.js';

export interface MonitorOptions {
  /** `HOST:PORT` or `PORT` (host 127.0.0.1); port 0 picks a free one. */
  listen: string;
  maps: PixelMaps;
  title: string;
  stats: () => RunStats;
  accounting: () => RunAccounting;
  /** Recent hits kept for the gallery (default 8). */
  keepHits?: number;
}

export interface Monitor {
  readonly url: string;
  add(result: FrameResult): void;
  close(): Promise<void>;
}

export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:(.+):)?(\d{1,5})$/.exec(text.trim());
  const port = match === null ? Number.NaN : Number(match[2]);
  if (match === null || port > 65535)
    throw new UserError(
      `must be HOST:PORT or PORT (e.g. 127.0.0.1:8080), got '${text}'`,
      undefined,
      '--monitor',
    );
  return { host: match[1] ?? '127.0.0.1', port };
}

export async function startMonitor(options: MonitorOptions): Promise<Monitor> {
  const { host, port } = parseListen(options.listen);
  const [{ default: Fastify }, { default: websocket }] = await Promise.all([
    import('fastify'),
    import('@fastify/websocket'),
  ]);
  const metrics = createRunMetrics(options.stats, options.accounting);
  const map = assemblyMap(options.maps);
  const keep = options.keepHits ?? 8;
  const hits: FrameResult[] = [];
  /** Each kept hit's let-go of its pixels' loan (protocol.ts FrameResult.loan). */
  const letGo = new Map<FrameResult, (() => void) | undefined>();
  const pngCache = new Map<string, Uint8Array>();
  const history: { t: number; framesPerSecond: number; hitRate: number }[] = [];
  const started = Date.now();
  let last = { t: started, frames: 0, hits: 0 };

  const sample = (stats: RunStats) => {
    const now = Date.now();
    const dt = (now - last.t) / 1000;
    const frames = stats.frames - last.frames;
    history.push({
      t: (now - started) / 1000,
      framesPerSecond: dt > 0 ? frames / dt : 0,
      hitRate: frames > 0 ? (stats.hits - last.hits) / frames : 0,
    });
    if (history.length > 600) history.shift();
    last = { t: now, frames: stats.frames, hits: stats.hits };
  };
  const state = (stats: RunStats = options.stats()) => {
    const accounting = options.accounting();
    return {
      title: options.title,
      frames: stats.frames,
      hits: stats.hits,
      hitRate: stats.hitRate,
      framesPerSecond: stats.framesPerSecond,
      peaksPerHit: stats.peaksPerHit,
      latencyMs: stats.latencyMs,
      deadLetters: stats.deadLetters.length,
      ...accounting,
      history,
      peakogram: stats.peakogram,
      recentHits: hits.map((h) => ({ seq: h.seq, file: h.id.file, event: h.id.event, peaks: h.peaks.count })),
    };
  };

  const app = Fastify({ logger: false });
  await app.register(websocket);
  app.get('/', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(monitorPage(options.title)),
  );
  app.get('/api/state', async () => state());
  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
  app.get<{ Params: { seq: string }; Querystring: { size?: string; linear?: string } }>(
    '/hit/:seq.png',
    async (request, reply) => {
      const seq = Number(request.params.seq);
      const hit = hits.find((h) => h.seq === seq);
      if (hit === undefined || hit.pixels === undefined)
        return reply.code(404).send({ error: `hit ${request.params.seq} is not among the recent hits` });
      const size = Math.min(4096, Math.max(32, Number(request.query.size ?? 1024) || 1024));
      const linear = request.query.linear === '1';
      const key = `${seq}:${size}:${linear}`;
      let png = pngCache.get(key);
      if (png === undefined) {
        png = hitImagePng(options.maps, map, hit.pixels, hit.peaks, {
          maxSidePx: size,
          stretch: { log: !linear },
        }).png;
        pngCache.set(key, png);
      }
      return reply.type('image/png').header('cache-control', 'no-store').send(Buffer.from(png));
    },
  );
  const sockets = new Set<{ send(data: string): void; close(): void }>();
  app.get('/ws', { websocket: true }, (socket) => {
    sockets.add(socket);
    socket.send(JSON.stringify(state()));
    socket.on('close', () => sockets.delete(socket));
  });
  const timer = setInterval(() => {
    // One computation of the statistics per tick (they sort every latency so far).
    const stats = options.stats();
    sample(stats);
    const text = JSON.stringify(state(stats));
    for (const socket of sockets) socket.send(text);
  }, 1000);
  timer.unref();

  let address: string;
  try {
    address = await app.listen({ host, port });
  } catch (error) {
    clearInterval(timer);
    throw new UserError(
      `cannot listen on ${host}:${port} (${(error as Error).message})`,
      undefined,
      '--monitor',
    );
  }
  return {
    url: address,
    add(result) {
      metrics.observe(result);
      if (!result.hit || result.pixels === undefined) return;
      // The gallery keeps the pixels: the source must not reuse their memory while it does.
      hits.push(result);
      letGo.set(result, result.loan?.hold());
      if (hits.length > keep) {
        const gone = hits.shift() as FrameResult;
        letGo.get(gone)?.();
        letGo.delete(gone);
        for (const k of pngCache.keys()) if (k.startsWith(`${gone.seq}:`)) pngCache.delete(k);
      }
    },
    async close() {
      clearInterval(timer);
      for (const socket of sockets) socket.close();
      await app.close();
    },
  };
}
