// A real serial line for tests and benchmarks: a pty pair made by socat, with
// stable symlinks <dir>/a and <dir>/b in a temp dir. `stop()` kills socat (the
// ports disappear, as an unplugged USB adapter does), `start()` makes a new
// pair behind the same links (the adapter comes back).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';

import { sleep, tempDir } from './util';

export interface PtyPair {
  /** the end the node under test opens */
  a: string;
  /** the end the simulated device opens */
  b: string;
  dir: string;
  readonly running: boolean;
  /** socat's log (-d -d), e.g. to see that an end was closed */
  log(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** stop and remove the temp dir */
  dispose(): Promise<void>;
}

export interface PtyOptions {
  /**
   * Scheduling priority for socat (-20..19, lower is more urgent; below 0 needs
   * privileges and is skipped without them). The benchmark raises it so the
   * relay that stands in for a wire is not descheduled on a busy machine.
   */
  priority?: number;
}

export async function ptyPair(opts: PtyOptions = {}): Promise<PtyPair> {
  const tmp = tempDir('rtedge-pty-');
  const a = join(tmp.dir, 'a');
  const b = join(tmp.dir, 'b');
  let proc: ChildProcess | null = null;
  let out = '';
  const pair: PtyPair = {
    a,
    b,
    dir: tmp.dir,
    get running() {
      return proc !== null;
    },
    log: () => out,
    async start() {
      if (proc) return;
      const p = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      proc = p;
      if (opts.priority !== undefined && p.pid) {
        try {
          setPriority(p.pid, opts.priority);
        } catch {
          /* not permitted: run at the default priority */
        }
      }
      p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      let exited = false;
      p.once('exit', () => {
        exited = true;
        if (proc === p) proc = null;
      });
      const end = Date.now() + 5000;
      while (!(existsSync(a) && existsSync(b) && /starting data transfer loop/.test(out))) {
        if (exited) throw new Error(`socat exited: ${out}`);
        if (Date.now() > end) throw new Error(`socat did not make the pty pair in 5 s: ${out}`);
        await sleep(5);
      }
    },
    async stop() {
      const p = proc;
      if (!p) return;
      proc = null;
      await new Promise<void>((resolve) => {
        if (p.exitCode !== null || p.signalCode !== null) return resolve();
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
        setTimeout(() => p.kill('SIGKILL'), 2000).unref();
      });
    },
    async dispose() {
      await pair.stop();
      tmp.cleanup();
    },
  };
  await pair.start();
  return pair;
}
