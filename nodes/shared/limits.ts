// The numeric limits of every node's config, as plain data: ONE rule set for
// the runtime (the *-config.ts readers reject a value outside its limit) and
// the editor (scripts/copy-assets.mjs writes this table and `limitOk` into
// each node's .html, where the `validate` functions of registerType use them).
// Keep this file plain data plus one pure function, written in the subset of
// JavaScript that the build can copy verbatim into a browser (see EDITOR_JS).
// Pure: no Node-RED import.
import { type Coded, coded } from './coded';

export interface Limit {
  min: number;
  max: number;
  /** whole numbers only */
  integer?: boolean;
  /** the value must be greater than min (min itself is refused) */
  above?: boolean;
}

/** Per node type, per config field. An empty field means "use the default" (`required` fields are refused empty by the editor). */
export const LIMITS = {
  'rt-gate-endpoint': {
    port: { min: 1, max: 65535, integer: true },
    timeout: { min: 10, max: 600_000 },
    inflight: { min: 1, max: 64, integer: true },
    backoffMin: { min: 10, max: 60_000 },
    backoffMax: { min: 10, max: 600_000 },
  },
  'rt-gate-command': {
    queueLimit: { min: 1, max: 100_000, integer: true },
  },
  'rt-rs485-port': {
    baudRate: { min: 50, max: 4_000_000, integer: true },
    dataBits: { min: 5, max: 8, integer: true },
    turnaround: { min: 0, max: 1000 },
    queueLimit: { min: 1, max: 1000, integer: true },
    backoffMin: { min: 10, max: 60_000 },
    backoffMax: { min: 10, max: 600_000 },
  },
  'rt-rs485-watch': {
    unit: { min: 1, max: 247, integer: true },
    address: { min: 0, max: 0xffff, integer: true },
    interval: { min: 5, max: 3_600_000 },
    timeout: { min: 5, max: 500 },
    stall: { min: 20, max: 500 },
    openValue: { min: 0, max: 0xffff, integer: true },
    closedValue: { min: 0, max: 0xffff, integer: true },
    gap: { min: 1, max: 10_000 },
    silence: { min: 0, max: 3_600_000 },
  },
  'rt-journey-egress': {
    flushCount: { min: 1, max: 100_000, integer: true },
    flushMs: { min: 10, max: 3_600_000 },
    queueLimit: { min: 1, max: 10_000_000, integer: true },
    outboxLimit: { min: 1, max: 10_000_000, integer: true },
  },
  'rt-dosing': {
    coarsePct: { min: 0, max: 100, above: true },
    finePct: { min: 0, max: 100, above: true },
    fineBandG: { min: 0, max: 200_000 },
    toleranceG: { min: 0, max: 200_000, above: true },
    maxTimeS: { min: 0, max: 3600 },
    neverExceedG: { min: 0, max: 200_000 },
    noProgressG: { min: 0, max: 200_000 },
    containerDropG: { min: 0, max: 200_000 },
    topUps: { min: 0, max: 10, integer: true },
    learnDoses: { min: 3, max: 25, integer: true },
    progressHz: { min: 0, max: 20 },
  },
  'rt-scale': {
    doutPin: { min: 0, max: 27, integer: true },
    sckPin: { min: 0, max: 27, integer: true },
    motorPin: { min: 0, max: 27, integer: true },
    zero: { min: -0x800000, max: 0x7fffff, integer: true },
    motorHz: { min: 1, max: 30_000_000, integer: true },
    average: { min: 1, max: 16, integer: true },
    stableG: { min: 0, max: 200_000, above: true },
    faultRun: { min: 1, max: 1000, integer: true },
    capacityG: { min: 0, max: 200_000, above: true },
    pwmChip: { min: 0, max: 63, integer: true },
    pwmChannel: { min: 0, max: 3, integer: true },
  },
  'rt-hx711': {
    rate: { min: 0, max: 80 },
    deltaG: { min: 0, max: 200_000 },
  },
  'rt-perf-monitor': {
    period: { min: 1, max: 3600, integer: true },
    interval: { min: 1, max: 3600, integer: true },
    topN: { min: 1, max: 100, integer: true },
    maxNodes: { min: 1, max: 10_000, integer: true },
  },
  'rt-journey-tracker': {
    ttl: { min: 100, max: 3_600_000 },
    stitchMs: { min: 0, max: 60_000 },
    stitchM: { min: 0, max: 100 },
    maxTracks: { min: 1, max: 100_000, integer: true },
    authSlack: { min: 0, max: 600_000 },
    authHold: { min: 0, max: 600_000 },
    reopen: { min: 0, max: 600_000 },
  },
  'rt-mqtt-broker': {
    port: { min: 1, max: 65535, integer: true },
    keepalive: { min: 1, max: 65535, integer: true },
    backoffMin: { min: 10, max: 60_000 },
    backoffMax: { min: 10, max: 600_000 },
  },
  'rt-mqtt-ingress': {
    queueLimit: { min: 1, max: 1_000_000, integer: true },
    frameWindow: { min: 1, max: 1_000_000, integer: true },
    frameRate: { min: 0, max: 1000, integer: true },
    maxBytes: { min: 64, max: 16_777_216, integer: true },
    tcpPort: { min: 0, max: 65535, integer: true },
  },
  'rt-control-plant': {
    tickMs: { min: 5, max: 1000, integer: true },
    overTempC: { min: 50, max: 400 },
    hysteresisC: { min: 0, max: 100 },
    rpmLimit: { min: 1, max: 20_000 },
    maxBody: { min: 64, max: 1_000_000, integer: true },
    logMs: { min: 10, max: 3_600_000, integer: true },
    uiMs: { min: 250, max: 60_000, integer: true },
    writeTimeoutMs: { min: 10, max: 60_000, integer: true },
  },
  'rt-ws-batcher': {
    port: { min: 1, max: 65535, integer: true },
    batchSize: { min: 1, max: 10_000, integer: true },
    delayMs: { min: 1, max: 10_000 },
    capKb: { min: 16, max: 1_048_576, integer: true },
    graceS: { min: 0, max: 3600 },
    ringBatches: { min: 1, max: 100_000, integer: true },
    deflateThreshold: { min: 0, max: 16_777_216, integer: true },
    deflateConcurrency: { min: 1, max: 64, integer: true },
    dashRate: { min: 0, max: 20 },
    dashPoints: { min: 1, max: 10_000, integer: true },
  },
} as const satisfies Record<string, Record<string, Limit>>;

export type LimitedType = keyof typeof LIMITS;

/**
 * Whether `v` (a number, or a string as the editor's inputs hold it) is within
 * `l`. Empty (undefined, null, '') is accepted: the reader then uses the
 * default, and the editor's `required` refuses it where a value is needed.
 * Written as browser-safe ES5 on purpose: the build copies its source into
 * every node's .html (EDITOR_JS).
 */
export function limitOk(v: unknown, l: Limit): boolean {
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return true;
  if (typeof v !== 'number' && typeof v !== 'string') return false;
  var n = Number(v);
  if (!isFinite(n)) return false;
  if (l.integer && Math.floor(n) !== n) return false;
  if (l.above ? n <= l.min : n < l.min) return false;
  return n <= l.max;
}

/** Codes of a value outside its limit (in the catalog of every node type: the editor words them too). */
export const LIMIT_CODES = ['out-of-range', 'out-of-range-whole'] as const;

/** The problem of a value outside its limit: `out-of-range` {field, range}, e.g. "port must be a whole number in [1, 65535]". */
export function limitProblem(field: string, l: Limit): Coded {
  return coded(l.integer ? 'out-of-range-whole' : 'out-of-range', { field, range: `${l.above ? '(' : '['}${l.min}, ${l.max}]` });
}

/**
 * Reads a numeric field: the default when empty, the number when within its
 * limit, else the default and a problem pushed onto `problems` (so the node
 * refuses to start, as the editor flags it).
 */
export function readLimited<T extends LimitedType>(type: T, field: keyof (typeof LIMITS)[T] & string, v: unknown, dflt: number, problems: Coded[]): number {
  const l = (LIMITS[type] as Record<string, Limit>)[field];
  if (!limitOk(v, l)) {
    problems.push(limitProblem(field, l));
    return dflt;
  }
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return dflt;
  return Number(v);
}

/**
 * What the build writes into each node's .html, before its registerType: the
 * node type's limits and `limitOk`, as `RT_LIMITS` / `rtLimit(field)` (a
 * validate function, with the range in its message when Node-RED asks for one).
 */
export function editorScript(type: LimitedType | string): string {
  const table = (LIMITS as Record<string, Record<string, Limit>>)[type] ?? {};
  return [
    `<script type="text/javascript">`,
    `  // Generated by scripts/copy-assets.mjs from nodes/shared/limits.ts: the same limits as the runtime's.`,
    `  var RT_LIMITS = RT_LIMITS || {};`,
    `  RT_LIMITS[${JSON.stringify(type)}] = ${JSON.stringify(table)};`,
    `  var rtLimitOk = ${limitOk.toString()};`,
    `  // rtLimit(type, field): a validate function for registerType's defaults; with opt, the problem worded from the type's catalog.`,
    `  function rtLimit(type, field) {`,
    `    var l = RT_LIMITS[type] && RT_LIMITS[type][field];`,
    `    if (!l) throw new Error('no limit for ' + type + '.' + field);`,
    `    return function (v, opt) {`,
    `      if (rtLimitOk(v, l)) return true;`,
    `      if (!opt) return false;`,
    `      var code = type + '.codes.' + (l.integer ? 'out-of-range-whole' : 'out-of-range');`,
    `      var params = { field: field, range: (l.above ? '(' : '[') + l.min + ', ' + l.max + ']' };`,
    `      return typeof this._ === 'function' ? this._(code, params) : code;`,
    `    };`,
    `  }`,
    `</script>`,
  ].join('\n');
}
