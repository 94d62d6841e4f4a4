// Preloaded into a Node-RED process (node -r) by benchmarks: measures the flow
// engine's event-loop delay with perf_hooks at 1 ms resolution. On SIGWINCH it
// writes {p50_ms, p99_ms, max_ms, count} to $RTEDGE_EL_PROBE_OUT and resets.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const out = process.env.RTEDGE_EL_PROBE_OUT;
if (out) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  process.on('SIGWINCH', () => {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) {
      g();
      g();
    }
    const r = {
      p50_ms: h.percentile(50) / 1e6,
      p99_ms: h.percentile(99) / 1e6,
      max_ms: h.max / 1e6,
      count: h.count,
      rss_mb: process.memoryUsage().rss / 2 ** 20,
    };
    h.reset();
    writeFileSync(out, JSON.stringify(r));
  });
}
