// Pure logic of rt-mqtt-ingress (no Node-RED, no threads): the per-topic
// parsers of the store gate wire formats (docs/store-events.md, schemas in
// docs/schemas/), gap detection on the sensors' frame/seq numbers, and the
// try-send credit gate of the hand-off to the flow engine.
import { type Coded, coded } from '../shared/coded';

export const PARSERS = ['tracks', 'events', 'auth'] as const;
export type ParserName = (typeof PARSERS)[number];
export type EventKind = 'frame' | 'event' | 'auth';

export const KIND_OF: Record<ParserName, EventKind> = { tracks: 'frame', events: 'event', auth: 'auth' };

export const EVENT_TYPES = ['track-create', 'track-delete', 'zone-enter', 'zone-exit', 'line-forward', 'line-backward'] as const;

/** Codes of malformed input (catalog rt-mqtt-ingress.codes.<code>). */
export const MALFORMED_CODES = ['not-json', 'not-object', 'missing-field', 'bad-field', 'bad-type', 'too-large', 'empty-array'] as const;

export interface Parsed {
  /** Valid events, in order. */
  events: Record<string, unknown>[];
  /** Why the input (or an element of an array) was refused; null when all of it was valid. */
  error: Coded | null;
  /** Number of refused elements (0 or more; a whole message that is not JSON counts 1). */
  bad: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;
const isId = (v: unknown): boolean => isStr(v) || isInt(v);

function need(o: Record<string, unknown>, field: string, ok: (v: unknown) => boolean, type: string): Coded | null {
  if (o[field] === undefined || o[field] === null) return coded('missing-field', { field });
  if (!ok(o[field])) return coded('bad-field', { field, type });
  return null;
}

function opt(o: Record<string, unknown>, field: string, ok: (v: unknown) => boolean, type: string): Coded | null {
  if (o[field] === undefined || o[field] === null) return null;
  return ok(o[field]) ? null : coded('bad-field', { field, type });
}

/** Checks one tracking frame; null when valid. */
export function checkFrame(o: Record<string, unknown>): Coded | null {
  const e = need(o, 'frame', isInt, 'integer >= 0') ?? need(o, 'ts', isNum, 'number') ?? need(o, 'sensor', isStr, 'string') ?? need(o, 'objects', Array.isArray, 'array');
  if (e) return e;
  const objs = o.objects as unknown[];
  for (let i = 0; i < objs.length; i++) {
    const t = objs[i];
    if (!isObj(t)) return coded('bad-field', { field: `objects[${i}]`, type: 'object' });
    const te = need(t, 'id', isId, 'string') ?? need(t, 'x', isNum, 'number') ?? need(t, 'y', isNum, 'number') ?? opt(t, 'z', isNum, 'number');
    if (te) return coded('bad-field', { field: `objects[${i}].${(te.params?.field as string) ?? ''}`, type: (te.params?.type as string) ?? 'value' });
  }
  return null;
}

/** Checks one tracking event; null when valid. */
export function checkEvent(o: Record<string, unknown>): Coded | null {
  const e = need(o, 'seq', isInt, 'integer >= 0') ?? need(o, 'ts', isNum, 'number') ?? need(o, 'sensor', isStr, 'string') ?? need(o, 'type', isStr, 'string') ?? need(o, 'track', isId, 'string');
  if (e) return e;
  const type = o.type as string;
  if (!(EVENT_TYPES as readonly string[]).includes(type)) return coded('bad-type', { type: type.slice(0, 40) });
  if (type === 'zone-enter' || type === 'zone-exit') return need(o, 'zone', isStr, 'string');
  if (type === 'line-forward' || type === 'line-backward') return need(o, 'line', isStr, 'string');
  return opt(o, 'x', isNum, 'number') ?? opt(o, 'y', isNum, 'number');
}

/** Checks one authorisation; null when valid. */
export function checkAuth(o: Record<string, unknown>): Coded | null {
  const e = need(o, 'id', isId, 'string') ?? need(o, 'ts', isNum, 'number') ?? need(o, 'pos', isStr, 'string') ?? need(o, 'count', (v) => isInt(v) && (v as number) >= 1, 'integer >= 1');
  if (e) return e;
  if (o.tracks !== undefined && o.tracks !== null) {
    if (!Array.isArray(o.tracks) || !o.tracks.every(isId)) return coded('bad-field', { field: 'tracks', type: 'array of track ids' });
  }
  return null;
}

const CHECK: Record<ParserName, (o: Record<string, unknown>) => Coded | null> = { tracks: checkFrame, events: checkEvent, auth: checkAuth };

/**
 * Parses one MQTT payload or TCP line with a parser. `events` and `auth`
 * accept an array of objects too (one event per element; invalid elements are
 * refused one by one, the valid ones kept). Never throws.
 */
export function parse(parser: ParserName, text: string, maxBytes: number): Parsed {
  if (text.length > maxBytes) return { events: [], error: coded('too-large', { bytes: text.length, max: maxBytes }), bad: 1 };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { events: [], error: coded('not-json'), bad: 1 };
  }
  const check = CHECK[parser];
  if (isObj(v)) {
    const e = check(v);
    return e ? { events: [], error: e, bad: 1 } : { events: [v], error: null, bad: 0 };
  }
  if (Array.isArray(v) && parser !== 'tracks') {
    if (v.length === 0) return { events: [], error: coded('empty-array'), bad: 1 };
    const events: Record<string, unknown>[] = [];
    let error: Coded | null = null;
    let bad = 0;
    for (const el of v) {
      const e = isObj(el) ? check(el) : coded('not-object');
      if (e) {
        error ??= e;
        bad++;
      } else events.push(el as Record<string, unknown>);
    }
    return { events, error, bad };
  }
  return { events: [], error: coded('not-object'), bad: 1 };
}

/**
 * Gap detection on a per-sensor counter (frame or seq). `observe` returns the
 * number of missing numbers between the last one seen and this one (0 when
 * consecutive). A number not above the last is a duplicate (QoS 1 redelivery)
 * or a sensor restart: counted apart, and it becomes the new last. The map of
 * sensors is bounded: past maxSensors, the oldest sensor is forgotten.
 */
export class GapTracker {
  private readonly last = new Map<string, number>();
  gaps = 0;
  duplicates = 0;
  constructor(private readonly maxSensors = 1024) {}

  observe(sensor: string, n: number): number {
    const prev = this.last.get(sensor);
    if (prev === undefined) {
      if (this.last.size >= this.maxSensors) {
        const oldest = this.last.keys().next().value;
        if (oldest !== undefined) this.last.delete(oldest);
      }
      this.last.set(sensor, n);
      return 0;
    }
    if (n > prev) {
      this.last.set(sensor, n);
      const missing = n - prev - 1;
      this.gaps += missing;
      return missing;
    }
    this.duplicates++;
    if (n < prev) this.last.set(sensor, n);
    return 0;
  }
}

/** The counter a parser numbers its events by (gap detection), or null. */
export function numberField(parser: ParserName): 'frame' | 'seq' | null {
  return parser === 'tracks' ? 'frame' : parser === 'events' ? 'seq' : null;
}

/**
 * Credit gate of the hand-off (try-send): the producer (worker) may have at
 * most `limit` events posted and not yet consumed by the flow side. Two
 * monotonic Int32 counters in shared memory: `posted` (written only by the
 * producer) and `consumed` (written only by the consumer); neither side waits.
 */
export class CreditGate {
  static readonly WORDS = 2;
  constructor(
    private readonly ctl: Int32Array,
    readonly limit: number,
  ) {}

  /** One gate per source over one shared buffer (WORDS Int32 words each): a flood on one source cannot take another's credits. */
  static perSource(sab: SharedArrayBuffer, n: number, limit: number | readonly number[]): CreditGate[] {
    return Array.from({ length: n }, (_, i) => new CreditGate(new Int32Array(sab, i * CreditGate.WORDS * 4, CreditGate.WORDS), typeof limit === 'number' ? limit : limit[i]));
  }

  static bytes(n: number): number {
    return n * CreditGate.WORDS * 4;
  }

  /** After a worker restart: only the events still waiting on the consumer side hold credits. */
  resetTo(waiting: number): void {
    Atomics.store(this.ctl, 1, (Atomics.load(this.ctl, 0) - waiting) | 0);
  }
  /** In flight: posted and not consumed. */
  depth(): number {
    return (Atomics.load(this.ctl, 0) - Atomics.load(this.ctl, 1)) | 0;
  }
  /** Producer: takes one credit if there is one. */
  tryTake(): boolean {
    if (this.depth() >= this.limit) return false;
    Atomics.add(this.ctl, 0, 1);
    return true;
  }
  /** Consumer: gives back n credits. */
  give(n: number): void {
    Atomics.add(this.ctl, 1, n);
  }
}

/**
 * The credits (events in flight) of each source: events and authorisations get the whole queue limit (a
 * burst of them waits rather than being dropped); a frame source gets at most `frameWindow`, so that only a
 * few milliseconds of frames ever wait on the flow engine in front of a decision.
 */
export function sourceLimits(kinds: readonly EventKind[], queueLimit: number, frameWindow: number): number[] {
  return kinds.map((k) => (k === 'frame' ? Math.min(queueLimit, frameWindow) : queueLimit));
}

/** Objects a merged frame keeps at most (the least recently seen go first): more people than a store holds. */
export const MERGE_MAX_OBJECTS = 1024;

/**
 * The frames of one sensor merged while it waits for its next slot (**Frame rate**): the newest frame's
 * number, time and sensor, and the latest position of every object seen in any of them (an object missing
 * from a later frame keeps its last one: what the tracker keeps per track). Bounded by MERGE_MAX_OBJECTS.
 */
export class FrameMerge {
  private readonly objects = new Map<unknown, unknown>();
  private head: Record<string, unknown> | null = null;
  /** Frames merged since the last take. */
  frames = 0;

  add(frame: Record<string, unknown>): void {
    this.head = frame;
    this.frames++;
    for (const o of frame.objects as Array<Record<string, unknown>>) {
      this.objects.delete(o.id);
      this.objects.set(o.id, o);
      if (this.objects.size > MERGE_MAX_OBJECTS) this.objects.delete(this.objects.keys().next().value);
    }
  }

  /**
   * The merged frame (`merged`: how many frames it stands for), the frame itself when only one waited, or null
   * when none did; empties the merge.
   */
  take(): Record<string, unknown> | null {
    if (this.head === null) return null;
    const out = this.frames === 1 ? this.head : { ...this.head, objects: [...this.objects.values()], merged: this.frames };
    this.head = null;
    this.frames = 0;
    this.objects.clear();
    return out;
  }
}

/** Truncates a raw payload for an error report (1 KiB of text). */
export function truncateRaw(text: string, max = 1024): string {
  return text.length <= max ? text : text.slice(0, max);
}

/** Backoff delay before reconnect attempt `attempt` (0-based): the one of nodes/shared/backoff.ts. */
export { reconnectDelay } from '../shared/backoff';

/** Valid source names: label values of the metrics (from config only, never from payloads). */
export function checkSourceName(s: string): boolean {
  return /^[A-Za-z0-9_.:-]{1,64}$/.test(s);
}

/** MQTT topic filter check (MQTT 3.1.1 section 4.7): non-empty, '#' last and alone, '+' alone in its level. */
export function checkTopicFilter(t: string): boolean {
  if (!t || t.length > 65535 || t.includes('\u0000')) return false;
  const levels = t.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return false;
    if (l.includes('+') && l !== '+') return false;
  }
  return true;
}
