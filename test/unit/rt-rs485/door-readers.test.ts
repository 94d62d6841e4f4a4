// PollReader over a stand-in bus: a request that fails with the serial port's
// own (verbatim) error text still reports a coded reason flows can switch on.
// Both readers: an event loop held up past the stall (or silence) time does not
// make a door that answered meanwhile unknown; a peer that is really silent still is.
import assert from 'node:assert/strict';

import { type Coded, isCoded, type Msg } from '../../../nodes/shared/coded';
import type { LinkUser, Transaction } from '../../../nodes/rt-rs485-port/port-link';
import { type Bus, PassiveReader, PollReader } from '../../../nodes/rt-rs485-watch/door-readers';
import { encodeResponse } from '../../../nodes/rt-rs485-watch/modbus-core';
import { compileMapping } from '../../../nodes/rt-rs485-watch/passive-core';
import type { DoorState } from '../../../nodes/rt-rs485-watch/watch-core';
import { sleep, waitFor } from '../../helpers/util';

describe('PollReader: request outcomes', () => {
  // (the stall cap is well above the poll interval: the failures' reason is recorded before the cap is reached; with
  // a cap of 0 the stall timer raced the first failure and could report "no answer" first on a busy machine)
  const run = async (fail: Msg | undefined): Promise<Msg[]> => {
    const seen: Msg[] = [];
    let user: LinkUser | null = null;
    const bus: Bus = {
      register: (u) => (user = u),
      deregister: () => (user = null),
      request: (tx: Transaction) => {
        setImmediate(() => tx.onEnd('error', fail));
        return null;
      },
    };
    const reader = new PollReader(bus, { request: { unit: 1, fn: 0x02, address: 0, count: 1 }, intervalMs: 20, timeoutMs: 50, stallMs: 200, openValue: 1, closedValue: 0 }, {
      observe: (state, why) => {
        if (state === 'unknown' && why !== undefined) seen.push(why);
      },
      frame: () => undefined,
      link: () => undefined,
    });
    reader.start();
    user!.onLink!('open');
    try {
      await waitFor(() => seen.length > 0, 2000, 'an unknown state');
    } finally {
      reader.stop();
    }
    return seen;
  };

  it('a verbatim port error becomes reason request-error with the text as a parameter', async () => {
    const [why] = await run('EIO: i/o error, write');
    assert.ok(isCoded(why), `coded: ${JSON.stringify(why)}`);
    assert.equal((why as Coded).code, 'request-error');
    assert.equal((why as Coded).params?.error, 'EIO: i/o error, write');
  });

  it('a coded port error is kept; no error at all is request-failed', async () => {
    assert.equal(((await run({ code: 'port-closing' }))[0] as Coded).code, 'port-closing');
    assert.equal(((await run(undefined))[0] as Coded).code, 'request-failed');
  });
});

/** Holds the event loop for `ms` (a busy flow), after `then` is queued for the loop turn that follows. */
function holdLoop(ms: number, then: () => void): void {
  setImmediate(() => {
    setImmediate(then); // what the peer sent meanwhile: read only after the timers phase of the next turn
    const until = performance.now() + ms;
    while (performance.now() < until) {
      /* a busy function node */
    }
  });
}

describe('door readers: an event loop held up is not a silent door', () => {
  const sinkOf = (seen: Array<{ state: DoorState; why?: Msg }>) => ({
    observe: (state: DoorState, why?: Msg) => seen.push({ state, why }),
    frame: () => undefined,
    link: () => undefined,
  });

  it('PollReader: an answer that waited in the buffer through a hold longer than the stall time keeps the state; a silent peer still goes unknown', async () => {
    const seen: Array<{ state: DoorState; why?: Msg }> = [];
    let user: LinkUser | null = null;
    let mode: 'answer' | 'hold' | 'silent' = 'answer';
    let held = false;
    const answer = (tx: Transaction): void => {
      tx.onData?.(encodeResponse(1, 0x02, Uint8Array.from([0])), performance.now()); // closed
      tx.onEnd('done');
    };
    const bus: Bus = {
      register: (u) => (user = u),
      deregister: () => (user = null),
      request: (tx: Transaction) => {
        if (mode === 'answer') setImmediate(() => answer(tx));
        else if (mode === 'hold') {
          mode = 'answer';
          // the loop is held up 3 stall times right after the request went out; the answer came meanwhile
          holdLoop(300, () => {
            held = true;
            answer(tx);
          });
        } else setTimeout(() => tx.onEnd('timeout'), 50); // on time: a peer that does not answer
        return null;
      },
    };
    const reader = new PollReader(bus, { request: { unit: 1, fn: 0x02, address: 0, count: 1 }, intervalMs: 20, timeoutMs: 50, stallMs: 100, openValue: 1, closedValue: 0 }, sinkOf(seen));
    reader.start();
    user!.onLink!('open');
    try {
      await waitFor(() => seen.some((s) => s.state === 'closed'), 2000, 'a first answer');
      mode = 'hold';
      await waitFor(() => held, 2000, 'the hold');
      await sleep(150); // polls go on after it
      assert.deepEqual(
        seen.map((s) => s.state).filter((s) => s !== 'closed'),
        [],
        `no unknown through the hold: ${JSON.stringify(seen.filter((s) => s.state !== 'closed'))}`,
      );
      mode = 'silent';
      const t0 = performance.now();
      await waitFor(() => seen.some((s) => s.state === 'unknown'), 2000, 'unknown once the peer is silent');
      assert.ok(performance.now() - t0 < 1000);
    } finally {
      reader.stop();
    }
  });

  it('PassiveReader: a frame that waited in the buffer through a hold longer than the silence time keeps the state; silence still goes unknown', async () => {
    const seen: Array<{ state: DoorState; why?: Msg }> = [];
    let user: LinkUser | null = null;
    const bus: Bus = { register: (u) => (user = u), deregister: () => (user = null), request: () => null };
    const reader = new PassiveReader(
      bus,
      { framer: { mode: 'delimiter', delimiter: Buffer.from('\n'), gapMs: 5, maxLength: 64 }, mapping: compileMapping('text', '^OPEN$', '^CLOSED$'), silenceMs: 100 },
      sinkOf(seen),
    );
    reader.start();
    user!.onLink!('open');
    const frame = (): void => user!.onData!(Buffer.from('CLOSED\n'), performance.now());
    try {
      frame();
      await sleep(60);
      frame();
      let held = false;
      // the controller's next frame (every 60 ms) arrives during a 300 ms hold
      holdLoop(300, () => {
        held = true;
        frame();
      });
      await waitFor(() => held, 2000, 'the hold');
      await sleep(50);
      frame();
      assert.deepEqual(
        seen.map((s) => s.state).filter((s) => s !== 'closed'),
        [],
        `no unknown through the hold: ${JSON.stringify(seen.filter((s) => s.state !== 'closed'))}`,
      );
      await waitFor(() => seen.some((s) => s.state === 'unknown'), 2000, 'unknown once the controller is silent');
    } finally {
      reader.stop();
    }
  });
});
