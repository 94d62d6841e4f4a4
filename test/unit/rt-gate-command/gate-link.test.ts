// The gate link's result reasons and link errors are codes with parameters
// (worded by rt-gate-command from its catalog), against a local TCP peer.
import assert from 'node:assert/strict';
import { createServer, type Server, Socket } from 'node:net';

import { GateLink } from '../../../nodes/rt-gate-command/gate-link';
import type { GateEvent, GateInit } from '../../../nodes/rt-gate-command/gate-protocol';
import { en } from '../../helpers/catalog';
import { waitFor } from '../../helpers/util';

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

describe('gate-link: coded reasons', () => {
  let server: Server;
  let port = 0;
  const sockets = new Set<Socket>();

  before(async () => {
    server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        if (d.includes('OPEN A')) s.write('??? nonsense\r\n'); // B gets no answer
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('bad reply, acknowledgement timeout, the dropped link, close: each a code with its parameters', async () => {
    const events: GateEvent[] = [];
    const init: GateInit = {
      host: '127.0.0.1',
      port,
      ack: '^OK {gate}$',
      timeoutMs: 100,
      maxInflight: 1,
      backoffMinMs: 10_000, // no reconnect during the test
      backoffMaxMs: 10_000,
      keepAlive: false,
      nice: 0,
      metrics: new SharedArrayBuffer(8),
      closeGraceMs: 0,
    };
    const link = new GateLink(init, { emit: (ev) => events.push(ev), nowUs, onSent: () => undefined, onDone: () => undefined, onConnected: () => undefined });
    const result = (id: number): Extract<GateEvent, { t: 'result' }> | undefined => events.find((e): e is Extract<GateEvent, { t: 'result' }> => e.t === 'result' && e.id === id);
    try {
      await waitFor(() => events.some((e) => e.t === 'link' && e.state === 'connected'), 2000, 'connected');
      link.enqueue({ id: 1, gate: 'A', text: 'OPEN A\r\n', enqUs: nowUs() });
      await waitFor(() => result(1), 2000, 'result 1');
      assert.equal(result(1)!.result, 'error');
      assert.deepEqual(result(1)!.reason, { code: 'bad-reply' });
      assert.equal(en('rt-gate-command', result(1)!.reason!), 'unexpected reply from the gate controller');

      link.enqueue({ id: 2, gate: 'B', text: 'OPEN B\r\n', enqUs: nowUs() });
      await waitFor(() => result(2), 2000, 'result 2');
      assert.equal(result(2)!.result, 'timeout');
      assert.deepEqual(result(2)!.reason, { code: 'ack-timeout', params: { ms: 100 } });
      assert.equal(en('rt-gate-command', result(2)!.reason!), 'no acknowledgement within 100 ms');
      const down = events.find((e): e is Extract<GateEvent, { t: 'link' }> => e.t === 'link' && e.state === 'down');
      assert.deepEqual(down?.error, { code: 'no-ack' }, 'the link is dropped so a late answer is not taken for the next command');

      link.enqueue({ id: 3, gate: 'C', text: 'OPEN C\r\n', enqUs: nowUs() }); // waits for the link
    } finally {
      await link.close(0);
    }
    assert.deepEqual(result(3)?.reason, { code: 'closed-unsent' });
    assert.equal(en('rt-gate-command', result(3)!.reason!), 'node closed before the command was sent');
    link.enqueue({ id: 4, gate: 'D', text: 'OPEN D\r\n', enqUs: nowUs() });
    assert.deepEqual(result(4)?.reason, { code: 'closed' });
    // a reason nested in another: the inner one is worded first
    assert.equal(en('rt-gate-command', { code: 'lost-before-ack', params: { reason: { code: 'conn-closed' } } }), 'connection closed by the controller before the acknowledgement');
  });

  it('commands that arrive together go out in one write, in order, and are all acknowledged', async () => {
    const lines: string[] = [];
    const peer = createServer((sock) => {
      sock.setEncoding('latin1');
      let buf = '';
      sock.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          lines.push(line);
          sock.write(`OK ${line.slice(5)}\r\n`);
        }
      });
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    const events: GateEvent[] = [];
    const init: GateInit = {
      host: '127.0.0.1',
      port: (peer.address() as { port: number }).port,
      ack: '^OK {gate}$',
      timeoutMs: 2000,
      maxInflight: 64,
      backoffMinMs: 50,
      backoffMaxMs: 100,
      keepAlive: false,
      nice: 0,
      metrics: new SharedArrayBuffer(8),
      closeGraceMs: 0,
    };
    const link = new GateLink(init, { emit: (ev) => events.push(ev), nowUs, onSent: () => undefined, onDone: () => undefined, onConnected: () => undefined });
    // socket writes carrying commands (the link's socket is the only one writing OPEN here)
    const write = Socket.prototype.write;
    let writes = 0;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      if (String(chunk).startsWith('OPEN ')) writes++;
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    try {
      await waitFor(() => events.some((e) => e.t === 'link' && e.state === 'connected'), 2000, 'connected');
      for (let i = 1; i <= 40; i++) link.enqueue({ id: i, gate: `G${i}`, text: `OPEN G${i}\r\n`, enqUs: nowUs() });
      await waitFor(() => events.filter((e) => e.t === 'result').length === 40, 3000, '40 results');
      assert.equal(writes, 1, 'one write for the 40 commands queued together');
      assert.deepEqual(lines, Array.from({ length: 40 }, (_, i) => `OPEN G${i + 1}`));
      assert.ok(events.every((e) => e.t !== 'result' || e.result === 'ok'));
    } finally {
      Socket.prototype.write = write;
      await link.close(0);
      await new Promise((r) => peer.close(r));
    }
  });
});
