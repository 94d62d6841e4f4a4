// The journey tracker: pure logic, no Node-RED, no I/O, no timers of its own.
// It consumes the tracking events, frames and authorisations of
// docs/store-events.md and the door state, and decides:
//   - gate commands (an authorised track enters the gate zone while the door
//     is not known to be open; a late authorisation for a track already there),
//   - journeys, each ended exactly once with an outcome,
//   - business events (gate blocked, authorisation matched/unmatched, late
//     authorisation, door change, journey complete, gate open).
// Work per event is O(1): zone and line names are interned once (a Map from
// name to a prebuilt role object, built in the constructor), tracks live in a
// Map keyed by track id kept in activity order (refreshed on every event, so
// the TTL sweep and the bound evict from its head), and the only scans are over
// small bounded lists: the tracks seen at one POS zone, the authorisations
// waiting for their tracks, the tracks deleted within the stitch window, the
// tracks in the gate zone when the door closes.
// Time: event times (`ts`, sensor/ACC epoch ms) date the journey and decide
// presence at a POS and stitching; the local clock (`now`) drives the TTL, the
// stitch window's end and how long an authorisation waits for its tracks.
import { CodedError } from '../shared/coded';

export type Outcome = 'complete' | 'exit-inferred' | 'returned-store' | 'returned-pos' | 'returned-entry' | 'lost';
export const OUTCOMES: readonly Outcome[] = ['complete', 'exit-inferred', 'returned-store', 'returned-pos', 'returned-entry', 'lost'];

export type DoorState = 'open' | 'closed' | 'unknown';

export type BusinessTopic = 'gate-open' | 'gate-blocked' | 'journey-complete' | 'door-change' | 'auth-matched' | 'auth-unmatched' | 'late-auth';

export interface TrackerConfig {
  storeZones: readonly string[];
  posZones: readonly string[];
  gateZone: string;
  entryLine: string;
  exitLine: string;
  gate: string;
  /** a track with no event for this long ends `lost` */
  ttlMs: number;
  /** a track created within this time and distance of a deleted one continues its journey */
  stitchMs: number;
  stitchM: number;
  /** most live tracks; beyond, the least recently active ends `lost` (counted as evicted) */
  maxTracks: number;
  /** a track is "at the POS at time t" if it was in that POS zone within this much of t */
  authSlackMs: number;
  /** how long an authorisation whose tracks are not (all) seen yet waits for them */
  authHoldMs: number;
  /** an authorised track re-entering the gate zone within this time of its last command gets none */
  reopenMs: number;
  /** one per-event diagnostic in this many is logged (debug) */
  debugEvery: number;
}

export const DEFAULTS = {
  ttlMs: 30_000,
  stitchMs: 1500,
  stitchM: 1.0,
  maxTracks: 1000,
  authSlackMs: 2000,
  authHoldMs: 3000,
  reopenMs: 3000,
  debugEvery: 1000,
};

/** Internal caps of the bounded side lists (not configurable: they follow from the store's size). */
export const CAPS = { perPos: 64, pendingAuths: 256, pendingDeletes: 256, recentEnded: 1024 };

export interface Journey {
  journey: string;
  tracks: string[];
  pos: string | null;
  auth: string | null;
  entered: number;
  ended: number;
  outcome: Outcome;
  gate_opened: boolean;
  late_auth: boolean;
  gate_blocked: boolean;
}

export interface GateCommand {
  gate: string;
  track_id: string;
}

export interface TrackerSink {
  gate(cmd: GateCommand): void;
  journey(j: Journey): void;
  event(topic: BusinessTopic, payload: Record<string, unknown>): void;
}

/** Per-event diagnostics (sampled), as a code and parameters: the adapter words them at debug. Business events go to the sink. */
export interface TrackerLog {
  debug(code: string, params: Record<string, string | number>): void;
}

/** Input problems (Catch-able): a stable code and parameters, worded by the node's catalog. */
export class TrackerInputError extends CodedError {
  constructor(code: string, params: Record<string, string | number> = {}) {
    super(code, params);
    this.name = 'TrackerInputError';
  }
}

// Zone roles, interned: one object per configured name.
const STORE = 1;
const POS = 2;
const GATE = 3;
interface Zone {
  name: string;
  role: typeof STORE | typeof POS | typeof GATE;
  /** index into the per-POS lists (POS zones only) */
  pos: number;
}

interface Live {
  id: number;
  tracks: string[];
  /** current track id (the key in the table) */
  track: string;
  entered: number;
  lastTs: number;
  /** local clock of the last event (TTL) */
  lastAt: number;
  x: number;
  y: number;
  /** position known (from the create event or a frame) */
  placed: boolean;
  /** the zone entered last (kept after its zone-exit: where the track went) */
  zone: Zone | null;
  visitedPos: boolean;
  /** last POS visit */
  posZone: Zone | null;
  posIn: number;
  posOut: number;
  inGate: boolean;
  gateAt: number;
  gateCmdAt: number;
  gateOpened: boolean;
  gateBlocked: boolean;
  auth: string | null;
  lateAuth: boolean;
  /** deleted, waiting for a stitch (local time of the delete), or -1 */
  deletedAt: number;
  deletedTs: number;
  ended: boolean;
}

interface PendingAuth {
  id: string;
  ts: number;
  pos: Zone;
  /** tracks still to match */
  left: number;
  matched: number;
  tracks: readonly string[] | null;
  at: number;
}

/** The same store layout (zones, lines, gate): a tracker's live state means the same thing under both settings. */
export function sameLayout(a: TrackerConfig, b: TrackerConfig): boolean {
  const list = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return list(a.storeZones, b.storeZones) && list(a.posZones, b.posZones) && a.gateZone === b.gateZone && a.entryLine === b.entryLine && a.exitLine === b.exitLine && a.gate === b.gate;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class JourneyTracker {
  private readonly zones = new Map<string, Zone>();
  private readonly posLists: Live[][];
  private readonly gateSet = new Set<Live>();
  /** live tracks by current track id, least recently active first */
  private readonly table = new Map<string, Live>();
  private readonly pendingDeletes: Live[] = [];
  private readonly pendingAuths: PendingAuth[] = [];
  /** track ids that ended recently: their stragglers (a delete after the exit line) are ignored */
  private readonly recentSet = new Set<string>();
  private readonly recentRing: string[] = [];
  private recentAt = 0;
  private nextJourney = 1;
  private readonly prefix: string;
  private door: DoorState = 'unknown';
  private doorSeen = false;
  private events = 0;
  private settings: TrackerConfig;

  readonly counts = {
    events: 0,
    frames: 0,
    auths: 0,
    journeys: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
    gateOpens: 0,
    unauthorized: 0,
    lateAuths: 0,
    authMatched: 0,
    authUnmatched: 0,
    stitched: 0,
    evicted: 0,
    ignored: 0,
  };

  constructor(
    cfg: TrackerConfig,
    private sink: TrackerSink,
    private log: TrackerLog,
    private readonly now: () => number = Date.now,
  ) {
    this.settings = cfg;
    cfg.storeZones.forEach((n) => this.zones.set(n, { name: n, role: STORE, pos: -1 }));
    cfg.posZones.forEach((n, i) => this.zones.set(n, { name: n, role: POS, pos: i }));
    this.zones.set(cfg.gateZone, { name: cfg.gateZone, role: GATE, pos: -1 });
    this.posLists = cfg.posZones.map(() => []);
    this.prefix = `j${now().toString(36)}-`;
  }

  get tracks(): number {
    return this.table.size;
  }

  get doorState(): DoorState {
    return this.door;
  }

  /** The door as read (flow context or msg.door): a change is a business event; closing may open the gate for a waiting track. */
  setDoor(v: unknown): void {
    const s = isObj(v) ? v.state : v;
    if (s !== 'open' && s !== 'closed' && s !== 'unknown') return;
    if (this.doorSeen && s === this.door) return;
    const before = this.door;
    this.door = s;
    const first = !this.doorSeen;
    this.doorSeen = true;
    if (first && s === 'unknown') return;
    this.sink.event('door-change', { state: s, from: first ? null : before });
    if (s !== 'open') {
      // Authorised tracks that waited in the gate zone while the door was open get their command now.
      for (const t of this.gateSet) if (t.auth !== null) this.openFor(t, false);
    }
  }

  /** One tracking event (docs/store-events.md). Throws TrackerInputError on a malformed one. */
  event(p: unknown): void {
    if (!isObj(p)) throw new TrackerInputError('not-object', { kind: 'event' });
    const type = p.type;
    const track = str(p.track);
    if (track === null) throw new TrackerInputError('no-track');
    const ts = num(p.ts) ?? this.now();
    const now = this.now();
    this.counts.events++;
    this.diag(p);
    switch (type) {
      case 'track-create': {
        const x = num(p.x);
        const y = num(p.y);
        const existing = this.table.get(track);
        if (existing) {
          this.touch(existing, ts, now);
          return;
        }
        this.recentForget(track);
        if (x !== null && y !== null) {
          const prev = this.stitchTo(track, x, y, ts);
          if (prev) return;
        }
        const t = this.create(track, ts, now);
        if (x !== null && y !== null) this.place(t, x, y);
        return;
      }
      case 'track-delete': {
        const t = this.table.get(track);
        if (!t) {
          this.counts.ignored++;
          return;
        }
        const x = num(p.x);
        const y = num(p.y);
        if (x !== null && y !== null) this.place(t, x, y);
        this.table.delete(track);
        this.leaveGate(t);
        // gone from the POS too: not "there" for an authorisation dated after this
        if (t.posZone !== null && t.posOut < 0) t.posOut = ts;
        t.deletedAt = now;
        t.deletedTs = ts;
        t.lastTs = ts;
        if (this.pendingDeletes.length >= CAPS.pendingDeletes) this.finishDeleted(this.pendingDeletes.shift()!, ts);
        this.pendingDeletes.push(t);
        return;
      }
      case 'zone-enter':
      case 'zone-exit': {
        const name = str(p.zone);
        if (name === null) throw new TrackerInputError('no-zone', { type });
        const zone = this.zones.get(name);
        let t = this.table.get(track);
        if (!t) {
          if (type === 'zone-exit' || this.recentSet.has(track)) {
            this.counts.ignored++;
            return;
          }
          t = this.create(track, ts, now);
        } else this.touch(t, ts, now);
        if (!zone) {
          this.counts.ignored++;
          return;
        }
        if (type === 'zone-enter') this.enter(t, zone, ts);
        else this.exit(t, zone, ts);
        return;
      }
      case 'line-forward':
      case 'line-backward': {
        const line = str(p.line);
        if (line === null) throw new TrackerInputError('no-line', { type });
        let t = this.table.get(track);
        const forward = type === 'line-forward';
        if (!t) {
          if (this.recentSet.has(track) || !(forward && line === this.cfg.entryLine)) {
            this.counts.ignored++;
            return;
          }
          t = this.create(track, ts, now);
        } else this.touch(t, ts, now);
        if (line === this.cfg.exitLine && forward) this.end(t, 'complete', ts);
        else if (line === this.cfg.entryLine && !forward) this.end(t, 'returned-entry', ts);
        else if (line === this.cfg.entryLine && forward) t.entered = ts;
        else this.counts.ignored++;
        return;
      }
      default:
        throw new TrackerInputError('bad-type', { type: String(type).slice(0, 40) });
    }
  }

  /** A frame of tracked objects: last positions (for stitching) and activity (TTL). */
  frame(p: unknown): void {
    if (!isObj(p) || !Array.isArray(p.objects)) throw new TrackerInputError('bad-frame');
    const now = this.now();
    const ts = num(p.ts) ?? now;
    this.counts.frames++;
    for (const o of p.objects as unknown[]) {
      if (!isObj(o)) continue;
      const id = str(o.id);
      const x = num(o.x);
      const y = num(o.y);
      if (id === null || x === null || y === null) continue;
      const t = this.table.get(id);
      if (!t) continue;
      if (!t.placed && t.tracks.length === 1 && t.zone === null) {
        // a track created without a position: try to stitch it now that we know where it is
        if (this.stitchTo(id, x, y, ts, t)) continue;
      }
      this.place(t, x, y);
      this.touch(t, ts, now);
    }
  }

  /** An authorisation: `count` people paid at POS zone `pos` at `ts` (optionally naming the tracks). */
  auth(p: unknown): void {
    if (!isObj(p)) throw new TrackerInputError('not-object', { kind: 'auth' });
    const id = str(p.id);
    const posName = str(p.pos);
    const count = num(p.count);
    const tracks = Array.isArray(p.tracks) ? (p.tracks as unknown[]).map(str).filter((s): s is string => s !== null) : null;
    if (id === null) throw new TrackerInputError('bad-auth', { field: 'id' });
    if (posName === null) throw new TrackerInputError('bad-auth', { field: 'pos' });
    if (count === null || count < 1 || count > 1000 || Math.floor(count) !== count) throw new TrackerInputError('bad-auth', { field: 'count' });
    const pos = this.zones.get(posName);
    if (!pos || pos.role !== POS) throw new TrackerInputError('unknown-pos', { pos: posName.slice(0, 40) });
    const now = this.now();
    this.counts.auths++;
    const a: PendingAuth = { id, ts: num(p.ts) ?? now, pos, left: count, matched: 0, tracks: tracks && tracks.length > 0 ? tracks : null, at: now };
    this.matchAuth(a);
    if (a.left > 0) {
      if (this.pendingAuths.length >= CAPS.pendingAuths) this.expireAuth(this.pendingAuths.shift()!);
      this.pendingAuths.push(a);
    } else this.authDone(a);
  }

  /**
   * Time passes: ends the journeys of tracks silent for the TTL (`lost`), of
   * deleted tracks nobody continued within the stitch window, and reports the
   * authorisations that waited for their tracks in vain. Call every 100-500 ms.
   */
  tick(): void {
    const now = this.now();
    // least recently active first: stop at the first one still alive
    for (const t of this.table.values()) {
      if (now - t.lastAt < this.cfg.ttlMs) break;
      this.table.delete(t.track);
      this.leaveGate(t);
      this.end(t, 'lost', t.lastTs);
    }
    while (this.pendingDeletes.length > 0 && now - this.pendingDeletes[0].deletedAt >= this.cfg.stitchMs) {
      const t = this.pendingDeletes.shift()!;
      this.finishDeleted(t, t.deletedTs);
    }
    while (this.pendingAuths.length > 0 && now - this.pendingAuths[0].at >= this.cfg.authHoldMs) this.expireAuth(this.pendingAuths.shift()!);
  }

  /**
   * The tracker's outputs and diagnostics go to a new adapter from now on, under new timings if given (TTL,
   * stitch window, limits): a redeploy of the node with the same store layout hands its live state (tracks,
   * authorisations, door) to the new node instead of dropping it.
   */
  rebind(sink: TrackerSink, log: TrackerLog, cfg?: TrackerConfig): void {
    this.sink = sink;
    this.log = log;
    if (cfg) {
      if (!sameLayout(this.settings, cfg)) throw new Error('rebind: a tracker goes on only under the same zones, lines and gate');
      this.settings = cfg;
    }
  }

  /** The settings in force (the timings may change at a rebind; the zones, lines and gate do not). */
  get cfg(): TrackerConfig {
    return this.settings;
  }

  /**
   * Ends every open journey now, e.g. when the settings that give them meaning changed: live tracks end `lost`
   * (at their last event), deleted ones waiting for a stitch end as the stitch window would end them, and
   * authorisations still waiting for their tracks are reported unmatched. Returns the journeys ended.
   */
  endAll(): number {
    let n = 0;
    for (const t of [...this.table.values()]) {
      if (!t.ended) n++;
      this.end(t, 'lost', t.lastTs);
    }
    while (this.pendingDeletes.length > 0) {
      const t = this.pendingDeletes.shift()!;
      if (!t.ended) n++;
      this.finishDeleted(t, t.deletedTs);
    }
    while (this.pendingAuths.length > 0) this.expireAuth(this.pendingAuths.shift()!);
    return n;
  }

  /** Journeys still open (live or waiting for a stitch), e.g. to report at close. */
  get open(): number {
    return this.table.size + this.pendingDeletes.length;
  }

  // ---- internals ----

  private diag(p: Record<string, unknown>): void {
    if (++this.events % this.cfg.debugEvery !== 0) return;
    this.log.debug('event', {
      n: this.events,
      type: String(p.type),
      track: String(p.track),
      where: String(p.zone ?? p.line ?? ''),
      tracks: this.table.size,
      deletes: this.pendingDeletes.length,
      auths: this.pendingAuths.length,
    });
  }

  private create(track: string, ts: number, now: number): Live {
    if (this.table.size >= this.cfg.maxTracks) {
      const oldest = this.table.values().next().value as Live;
      this.table.delete(oldest.track);
      this.leaveGate(oldest);
      this.counts.evicted++;
      this.end(oldest, 'lost', oldest.lastTs);
    }
    const t: Live = {
      id: this.nextJourney++,
      tracks: [track],
      track,
      entered: ts,
      lastTs: ts,
      lastAt: now,
      x: 0,
      y: 0,
      placed: false,
      zone: null,
      visitedPos: false,
      posZone: null,
      posIn: 0,
      posOut: -1,
      inGate: false,
      gateAt: -1,
      gateCmdAt: -Infinity,
      gateOpened: false,
      gateBlocked: false,
      auth: null,
      lateAuth: false,
      deletedAt: -1,
      deletedTs: 0,
      ended: false,
    };
    this.table.set(track, t);
    return t;
  }

  private touch(t: Live, ts: number, now: number): void {
    if (ts > t.lastTs) t.lastTs = ts;
    t.lastAt = now;
    // keep the table in activity order: O(1) delete + append
    this.table.delete(t.track);
    this.table.set(t.track, t);
  }

  private place(t: Live, x: number, y: number): void {
    t.x = x;
    t.y = y;
    t.placed = true;
  }

  /** Continues a deleted track's journey under `track` if one was deleted close by, recently. */
  private stitchTo(track: string, x: number, y: number, ts: number, fresh?: Live): Live | null {
    let best = -1;
    let bestD = this.cfg.stitchM * this.cfg.stitchM;
    for (let i = 0; i < this.pendingDeletes.length; i++) {
      const d = this.pendingDeletes[i];
      if (!d.placed || Math.abs(ts - d.deletedTs) > this.cfg.stitchMs) continue;
      const dx = d.x - x;
      const dy = d.y - y;
      const dd = dx * dx + dy * dy;
      if (dd <= bestD) {
        bestD = dd;
        best = i;
      }
    }
    if (best < 0) return null;
    const t = this.pendingDeletes.splice(best, 1)[0];
    if (fresh) {
      // the new id had a journey of its own for a moment (no zone, no position): it is this one
      this.table.delete(fresh.track);
    }
    t.deletedAt = -1;
    t.tracks.push(track);
    t.track = track;
    this.place(t, x, y);
    this.table.set(track, t);
    this.touch(t, ts, this.now());
    this.counts.stitched++;
    this.log.debug('stitched', { track, to: t.tracks[t.tracks.length - 2], journey: this.prefix + t.id });
    if (t.zone?.role === GATE) {
      this.gateSet.add(t);
      t.inGate = true;
    }
    return t;
  }

  private enter(t: Live, zone: Zone, ts: number): void {
    t.zone = zone;
    if (zone.role === POS) {
      t.visitedPos = true;
      t.posZone = zone;
      t.posIn = ts;
      t.posOut = -1;
      const list = this.posLists[zone.pos];
      // drop those no longer useful for matching: left long ago, ended, or now elsewhere
      const horizon = ts - this.cfg.authSlackMs - this.cfg.authHoldMs;
      for (let i = list.length - 1; i >= 0; i--) {
        const o = list[i];
        if (o === t || o.ended || o.posZone !== zone || (o.posOut >= 0 && o.posOut < horizon)) list.splice(i, 1);
      }
      if (list.length >= CAPS.perPos) list.shift();
      list.push(t);
      // an authorisation may have arrived before this track's events
      for (let i = 0; i < this.pendingAuths.length && t.auth === null; i++) {
        const a = this.pendingAuths[i];
        if (a.pos !== zone) continue;
        if (this.matchAuth(a) && a.left === 0) {
          this.pendingAuths.splice(i, 1);
          this.authDone(a);
        }
      }
      return;
    }
    if (zone.role === GATE) {
      if (!t.inGate) {
        t.inGate = true;
        this.gateSet.add(t);
      }
      if (t.gateAt < 0) t.gateAt = ts;
      if (t.auth !== null) this.openFor(t, false);
      else {
        t.gateBlocked = true;
        this.counts.unauthorized++;
        this.sink.event('gate-blocked', { track: t.track, journey: this.prefix + t.id, gate: this.cfg.gate, reason: 'gate entry not authorized' });
      }
    }
  }

  private exit(t: Live, zone: Zone, ts: number): void {
    if (zone.role === POS && t.posZone === zone) t.posOut = ts;
    else if (zone.role === GATE) this.leaveGate(t);
  }

  private leaveGate(t: Live): void {
    if (!t.inGate) return;
    t.inGate = false;
    this.gateSet.delete(t);
  }

  /** Sends the gate command for an authorised track in the gate zone, unless the door is open or one was just sent. */
  private openFor(t: Live, late: boolean): boolean {
    if (!t.inGate || this.door === 'open') return false;
    const now = this.now();
    if (now - t.gateCmdAt < this.cfg.reopenMs) return false;
    t.gateCmdAt = now;
    t.gateOpened = true;
    this.counts.gateOpens++;
    this.sink.gate({ gate: this.cfg.gate, track_id: t.track });
    this.sink.event('gate-open', { gate: this.cfg.gate, track: t.track, journey: this.prefix + t.id, auth: t.auth, late, door: this.door });
    return true;
  }

  private present(t: Live, a: PendingAuth): boolean {
    if (t.ended || t.auth !== null || t.posZone !== a.pos) return false;
    const s = this.cfg.authSlackMs;
    return t.posIn <= a.ts + s && (t.posOut < 0 || t.posOut >= a.ts - s);
  }

  /** Matches what it can of `a`; true if at least one track was matched now. */
  private matchAuth(a: PendingAuth): boolean {
    let got = false;
    if (a.tracks) {
      for (const id of a.tracks) {
        if (a.left === 0) break;
        const t = this.table.get(id);
        if (t && t.auth === null) {
          this.authorise(t, a);
          got = true;
        }
      }
      return got;
    }
    const list = this.posLists[a.pos.pos];
    // earliest at the POS first: the group that paid stood there before those queuing behind it
    while (a.left > 0) {
      let pick: Live | null = null;
      for (let i = 0; i < list.length; i++) {
        const t = list[i];
        if (this.present(t, a) && (pick === null || t.posIn < pick.posIn)) pick = t;
      }
      if (!pick) break;
      this.authorise(pick, a);
      got = true;
    }
    return got;
  }

  private authorise(t: Live, a: PendingAuth): void {
    t.auth = a.id;
    if (t.posZone === null) t.posZone = a.pos;
    a.left--;
    a.matched++;
    if (t.gateAt >= 0) {
      // the track reached the gate zone before its authorisation: a late authorisation
      t.lateAuth = true;
      this.counts.lateAuths++;
      const opened = this.openFor(t, true);
      this.sink.event('late-auth', { auth: a.id, track: t.track, journey: this.prefix + t.id, in_gate: t.inGate, opened });
    } else if (t.inGate) this.openFor(t, false);
  }

  private authDone(a: PendingAuth): void {
    this.counts.authMatched++;
    this.sink.event('auth-matched', { auth: a.id, pos: a.pos.name, count: a.matched + a.left, matched: a.matched });
  }

  private expireAuth(a: PendingAuth): void {
    if (a.matched > 0) {
      this.counts.authMatched++;
      this.sink.event('auth-matched', { auth: a.id, pos: a.pos.name, count: a.matched + a.left, matched: a.matched, missing: a.left });
      return;
    }
    this.counts.authUnmatched++;
    this.sink.event('auth-unmatched', { auth: a.id, pos: a.pos.name, count: a.left, ts: a.ts });
  }

  /** A deleted track nobody continued: its journey ends where it was last. */
  private finishDeleted(t: Live, ts: number): void {
    const z = t.zone;
    const outcome: Outcome = z === null ? 'lost' : z.role === GATE ? 'exit-inferred' : z.role === POS ? 'returned-pos' : t.visitedPos ? 'returned-pos' : 'returned-store';
    this.end(t, outcome, ts);
  }

  private end(t: Live, outcome: Outcome, ts: number): void {
    if (t.ended) return;
    t.ended = true;
    if (this.table.get(t.track) === t) this.table.delete(t.track);
    this.leaveGate(t);
    for (const id of t.tracks) this.recentAdd(id);
    this.counts.journeys[outcome]++;
    const j: Journey = {
      journey: this.prefix + t.id,
      tracks: t.tracks,
      pos: t.posZone ? t.posZone.name : null,
      auth: t.auth,
      entered: t.entered,
      ended: Math.max(ts, t.entered),
      outcome,
      gate_opened: t.gateOpened,
      late_auth: t.lateAuth,
      gate_blocked: t.gateBlocked,
    };
    this.sink.journey(j);
    if (outcome === 'complete') {
      this.sink.event('journey-complete', { journey: j.journey, tracks: j.tracks, auth: j.auth, gate_opened: j.gate_opened });
    }
  }

  private recentAdd(id: string): void {
    if (this.recentSet.has(id)) return;
    if (this.recentRing.length < CAPS.recentEnded) this.recentRing.push(id);
    else {
      this.recentSet.delete(this.recentRing[this.recentAt]);
      this.recentRing[this.recentAt] = id;
      this.recentAt = (this.recentAt + 1) % CAPS.recentEnded;
    }
    this.recentSet.add(id);
  }

  private recentForget(id: string): void {
    // a sensor that reuses an id for a new person: a create starts it afresh (the ring slot stays, harmless)
    this.recentSet.delete(id);
  }
}
