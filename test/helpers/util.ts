// Small helpers shared by tests and benchmarks: free ports, temp dirs, waiting.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** An ephemeral TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Every file below dir (recursive), as paths. */
export function walk(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** A fresh temp dir; call the returned cleanup when done. */
export function tempDir(prefix = 'rtedge-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it is truthy or the timeout passes (then throws with `what`). */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs = 5000, what = 'condition', stepMs = 10): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Root of the repository (dist/test/helpers -> ../../..). */
export const repoRoot = join(__dirname, '..', '..', '..');

/** Niceness of every thread of a process (field 19 of /proc/<pid>/task/<tid>/stat; Linux). */
export function threadNiceness(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      out.push(Number(fields[19 - 3]));
    } catch {
      /* thread ended meanwhile */
    }
  }
  return out;
}
