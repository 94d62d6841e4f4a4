// The gate controller stand-in for the gate-command benchmark, in a child
// process (a blocked Node-RED cannot delay it). Like test/helpers/tcp-peer,
// plus what the benchmark's scenarios need: a line "OPEN DROP ..." makes it
// drop that connection at once (as a controller that resets; bytes after it in
// the same read are lost, reported as "discarded"), and connection closes are
// stamped. Run as a script it reports on stdout, one JSON object per line:
//   {"ev":"listening","port":N} {"ev":"conn","atUs":T} {"ev":"line","line":"...","atUs":T}
//   {"ev":"closed","atUs":T} {"ev":"drop","atUs":T,"discarded":n}
// atUs: process.hrtime in microseconds (CLOCK_MONOTONIC: comparable across
// processes), taken when the read that completed the line returned.
// argv[2]: ok (answer "OK <gate>" after argv[3] ms) | silent (never answer)
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export interface GatePeer {
  port: number;
  lines: Array<{ line: string; atUs: number }>;
  conns: number[];
  closes: number[];
  drops: Array<{ atUs: number; discarded: number }>;
  stop(): Promise<void>;
}

/** priority: the peer's niceness (below 0 needs root or CAP_SYS_NICE; skipped without). */
export function startGatePeer(mode: 'ok' | 'silent', delayMs = 2, priority?: number): Promise<GatePeer> {
  const proc: ChildProcess = spawn(process.execPath, [__filename, mode, String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (priority !== undefined && proc.pid) {
    try {
      setPriority(proc.pid, priority);
    } catch {
      /* not permitted */
    }
  }
  return new Promise((resolve, reject) => {
    const peer: GatePeer = {
      port: 0,
      lines: [],
      conns: [],
      closes: [],
      drops: [],
      stop: () =>
        new Promise<void>((r) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return r();
          proc.once('exit', () => r());
          proc.kill('SIGKILL');
        }),
    };
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = JSON.parse(l) as { ev: string; port?: number; line?: string; atUs: number; discarded?: number };
      if (m.ev === 'listening') {
        peer.port = m.port!;
        resolve(peer);
      } else if (m.ev === 'conn') peer.conns.push(m.atUs);
      else if (m.ev === 'closed') peer.closes.push(m.atUs);
      else if (m.ev === 'drop') peer.drops.push({ atUs: m.atUs, discarded: m.discarded ?? 0 });
      else if (m.ev === 'line') peer.lines.push({ line: m.line!, atUs: m.atUs });
    });
    proc.once('exit', (code) => reject(new Error(`gate peer exited ${code}`)));
  });
}

function runPeer(mode: string, delayMs: number): void {
  // Reports are written in batches every 20 ms, not one write per line: a
  // write to a full pipe (the benchmark process descheduled on a busy machine)
  // blocks, and would make the next reads late.
  let pending = '';
  const out = (o: object): void => {
    pending += JSON.stringify(o) + '\n';
  };
  setInterval(() => {
    if (pending) {
      process.stdout.write(pending);
      pending = '';
    }
  }, 20);
  const server = createServer((sock: Socket) => {
    out({ ev: 'conn', atUs: nowUs() });
    sock.setNoDelay(true);
    let buf = '';
    sock.on('data', (d) => {
      const atUs = nowUs();
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.search(/\r\n|\n/)) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' ? 2 : 1));
        if (line.startsWith('OPEN DROP')) {
          const discarded = buf.split(/\r\n|\n/).filter((x) => x !== '').length;
          out({ ev: 'drop', atUs, discarded });
          sock.destroy();
          return;
        }
        out({ ev: 'line', line, atUs });
        if (mode === 'silent') continue;
        const reply = `OK ${line.replace(/^OPEN\s*/, '').split(' ')[0]}\r\n`;
        setTimeout(() => {
          if (!sock.destroyed) sock.write(reply);
        }, delayMs);
      }
    });
    sock.on('close', () => out({ ev: 'closed', atUs: nowUs() }));
    sock.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    process.stdout.write(JSON.stringify({ ev: 'listening', port: typeof a === 'object' && a ? a.port : 0 }) + '\n');
  });
}

if (require.main === module) runPeer(process.argv[2] ?? 'ok', Number(process.argv[3] ?? 2));
