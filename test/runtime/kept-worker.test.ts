// A worker kept for the process (worker-runtime keepForProcess, what the
// pigpio HAL thread asks for once pigpio is loaded): it outlives its leases,
// new leases attach to the same thread, and if it dies it is not restarted:
// its leases and every later one fail with worker-dead, plainly.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import type { CodedError } from '../../nodes/shared/coded';
import { activeWorkerCount, WorkerLease } from '../../nodes/shared/worker-host';
import { sleep, waitFor } from '../helpers/util';

const SCRIPT = join(__dirname, 'fixtures', 'kept.worker.js');

function lease(key: string, keep = true) {
  const errors: Error[] = [];
  let ready = 0;
  const l = new WorkerLease<unknown, { t: 'thread' } | { t: 'crash' }>({
    script: SCRIPT,
    key,
    init: { keep },
    onEvent: () => undefined,
    onError: (e) => errors.push(e),
    onReady: () => ready++,
    backoff: { initialMs: 20, maxMs: 50, stableMs: 60_000 },
  }).start();
  return { l, errors, ready: () => ready };
}

describe('worker host: a worker kept for the process', function () {
  this.timeout(20_000);

  it('outlives its leases (redeploys re-attach to the same thread); dies plainly and is not restarted', async () => {
    const key = `kept-${Date.now()}`;
    const kept = (): number => activeWorkerCount(true) - activeWorkerCount();
    const before = kept(); // other kept workers of this process (a pigpio HAL of another test)
    const a = lease(key);
    await waitFor(() => a.ready() === 1, 5000, 'attached');
    const t1 = await a.l.request<number>({ t: 'thread' });
    await a.l.close(2000);
    await sleep(200);
    assert.equal(kept(), before + 1, 'the kept worker is still running, and not counted as a leak');
    const b = lease(key);
    await waitFor(() => b.ready() === 1, 5000, 're-attached');
    assert.equal(await b.l.request<number>({ t: 'thread' }), t1, 'the same thread');
    b.l.post({ t: 'crash' });
    await waitFor(() => b.errors.length === 1, 5000, 'the lease told');
    assert.equal((b.errors[0] as CodedError).code, 'worker-dead');
    await sleep(300);
    assert.equal(b.ready(), 1, 'not restarted');
    const c = lease(key);
    await waitFor(() => c.errors.length === 1, 5000, 'a new lease fails at once');
    assert.equal((c.errors[0] as CodedError).code, 'worker-dead');
    assert.match(String((c.errors[0] as CodedError).params.error), /the kept worker crashed/);
    await b.l.close(500);
    await c.l.close(500);
    assert.equal(kept(), before);
  });

  it('a worker that does not ask is restarted after a crash, as before', async () => {
    const key = `unkept-${Date.now()}`;
    const a = lease(key, false);
    await waitFor(() => a.ready() === 1, 5000, 'attached');
    a.l.post({ t: 'crash' });
    await waitFor(() => a.ready() === 2, 5000, 'restarted');
    assert.notEqual((a.errors[0] as CodedError).code, 'worker-dead');
    await a.l.close(1000);
    await waitFor(() => activeWorkerCount() === 0, 5000, 'ended with its last lease');
  });
});
