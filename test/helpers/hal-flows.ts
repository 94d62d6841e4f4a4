// What the end-to-end tests of the hardware backends (test/flows/pigpio-hal,
// test/flows/gpiocdev-hal) share: the stand-ins' JSONL records, a metric read
// from a /metrics scrape, and the flow of two scales with an rt-hx711 each and
// a function node that blocks the flow engine for 500 ms when injected.
import { existsSync, readFileSync } from 'node:fs';

/** The records a stand-in wrote (one JSON object per line); none if it has not written yet. */
export const records = <R>(file: string): R[] =>
  existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as R) : [];

/** One sample of a Prometheus text scrape (NaN when absent); labels as written, e.g. `scale="a"`. */
export function metric(text: string, name: string, labels: string): number {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/**
 * A scale's conversions read so far: good samples plus bad reads of every reason but no_data (each conversion read
 * is one or the other; no_data counts periods in which no data-ready was seen at all, i.e. nothing was read).
 */
export function conversions(text: string, scale: string): number {
  let n = metric(text, 'rtedge_hx711_samples_total', `scale="${scale}"`);
  const re = new RegExp(`^rtedge_hx711_bad_reads_total\\{scale="${scale}",reason="[a-z_]+"\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) if (!m[0].includes('reason="no_data"')) n += Number(m[1]);
  return n;
}

/** The same count over one window of the rt-scale dialog's check (GET /rt-scale/:id/check): samples plus bad reads but no_data. */
export function checkConversions(c: { samples: number; bad: Record<string, number> }): number {
  return c.samples + Object.entries(c.bad).reduce((a, [k, v]) => a + (k === 'no_data' ? 0 : v), 0);
}

/** An rt-scale config node on the given backend (its own fields in `backendFields`). */
export const scaleNode = (backendFields: Record<string, string>, id: string, name: string, dout: number, sck: number, motor: number, rate = 80) => ({
  id,
  type: 'rt-scale',
  name,
  version: 1,
  ...backendFields,
  doutPin: String(dout),
  sckPin: String(sck),
  gain: 'A128',
  rate: String(rate),
  zero: '84000',
  countsPerGram: '420',
  motorPin: String(motor),
  motorHz: '10000',
  median: true,
  average: '4',
  stableG: '0.05',
  faultRun: '3',
  capacityG: '5000',
});

export const hx = (id: string, scale: string) => ({ id, type: 'rt-hx711', z: 'tab1', name: `weight of ${scale}`, version: 1, scale, rate: '2', deltaG: '1', wires: [[]] });

/** Tab tab1 with the given scales, an rt-hx711 on each, and the 500 ms blocker (inject `blk` -> function `busy`). */
export const halFlows = (label: string, scales: Array<{ id: string }>, extra: object[] = []): object[] => [
  { id: 'tab1', type: 'tab', label },
  ...scales,
  ...scales.map((s) => hx(`hx${s.id.replace(/^scale/, '')}`, s.id)),
  { id: 'blk', type: 'inject', z: 'tab1', name: 'block', props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, wires: [['busy']] },
  { id: 'busy', type: 'function', z: 'tab1', name: 'busy 500 ms', func: 'const end = Date.now() + 500; while (Date.now() < end) {} return msg;', outputs: 1, wires: [[]] },
  ...extra,
];
