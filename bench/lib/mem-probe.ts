// Preloaded into a Node-RED process (node --expose-gc -r) by the memory
// benchmark; workers inherit the preload (and --expose-gc) with execArgv.
// On SIGWINCH the main thread writes a request stamp to $RTEDGE_MEM_PROBE_DIR/req
// and its own figures to main.json; each worker thread checks the stamp every
// 200 ms and, when it changed, writes its heap to t<threadId>.json. Every
// thread runs a full GC (twice) before reading, so the figures are what is
// live, not garbage waiting to be collected.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { isMainThread, threadId, workerData } from 'node:worker_threads';

const dir = process.env.RTEDGE_MEM_PROBE_DIR;
const MB = 2 ** 20;

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

if (dir) {
  const req = join(dir, 'req');
  if (isMainThread) {
    process.on('SIGWINCH', () => {
      const stamp = String(Date.now());
      writeFileSync(req, stamp);
      gc();
      const m = process.memoryUsage();
      const h = getHeapStatistics();
      writeFileSync(
        join(dir, 'main.json'),
        JSON.stringify({ stamp, rss_mb: m.rss / MB, heap_used_mb: m.heapUsed / MB, heap_total_mb: m.heapTotal / MB, external_mb: m.external / MB, array_buffers_mb: m.arrayBuffers / MB, malloced_mb: h.malloced_memory / MB }),
      );
    });
  } else {
    const mine = join(dir, `t${threadId}.json`);
    let seen = '';
    const t = setInterval(() => {
      let stamp = '';
      try {
        stamp = existsSync(req) ? readFileSync(req, 'utf8') : '';
      } catch {
        return;
      }
      if (!stamp || stamp === seen) return;
      seen = stamp;
      gc();
      const h = getHeapStatistics();
      const key = (workerData as { key?: string } | null)?.key ?? '';
      writeFileSync(mine, JSON.stringify({ stamp, thread: threadId, key, heap_used_mb: h.used_heap_size / MB, heap_total_mb: h.total_heap_size / MB, external_mb: h.external_memory / MB }));
    }, 200);
    t.unref();
    process.on('exit', () => rmSync(mine, { force: true }));
  }
}
