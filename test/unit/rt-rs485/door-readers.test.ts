// PollReader over a stand-in bus: a request that fails with the serial port's
// own (verbatim) error text still reports a coded reason flows can switch on.
import assert from 'node:assert/strict';

import { type Coded, isCoded, type Msg } from '../../../nodes/shared/coded';
import type { LinkUser, Transaction } from '../../../nodes/rt-rs485-port/port-link';
import { type Bus, PollReader } from '../../../nodes/rt-rs485-watch/door-readers';
import { waitFor } from '../../helpers/util';

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
