/**
 * The monitor's page: plain HTML, CSS and a little JavaScript, no external assets (beamline
 * networks are often closed). It listens on /ws and redraws: the numbers, the latest hit and the
 * gallery (PNG from /hit/SEQ.png), hit rate and frames/s over time (SVG), the peakogram (canvas).
 */

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function monitorPage(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>braggflow monitor: ${escapeHtml(title)}</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; background: #111; color: #ddd; }
  header { padding: 8px 16px; background: #1c1c24; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 16px; margin: 0 16px 0 0; color: #fff; }
  .n { font-size: 20px; color: #fff; font-variant-numeric: tabular-nums; }
  .l { color: #999; font-size: 12px; display: block; }
  main { display: grid; grid-template-columns: minmax(300px, 2fr) minmax(260px, 1fr); gap: 12px; padding: 12px; }
  section { background: #1a1a1f; border-radius: 6px; padding: 8px; }
  h2 { font-size: 13px; margin: 0 0 6px; color: #aaa; font-weight: normal; }
  #latest { width: 100%; image-rendering: pixelated; background: #000; min-height: 200px; }
  #gallery { display: flex; flex-wrap: wrap; gap: 6px; }
  #gallery img { width: 120px; height: 120px; object-fit: contain; background: #000; cursor: pointer; }
  svg text { fill: #999; font-size: 10px; }
  #status.down { color: #f66; }
</style>
</head>
<body>
<header>
  <h1>braggflow: ${escapeHtml(title)}</h1>
  <div><span class="n" id="frames">0</span><span class="l">frames</span></div>
  <div><span class="n" id="hits">0</span><span class="l">hits</span></div>
  <div><span class="n" id="hitRate">0 %</span><span class="l">hit rate</span></div>
  <div><span class="n" id="fps">0</span><span class="l">frames/s</span></div>
  <div><span class="n" id="peaksPerHit">0</span><span class="l">peaks per hit</span></div>
  <div><span class="n" id="latency">-</span><span class="l">latency p50 / p99 (ms)</span></div>
  <div><span class="n" id="faults">0 / 0 / 0</span><span class="l">lost / duplicates / dead letters</span></div>
  <div><span id="status">connecting</span></div>
</header>
<main>
  <section>
    <h2>latest hit, peaks circled <label><input type="checkbox" id="linear"> linear</label> <span id="latestInfo"></span></h2>
    <img id="latest" alt="latest hit">
  </section>
  <section>
    <h2>hit rate (orange) and frames/s (blue) over time</h2>
    <svg id="rateChart" viewBox="0 0 300 140" width="100%"></svg>
    <h2>peakogram: distance from the beam (px, across) against the brightest pixel (log ADU, up)</h2>
    <canvas id="peakogram" width="256" height="160" style="width:100%; image-rendering: pixelated; background:#000"></canvas>
  </section>
  <section style="grid-column: 1 / -1">
    <h2>recent hits</h2>
    <div id="gallery"></div>
  </section>
</main>
<script>
const $ = (id) => document.getElementById(id);
let latestSeq = null;
let shown = '';
function imageUrl(seq, size) {
  return '/hit/' + seq + '.png?size=' + size + ($('linear').checked ? '&linear=1' : '');
}
function chart(history) {
  const svg = $('rateChart');
  const w = 300, h = 140, pad = 22;
  if (history.length < 2) { svg.innerHTML = '<text x="10" y="20">collecting...</text>'; return; }
  const t0 = history[0].t, t1 = history[history.length - 1].t;
  const fpsMax = Math.max(1e-9, ...history.map((p) => p.framesPerSecond));
  const x = (t) => pad + ((t - t0) / Math.max(1e-9, t1 - t0)) * (w - 2 * pad);
  const line = (key, max, colour) => '<polyline fill="none" stroke="' + colour + '" stroke-width="1.5" points="' +
    history.map((p) => x(p.t).toFixed(1) + ',' + (h - pad - (p[key] / max) * (h - 2 * pad)).toFixed(1)).join(' ') + '"/>';
  svg.innerHTML = '<line x1="' + pad + '" y1="' + (h - pad) + '" x2="' + (w - pad) + '" y2="' + (h - pad) + '" stroke="#444"/>' +
    line('hitRate', 1, '#f90') + line('framesPerSecond', fpsMax, '#4af') +
    '<text x="' + pad + '" y="12">hit rate 0-100 %; frames/s 0-' + fpsMax.toFixed(1) + '</text>' +
    '<text x="' + (w - pad - 40) + '" y="' + (h - 6) + '">' + (t1 - t0).toFixed(0) + ' s</text>';
}
function peakogram(p) {
  const canvas = $('peakogram');
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(p.radiusBins, p.intensityBins);
  let max = 0;
  for (const c of p.counts) max = Math.max(max, c);
  for (let r = 0; r < p.radiusBins; r++) {
    for (let i = 0; i < p.intensityBins; i++) {
      const c = p.counts[r * p.intensityBins + i];
      const v = c > 0 ? Math.log1p(c) / Math.log1p(max) : 0;
      const o = ((p.intensityBins - 1 - i) * p.radiusBins + r) * 4;
      image.data[o] = Math.round(255 * Math.min(1, 1.5 * v));
      image.data[o + 1] = Math.round(255 * v * v);
      image.data[o + 2] = Math.round(255 * (c > 0 ? 0.3 + 0.4 * (1 - v) : 0));
      image.data[o + 3] = 255;
    }
  }
  canvas.width = p.radiusBins;
  canvas.height = p.intensityBins;
  ctx.putImageData(image, 0, 0);
}
function render(s) {
  $('frames').textContent = s.frames;
  $('hits').textContent = s.hits;
  $('hitRate').textContent = (100 * s.hitRate).toFixed(1) + ' %';
  $('fps').textContent = s.framesPerSecond.toFixed(1);
  $('peaksPerHit').textContent = s.peaksPerHit.toFixed(1);
  $('latency').textContent = s.latencyMs.p50.toFixed(0) + ' / ' + s.latencyMs.p99.toFixed(0);
  $('faults').textContent = s.lost + ' / ' + s.duplicates + ' / ' + s.deadLetters;
  chart(s.history);
  peakogram(s.peakogram);
  const recent = s.recentHits;
  const key = recent.map((h) => h.seq).join(',') + $('linear').checked;
  if (recent.length > 0 && key !== shown) {
    shown = key;
    const newest = recent[recent.length - 1];
    latestSeq = newest.seq;
    $('latest').src = imageUrl(newest.seq, 1024);
    $('latestInfo').textContent = (newest.file || 'stream') + ' //' + newest.event + ': ' + newest.peaks + ' peaks';
    $('gallery').innerHTML = '';
    for (const h of recent.slice().reverse()) {
      const img = document.createElement('img');
      img.src = imageUrl(h.seq, 240);
      img.title = (h.file || 'stream') + ' //' + h.event + ': ' + h.peaks + ' peaks';
      img.onclick = () => { $('latest').src = imageUrl(h.seq, 1024); $('latestInfo').textContent = img.title; };
      $('gallery').appendChild(img);
    }
  }
}
$('linear').onchange = () => { shown = ''; };
function connect() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.onopen = () => { $('status').textContent = 'live'; $('status').className = ''; };
  ws.onmessage = (event) => render(JSON.parse(event.data));
  ws.onclose = () => { $('status').textContent = 'disconnected: retrying'; $('status').className = 'down'; setTimeout(connect, 1000); };
}
connect();
</script>
</body>
</html>
`;
}
