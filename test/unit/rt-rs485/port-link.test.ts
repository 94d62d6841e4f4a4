// PortLink with a fake serial port: half-duplex requests never overlap, the
// queue is bounded, timeouts, passive bytes, reconnect with bounded backoff,
// close releases everything.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';

import { readPortConfig } from '../../../nodes/rt-rs485-port/port-config';
import { type LinkState, PortLink, TIMEOUT_GRACE_MS, type SerialLike, type Transaction, type TxOutcome } from '../../../nodes/rt-rs485-port/port-link';
import type { Msg } from '../../../nodes/shared/coded';
import { en } from '../../helpers/catalog';
import { sleep, waitFor } from '../../helpers/util';

class FakePort extends EventEmitter implements SerialLike {
  isOpen = false;
  writes: Buffer[] = [];
  closed = 0;
  constructor(private readonly openError: string | null) {
    super();
  }
  open(cb: (err: Error | null) => void): void {
    setImmediate(() => {
      if (this.openError) return cb(new Error(this.openError));
      this.isOpen = true;
      cb(null);
    });
  }
  close(cb?: (err: Error | null) => void): void {
    this.isOpen = false;
    this.closed++;
    setImmediate(() => cb?.(null));
  }
  write(data: Buffer, cb?: (err: Error | null | undefined) => void): boolean {
    this.writes.push(data);
    setImmediate(() => cb?.(null));
    return true;
  }
}

const cfg = (o: Record<string, unknown> = {}) =>
  readPortConfig({ id: 'p', type: 'rt-rs485-port', path: '/dev/fake', baudRate: 115200, backoffMin: 20, backoffMax: 80, queueLimit: 3, ...o });

function tx(tag: number, ends: Array<[number, TxOutcome, Msg | undefined]>, timeoutMs = 200): Transaction {
  return {
    bytes: Buffer.from([tag]),
    timeoutMs,
    onData: (chunk) => chunk[0] === tag,
    onEnd: (o, e) => ends.push([tag, o, e]),
  };
}

describe('rt-rs485 port-link (fake serial port)', () => {
  it('serialises requests: the next one is written only after the previous response', async () => {
    const ports: FakePort[] = [];
    const link = new PortLink(cfg(), () => {
      const p = new FakePort(null);
      ports.push(p);
      return p;
    });
    const states: LinkState[] = [];
    link.register({ onLink: (s) => states.push(s) });
    await waitFor(() => link.state === 'open', 1000, 'open');
    const ends: Array<[number, TxOutcome, Msg | undefined]> = [];
    assert.equal(link.request(tx(1, ends)), null);
    assert.equal(link.request(tx(2, ends)), null);
    assert.equal(link.request(tx(3, ends)), null);
    assert.equal(link.request(tx(4, ends)), null);
    const full = link.request(tx(5, ends));
    assert.deepEqual(full, { code: 'queue-full' }, 'queue limit 3 (+1 on the bus)');
    assert.equal(en('rt-rs485-watch', full!), 'request queue full');
    assert.equal(link.stats.refused, 1);
    const p = ports[0];
    assert.deepEqual(p.writes.map((b) => b[0]), [1], 'one outstanding request');
    p.emit('data', Buffer.from([9])); // not the answer
    await sleep(5);
    assert.deepEqual(p.writes.map((b) => b[0]), [1]);
    p.emit('data', Buffer.from([1]));
    assert.deepEqual(p.writes.map((b) => b[0]), [1, 2]);
    p.emit('data', Buffer.from([2]));
    p.emit('data', Buffer.from([3]));
    assert.deepEqual(p.writes.map((b) => b[0]), [1, 2, 3, 4]);
    assert.equal(link.depth, 1);
    await link.close();
    assert.deepEqual(ends, [
      [1, 'done', undefined],
      [2, 'done', undefined],
      [3, 'done', undefined],
      [4, 'error', { code: 'port-closing' }],
    ]);
    assert.equal(p.closed, 1);
    assert.deepEqual(states, ['connecting', 'open']);
  });

  it('times a silent response out and goes on with the next request', async () => {
    const p = new FakePort(null);
    const link = new PortLink(cfg(), () => p);
    link.register({});
    await waitFor(() => link.state === 'open', 1000, 'open');
    const ends: Array<[number, TxOutcome, Msg | undefined]> = [];
    const t0 = Date.now();
    link.request(tx(1, ends, 50));
    link.request(tx(2, ends, 50));
    await waitFor(() => ends.length === 1, 1000, 'timeout');
    assert.deepEqual(ends[0], [1, 'timeout', undefined]);
    assert.ok(Date.now() - t0 >= 49);
    assert.deepEqual(p.writes.map((b) => b[0]), [1, 2]);
    await link.close();
  });

  it('a response timer that fires late (event loop held up) gives an answer already there one short grace', async () => {
    const p = new FakePort(null);
    const link = new PortLink(cfg(), () => p);
    link.register({});
    await waitFor(() => link.state === 'open', 1000, 'open');
    const ends: Array<[number, TxOutcome, Msg | undefined]> = [];
    link.request(tx(1, ends, 20));
    // the answer is "in the kernel buffer", read only after the timers phase; the loop is busy past the timeout
    setTimeout(
      () =>
        setImmediate(() => {
          setImmediate(() => p.emit('data', Buffer.from([1]))); // next loop turn, after its timers phase
          const until = Date.now() + 60;
          while (Date.now() < until) {
            /* a busy flow (function node) */
          }
        }),
      1,
    );
    await waitFor(() => ends.length === 1, 1000, 'an outcome');
    assert.deepEqual(ends[0], [1, 'done', undefined]);
    // on time: a silent peer still times out at the timeout
    const t0 = Date.now();
    link.request(tx(2, ends, 20));
    // a probe timer of the same length in the same loop: how late this loop's timers fire just now (a busy machine
    // holds them up; the link may then rightly add its grace)
    let probeLate = 0;
    setTimeout(() => (probeLate = Math.max(0, Date.now() - t0 - 20)), 20);
    await waitFor(() => ends.length === 2, 1000, 'a timeout');
    const took = Date.now() - t0;
    assert.deepEqual(ends[1], [2, 'timeout', undefined]);
    assert.ok(took >= 20, `timed out after ${took} ms, before its 20 ms timeout`);
    assert.ok(took < 20 + probeLate + TIMEOUT_GRACE_MS + 15, `${took} ms (timers ${probeLate} ms late)`);
    await link.close();
  });

  it('bytes outside a transaction go to passive users, or count as stray', async () => {
    const p = new FakePort(null);
    const link = new PortLink(cfg(), () => p);
    const stray: Buffer[] = [];
    link.onStray = (d) => stray.push(d);
    link.register({});
    await waitFor(() => link.state === 'open', 1000, 'open');
    p.emit('data', Buffer.from('x'));
    assert.equal(stray.length, 1);
    const got: string[] = [];
    const u = { onData: (d: Buffer) => got.push(d.toString()) };
    link.register(u);
    p.emit('data', Buffer.from('OPEN\n'));
    assert.deepEqual(got, ['OPEN\n']);
    assert.equal(stray.length, 1);
    await link.close();
  });

  it('a missing port: down with the error, retried with doubling backoff capped, back when it appears', async () => {
    let attempts = 0;
    const times: number[] = [];
    let available = false;
    const link = new PortLink(cfg(), () => {
      attempts++;
      times.push(Date.now());
      return new FakePort(available ? null : 'No such file or directory');
    }, () => 0.5);
    const states: string[] = [];
    link.register({ onLink: (s, e) => states.push(`${s}${e ? `:${e}` : ''}`) });
    await sleep(400);
    assert.equal(link.state, 'down');
    assert.match(String(link.lastError), /No such file/);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // 20, 40, 80, 80, ... (jitter fixed at 1.0)
    assert.ok(gaps[0] >= 15 && gaps[0] < 40, `${gaps}`);
    assert.ok(gaps[1] >= 35 && gaps[1] < 70, `${gaps}`);
    assert.ok(gaps.slice(2).every((g) => g >= 75 && g < 130), `${gaps}`);
    available = true;
    await waitFor(() => link.state === 'open', 1000, 'open once the port appears');
    assert.equal(link.stats.reconnects, 0, 'a first open is not a reconnect');
    await link.close();
    const n = attempts;
    await sleep(200);
    assert.equal(attempts, n, 'no retry after close');
  });

  it('the port vanishing fails the request in flight and reopens', async () => {
    const ports: FakePort[] = [];
    const link = new PortLink(cfg(), () => {
      const p = new FakePort(null);
      ports.push(p);
      return p;
    });
    link.register({});
    await waitFor(() => link.state === 'open', 1000, 'open');
    const ends: Array<[number, TxOutcome, Msg | undefined]> = [];
    link.request(tx(1, ends));
    ports[0].isOpen = false;
    ports[0].emit('close', Object.assign(new Error('Disconnected'), { disconnected: true }));
    assert.deepEqual(ends, [[1, 'error', 'Disconnected']]);
    assert.equal(link.state, 'down');
    const refused = link.request(tx(2, ends));
    assert.deepEqual(refused, { code: 'port-state-error', params: { state: 'down', error: 'Disconnected' } });
    assert.equal(en('rt-rs485-watch', refused!), 'port down: Disconnected');
    await waitFor(() => link.state === 'open' && ports.length === 2, 1000, 'reopened');
    assert.equal(link.stats.reconnects, 1);
    await link.close();
  });

  it('close while opening waits for the open and then closes the port', async () => {
    const p = new FakePort(null);
    const link = new PortLink(cfg(), () => p);
    link.register({});
    const closing = link.close();
    await closing;
    assert.equal(p.isOpen, false);
    assert.equal(p.closed, 1);
  });
});
