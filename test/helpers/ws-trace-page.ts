// The page a user writes for rt-ws-batcher (README "Browser client"): the
// client module and the canvas renderer, imported from where the node serves
// them, one canvas, the trace. Tests open it against a batcher path.

/** A plain HTML page that draws `path`'s numeric series (binary frames) on a canvas. */
export function tracePage(path: string, o: { format?: 'json' | 'bin'; windowMs?: number } = {}): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>rt-ws trace</title></head>
<body>
<canvas id="trace" style="width: 900px; height: 320px; display: block"></canvas>
<script type="module">
  import { RtWsClient } from '${path}/client.js';
  import { SeriesCanvas } from '${path}/rt-ws-canvas.js';
  const renderer = new SeriesCanvas(document.getElementById('trace'), { windowMs: ${o.windowMs ?? 20000}, unit: ' g' });
  const client = new RtWsClient({ path: '${path}', format: '${o.format ?? 'bin'}' });
  client.on('batch', (b) => renderer.pushBatch(b));
  client.on('snapshot', (b) => renderer.pushBatch(b));
  client.on('gap', () => renderer.breakLines());
  window.rt = { client, renderer };
  client.connect();
</script>
</body></html>`;
}
