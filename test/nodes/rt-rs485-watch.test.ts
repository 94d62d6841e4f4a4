// rt-rs485-port + rt-rs485-watch in a real Node-RED runtime (test helper)
// over a real serial line: a socat pty pair, with a simulated door controller
// (serialport) on the far end.
import assert from 'node:assert/strict';

import { SerialPort } from 'serialport';

import type { Rs485PortNode, Transaction } from '../../nodes/rt-rs485-port/port-link';
import { inputValue, ResponseReader } from '../../nodes/rt-rs485-watch/modbus-core';
import type { DoorValue } from '../../nodes/rt-rs485-watch/watch-core';
import { catalog } from '../helpers/catalog';
import { DoorSim } from '../helpers/door-sim';
import { type PtyPair, ptyPair } from '../helpers/pty';
import { sleep, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const portNode = require('../../nodes/rt-rs485-port/rt-rs485-port');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const watchNode = require('../../nodes/rt-rs485-watch/rt-rs485-watch');

helper.init(require.resolve('node-red'));

interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (arg: Record<string, unknown>) => void): void;
  context(): { flow: { get(k: string): unknown } };
}
interface Call {
  args: unknown[];
}

function flow(path: string, watch: Record<string, unknown> = {}, port: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'rs485' },
    { id: 'p', type: 'rt-rs485-port', version: 1, path, baudRate: 115200, dataBits: 8, parity: 'none', stopBits: 1, backoffMin: 50, backoffMax: 300, ...port },
    { id: 'w', z: 'f1', type: 'rt-rs485-watch', version: 1, port: 'p', mode: 'poll', key: 'door', unit: 1, fn: 2, address: 0, interval: 20, timeout: 50, stall: 500, wires: [['out']], ...watch },
    { id: 'out', z: 'f1', type: 'helper' },
  ];
}

const load = (f: object[], mods: unknown[] = [portNode, watchNode]): Promise<void> =>
  new Promise((resolve, reject) => helper.load(mods, f, (err: Error | undefined) => (err ? reject(err) : resolve())));

/** The English text of a `<type>.a.b` key (the test helper's RED._ returns the key itself). */
function english(key: string, params: Record<string, unknown> = {}): string {
  const [type, ...path] = key.split('.');
  let cur: unknown = catalog(type);
  for (const k of path) cur = (cur as Record<string, unknown> | undefined)?.[k];
  return typeof cur === 'string' ? cur.replace(/__([A-Za-z0-9_]+?)__/g, (_m, k: string) => String(params[k])) : key;
}
/** A node module loaded with a RED whose `_` words keys from our en-US catalogs, so statuses read as users see them. */
const worded =
  (mod: (RED: object) => void) =>
  (RED: object): void =>
    mod(Object.assign(Object.create(RED) as object, { _: english }));

interface Seen {
  v: DoorValue;
  at: number;
}
function changes(): Seen[] {
  const seen: Seen[] = [];
  (helper.getNode('out') as TestNode).on('input', (m) => {
    if (m.topic === 'door') seen.push({ v: m.payload as DoorValue, at: performance.now() });
  });
  return seen;
}
const states = (s: Seen[]): string[] => s.map((x) => x.v.state);
const door = (): DoorValue & { reason_code?: string } => (helper.getNode('w') as TestNode).context().flow.get('door') as DoorValue & { reason_code?: string };
const port = (): Rs485PortNode => helper.getNode('p') as Rs485PortNode;

/** Opens a path with serialport's lock, then closes it. Rejects if someone holds the port. */
function tryOpen(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    p.open((err) => {
      if (err) return reject(err);
      p.close(() => resolve());
    });
  });
}

describe('rt-rs485-watch node over a pty pair', function () {
  this.timeout(30_000);
  let pty: PtyPair;
  let sim: DoorSim;

  beforeEach(async () => {
    pty = await ptyPair();
    sim = new DoorSim({ path: pty.b });
    await sim.start();
  });
  afterEach(async () => {
    await helper.unload();
    await sim.stop();
    await pty.dispose();
  });

  it('polling (0x02): an open/close sequence is reported exactly and in order', async () => {
    await load(flow(pty.a));
    const seen = changes();
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    const seq: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      sim.open = i % 2 === 0;
      seq.push(sim.open);
      await sleep(70); // > 2 poll periods, so every state is seen by a poll
    }
    await sleep(100);
    assert.deepEqual(states(seen), ['closed', ...seq.map((o) => (o ? 'open' : 'closed'))]);
    assert.equal(door().state, 'closed');
    assert.equal(seen[0].v.since <= seen[0].v.ts, true);
    const f = port().frames();
    assert.ok(f.ok > 50, JSON.stringify(f));
    assert.equal(f.bad_crc + f.exception + f.wrong_unit + f.timeout, 0, JSON.stringify(f));
  });

  it('polling (0x03): register values map to states; any input returns msg.door', async () => {
    sim.opt.openValue = 0x55;
    sim.opt.closedValue = 0xaa;
    await load(flow(pty.a, { fn: 3, openValue: 0x55, closedValue: 0xaa, address: 7 }));
    const seen = changes();
    sim.open = true;
    await waitFor(() => door()?.state === 'open', 3000, 'open');
    assert.equal(sim.requests.at(-1)?.fn, 3);
    assert.equal(sim.requests.at(-1)?.address, 7);
    const w = helper.getNode('w') as TestNode;
    const before = sim.requests.length;
    w.receive({ payload: 'hello', refresh: true });
    await waitFor(() => sim.requests.length > before, 1000, 'a read on refresh');
    assert.deepEqual(states(seen.filter((s) => s.v !== undefined)), ['open']);
    const passed: Array<Record<string, unknown>> = [];
    (helper.getNode('out') as TestNode).on('input', (m) => {
      if (m.payload === 'hi') passed.push(m);
    });
    w.receive({ payload: 'hi' });
    await waitFor(() => passed.length === 1, 2000, 'pass-through');
    assert.equal((passed[0].door as DoorValue).state, 'open');
    sim.opt.openValue = 0x99; // neither value: unknown with a reason
    await waitFor(() => door()?.state === 'unknown', 3000, 'unknown');
    assert.match(String(door().reason), /unexpected value 153|codes\.unexpected-value/); // the helper's RED._ gives the catalog key
    assert.equal(door().reason_code, 'unexpected-value');
  });

  it('polling: every change a poll observes is emitted, and the value is never older than a poll plus the response', async () => {
    await load(flow(pty.a));
    const seen = changes();
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    // What the polls observed: each answer the node received, decoded again around the port's request
    // (the simulator's own log is not the oracle: on a busy machine an answer can reach the node too late).
    const observed: Array<{ open: boolean; at: number }> = [];
    let maxTx = 0;
    const link = port().link;
    const orig = link.request.bind(link);
    link.request = (tx: Transaction) => {
      const sent = Date.now();
      const reader = new ResponseReader({ unit: 1, fn: 2, address: 0, count: 1 });
      let value: number | null = null;
      const onData = tx.onData;
      const onEnd = tx.onEnd;
      tx.onData = (chunk, at) => {
        for (const e of reader.push(chunk)) if (e.result === 'ok') value = inputValue(2, e.data);
        return onData(chunk, at);
      };
      tx.onEnd = (o, err) => {
        maxTx = Math.max(maxTx, Date.now() - sent);
        if (o === 'done' && value !== null) observed.push({ open: value === 1, at: Date.now() });
        onEnd(o, err);
      };
      return orig(tx);
    };
    const startCount = seen.length;
    let maxAge = 0;
    // the longest the test process's event loop stalled (a sleep's overshoot): the node's poll timer, in this same
    // process, is held up just as long, so the state may be that much older through no fault of the node's
    let maxStall = 0;
    let seed = 3;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 1000) / 1000;
    const end = Date.now() + 3000;
    while (Date.now() < end) {
      sim.open = !sim.open;
      const ms = 5 + rnd() * 40; // some changes last less than a poll period and may be missed by polls
      const slept = Date.now();
      await sleep(ms);
      maxStall = Math.max(maxStall, Date.now() - slept - ms);
      const d = door();
      maxAge = Math.max(maxAge, Date.now() - d.ts);
    }
    await sleep(150);
    link.request = orig;
    const polled: string[] = [];
    let last = 'closed';
    for (const a of observed) {
      const s = a.open ? 'open' : 'closed';
      if (s !== last) polled.push(s);
      last = s;
    }
    assert.ok(polled.length > 20, `only ${polled.length} changes observed`);
    assert.deepEqual(states(seen.slice(startCount)), polled);
    // "one poll period plus the response time": the longest request/response seen, plus 15 ms for timers, plus the
    // longest stall of this process's event loop (a node that stopped polling still fails: its state ages by seconds)
    assert.ok(maxAge <= 20 + maxTx + 15 + maxStall, `state ${maxAge} ms old (longest transaction ${maxTx} ms, longest event-loop stall ${maxStall} ms)`);
  });

  it('passive (delimiter): a sequence is reported exactly; a burst of 1000 changes emits every change, final state right', async () => {
    await load(flow(pty.a, { mode: 'passive', framing: 'delimiter', delimiter: '\\r\\n' }));
    const seen = changes();
    await waitFor(() => port().link.state === 'open', 3000, 'port open');
    const seq = ['OPEN', 'CLOSED', 'OPEN', 'OPEN', 'CLOSED'];
    for (const s of seq) {
      await sim.push(`${s}\r\n`);
      await sleep(10);
    }
    await waitFor(() => seen.length === 4, 2000, '4 changes');
    assert.deepEqual(states(seen), ['open', 'closed', 'open', 'closed']);
    seen.length = 0;
    // 1000 changes, written in uneven chunks so frames are split and joined across reads
    let text = '';
    for (let i = 0; i < 1000; i++) text += i % 2 === 0 ? 'OPEN\r\n' : 'CLOSED\r\n';
    const bytes = Buffer.from(text + 'junk-frame\r\n');
    for (let off = 0; off < bytes.length; ) {
      const n = 1 + ((off * 7) % 97);
      await sim.write(bytes.subarray(off, off + n));
      off += n;
    }
    await waitFor(() => seen.length >= 1000, 10_000, `1000 changes (have ${seen.length})`);
    await sleep(100);
    assert.equal(seen.length, 1000);
    assert.ok(
      states(seen).every((s, i) => s === (i % 2 === 0 ? 'open' : 'closed')),
      'alternating, in order',
    );
    assert.equal(door().state, 'closed');
    const f = port().frames();
    assert.equal(f.ok, 1005);
    assert.equal(f.garbage, 1, JSON.stringify(f));
  });

  it('passive (inter-byte timeout, hex mapping): frames cut by the gap', async () => {
    await load(flow(pty.a, { mode: 'passive', framing: 'timeout', gap: 15, encoding: 'hex', openMatch: '^a1', closedMatch: '^a0' }));
    const seen = changes();
    await waitFor(() => port().link.state === 'open', 3000, 'port open');
    for (const b of [[0xa1, 0x01], [0xa0, 0x02], [0xa1], [0xff, 0xee], [0xa0]]) {
      await sim.write(Buffer.from(b));
      await sleep(50);
    }
    await waitFor(() => seen.length === 4, 2000, '4 changes');
    assert.deepEqual(states(seen), ['open', 'closed', 'open', 'closed']);
    assert.equal(port().frames().garbage, 1);
  });

  it('bad CRC, split frames, garbage and a joined wrong-unit frame are counted and handled', async () => {
    await load(flow(pty.a));
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    for (const fault of ['split', 'garbage_first', 'wrong_unit_then_ok'] as const) {
      sim.fault = fault;
      sim.open = !sim.open;
      const want = sim.open ? 'open' : 'closed';
      await waitFor(() => door().state === want, 2000, `${want} with ${fault}`);
      await sleep(100);
      assert.equal(door().state, want, fault);
    }
    const f = port().frames();
    assert.ok(f.garbage >= 3, JSON.stringify(f));
    assert.ok(f.wrong_unit >= 3, JSON.stringify(f));
    sim.fault = 'bad_crc';
    const t0 = Date.now();
    await waitFor(() => door().state === 'unknown', 2000, 'unknown after bad CRCs');
    assert.match(String(door().reason), /bad CRC|codes\.bad-crc/);
    assert.equal(door().reason_code, 'bad-crc');
    assert.ok(Date.now() - t0 <= 500 + 20 + 150, `${Date.now() - t0} ms`);
    assert.ok(port().frames().bad_crc >= 3);
    sim.fault = 'none';
    await waitFor(() => door().state !== 'unknown', 2000, 'back');
  });

  it('exception response: unknown at once with the exception as reason, warned once', async () => {
    await load(flow(pty.a));
    const warns: string[] = [];
    (helper.getNode('w') as TestNode).on('call:warn', (c) => warns.push(String((c as unknown as Call).args[0])));
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    sim.exceptionCode = 2;
    sim.fault = 'exception';
    const t0 = Date.now();
    await waitFor(() => door().state === 'unknown', 1000, 'unknown');
    assert.ok(Date.now() - t0 < 150, `${Date.now() - t0} ms`);
    assert.match(String(door().reason), /exception 2 \(illegal data address\)|codes\.modbus-exception/);
    await sleep(200);
    assert.equal(warns.length, 1, warns.join('\n'));
    assert.ok(port().frames().exception >= 3);
  });

  it('silent peer: unknown with a reason within the 500 ms stall cap', async () => {
    await load(flow(pty.a, { timeout: 100 }));
    const seen = changes();
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    sim.fault = 'silent';
    const t0 = performance.now();
    await waitFor(() => seen.some((s) => s.v.state === 'unknown'), 2000, 'unknown');
    const dt = seen.find((s) => s.v.state === 'unknown')!.at - t0;
    assert.ok(dt <= 500 + 20 + 100, `unknown after ${dt.toFixed(0)} ms`);
    assert.ok(dt >= 400, `too early: ${dt.toFixed(0)} ms (one lost reply must not flap)`);
    assert.match(String(door().reason), /no answer within 100 ms|codes\.no-answer-within/);
    assert.ok(port().frames().timeout >= 3);
    sim.fault = 'none';
    await waitFor(() => door().state === 'closed', 2000, 'back to closed');
  });

  for (const peer of ['wrong unit id', 'silent from the start'] as const) {
    it(`a bus that has never answered (${peer}): the status and the value say why, warned once per outage`, async () => {
      if (peer === 'silent from the start') sim.fault = 'silent';
      await load(flow(pty.a, { unit: peer === 'wrong unit id' ? 7 : 1, timeout: 100 }), [worded(portNode), worded(watchNode)]);
      const w = helper.getNode('w') as TestNode;
      const statuses: Array<Record<string, unknown>> = [];
      const warns: string[] = [];
      w.on('call:status', (c) => statuses.push((c as unknown as Call).args[0] as Record<string, unknown>));
      w.on('call:warn', (c) => warns.push(String((c as unknown as Call).args[0])));
      const seen = changes();
      // never "not read yet" forever: the reason of the failed reads within the stall cap (plus a poll and the status throttle)
      await waitFor(() => door()?.state === 'unknown' && door().reason_code === 'no-answer-within', 1500, 'the reason in the value');
      await waitFor(() => statuses.some((s) => s.fill === 'red' && /^no answer within/.test(String(s.text))), 1500, `a red status with the reason: ${JSON.stringify(statuses)}`);
      await sleep(1500); // many more failed polls: still one warning for this outage
      assert.equal(warns.length, 1, warns.join('\n'));
      assert.match(warns[0], /^Door state unknown: no answer within 100 ms/);
      assert.doesNotMatch(JSON.stringify(statuses.at(-1)), /not read yet/);
      assert.deepEqual(states(seen), [], 'unknown -> unknown is not a change');
      assert.ok(port().frames().timeout >= 5, JSON.stringify(port().frames()));
      // the bus answers at last: closed, green
      if (peer === 'wrong unit id') sim.opt.unit = 7;
      else sim.fault = 'none';
      await waitFor(() => door().state === 'closed', 2000, 'closed once the peer answers');
      await waitFor(() => statuses.at(-1)?.fill === 'green', 1500, 'green');
    });
  }

  it('pty closed and reopened: unknown (port unavailable), red status, then reconnects', async () => {
    await load(flow(pty.a));
    const seen = changes();
    const statuses: Array<Record<string, unknown>> = [];
    (helper.getNode('w') as TestNode).on('call:status', (c) => statuses.push((c as unknown as Call).args[0] as Record<string, unknown>));
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    sim.open = true;
    await waitFor(() => door().state === 'open', 2000, 'open');
    await sim.stop();
    await pty.stop();
    await waitFor(() => door().state === 'unknown', 3000, 'unknown after unplug');
    assert.match(String(door().reason), /port unavailable|no answer|codes\.(port-unavailable|no-answer)/);
    await waitFor(() => port().link.state === 'down', 3000, 'link down');
    await sleep(600); // a few failed retries
    await pty.start();
    sim = new DoorSim({ path: pty.b });
    await sim.start();
    sim.open = true;
    await waitFor(() => door().state === 'open', 5000, 'open again after reconnect');
    assert.ok(port().link.stats.reconnects >= 1);
    assert.deepEqual(states(seen).slice(-2), ['unknown', 'open']);
    await sleep(600);
    assert.ok(statuses.some((s) => s.fill === 'red'), JSON.stringify(statuses));
    assert.equal(statuses.at(-1)?.fill, 'green', JSON.stringify(statuses.slice(-3)));
  });

  it('a missing port: red status, one warning per outage, state unknown, retried', async () => {
    await load(flow(`${pty.dir}/nope`, {}, { backoffMin: 20, backoffMax: 100 }));
    const statuses: Array<Record<string, unknown>> = [];
    (helper.getNode('w') as TestNode).on('call:status', (c) => statuses.push((c as unknown as Call).args[0] as Record<string, unknown>));
    await waitFor(() => door()?.state === 'unknown' && /port unavailable|codes\.port-unavailable/.test(String(door().reason)), 3000, 'unknown');
    await sleep(700);
    assert.equal(port().link.stats.opens, 0);
    assert.ok(port().link.stats.reconnects === 0 && port().link.state === 'down');
    const logs = (helper.log().args as Array<[{ level: number; msg: unknown; type: string }]>).map((a) => a[0]);
    const warns = logs.filter((l) => l.type === 'rt-rs485-port' && l.level === 30);
    const errors = logs.filter((l) => l.level <= 20);
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.match(String(warns[0].msg), /unavailable|errors\.down/);
    assert.deepEqual(errors, [], 'no [error] for a missing port (a warning and a retry)');
    await waitFor(() => statuses.some((s) => s.fill === 'red'), 1500, 'red status');
  });

  it('redeploy releases the port: the path opens again at once, the node comes back', async () => {
    await load(flow(pty.a));
    await waitFor(() => door()?.state === 'closed', 3000, 'first read');
    await assert.rejects(tryOpen(pty.a), /lock/i, 'the node holds the port (locked) while deployed');
    await helper.unload();
    await tryOpen(pty.a);
    await load(flow(pty.a));
    await waitFor(() => door()?.state === 'closed', 3000, 'first read after redeploy');
    const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const h0 = handles();
    for (let i = 0; i < 10; i++) {
      await helper.unload();
      await load(flow(pty.a, { interval: 10 + i }));
      await waitFor(() => door()?.state === 'closed', 3000, `read after redeploy ${i}`);
    }
    // A handle that leaks per redeploy shows as +10 here. A port closed by the last unload may still be
    // closing on a loaded machine (its poll handle goes a tick or two later), so the count may settle.
    await waitFor(() => handles() <= h0 + 1, 3000, 'handles settle').catch(() => undefined);
    const types = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().map((h) => h.constructor?.name);
    assert.ok(handles() <= h0 + 1, `handles ${h0} -> ${handles()} after 10 redeploys: ${types.join(', ')}`);
    await helper.unload();
    await tryOpen(pty.a);
  });
});
