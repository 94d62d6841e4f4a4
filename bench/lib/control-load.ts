// The control API's load test (npm run loadtest, npm run bench -- control-api
// and the smoke test): the validation plan's four workloads run together, each
// at a fixed arrival rate (open model), against flows/control-api.json in a
// Node-RED process, with per-group latency percentiles and non-2xx rates
// checked against the plan's SLO table.
//
// The generator is our own, on node:http with keep-alive agents:
// - autocannon's rate limit is per connection and it waits for a response
//   before the next request on a connection, so a slow server slows it (a
//   closed model); we need fixed arrival rates whatever the server does.
// - undici is the other candidate, but its current major needs Node 22 and we
//   support Node 20; node:http's Agent (keepAlive, no socket cap) does the job
//   with no new dependency.
// Requests are sent at their scheduled times whether or not earlier ones were
// answered; latency is measured from the scheduled time (so the generator's
// own lateness is charged, never hidden: no coordinated omission), and the
// generator's lateness is reported on its own.
import { type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, type OutgoingHttpHeaders, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../../test/helpers/nodered-child';
import { repoRoot } from './common';

export type Group = 'reads' | 'writes' | 'log' | 'gpio';
export const GROUPS: Group[] = ['reads', 'writes', 'log', 'gpio'];

/** The plan's workloads at rate-x 1 (users, requests per second). */
export const WORKLOADS: Record<Group, { name: string; users: number; rps: number }> = {
  reads: { name: 'monitoring', users: 20, rps: 40 },
  writes: { name: 'control', users: 10, rps: 20 },
  log: { name: 'logging', users: 4, rps: 4 },
  gpio: { name: 'GPIO', users: 4, rps: 6 },
};

/**
 * The plan's SLOs (ms, percent). The plan gives no non-2xx bound for the
 * logging and GPIO groups: we hold them to the control writes' 0.2 %.
 */
export const SLOS: Record<Group, { p95: number; p99: number; non2xxPct: number }> = {
  reads: { p95: 150, p99: 250, non2xxPct: 0.1 },
  writes: { p95: 250, p99: 400, non2xxPct: 0.2 },
  log: { p95: 300, p99: 500, non2xxPct: 0.2 },
  gpio: { p95: 200, p99: 300, non2xxPct: 0.2 },
};

export const API_USER = 'loadtest';
export const API_PASS = 'loadtest-secret';

export interface Target {
  host: string;
  port: number;
  /** Basic credentials, or null to send none. */
  auth: { user: string; pass: string } | null;
}

interface Req {
  group: Group;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  /** The status a correct server answers (200, or 400 for a deliberately invalid write). */
  expect: number;
  /** Request headers, built once per request of the pool (see requestPool). */
  headers?: OutgoingHttpHeaders;
}

/** Share of control writes that are deliberately invalid (answered 400, counted as expected). */
export const INVALID_WRITE_SHARE = 0.05;

const rnd = (a: number, b: number): number => a + Math.random() * (b - a);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];

/** One request of a group, with a realistic payload. */
export function makeRequest(group: Group): Req {
  switch (group) {
    case 'reads':
      return Math.random() < 0.75 ? { group, method: 'GET', path: '/api/data', expect: 200 } : { group, method: 'GET', path: '/api/status', expect: 200 };
    case 'writes': {
      if (Math.random() < INVALID_WRITE_SHARE) {
        const bad = pick([{ target1: 300 }, { duty2: 70 }, { rpm: 2500 }, { rpm: -5 }, { duty1: '40' }, { speed: 100 }, {}]);
        return { group, method: 'POST', path: '/api/control', body: JSON.stringify(bad), expect: 400 };
      }
      const body: Record<string, number> = {};
      const k = pick([['target1', 'duty1'], ['target2', 'duty2'], ['rpm'], ['target1', 'target2', 'rpm'], ['duty1', 'duty2']]);
      for (const f of k) body[f] = f === 'rpm' ? Math.round(rnd(0, 1800)) : f.startsWith('target') ? Math.round(rnd(210, 245) * 10) / 10 : Math.round(rnd(25, 55));
      return { group, method: 'POST', path: '/api/control', body: JSON.stringify(body), expect: 200 };
    }
    case 'log':
      return { group, method: 'POST', path: Math.random() < 0.5 ? '/api/log/start' : '/api/log/stop', body: '{}', expect: 200 };
    case 'gpio':
      return Math.random() < 0.5
        ? { group, method: 'GET', path: '/api/gpio', expect: 200 }
        : { group, method: 'POST', path: '/api/gpio', body: JSON.stringify({ pin: pick(['relay1', 'relay2', 'led_user']), value: Math.random() < 0.5 }), expect: 200 };
  }
}

/** Requests prepared per group before a run (bodies serialised, headers built), drawn at random while it runs. */
export const POOL_SIZE = 512;

/**
 * A pool of ready requests per group: the payloads are serialised and the
 * headers built once, before the run, so the generator does no JSON work and
 * allocates no header objects per request (it shares the server's cores).
 */
export function requestPool(authHeader: string | null, size = POOL_SIZE): Record<Group, Req[]> {
  const pool = {} as Record<Group, Req[]>;
  for (const g of GROUPS) {
    pool[g] = [];
    for (let i = 0; i < size; i++) {
      const r = makeRequest(g);
      const headers: OutgoingHttpHeaders = {};
      if (authHeader) headers.authorization = authHeader;
      if (r.body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(r.body);
      }
      r.headers = headers;
      pool[g].push(r);
    }
  }
  return pool;
}

/**
 * Sockets the generator keeps open to the server at most. The plan's 38 users
 * (x rate-x) are arrival streams, not connections: a request due while every
 * socket is busy waits in the client's queue and its latency still counts from
 * its scheduled time (open model, no coordinated omission). Without a cap a
 * backed-up server gets a new TCP connection per request, thousands in a few
 * seconds, which costs both sides more than the requests themselves.
 */
export const MAX_SOCKETS = 64;

/** The generator's lateness p99 (ms) above which a run says the generator itself lagged. */
export const GEN_LAG_LIMIT_MS = 20;

export interface GroupStats {
  group: Group;
  workload: string;
  rps: number;
  sent: number;
  answered: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Answers other than the expected status (2xx, or 400 for the deliberately invalid writes), errors and timeouts. */
  non2xx: number;
  non2xxPct: number;
  expected400: number;
  /** Unexpected answers by kind (status code or socket error code). */
  errors: Record<string, number>;
  pass: boolean;
  breaches: string[];
}

export interface RunResult {
  rateX: number;
  seconds: number;
  pass: boolean;
  totalRps: number;
  groups: Record<Group, GroupStats>;
  /** How late the generator sent requests (ms): a large figure means the client machine, not the server, was the limit. */
  genLagP99: number;
  genLagMax: number;
  /** The generator process's own event-loop delay while the run lasted (ms, p99 and max). */
  genLoopP99: number;
  genLoopMax: number;
  /** True when the generator sent late (lateness p99 > GEN_LAG_LIMIT_MS): the client machine, not only the server, was a limit. */
  genLagged: boolean;
  /** The generator process's CPU time over the run, in % of one core (it shares the machine with the runtime). */
  genCpuPct: number;
  /** The runtime's CPU (all its threads) while the counted load ran, % of one core and µs per request; null when not measured (no local pid). */
  serverCpuPct: number | null;
  serverCpuUsPerReq: number | null;
  /** 1-minute load average before and after the run (other jobs on a shared machine show here). */
  loadBefore: number;
  loadAfter: number;
}

const pctile = (sorted: Float64Array, q: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] : NaN);
const r1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * Runs the four workloads together for `seconds` at `rateX` times the plan's
 * rates. Each user is an arrival stream of rps/users requests per second,
 * evenly spaced with a random phase.
 */
/**
 * CPU time (ms, user + system, all threads) a local process has used so far, from /proc/<pid>/stat
 * (Linux; clock ticks taken as 100 Hz, the kernel's USER_HZ); null where that is not readable.
 */
export function procCpuMs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the command: state is f[0]; utime and stime are fields 14 and 15 of the line, f[11] and f[12]
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

export async function runLoad(
  target: Target,
  rateX: number,
  seconds: number,
  o: { timeoutMs?: number; warmupS?: number; maxSockets?: number; serverPid?: number } = {},
): Promise<RunResult> {
  const maxSockets = o.maxSockets ?? MAX_SOCKETS;
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
  const authHeader = target.auth ? 'Basic ' + Buffer.from(`${target.auth.user}:${target.auth.pass}`).toString('base64') : null;
  const pool = requestPool(authHeader);
  const loadBefore = loadavg()[0];
  const loop = monitorEventLoopDelay({ resolution: 10 });
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  let serverCpu0: number | null = null;
  let serverWall0 = 0;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const warmupMs = (o.warmupS ?? 0) * 1000;
  const lat: Record<Group, number[]> = { reads: [], writes: [], log: [], gpio: [] };
  const bad: Record<Group, number> = { reads: 0, writes: 0, log: 0, gpio: 0 };
  const sent: Record<Group, number> = { reads: 0, writes: 0, log: 0, gpio: 0 };
  const exp400: Record<Group, number> = { reads: 0, writes: 0, log: 0, gpio: 0 };
  const lags: number[] = [];
  let outstanding = 0;

  /** Unexpected answers by kind per group (`503`, `ECONNRESET`, `timeout`...), for the diagnosis of a breach. */
  const kinds: Record<Group, Record<string, number>> = { reads: {}, writes: {}, log: {}, gpio: {} };
  const fire = (req: Req, due: number, counted: boolean, retry = true): void => {
    outstanding++;
    let finished = false;
    const end = (status: number, kind?: string): void => {
      if (finished) return;
      finished = true;
      outstanding--;
      if (!counted) return;
      lat[req.group].push(performance.now() - due);
      if (status !== req.expect) {
        bad[req.group]++;
        const k = kind ?? String(status);
        kinds[req.group][k] = (kinds[req.group][k] ?? 0) + 1;
      } else if (status === 400) exp400[req.group]++;
    };
    const r = request({ host: target.host, port: target.port, method: req.method, path: req.path, headers: req.headers, agent }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => end(res.statusCode ?? 0));
      res.on('error', () => end(0));
    });
    r.setTimeout(timeoutMs, () => r.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    r.on('error', (err: NodeJS.ErrnoException) => {
      // A kept-alive socket the server closed as we reused it: the request never reached the server.
      // Sent again at once on a fresh socket (Node's documented remedy), its latency still counted from
      // the first scheduled time.
      if (retry && r.reusedSocket && err.code === 'ECONNRESET' && !finished) {
        finished = true;
        outstanding--;
        fire(req, due, counted, false);
        return;
      }
      end(0, err.code ?? 'error');
    });
    r.end(req.body);
  };

  interface Stream {
    group: Group;
    period: number;
    next: number;
  }
  const t0 = performance.now() + 50;
  const streams: Stream[] = [];
  for (const g of GROUPS) {
    const w = WORKLOADS[g];
    const perUser = (w.rps * rateX) / w.users;
    for (let u = 0; u < w.users; u++) streams.push({ group: g, period: 1000 / perUser, next: t0 + Math.random() * (1000 / perUser) });
  }
  const endAt = t0 + warmupMs + seconds * 1000;
  loop.enable();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      if (now >= endAt) {
        resolve();
        return;
      }
      let soonest = endAt;
      for (const s of streams) {
        while (s.next <= now && s.next < endAt) {
          const counted = s.next >= t0 + warmupMs;
          if (counted && serverWall0 === 0) {
            serverWall0 = performance.now();
            serverCpu0 = procCpuMs(o.serverPid);
          }
          if (counted) {
            sent[s.group]++;
            lags.push(now - s.next);
          }
          fire(pool[s.group][Math.floor(Math.random() * POOL_SIZE)], s.next, counted);
          s.next += s.period;
        }
        if (s.next < soonest) soonest = s.next;
      }
      setTimeout(tick, Math.max(0, Math.min(5, soonest - performance.now() - 1)));
    };
    tick();
  });
  loop.disable();
  const serverCpu1 = procCpuMs(o.serverPid);
  const serverWall = performance.now() - serverWall0;
  const cpu1 = process.cpuUsage(cpu0);
  const genCpuPct = Math.round((100 * (cpu1.user + cpu1.system)) / 1000 / (performance.now() - wall0));
  // Wait for the answers still outstanding (bounded by the request timeout).
  const drainEnd = performance.now() + timeoutMs + 1000;
  while (outstanding > 0 && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 20));
  agent.destroy();

  const groups = {} as Record<Group, GroupStats>;
  let pass = true;
  let totalRps = 0;
  for (const g of GROUPS) {
    const s = Float64Array.from(lat[g]).sort();
    const n = sent[g];
    const missing = n - s.length;
    const non2xx = bad[g] + Math.max(0, missing);
    const st: GroupStats = {
      group: g,
      workload: WORKLOADS[g].name,
      rps: r1(WORKLOADS[g].rps * rateX),
      sent: n,
      answered: s.length,
      p50: r1(pctile(s, 0.5)),
      p95: r1(pctile(s, 0.95)),
      p99: r1(pctile(s, 0.99)),
      max: r1(s.length ? s[s.length - 1] : NaN),
      non2xx,
      non2xxPct: n ? Math.round((10000 * non2xx) / n) / 100 : 0,
      expected400: exp400[g],
      errors: { ...kinds[g], ...(missing > 0 ? { unanswered: missing } : {}) },
      pass: true,
      breaches: [],
    };
    const slo = SLOS[g];
    if (!(st.p95 <= slo.p95)) st.breaches.push(`p95 ${st.p95} > ${slo.p95} ms`);
    if (!(st.p99 <= slo.p99)) st.breaches.push(`p99 ${st.p99} > ${slo.p99} ms`);
    if (!(st.non2xxPct <= slo.non2xxPct)) st.breaches.push(`non-2xx ${st.non2xxPct} % > ${slo.non2xxPct} %`);
    if (n === 0) st.breaches.push('no requests sent');
    st.pass = st.breaches.length === 0;
    pass &&= st.pass;
    totalRps += WORKLOADS[g].rps * rateX;
    groups[g] = st;
  }
  const l = Float64Array.from(lags).sort();
  const genLagP99 = r1(pctile(l, 0.99));
  return {
    rateX,
    seconds,
    pass,
    totalRps: r1(totalRps),
    groups,
    genLagP99,
    genLagMax: r1(l.length ? l[l.length - 1] : 0),
    genLoopP99: r1(loop.percentile(99) / 1e6),
    genLoopMax: r1(loop.max / 1e6),
    genLagged: genLagP99 > GEN_LAG_LIMIT_MS,
    genCpuPct,
    serverCpuPct: serverCpu0 !== null && serverCpu1 !== null && serverWall > 0 ? Math.round((100 * (serverCpu1 - serverCpu0)) / serverWall) : null,
    serverCpuUsPerReq:
      serverCpu0 !== null && serverCpu1 !== null && serverWall > 0 ? Math.round((1000 * (serverCpu1 - serverCpu0)) / Math.max(1, (totalRps * serverWall) / 1000)) : null,
    loadBefore: Math.round(loadBefore * 100) / 100,
    loadAfter: Math.round(loadavg()[0] * 100) / 100,
  };
}

/** The per-group table (one line per group) and the SLO verdict. */
export function formatTable(r: RunResult): string {
  const head = ['group', 'workload', 'rps', 'sent', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'non-2xx %', 'exp. 400', 'SLO p95/p99/non-2xx', 'verdict'];
  const rows = GROUPS.map((g) => {
    const s = r.groups[g];
    const slo = SLOS[g];
    return [g, s.workload, String(s.rps), String(s.sent), String(s.p50), String(s.p95), String(s.p99), String(s.max), String(s.non2xxPct), String(s.expected400), `${slo.p95}/${slo.p99}/${slo.non2xxPct}%`, (s.pass ? 'ok' : 'BREACH: ' + s.breaches.join(', ')) + (s.non2xx ? ` (${Object.entries(s.errors).map(([k, v]) => `${k} x${v}`).join(', ')})` : '')];
  });
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(w[i])).join('  ');
  return [
    `rate-x ${r.rateX} (${r.totalRps} req/s) for ${r.seconds} s: ${r.pass ? 'all SLOs held' : 'SLO BREACH'}; generator lateness p99 ${r.genLagP99} ms, max ${r.genLagMax} ms; generator event-loop delay p99 ${r.genLoopP99} ms, max ${r.genLoopMax} ms, CPU ${r.genCpuPct} % of a core;${r.serverCpuPct !== null ? ` runtime CPU ${r.serverCpuPct} % of a core (${r.serverCpuUsPerReq} µs per request);` : ''} load average ${r.loadBefore} -> ${r.loadAfter}`,
    ...(r.genLagged
      ? [`NOTE: the generator itself lagged (lateness p99 ${r.genLagP99} ms > ${GEN_LAG_LIMIT_MS} ms): it shares the cores with the runtime, so part of the latency above is the client's, not the server's`]
      : []),
    line(head),
    ...rows.map(line),
  ].join('\n');
}

/** A compact, JSON-friendly summary of a run. */
export function summary(r: RunResult): Record<string, unknown> {
  const g: Record<string, unknown> = {};
  for (const k of GROUPS) {
    const s = r.groups[k];
    g[k] = { rps: s.rps, sent: s.sent, p50_ms: s.p50, p95_ms: s.p95, p99_ms: s.p99, max_ms: s.max, non2xx_pct: s.non2xxPct, expected_400: s.expected400, errors: s.errors, pass: s.pass };
  }
  return {
    rate_x: r.rateX,
    seconds: r.seconds,
    rps: r.totalRps,
    pass: r.pass,
    gen_lag_p99_ms: r.genLagP99,
    gen_lag_max_ms: r.genLagMax,
    gen_loop_delay_p99_ms: r.genLoopP99,
    gen_lagged: r.genLagged,
    gen_cpu_pct: r.genCpuPct,
    server_cpu_pct: r.serverCpuPct,
    server_cpu_us_per_req: r.serverCpuUsPerReq,
    load_before: r.loadBefore,
    load_after: r.loadAfter,
    groups: g,
  };
}

/** The bcrypt hash httpNodeAuth wants (bcryptjs ships with Node-RED). */
export function bcryptHash(pass: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const bcrypt = require(require.resolve('bcryptjs', { paths: [require.resolve('node-red/package.json')] })) as { hashSync(p: string, rounds: number): string };
  return bcrypt.hashSync(pass, 8);
}

export function controlFlows(): object[] {
  return JSON.parse(readFileSync(join(repoRoot, 'flows', 'control-api.json'), 'utf8')) as object[];
}

/** Where the load test's runtime serves the editor and admin API (Node-RED's default is '/'). */
export const DEFAULT_ADMIN_ROOT = '/admin';

/**
 * Reads a flows file for `npm run loadtest -- --flows FILE`: a Node-RED flow export (a JSON array of node
 * objects, each with a string `id` and `type`). Throws an Error that names the file and what is wrong with it,
 * so a bad file gives one clear line instead of a stack trace or a runtime that answers 404 to every route.
 */
export function readFlowsFile(file: string): object[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--flows ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let flows: unknown;
  try {
    flows = JSON.parse(text);
  } catch (err) {
    throw new Error(`--flows ${file}: not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(flows) || flows.length === 0) throw new Error(`--flows ${file}: not a flow export (a JSON array of nodes is expected)`);
  const bad = flows.findIndex((n) => typeof n !== 'object' || n === null || typeof (n as { id?: unknown }).id !== 'string' || typeof (n as { type?: unknown }).type !== 'string');
  if (bad >= 0) throw new Error(`--flows ${file}: element ${bad} is not a node (an object with a string id and type)`);
  if (!flows.some((n) => (n as { type: string }).type === 'http in'))
    throw new Error(`--flows ${file}: no "http in" node: nothing would answer the load test's routes`);
  return flows as object[];
}

/**
 * The core-only floor: the same routes (and /api/health), each answered by Node-RED's core nodes alone,
 * `http in` -> `change` (a fixed JSON body of the size ours sends, content-type set) -> `http response`,
 * with no plant, no worker and no perf monitor. Run under the same settings, it shows what Node-RED's HTTP
 * path costs per request by itself; the difference to the control API flow is this collection's share.
 * (It answers 200 to everything, so its SLO verdicts count the deliberately invalid writes as errors.)
 */
export function coreFloorFlows(): object[] {
  const routes: Array<[string, 'get' | 'post']> = [
    ['/api/status', 'get'],
    ['/api/data', 'get'],
    ['/api/control', 'post'],
    ['/api/log/start', 'post'],
    ['/api/log/stop', 'post'],
    ['/api/gpio', 'get'],
    ['/api/gpio', 'post'],
    ['/api/health', 'get'],
  ];
  // about the size of GET /api/data's answer
  const body = JSON.stringify({
    ts: 0,
    age_ms: 0,
    heaters: [0, 1].map((h) => ({ heater: h + 1, temp_c: 221.4, duty_pct: 40, duty_set_pct: 40, target_c: 230 })),
    motor: { rpm: 1200, rpm_set: 1200 },
  });
  const flows: object[] = [{ id: 'cf_tab', type: 'tab', label: 'core floor' }];
  routes.forEach(([url, method], i) => {
    flows.push(
      { id: `cf_in${i}`, z: 'cf_tab', type: 'http in', url, method, upload: false, wires: [[`cf_set${i}`]] },
      {
        id: `cf_set${i}`,
        z: 'cf_tab',
        type: 'change',
        rules: [
          { t: 'set', p: 'payload', pt: 'msg', to: body, tot: 'json' },
          { t: 'set', p: 'headers', pt: 'msg', to: '{"content-type":"application/json; charset=utf-8","cache-control":"no-store"}', tot: 'json' },
        ],
        wires: [['cf_out']],
      },
    );
  });
  flows.push({ id: 'cf_out', z: 'cf_tab', type: 'http response', statusCode: '', headers: {}, wires: [] });
  return flows;
}

/**
 * The settings.js lines the README gives for the control API's JSON bodies
 * (nodes/rt-control-plant/api-body.ts): `httpNodeMiddleware` reads POST bodies under /api/ (1024 bytes at
 * most) and answers a malformed, oversized or non-JSON body with a JSON 400/413/415 instead of the core
 * http in node's 500; with the editor on '/' its app reads bodies before the API's routes, so
 * `httpAdminMiddleware` gets the same middleware.
 */
export function apiBodySettingsSource(adminRoot: string): string {
  const mod = JSON.stringify(join(repoRoot, 'dist', 'nodes', 'rt-control-plant', 'api-body.js'));
  const mw = `require(${mod}).apiJsonBody({ prefix: '/api/', limit: 1024 })`;
  return `httpNodeMiddleware: ${mw},` + (adminRoot === '/' ? ` httpAdminMiddleware: ${mw},` : '');
}

export interface ControlRuntime {
  rt: ChildRuntime;
  target: Target;
  proc: ChildProcess;
}

/**
 * Node-RED in a child process with flows/control-api.json and httpNodeAuth
 * (user `loadtest`). `cpuProfDir`: run it under `node --cpu-prof` (the profile
 * is written there when it exits).
 */
export async function startControlRuntime(
  o: { cpuProfDir?: string; settings?: Record<string, unknown>; adminRoot?: string; flows?: object[]; bodyMiddleware?: boolean } = {},
): Promise<ControlRuntime> {
  const adminRoot = o.adminRoot ?? DEFAULT_ADMIN_ROOT;
  const rt = await startNodeRed({
    settingsSource: o.bodyMiddleware === false ? undefined : apiBodySettingsSource(adminRoot),
    flows: o.flows ?? controlFlows(),
    settings: {
      httpNodeAuth: { user: API_USER, pass: bcryptHash(API_PASS) },
      // The editor and admin API on their own root (DEFAULT_ADMIN_ROOT): on '/', beside the API, Express runs
      // every API request through the whole admin app first (CORS, body parsers, the editor's static files:
      // a stat() of /api/data on disk per request), before the httpNode app that answers it.
      httpAdminRoot: adminRoot,
      // info: the runtime says "Started flows" (how the start is detected with the admin API moved)
      logging: { console: { level: 'info', metrics: false, audit: false } },
      ...o.settings,
    },
    execArgv: o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [],
    startTimeoutMs: 60_000,
    startedBy: 'log',
  });
  const target: Target = { host: '127.0.0.1', port: rt.port, auth: { user: API_USER, pass: API_PASS } };
  // Ready when the plant has published its first state.
  const end = Date.now() + 20_000;
  for (;;) {
    const r = await get(target, '/api/status').catch(() => ({ status: 0, text: '' }));
    if (r.status === 200) break;
    if (Date.now() > end) throw new Error(`the control API did not answer: ${r.status} ${r.text}\n${rt.log().slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  return { rt, target, proc: rt.proc };
}

export function get(t: Target, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (t.auth) headers.authorization = 'Basic ' + Buffer.from(`${t.auth.user}:${t.auth.pass}`).toString('base64');
    const r = request({ host: t.host, port: t.port, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    r.setTimeout(10_000, () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end();
  });
}

/**
 * Polls the perf monitor's health report (GET /api/health, every 5 s) into
 * `<dir>/health.jsonl` while a run lasts. Returns a stop function giving the
 * last report.
 */
export function recordHealth(t: Target, dir: string, everyMs = 5000): () => unknown {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'health.jsonl');
  let last: unknown = null;
  const poll = (): void => {
    get(t, '/api/health').then(
      (r) => {
        if (r.status !== 200 || !r.text) return;
        try {
          last = JSON.parse(r.text) as unknown;
          appendFileSync(file, JSON.stringify({ at: new Date().toISOString(), report: last }) + '\n');
        } catch {
          /* not JSON: no report yet */
        }
      },
      () => undefined,
    );
  };
  const timer = setInterval(poll, everyMs);
  poll();
  return () => {
    clearInterval(timer);
    return last;
  };
}

/** The top self-time functions of a .cpuprofile (Chrome DevTools format), as text lines. */
export function summarizeCpuProfile(file: string, top = 15): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Array<{ id: number; hitCount?: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
    startTime: number;
    endTime: number;
    samples?: number[];
  };
  const totalHits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
  const durMs = (p.endTime - p.startTime) / 1000;
  const by = new Map<string, number>();
  for (const n of p.nodes) {
    const cf = n.callFrame;
    const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').split('node_modules/').pop()}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    by.set(key, (by.get(key) ?? 0) + (n.hitCount ?? 0));
  }
  return [...by.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, h]) => `${((100 * h) / totalHits).toFixed(1).padStart(5)} %  ${((durMs * h) / totalHits / 1000).toFixed(2).padStart(7)} s  ${k}`);
}

/**
 * The main thread's .cpuprofile in `dir` (node --cpu-prof writes one per
 * thread, CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the flow
 * engine is thread 0), the newest if several.
 */
export function mainCpuProfile(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const f = readdirSync(dir)
    .filter((x) => /\.\d+\.0\.\d+\.cpuprofile$/.test(x))
    .sort()
    .pop();
  return f ? join(dir, f) : null;
}

export function writeResults(dir: string, name: string, obj: unknown): string {
  mkdirSync(dir, { recursive: true });
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify(obj, null, 2) + '\n');
  return f;
}
