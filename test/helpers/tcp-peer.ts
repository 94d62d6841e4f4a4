// A gate controller stand-in on 127.0.0.1, in a child process (so a blocked
// test process cannot delay it). Run as a script it listens on an ephemeral
// port and reports on stdout, one JSON object per line:
//   {"ev":"listening","port":N} {"ev":"conn","n":k} {"ev":"line","line":"...","atUs":T} {"ev":"closed"}
// atUs is process.hrtime in microseconds (CLOCK_MONOTONIC: comparable across processes), taken
// when the read that completed the line returned (not after the lines before it were reported).
// Modes (argv[2]): ok | garbage | silent | close-after:N | echo-late
// argv[3]: reply delay in ms.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export interface PeerLine {
  line: string;
  atUs: number;
}

export interface Peer {
  port: number;
  lines: PeerLine[];
  connections: number;
  closes: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * priority: the peer process's scheduling priority (-20..19; below 0 needs
 * privileges and is skipped without them). A benchmark raises it so that the
 * stand-in for a gate controller (a device with its own CPU in the field) is
 * not descheduled by the runtime under test on a busy 2-core machine.
 */
export function startPeer(mode = 'ok', delayMs = 2, priority?: number): Promise<Peer> {
  const proc = spawn(process.execPath, [__filename, mode, String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (priority !== undefined && proc.pid) {
    try {
      setPriority(proc.pid, priority);
    } catch {
      /* not permitted: the default priority */
    }
  }
  return new Promise((resolve, reject) => {
    const peer: Peer = {
      port: 0,
      lines: [],
      connections: 0,
      closes: 0,
      proc,
      stop: () =>
        new Promise<void>((r) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return r();
          proc.once('exit', () => r());
          proc.kill('SIGKILL');
        }),
    };
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (l) => {
      const m = JSON.parse(l) as { ev: string; port?: number; line?: string; atUs?: number };
      if (m.ev === 'listening') {
        peer.port = m.port!;
        resolve(peer);
      } else if (m.ev === 'conn') peer.connections++;
      else if (m.ev === 'closed') peer.closes++;
      else if (m.ev === 'line') peer.lines.push({ line: m.line!, atUs: m.atUs! });
    });
    proc.once('exit', (code) => reject(new Error(`peer exited ${code}`)));
  });
}

function runPeer(mode: string, delayMs: number): void {
  const out = (o: object): void => {
    process.stdout.write(JSON.stringify(o) + '\n');
  };
  let total = 0;
  const closeAfter = mode.startsWith('close-after:') ? Number(mode.split(':')[1]) : 0;
  const server = createServer((sock: Socket) => {
    out({ ev: 'conn' });
    sock.setNoDelay(true);
    let buf = '';
    sock.on('data', (d) => {
      // Every line completed by this read arrived on the wire now.
      const atUs = nowUs();
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.search(/\r\n|\n/)) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' ? 2 : 1));
        total++;
        out({ ev: 'line', line, atUs });
        const gate = line.replace(/^OPEN\s*/, '');
        if (closeAfter && total === closeAfter) {
          sock.destroy();
          return;
        }
        if (mode === 'silent') continue;
        const reply = mode === 'garbage' ? '??? nonsense\r\n' : `OK ${gate}\r\n`;
        setTimeout(() => {
          if (!sock.destroyed) sock.write(reply);
        }, delayMs);
      }
    });
    sock.on('close', () => out({ ev: 'closed' }));
    sock.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    out({ ev: 'listening', port: typeof a === 'object' && a ? a.port : 0 });
  });
}

if (require.main === module) runPeer(process.argv[2] ?? 'ok', Number(process.argv[3] ?? 2));
