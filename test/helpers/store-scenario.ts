// A scripted store for the store gate: seeded, parameterised shoppers who walk
// through the zones of docs/store-events.md, pay at a POS (or not) and leave,
// each with the journey outcome and gate decision the tracker must reach. The
// player publishes it to an MQTT broker in real time, as the people-tracking
// sensor (frames and events) and the access-control system (authorisations)
// would. Used by the end-to-end test, the store-sim script (npm start) and
// benchmarks. A simulator, not the spec: the tracker reads nothing of it.
import { connect, type MqttClient } from 'mqtt';

export type Outcome = 'complete' | 'exit-inferred' | 'returned-store' | 'returned-pos' | 'returned-entry' | 'lost';

/** What a unit (one shopper, or a pair paying together) does. */
export type Kind =
  | 'complete'
  | 'pair'
  | 'stitched'
  | 'late'
  | 'exit-inferred'
  | 'paid-returned'
  | 'blocked-store'
  | 'blocked-entry'
  | 'blocked-lost'
  | 'blocked-pos';

export interface Shopper {
  /** 1-based, in start order */
  n: number;
  kind: Kind;
  /** the track ids of this shopper's journey, in order (two when the track breaks and is stitched) */
  tracks: string[];
  authorised: boolean;
  outcome: Outcome;
  /** a gate command is expected for this shopper */
  gate: boolean;
  late: boolean;
  pos: string | null;
  auth: string | null;
  /** walks alone (ScenarioOptions.isolate) */
  isolated?: boolean;
}

export interface Step {
  /** ms after the start */
  at: number;
  topic: 'events' | 'auth' | 'tracks';
  payload: Record<string, unknown>;
  /** the payload's ts is the start + this (default `at`): a late authorisation is dated when the shopper paid */
  tsAt?: number;
}

export interface Scenario {
  shoppers: Shopper[];
  /** sorted by `at` */
  steps: Step[];
  /** ms from the start to the last step */
  durationMs: number;
  /** the tracker settings the outcomes assume */
  assumes: { authSlackMs: number; stitchMs: number; stitchM: number; ttlMs: number };
}

export interface ScenarioOptions {
  shoppers: number;
  /** share of shoppers who do not pay (0..1) */
  unauthorised: number;
  seed: number;
  posZones?: string[];
  storeZone?: string;
  gateZone?: string;
  /** ms between two shoppers' starts (default 250) */
  spacingMs?: number;
  sensor?: string;
  /** frames of tracked objects every this many ms (0: none; default 200) */
  frameMs?: number;
  /** the first unit of this kind from unit `after` on walks alone: `pauseMs` of quiet before and after it (its shopper has `isolated`) */
  isolate?: { kind: Kind; after: number; pauseMs: number };
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LANES = 16;
const LANE_M = 2;
/** a POS is free again this long after a visit ends (more than the tracker's auth slack) */
const POS_GAP_MS = 700;

/** Which kinds make up the authorised and the unauthorised shoppers (shares; the rest is `complete`, `blocked-store`). */
function kinds(total: number, unauthorisedShare: number, rnd: () => number): Kind[][] {
  const unauth = Math.round(total * unauthorisedShare);
  const auth = total - unauth;
  const units: Kind[][] = [];
  const take = (share: number, n: number): number => Math.floor(n * share);
  let a = auth;
  const pairs = Math.min(Math.floor(a / 2), take(0.1, auth) >> 1);
  for (let i = 0; i < pairs; i++) units.push(['pair']);
  a -= pairs * 2;
  for (const [k, share] of [
    ['stitched', 0.1],
    ['late', 0.08],
    ['exit-inferred', 0.08],
    ['paid-returned', 0.03],
  ] as const) {
    const n = Math.min(a, take(share, auth));
    for (let i = 0; i < n; i++) units.push([k]);
    a -= n;
  }
  for (let i = 0; i < a; i++) units.push(['complete']);
  let u = unauth;
  for (const [k, share] of [
    ['blocked-entry', 0.2],
    ['blocked-lost', 0.2],
    ['blocked-pos', 0.2],
  ] as const) {
    const n = Math.min(u, take(share, unauth));
    for (let i = 0; i < n; i++) units.push([k]);
    u -= n;
  }
  for (let i = 0; i < u; i++) units.push(['blocked-store']);
  // Fisher-Yates with the seeded generator
  for (let i = units.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [units[i], units[j]] = [units[j], units[i]];
  }
  return units;
}

export function makeScenario(o: ScenarioOptions): Scenario {
  const rnd = prng(o.seed);
  const posZones = o.posZones ?? ['pos-1', 'pos-2', 'pos-3', 'pos-4'];
  const store = o.storeZone ?? 'store';
  const gateZone = o.gateZone ?? 'gate';
  const spacing = o.spacingMs ?? 250;
  const sensor = o.sensor ?? 's1';
  const frameMs = o.frameMs ?? 200;
  const posFree = posZones.map(() => -Infinity);
  const steps: Step[] = [];
  const shoppers: Shopper[] = [];
  /** per track: [from, to] ms and a position function, for frames */
  const seen: Array<{ id: string; from: number; to: number; x: number; y0: number; y1: number }> = [];
  let start = 0;
  let n = 0;
  let authN = 0;
  const units = kinds(o.shoppers, o.unauthorised, rnd);
  let isolateAt = -1;
  if (o.isolate) isolateAt = units.findIndex(([k], i) => i >= o.isolate!.after && k === o.isolate!.kind);
  units.forEach(([kind], u) => {
    if (u === isolateAt) start += o.isolate!.pauseMs;
    const lane = u % LANES;
    const x = lane * LANE_M;
    // POS visit window relative to the start, if any
    const posWin: [number, number] | null =
      kind === 'blocked-pos' ? [900, 1300] : kind.startsWith('blocked') ? null : [300, 800];
    let pos: number | null = null;
    if (posWin) {
      // the first POS free at the visit; else start later
      for (;;) {
        pos = posFree.findIndex((f) => f + POS_GAP_MS <= start + posWin[0]);
        if (pos >= 0) break;
        start += 50;
      }
      posFree[pos] = start + posWin[1];
    }
    const s0 = start;
    const posName = pos === null ? null : posZones[pos];
    const ev = (at: number, type: string, track: string, extra: Record<string, unknown> = {}): void => {
      steps.push({ at: s0 + at, topic: 'events', payload: { sensor, type, track, ...extra } });
    };
    const people = kind === 'pair' ? 2 : 1;
    const ids: string[] = [];
    for (let p = 0; p < people; p++) ids.push(`u${u + 1}-${p + 1}`);
    const authorised = !kind.startsWith('blocked');
    const authId = authorised ? `a-${++authN}` : null;
    const mk = (track: string, outcome: Outcome, gate: boolean, extraTracks: string[] = [], late = false): void => {
      shoppers.push({ n: ++n, kind, tracks: [track, ...extraTracks], authorised, outcome, gate, late, pos: posName, auth: authId, ...(u === isolateAt ? { isolated: true } : {}) });
    };
    ids.forEach((id, p) => {
      const px = x + p * 0.6;
      const track = (from: number, to: number, tid = id, y0 = 10, y1 = 0): void => void seen.push({ id: tid, from: s0 + from, to: s0 + to, x: px, y0, y1 });
      switch (kind) {
        case 'complete':
        case 'pair':
        case 'late':
        case 'exit-inferred':
        case 'paid-returned':
        case 'stitched': {
          ev(0, 'track-create', id, { x: px, y: 10 });
          ev(20, 'zone-enter', id, { zone: store });
          ev(290, 'zone-exit', id, { zone: store });
          ev(300 + p * 10, 'zone-enter', id, { zone: posName });
          ev(800, 'zone-exit', id, { zone: posName });
          if (kind === 'paid-returned') {
            ev(900, 'zone-enter', id, { zone: store });
            ev(1200, 'track-delete', id, { x: px, y: 8 });
            track(0, 1200);
            mk(id, 'returned-pos', false);
            return;
          }
          let cur = id;
          let t = 850;
          if (kind === 'stitched') {
            // occluded on the way to the gate: the track breaks, a new one starts 0.3 m away
            ev(850, 'track-delete', id, { x: px, y: 3 });
            cur = `${id}b`;
            ev(1050, 'track-create', cur, { x: px + 0.2, y: 2.8 });
            track(0, 850);
            t = 1100;
          }
          ev(t, 'zone-enter', cur, { zone: gateZone });
          if (kind === 'exit-inferred') {
            ev(t + 300, 'track-delete', cur, { x: px, y: 0.5 });
            track(0, t + 300, cur);
            mk(id, 'exit-inferred', true);
            return;
          }
          const out = kind === 'late' ? t + 700 : t + 300;
          ev(out - 10, 'zone-exit', cur, { zone: gateZone });
          ev(out, 'line-forward', cur, { line: 'exit' });
          ev(out + 50, 'track-delete', cur, { x: px, y: -1 });
          track(kind === 'stitched' ? 1050 : 0, out, cur);
          mk(id, 'complete', true, cur !== id ? [cur] : [], kind === 'late');
          return;
        }
        case 'blocked-store':
          ev(0, 'track-create', id, { x: px, y: 10 });
          ev(20, 'zone-enter', id, { zone: store });
          ev(390, 'zone-exit', id, { zone: store });
          ev(400, 'zone-enter', id, { zone: gateZone });
          ev(900, 'zone-exit', id, { zone: gateZone });
          ev(950, 'zone-enter', id, { zone: store });
          ev(1200, 'track-delete', id, { x: px, y: 8 });
          track(0, 1200);
          mk(id, 'returned-store', false);
          return;
        case 'blocked-entry':
          ev(0, 'line-forward', id, { line: 'entry' });
          ev(200, 'zone-enter', id, { zone: store });
          ev(490, 'zone-exit', id, { zone: store });
          ev(500, 'zone-enter', id, { zone: gateZone });
          ev(800, 'zone-exit', id, { zone: gateZone });
          ev(1100, 'line-backward', id, { line: 'entry' });
          ev(1150, 'track-delete', id, { x: px, y: 12 });
          track(0, 1100);
          mk(id, 'returned-entry', false);
          return;
        case 'blocked-lost':
          ev(0, 'track-create', id, { x: px, y: 10 });
          ev(20, 'zone-enter', id, { zone: store });
          ev(390, 'zone-exit', id, { zone: store });
          ev(400, 'zone-enter', id, { zone: gateZone });
          // then nothing: the sensor lost it without a delete
          track(0, 400);
          mk(id, 'lost', false);
          return;
        case 'blocked-pos':
          ev(0, 'track-create', id, { x: px, y: 10 });
          ev(20, 'zone-enter', id, { zone: store });
          ev(390, 'zone-exit', id, { zone: store });
          ev(400, 'zone-enter', id, { zone: gateZone });
          ev(800, 'zone-exit', id, { zone: gateZone });
          ev(900, 'zone-enter', id, { zone: posName });
          ev(1300, 'track-delete', id, { x: px, y: 4 });
          track(0, 1300);
          mk(id, 'returned-pos', false);
          return;
      }
    });
    if (authorised) {
      // the ACC: paid at the POS at +550; a late one is sent after the shopper reached the gate
      const at = kind === 'late' ? s0 + 1250 : s0 + 550;
      steps.push({ at, tsAt: s0 + 550, topic: 'auth', payload: { id: authId, pos: posName, count: people } });
    }
    start += spacing;
    if (u === isolateAt) start += o.isolate!.pauseMs;
  });
  let end = Math.max(...steps.map((s) => s.at));
  if (frameMs > 0) {
    let frame = 0;
    for (let t = 0; t <= end; t += frameMs) {
      const objects = seen
        .filter((v) => v.from <= t && t < v.to)
        .map((v) => ({ id: v.id, x: v.x, y: +(v.y0 + ((v.y1 - v.y0) * (t - v.from)) / Math.max(1, v.to - v.from)).toFixed(2), z: 1.7 }));
      // frames carry positions only; a frame that would contradict a delete's position is left out for that track
      steps.push({ at: t, topic: 'tracks', payload: { frame: frame++, sensor, objects: objects.filter((ob) => !deletedBefore(steps, ob.id, t)) } });
    }
  }
  // stable sort: events at the same time keep their order
  steps.sort((a, b) => a.at - b.at);
  end = steps.length ? steps[steps.length - 1].at : 0;
  return { shoppers, steps, durationMs: end, assumes: { authSlackMs: 300, stitchMs: 1500, stitchM: 1, ttlMs: 3000 } };
}

function deletedBefore(steps: Step[], id: string, t: number): boolean {
  return steps.some((s) => s.topic === 'events' && s.payload.track === id && s.payload.type === 'track-delete' && s.at <= t);
}

export interface PlayOptions {
  url: string;
  /** topic per stream; default store/<sensor>/{events,tracks} and store/acc/auth */
  topics?: Partial<Record<Step['topic'], string>>;
  /** speed factor (2: twice as fast) */
  speed?: number;
  /** called with the absolute start time before the first step */
  onStart?(t0: number): void;
  clientId?: string;
  /** stop early */
  signal?: { stopped: boolean };
}

/** Publishes a scenario in real time (events and authorisations QoS 1, frames QoS 0). Resolves when all is published. */
export async function playScenario(sc: Scenario, o: PlayOptions): Promise<{ published: number; t0: number }> {
  const topics = { events: 'store/s1/events', tracks: 'store/s1/tracks', auth: 'store/acc/auth', ...o.topics };
  const speed = o.speed ?? 1;
  const client: MqttClient = connect(o.url, { clientId: o.clientId ?? `store-sim-${process.pid}-${Date.now()}`, reconnectPeriod: 500 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  const t0 = Date.now() + 100;
  o.onStart?.(t0);
  let seq = 0;
  let published = 0;
  const pending: Array<Promise<unknown>> = [];
  for (const s of sc.steps) {
    if (o.signal?.stopped) break;
    const due = t0 + s.at / speed;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const ts = t0 + (s.tsAt ?? s.at) / speed;
    const payload = s.topic === 'events' ? { seq: ++seq, ts, ...s.payload } : { ts, ...s.payload };
    pending.push(client.publishAsync(topics[s.topic], JSON.stringify(payload), { qos: s.topic === 'tracks' ? 0 : 1 }));
    published++;
  }
  await Promise.all(pending);
  await client.endAsync();
  return { published, t0 };
}
