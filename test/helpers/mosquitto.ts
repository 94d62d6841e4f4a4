// A real mosquitto (Debian's /usr/sbin/mosquitto, or $MOSQUITTO) for tests and
// benchmarks: its own free port on 127.0.0.1, a temp dir with its config,
// persistence file and log, and stop()/start()/restart() to simulate a broker
// outage (the same port and persistence file come back, so persistent sessions
// and retained/queued QoS 1 messages survive a restart, as with a real broker).
//
//   const m = await startMosquitto();            // m.url = 'mqtt://127.0.0.1:<port>'
//   await m.stop(); ...; await m.start();        // outage
//   await m.close();                             // stop and remove the temp dir
//
// Options: extra config lines (e.g. 'max_queued_messages 100000'), persistence
// (default on), users ({name: password}: a password file is made with
// mosquitto_passwd when present; allow_anonymous false then), tls ({ca, cert,
// key} file paths: the listener speaks TLS).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

import { freePort, sleep, tempDir } from './util';

export interface MosquittoOptions {
  /** Extra lines appended to the config. */
  extra?: string[];
  /** Keep messages/sessions across restarts in a persistence file (default true). */
  persistence?: boolean;
  /** Username -> password; anonymous clients are refused when given. */
  users?: Record<string, string>;
  /** A TLS listener with these files. */
  tls?: { ca: string; cert: string; key: string };
  /** Port to use (default: a free one). */
  port?: number;
}

export interface Mosquitto {
  port: number;
  url: string;
  dir: string;
  /** The running process (null while stopped). */
  proc: ChildProcess | null;
  running(): boolean;
  /** Starts it again (same port, config and persistence). Resolves when it accepts TCP. */
  start(): Promise<void>;
  /** SIGTERM (mosquitto saves its persistence file), resolves on exit. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, nothing saved. */
  kill(): Promise<void>;
  restart(downMs?: number): Promise<void>;
  /** Stops it and removes the temp dir. */
  close(): Promise<void>;
  /** The broker's log so far. */
  log(): string;
}

export function mosquittoPath(): string {
  return process.env.MOSQUITTO ?? '/usr/sbin/mosquitto';
}

export function mosquittoAvailable(): boolean {
  return existsSync(mosquittoPath());
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = opts.port ?? (await freePort());
  const tmp = tempDir('rtedge-mosq-');
  const dir = tmp.dir;
  const logFile = join(dir, 'mosquitto.log');
  const lines = [
    // As root, mosquitto would switch to the `mosquitto` user, which cannot write the temp dir (log, persistence).
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    `listener ${port} 127.0.0.1`,
    `log_dest file ${logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    'max_keepalive 65535',
    'max_inflight_messages 0',
    'max_queued_messages 100000',
  ];
  if (opts.persistence !== false) lines.push('persistence true', `persistence_location ${dir}/`, 'autosave_interval 1');
  if (opts.users) {
    const pw = join(dir, 'passwd');
    writeFileSync(pw, '');
    for (const [u, p] of Object.entries(opts.users)) execFileSync('mosquitto_passwd', ['-b', pw, u, p]);
    lines.push('allow_anonymous false', `password_file ${pw}`);
  } else lines.push('allow_anonymous true');
  if (opts.tls) lines.push(`cafile ${opts.tls.ca}`, `certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`);
  lines.push(...(opts.extra ?? []));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, lines.join('\n') + '\n');

  let proc: ChildProcess | null = null;
  const m: Mosquitto = {
    port,
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    dir,
    get proc() {
      return proc;
    },
    running: () => proc !== null && proc.exitCode === null && proc.signalCode === null,
    async start() {
      if (m.running()) return;
      const p = spawn(mosquittoPath(), ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      proc = p;
      const end = Date.now() + 10_000;
      for (;;) {
        if (p.exitCode !== null) throw new Error(`mosquitto exited ${p.exitCode}: ${err} ${m.log()}`);
        if (await canConnect(port)) return;
        if (Date.now() > end) throw new Error(`mosquitto did not listen on ${port}: ${err}`);
        await sleep(20);
      }
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGTERM');
      });
      proc = null;
    },
    async kill() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGKILL');
      });
      proc = null;
    },
    async restart(downMs = 0) {
      await m.stop();
      if (downMs > 0) await sleep(downMs);
      await m.start();
    },
    async close() {
      await m.stop();
      tmp.cleanup();
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
  await m.start();
  return m;
}
