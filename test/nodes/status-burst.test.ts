// A burst of malformed messages at rt-journey-egress in a real Node-RED runtime
// (node-red-node-test-helper): every message gets its error and its done(), but
// the node's status channel stays within the checklist's 4 updates per second.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const egressNode = require('../../nodes/rt-journey-egress/rt-journey-egress');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

interface Status {
  fill?: string;
  shape?: string;
  text?: string;
}

interface EgressTestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Record<string, unknown>) => void): void;
  status(s: Status): void;
  error(err: unknown, msg?: object): void;
  _complete(msg: { _msgid?: string }, err?: unknown): void;
  _lease?: { state: string };
}

function flow(file: string): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'status burst' },
    {
      id: 'eg',
      z: 'f1',
      type: 'rt-journey-egress',
      name: 'journey log',
      version: 1,
      path: file,
      flushCount: 10,
      flushMs: 1000,
      fsync: 'none',
      queueLimit: 1000,
      createDir: true,
      report: false,
      wires: [[]],
    },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['eg'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
}

const load = (f: object[]): Promise<void> =>
  new Promise((resolve, reject) => {
    helper.settings({});
    helper.load([egressNode, catchNode], f, (err: Error | undefined) => (err ? reject(err) : resolve()));
  });

describe('status burst (rt-journey-egress, 2 000 malformed messages)', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('rtedge-status-');
  });
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
    tmp.cleanup();
  });

  it('at most 4 status events per second, the last one red; every message errors and is done once', async () => {
    await load(flow(join(tmp.dir, 'j.jsonl')));
    const eg = helper.getNode('eg') as EgressTestNode;
    await waitFor(() => eg._lease?.state === 'ready', 10_000, 'the egress worker ready');
    await sleep(1100); // let start-up statuses (ready, written 0) out of the 1 s window

    const statuses: Array<{ at: number; s: Status }> = [];
    const realStatus = eg.status.bind(eg);
    eg.status = (s: Status) => {
      statuses.push({ at: Date.now(), s });
      realStatus(s);
    };
    let errorCalls = 0;
    const realError = eg.error.bind(eg);
    eg.error = (err: unknown, msg?: object) => {
      errorCalls++;
      realError(err, msg);
    };
    // done(err) ends in node._complete(msg, err): count it per message.
    const doneCount = new Map<string, number>();
    const realComplete = eg._complete.bind(eg);
    eg._complete = (msg, err) => {
      const id = String(msg._msgid);
      doneCount.set(id, (doneCount.get(id) ?? 0) + 1);
      realComplete(msg, err);
    };
    const caught: Array<Record<string, unknown>> = [];
    (helper.getNode('caught') as EgressTestNode).on('input', (m) => caught.push(m));

    const N = 2000;
    const t0 = Date.now();
    // A string payload is rejected by encodeLine ("must be an object").
    for (let i = 0; i < N; i++) eg.receive({ payload: `not a journey ${i}` });
    await waitFor(() => caught.length >= N, 20_000, `${N} errors at Catch (got ${caught.length})`);
    await sleep(1500); // the burst is over: any pending status comes out now
    const secs = (Date.now() - t0) / 1000;

    assert.equal(caught.length, N, 'one Catch message per malformed message');
    assert.equal(errorCalls, N, 'node.error once per message');
    assert.match(String((caught[0].error as { message: string }).message), /must be an object|codes\.not-object/);
    assert.equal(doneCount.size, N, 'done() for every message');
    assert.deepEqual([...new Set(doneCount.values())], [1], 'done() exactly once per message');

    assert.ok(statuses.length >= 1, 'the bad input is shown');
    assert.ok(statuses.length <= Math.ceil(secs * 4) + 1, `${statuses.length} status events in ${secs.toFixed(2)} s`);
    for (let i = 0; i < statuses.length; i++) {
      const inSecond = statuses.filter((e) => e.at >= statuses[i].at && e.at < statuses[i].at + 1000).length;
      assert.ok(inSecond <= 4, `${inSecond} status events within 1 s`);
    }
    const last = statuses[statuses.length - 1].s;
    assert.equal(last.fill, 'red', `last status ${JSON.stringify(last)}`);
    assert.equal(last.shape, 'ring');
    assert.ok((last.text ?? '').length < 20);
    assert.ok(statuses[0].at - t0 < 100, 'the first error status is shown at once');
  });
});
