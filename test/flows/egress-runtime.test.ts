// rt-journey-egress in a real Node-RED process: /metrics values, redeploy and
// SIGTERM mid-stream lose nothing.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { sleep, tempDir, waitFor } from '../helpers/util';

/**
 * The journeys' seq numbers in the file. While the writer is running a read can
 * see a write in progress, so polls pass `live` and ignore a trailing partial
 * line; after the process has exited a partial line is a failure.
 */
function seqs(file: string, live = false): number[] {
  if (!existsSync(file)) return [];
  let t = readFileSync(file, 'utf8');
  if (live) t = t.slice(0, t.lastIndexOf('\n') + 1);
  if (!t) return [];
  assert.ok(t.endsWith('\n'), 'no half-written line');
  return t
    .slice(0, -1)
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
}

/** A flow: inject every `everyMs` -> function node running `func` (it sends journeys) -> egress. */
function generatorFlow(file: string, label: string, func: string, everyMs: number, onceDelay: number, egressName = 'log'): object[] {
  return [
    { id: 't1', type: 'tab', label },
    { id: 'gen', z: 't1', type: 'function', name: 'journeys', func, outputs: 1, wires: [['eg']] },
    { id: 'tick', z: 't1', type: 'inject', repeat: String(everyMs / 1000), once: true, onceDelay, props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['gen']] },
    { id: 'eg', z: 't1', type: 'rt-journey-egress', name: egressName, version: 1, path: file, flushCount: 10, flushMs: 1000, fsync: 'none', queueLimit: 1000000, createDir: true, report: false, wires: [[]] },
  ];
}

/** A flow: inject -> function that emits `burst` journeys every `everyMs` -> egress. */
function streamFlow(file: string, burst: number, everyMs: number, egressName = 'log'): object[] {
  const func = `let n = context.get('n') || 0; for (let i = 0; i < ${burst}; i++) { n++; node.send({ payload: { seq: n, gate: 'G1' } }); } context.set('n', n); return null;`;
  return generatorFlow(file, 'stream', func, everyMs, 0.1, egressName);
}

/**
 * A producer that counts what it sent: a function node that sends `burst`
 * journeys every `everyMs`, numbering them from a global counter (so the
 * numbering goes on across redeploys) and recording the last number sent in
 * `countFile` (synchronously, after the sends), so the test knows exactly
 * which journeys the flow produced.
 */
function countedFlow(file: string, countFile: string, burst: number, everyMs: number): object[] {
  const func =
    `const fs = global.get('fs'); let n = global.get('n') || 0;` +
    ` for (let i = 0; i < ${burst}; i++) { n++; node.send({ payload: { seq: n, gate: 'G1', t: Date.now() } }); }` +
    ` global.set('n', n); fs.writeFileSync(${JSON.stringify(countFile)}, String(n)); return null;`;
  return generatorFlow(file, 'counted', func, everyMs, 0.05);
}

const produced = (countFile: string): number => (existsSync(countFile) ? Number(readFileSync(countFile, 'utf8')) : 0);

function closedCounts(log: string): Array<{ accepted: number; written: number; dropped: number; late: number }> {
  const out: Array<{ accepted: number; written: number; dropped: number; late: number }> = [];
  for (const m of log.matchAll(/closed: (\d+) journeys accepted, (\d+) written, (\d+) dropped(?:; (\d+) arrived after close began)?/g)) {
    out.push({ accepted: Number(m[1]), written: Number(m[2]), dropped: Number(m[3]), late: Number(m[4] ?? 0) });
  }
  return out;
}

describe('rt-journey-egress in a Node-RED process', function () {
  this.timeout(120_000);
  let rt: ChildRuntime | null = null;
  afterEach(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
    rt = null;
  });

  it('GET /metrics shows the egress counters with correct values', async () => {
    rt = await startNodeRed();
    const file = join(rt.userDir, 'm.jsonl');
    const flows = [
      { id: 't1', type: 'tab', label: 'm' },
      { id: 'inj', z: 't1', type: 'inject', once: true, onceDelay: 0.1, repeat: '', props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['gen']] },
      { id: 'gen', z: 't1', type: 'function', func: 'for (let i = 1; i <= 25; i++) node.send({payload:{seq:i}}); node.send({payload:"bad"}); return null;', outputs: 1, wires: [['eg']] },
      { id: 'eg', z: 't1', type: 'rt-journey-egress', version: 1, path: file, flushCount: 10, flushMs: 200, fsync: 'batch', queueLimit: 1000, createDir: true, report: false, wires: [[]] },
    ];
    const r0 = await rt.get('/metrics');
    assert.equal(r0.status, 200, 'served before any message has flowed');
    assert.match(r0.text, /process_cpu_user_seconds_total/);
    await rt.deploy(flows);
    await waitFor(() => seqs(file, true).length === 25, 10_000, '25 lines');
    await sleep(300);
    const r = await rt.get('/metrics');
    assert.equal(r.status, 200);
    const val = (name: string): number => {
      const m = r.text.match(new RegExp(`^${name}\\{node="eg"\\} (\\S+)$`, 'm'));
      assert.ok(m, `${name} missing in:\n${r.text.slice(0, 3000)}`);
      return Number(m[1]);
    };
    assert.equal(val('rtedge_egress_lines_total'), 25);
    assert.equal(val('rtedge_egress_bytes_total'), readFileSync(file).length);
    assert.equal(val('rtedge_egress_bad_input_total'), 1);
    assert.equal(val('rtedge_egress_dropped_total'), 0);
    assert.equal(val('rtedge_egress_queue_depth'), 0);
    assert.ok(val('rtedge_egress_batches_total') >= 1);
    assert.equal(val('rtedge_egress_flush_seconds_count'), val('rtedge_egress_batches_total'));
    assert.match(r.text, /rtedge_egress_flush_seconds_bucket\{node="eg",le="0.001"\} \d+/);
    assert.match(r.text, /# TYPE rtedge_egress_flush_seconds histogram/);
  });

  it('a redeploy mid-stream loses nothing', async () => {
    rt = await startNodeRed();
    const file = join(rt.userDir, 'r.jsonl');
    await rt.deploy(streamFlow(file, 200, 20));
    await waitFor(() => seqs(file, true).length > 2000, 20_000, 'stream running');
    // full redeploy with a changed egress: the old instance closes mid-stream
    await rt.deploy(streamFlow(file, 200, 20, 'log2'));
    await waitFor(() => closedCounts(rt!.log()).length === 1, 20_000, 'the first egress closed');
    await sleep(1500);
    await rt.kill('SIGTERM');
    const closed = closedCounts(rt.log());
    assert.equal(closed.length, 2, rt.log());
    const accepted = closed.reduce((a, c) => a + c.accepted, 0);
    const s = seqs(file);
    assert.equal(s.length, accepted, 'every accepted journey is on disk');
    assert.equal(closed[0].written, closed[0].accepted);
    // The generator restarts its counter with the new flow: two in-order runs, each 1..k without gaps.
    const cut = s.findIndex((v, i) => i > 0 && v <= s[i - 1]);
    const first = cut < 0 ? s : s.slice(0, cut);
    const second = cut < 0 ? [] : s.slice(cut);
    first.forEach((v, i) => assert.equal(v, i + 1));
    second.forEach((v, i) => assert.equal(v, i + 1));
  });

  // Issue 11: journeys the flow had already sent to the egress but that reached
  // it after its close began were refused ("The node is closing") and lost.
  it('redeploys and SIGTERM at 2000 journeys/s: every journey the flow produced is on disk exactly once, in order', async function () {
    rt = await startNodeRed({ settingsSource: "functionGlobalContext: { fs: require('fs') }" });
    const file = join(rt.userDir, 'p.jsonl');
    const countFile = join(rt.userDir, 'produced.txt');
    const flows = countedFlow(file, countFile, 20, 10);
    await rt.deploy(flows);
    await waitFor(() => seqs(file, true).length > 1000, 20_000, 'stream running');
    for (let i = 1; i <= 6; i++) {
      // a full deploy stops every node (the producer too) while journeys are in flight
      await rt.deploy(flows);
      await waitFor(() => closedCounts(rt!.log()).length === i, 20_000, `egress closed ${i} times`);
      await sleep(200 + 97 * i);
    }
    const res = await rt.kill('SIGTERM');
    assert.ok(res.signal === null, `exited by itself after flushing: ${JSON.stringify(res)}`);
    const n = produced(countFile);
    const s = seqs(file);
    assert.ok(n > 3000, `the producer ran: ${n}`);
    assert.doesNotMatch(rt.log(), /journey refused|could not be written/);
    let firstBad = s.findIndex((v, i) => v !== i + 1);
    if (firstBad < 0 && s.length !== n) firstBad = s.length;
    assert.equal(firstBad, -1, `the file holds 1..${n} in order, exactly once; first difference at line ${firstBad + 1} (${s[firstBad]}); ${s.length} lines`);
    const closed = closedCounts(rt.log());
    assert.equal(closed.length, 7);
    assert.equal(closed.reduce((a, c) => a + c.accepted, 0), n);
    for (const c of closed) assert.equal(c.written, c.accepted);
    // How many reached the node after its close began (refused before issue 11), for the record.
    this.test!.title += ` (${closed.reduce((a, c) => a + c.late, 0)} arrived after close began)`;
  });

  // Issue 11: after a crash that tore the last line, the first journey after
  // the restart was glued onto the fragment.
  it('a torn last line is set apart in <file>.torn and counted; the new journeys start on a line of their own', async () => {
    const pre = tempDir('rtedge-torn-');
    try {
      const file = join(pre.dir, 'torn.jsonl');
      const fragment = '{"seq":999999,"gate":"G1","outcome":"comple';
      writeFileSync(file, '{"seq":999997,"gate":"G1"}\n{"seq":999998,"gate":"G1"}\n' + fragment);
      const flows = [
        { id: 't1', type: 'tab', label: 'torn' },
        { id: 'eg', z: 't1', type: 'rt-journey-egress', version: 1, path: file, flushCount: 10, flushMs: 100, fsync: 'batch', queueLimit: 1000, createDir: true, report: false, wires: [[]] },
      ];
      rt = await startNodeRed({ flows });
      // Set apart at start, before any journey arrives.
      await waitFor(() => /ended with a torn line/.test(rt!.log()), 10_000, 'torn-tail warning');
      const m0 = await rt.get('/metrics');
      assert.match(m0.text, /^rtedge_egress_torn_tails_total\{node="eg"\} 1$/m);
      assert.equal(readFileSync(file, 'utf8'), '{"seq":999997,"gate":"G1"}\n{"seq":999998,"gate":"G1"}\n', 'the fragment is cut off the journey file');
      await rt.deploy([
        ...flows,
        { id: 'inj', z: 't1', type: 'inject', once: true, onceDelay: 0.1, repeat: '', props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['gen']] },
        { id: 'gen', z: 't1', type: 'function', func: 'for (let i = 1000000; i < 1000025; i++) node.send({payload:{seq:i,gate:"G1"}}); return null;', outputs: 1, wires: [['eg']] },
      ]);
      await waitFor(() => seqs(file, true).length === 27, 10_000, '25 new lines');
      const lines = readFileSync(file, 'utf8').split('\n');
      assert.equal(lines.pop(), '', 'ends with a newline');
      const recs = lines.map((l) => JSON.parse(l) as { seq: number });
      assert.deepEqual(recs[2], { seq: 1000000, gate: 'G1' }, 'the first new journey is intact');
      assert.deepEqual(
        recs.map((r) => r.seq),
        [999997, 999998, ...Array.from({ length: 25 }, (_, i) => 1000000 + i)],
      );
      const side = readFileSync(file + '.torn', 'utf8').split('\n');
      assert.equal(side.length, 2, 'one record, newline-terminated');
      const rec = JSON.parse(side[0]) as { text: string; bytes: number; offset: number; file: string; time: string };
      assert.equal(rec.text, fragment);
      assert.equal(rec.bytes, Buffer.byteLength(fragment));
      assert.equal(rec.offset, 54);
      assert.equal(rec.file, file);
      assert.ok(!Number.isNaN(Date.parse(rec.time)));
      const warn = rt.log().match(/\[warn\] \[rt-journey-egress:[^\]]*\] (.*torn line.*)/);
      assert.ok(warn, rt.log());
      assert.match(warn[1], new RegExp(`${Buffer.byteLength(fragment)} bytes`));
      assert.match(warn[1], /torn\.jsonl\.torn/);
      assert.equal((rt.log().match(/ended with a torn line/g) ?? []).length, 1, 'warned once');
      const m1 = await rt.get('/metrics');
      assert.match(m1.text, /^rtedge_egress_torn_tails_total\{node="eg"\} 0$/m, 'a new instance (redeployed) found no torn tail');
    } finally {
      pre.cleanup();
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} of Node-RED mid-stream loses nothing`, async () => {
      rt = await startNodeRed();
      const file = join(rt.userDir, 's.jsonl');
      await rt.deploy(streamFlow(file, 500, 10));
      await waitFor(() => seqs(file, true).length > 3000, 20_000, 'stream running');
      const res = await rt.kill(signal);
      assert.ok(res.signal === null, `exited by itself after flushing: ${JSON.stringify(res)}`);
      const closed = closedCounts(rt.log());
      assert.equal(closed.length, 1, `close report missing:\n${rt.log().slice(-2000)}`);
      const s = seqs(file);
      assert.equal(s.length, closed[0].accepted, 'every accepted journey is on disk');
      assert.equal(closed[0].written, closed[0].accepted);
      s.forEach((v, i) => assert.equal(v, i + 1, 'in order, exactly once'));
    });
  }
});
