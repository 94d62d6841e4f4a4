// Starts a real Node-RED runtime in a child process with this working tree's
// nodes loaded (nodesDir = repo root, loaded as a package), a temp user dir
// and a free port. Used by flow tests, signal tests and benchmarks.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { freePort, repoRoot, tempDir } from './util';

export interface ChildRuntime {
  port: number;
  url: string;
  userDir: string;
  proc: ChildProcess;
  log(): string;
  /** Deploys a full flow set through the admin API. */
  deploy(flows: object[], type?: 'full' | 'flows' | 'nodes'): Promise<void>;
  /** GET a path on the runtime; returns status and text. */
  get(path: string): Promise<{ status: number; text: string }>;
  post(path: string, body: unknown): Promise<{ status: number; text: string }>;
  /** Sends a signal and resolves with the exit code/signal. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  cleanup(): void;
}

export interface ChildOptions {
  flows?: object[];
  settings?: Record<string, unknown>;
  /** Extra lines inserted into settings.js (JS source, e.g. functions). */
  settingsSource?: string;
  env?: Record<string, string>;
  startTimeoutMs?: number;
  execArgv?: string[];
  /**
   * How to know the runtime started: its admin API answers /flows/state
   * (default), or 'log': "Started flows" is printed (for an admin API that is
   * moved or needs a login; the flows come from `flows`).
   */
  startedBy?: 'admin-api' | 'log';
  /** An existing user dir to run in (kept by cleanup()); default: a fresh temp dir. */
  userDir?: string;
  /** The red.js to run (a Node-RED installed elsewhere); default: this tree's node-red. */
  red?: string;
}

export async function startNodeRed(opts: ChildOptions = {}): Promise<ChildRuntime> {
  const port = await freePort();
  const tmp = opts.userDir ? { dir: opts.userDir, cleanup: () => undefined } : tempDir('rtedge-nr-');
  const userDir = tmp.dir;
  const settings = {
    uiPort: port,
    uiHost: '127.0.0.1',
    flowFile: 'flows.json',
    nodesDir: [repoRoot],
    httpNodeRoot: '/',
    logging: { console: { level: 'info', metrics: false, audit: false } },
    editorTheme: { tours: false },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    ...opts.settings,
  };
  writeFileSync(
    join(userDir, 'settings.js'),
    `module.exports = Object.assign(${JSON.stringify(settings, null, 2)}, {${opts.settingsSource ?? ''}});\n`,
  );
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(opts.flows ?? []));
  const red = opts.red ?? require.resolve('node-red/red.js');
  const proc = spawn(process.execPath, [...(opts.execArgv ?? []), red, '--userDir', userDir, '--settings', join(userDir, 'settings.js')], {
    cwd: opts.userDir ?? repoRoot,
    env: { ...process.env, NODE_RED_ENABLE_TOURS: 'false', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;

  // Started = the admin API answers and the flows have started (polling, so
  // it works whatever the log level is).
  const limit = opts.startTimeoutMs ?? 30_000;
  let exited = false;
  proc.once('exit', () => (exited = true));
  const end = Date.now() + limit;
  for (;;) {
    if (exited) throw new Error(`Node-RED exited before starting:\n${out}`);
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`Node-RED did not start in ${limit} ms:\n${out}`);
    }
    if (opts.startedBy === 'log') {
      if (/Started flows/.test(out)) break;
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    try {
      const r = await fetch(`http://127.0.0.1:${port}/flows/state`, { headers: { 'Node-RED-API-Version': 'v2' } });
      if (r.status === 200) {
        const st = (await r.json()) as { state?: string };
        if (!st.state || st.state === 'start') break;
      }
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const request = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(url + path, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };

  return {
    port,
    url,
    userDir,
    proc,
    log: () => out,
    async deploy(flows, type = 'full') {
      const r = await request('POST', '/flows', flows, { 'Node-RED-Deployment-Type': type, 'Node-RED-API-Version': 'v1' });
      if (r.status >= 300) throw new Error(`deploy failed: ${r.status} ${r.text}`);
    },
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body),
    kill(signal = 'SIGTERM', timeoutMs = 20_000) {
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          resolve({ code: proc.exitCode, signal: proc.signalCode });
          return;
        }
        const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
        proc.once('exit', (code, sig) => {
          clearTimeout(t);
          resolve({ code, signal: sig });
        });
        proc.kill(signal);
      });
    },
    cleanup() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      tmp.cleanup();
    },
  };
}
