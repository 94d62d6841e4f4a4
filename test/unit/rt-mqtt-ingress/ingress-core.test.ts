// The pure parts of rt-mqtt-ingress: parsers, gaps, credit gate, the pipe's
// accounting (received = delivered-or-dropped + malformed), configs.
import assert from 'node:assert/strict';

import { mqttClientOptions, readBroker, readTlsFiles } from '../../../nodes/rt-mqtt-broker/broker-config';
import { readIngress } from '../../../nodes/rt-mqtt-ingress/ingress-config';
import * as gateCore from '../../../nodes/rt-gate-command/gate-core';
import * as sharedBackoff from '../../../nodes/shared/backoff';
import { checkTopicFilter, CreditGate, FrameMerge, GapTracker, MERGE_MAX_OBJECTS, parse, reconnectDelay, sourceLimits } from '../../../nodes/rt-mqtt-ingress/ingress-core';
import { IngressPipe } from '../../../nodes/rt-mqtt-ingress/ingress-pipe';
import { type IngressEvent, ingressMetricSpec } from '../../../nodes/rt-mqtt-ingress/ingress-protocol';
import { topicMatches } from '../../../nodes/rt-mqtt-ingress/topic';
import { SharedMetrics } from '../../../nodes/shared/shared-metrics';

const frame = { frame: 18231, ts: 1764270000123, sensor: 's1', objects: [{ id: 't-1001', x: 1.52, y: 3.1, z: 1.71 }] };
const event = { seq: 5521, ts: 1764270000130, sensor: 's1', type: 'zone-enter', track: 't-1001', zone: 'pos-1' };
const auth = { id: 'a-77', ts: 1764270001000, pos: 'pos-1', count: 2 };

describe('rt-mqtt-ingress core', () => {
  it('parses the documented examples of each format', () => {
    assert.deepEqual(parse('tracks', JSON.stringify(frame), 1e6), { events: [frame], error: null, bad: 0 });
    assert.deepEqual(parse('events', JSON.stringify(event), 1e6).events, [event]);
    assert.deepEqual(parse('auth', JSON.stringify({ ...auth, tracks: ['t-1'] }), 1e6).events.length, 1);
    for (const type of ['track-create', 'track-delete']) assert.equal(parse('events', JSON.stringify({ seq: 1, ts: 1, sensor: 's', type, track: 't', x: 1, y: 2 }), 1e6).bad, 0);
    for (const type of ['line-forward', 'line-backward']) assert.equal(parse('events', JSON.stringify({ seq: 1, ts: 1, sensor: 's', type, track: 't', line: 'exit' }), 1e6).bad, 0);
  });

  it('refuses malformed input with a code, element by element in arrays', () => {
    assert.equal(parse('events', '{"seq":', 1e6).error?.code, 'not-json');
    assert.equal(parse('events', '42', 1e6).error?.code, 'not-object');
    assert.deepEqual(parse('events', JSON.stringify({ ...event, zone: undefined }), 1e6).error, { code: 'missing-field', params: { field: 'zone' } });
    assert.equal(parse('events', JSON.stringify({ ...event, type: 'teleport' }), 1e6).error?.code, 'bad-type');
    assert.equal(parse('events', JSON.stringify({ ...event, seq: -1 }), 1e6).error?.code, 'bad-field');
    assert.equal(parse('tracks', JSON.stringify({ ...frame, objects: [{ id: 't', x: 'a', y: 1 }] }), 1e6).error?.code, 'bad-field');
    assert.equal(parse('tracks', JSON.stringify([frame]), 1e6).error?.code, 'not-object');
    assert.equal(parse('auth', JSON.stringify({ ...auth, count: 0 }), 1e6).error?.code, 'bad-field');
    assert.equal(parse('auth', JSON.stringify({ ...auth, tracks: 'x' }), 1e6).error?.code, 'bad-field');
    assert.equal(parse('auth', 'x'.repeat(100), 64).error?.code, 'too-large');
    const mixed = parse('events', JSON.stringify([event, { seq: 1 }, { ...event, seq: 5522 }, 7]), 1e6);
    assert.equal(mixed.events.length, 2);
    assert.equal(mixed.bad, 2);
  });

  it('counts missing numbers per sensor as gaps, lower or equal numbers as duplicates', () => {
    const g = new GapTracker(2);
    assert.equal(g.observe('a', 1), 0);
    assert.equal(g.observe('a', 2), 0);
    assert.equal(g.observe('a', 5), 2);
    assert.equal(g.observe('b', 10), 0);
    assert.equal(g.observe('a', 5), 0);
    assert.equal(g.duplicates, 1);
    assert.equal(g.observe('a', 7), 1);
    assert.equal(g.gaps, 3);
    g.observe('c', 1); // forgets the oldest sensor (a)
    assert.equal(g.observe('a', 100), 0);
  });

  it('credit gate: at most limit in flight, given back by the consumer', () => {
    const g = new CreditGate(new Int32Array(new SharedArrayBuffer(8)), 3);
    assert.deepEqual([g.tryTake(), g.tryTake(), g.tryTake(), g.tryTake()], [true, true, true, false]);
    assert.equal(g.depth(), 3);
    g.give(2);
    assert.equal(g.depth(), 1);
    assert.equal(g.tryTake(), true);
  });

  it('pipe: batches events, drops and counts per source when the flow side has not consumed, received == parsed + malformed', () => {
    const sources = [
      { name: 'tracks', parser: 'tracks' as const },
      { name: 'acc', parser: 'auth' as const },
    ];
    const m = SharedMetrics.create(ingressMetricSpec(2));
    const gates = CreditGate.perSource(new SharedArrayBuffer(CreditGate.bytes(2)), 2, 4);
    const posted: IngressEvent[] = [];
    const deferred: Array<() => void> = [];
    const pipe = new IngressPipe(sources, gates, m, 1e6, { post: (e) => posted.push(e), defer: (f) => deferred.push(f), now: () => 1000.5, later: () => assert.fail('no Frame rate: no timer') });
    for (let i = 1; i <= 6; i++) pipe.receive(0, 'store/s1/tracks', JSON.stringify({ ...frame, frame: i === 6 ? 9 : i }));
    assert.equal(posted.length, 0, 'nothing posted before the deferred flush');
    assert.equal(deferred.length, 1, 'one flush scheduled for many events');
    deferred[0]();
    pipe.receive(1, 'tcp:acc', 'nope');
    const batch = posted.find((e) => e.t === 'batch');
    assert.ok(batch && batch.t === 'batch');
    assert.deepEqual(batch.ev.map((e) => e.p.frame), [1, 2, 3, 4]);
    assert.deepEqual(batch.ev.map((e) => e.q), [1, 2, 3, 4]);
    assert.equal(batch.ev[0].rx, 1000.5);
    assert.equal(m.counter('received.0'), 6);
    assert.equal(m.counter('parsed.0'), 6);
    assert.equal(m.counter('dropped.0'), 2);
    assert.equal(m.counter('gaps.0'), 3);
    assert.equal(m.counter('malformed.1'), 1);
    assert.equal(m.counter('received.1'), 1);
    assert.equal(posted.filter((e) => e.t === 'malformed').length, 1, 'source 1 has its own credits: the flood on source 0 did not take them');
    assert.equal(gates[1].depth(), 1);
    for (let i = 0; i < 3; i++) pipe.receive(1, 'tcp:acc', 'nope');
    assert.equal(posted.filter((e) => e.t === 'malformed').length, 4);
    pipe.receive(1, 'tcp:acc', 'nope');
    assert.equal(posted.filter((e) => e.t === 'malformed').length, 4, 'no credit left to report it: counted only');
    assert.equal(m.counter('malformed.1'), 5);
    gates[0].give(4);
    pipe.receive(0, 'store/s1/tracks', JSON.stringify({ ...frame, frame: 10 }));
    assert.equal(m.counter('dropped.0'), 2, 'credits given back: taken again');
  });

  it('topic filters: validity and matching', () => {
    assert.ok(checkTopicFilter('store/+/events'));
    assert.ok(checkTopicFilter('store/#'));
    assert.ok(!checkTopicFilter('store/#/x'));
    assert.ok(!checkTopicFilter('store/a+'));
    assert.ok(!checkTopicFilter(''));
    assert.ok(topicMatches('store/+/events', 'store/s1/events'));
    assert.ok(!topicMatches('store/+/events', 'store/s1/tracks'));
    assert.ok(topicMatches('store/#', 'store/s1/a/b'));
    assert.ok(topicMatches('#', 'a'));
    assert.ok(!topicMatches('#', '$SYS/x'));
    assert.ok(!topicMatches('store/+', 'store/a/b'));
  });

  it('reconnect backoff doubles with jitter and is capped', () => {
    assert.equal(reconnectDelay(0, 100, 10_000, () => 0.5), 100);
    assert.equal(reconnectDelay(3, 100, 10_000, () => 0.5), 800);
    assert.equal(reconnectDelay(30, 100, 10_000, () => 0.5), 10_000);
    assert.equal(reconnectDelay(0, 100, 10_000, () => 0), 80);
    // one implementation (nodes/shared/backoff.ts) for the ingress, the gate link and the journey outbox
    assert.equal(reconnectDelay, sharedBackoff.reconnectDelay);
    assert.equal(gateCore.reconnectDelay, sharedBackoff.reconnectDelay);
  });

  it('credits: events and authorisations get the queue limit, a frame source the frame window (never above the limit); frameWindow config default, bounds', () => {
    assert.deepEqual(sourceLimits(['frame', 'event', 'auth'], 4096, 128), [128, 4096, 4096]);
    assert.deepEqual(sourceLimits(['frame'], 64, 128), [64], 'capped by the queue limit');
    const sub = [{ topic: 'store/+/tracks', parser: 'tracks', qos: 0, source: 'tracks' }];
    assert.equal(readIngress({ id: 'n', type: 'rt-mqtt-ingress', subs: sub }, true).frameWindow, 128);
    assert.equal(readIngress({ id: 'n', type: 'rt-mqtt-ingress', subs: sub, frameWindow: 16 }, true).frameWindow, 16);
    assert.ok(readIngress({ id: 'n', type: 'rt-mqtt-ingress', subs: sub, frameWindow: 0 }, true).problems.length > 0, 'frameWindow 0 is out of range');
    const both = JSON.stringify([
      { topic: 'store/+/tracks', parser: 'tracks', qos: 0, source: 'frames' },
      { topic: 'store/+/events', parser: 'events', qos: 1, source: 'sensor' },
    ]);
    assert.deepEqual(readIngress({ id: 'n', type: 'rt-mqtt-ingress', subs: both }, true).sources.map((x) => x.frameGapMs ?? 0), [0, 0], 'Frame rate off by default: every frame');
    const rated = readIngress({ id: 'n', type: 'rt-mqtt-ingress', subs: both, frameRate: '20' }, true);
    assert.equal(rated.frameRate, 20);
    assert.deepEqual(rated.sources.map((x) => x.frameGapMs ?? 0), [50, 0], 'a Frame rate applies to frame sources only');
    assert.ok(readIngress({ id: 'n', type: 'rt-mqtt-ingress', subs: both, frameRate: 5000 }, true).problems.length > 0, 'frameRate above 1000 is out of range');
  });

  it('one set of MQTT client options and TLS file reading for the ingress worker and the journey outbox (broker-config)', () => {
    const s = { url: 'mqtts://h:8883', clientId: 'c1', clean: false, keepaliveS: 15, protocolVersion: 4 as const, username: 'u', password: 'p', ca: '/nonexistent/ca.pem', verify: true, backoffMinMs: 100, backoffMaxMs: 1000 };
    const o = mqttClientOptions(s, { queueQoSZero: false });
    assert.equal(o.reconnectPeriod, 0, 'the callers reconnect with their own doubling backoff');
    assert.deepEqual([o.clientId, o.clean, o.keepalive, o.username, o.password, o.rejectUnauthorized, o.queueQoSZero], ['c1', false, 15, 'u', 'p', true, false]);
    assert.throws(() => readTlsFiles(s, o), /ENOENT/, 'a CA file that cannot be read is an error, never a connection without it');
  });

  it('FrameMerge: the newest frame number and time, the latest position of every object seen, bounded', () => {
    const fm = new FrameMerge();
    assert.equal(fm.take(), null);
    const f1 = { frame: 1, ts: 10, sensor: 's1', objects: [{ id: 'a', x: 1, y: 1 }] };
    fm.add(f1);
    assert.equal(fm.take(), f1, 'one frame waiting: the frame itself');
    fm.add(f1);
    fm.add({ frame: 2, ts: 20, sensor: 's1', objects: [{ id: 'b', x: 2, y: 2 }] });
    fm.add({ frame: 3, ts: 30, sensor: 's1', objects: [{ id: 'a', x: 3, y: 3 }] });
    assert.deepEqual(fm.take(), { frame: 3, ts: 30, sensor: 's1', merged: 3, objects: [{ id: 'b', x: 2, y: 2 }, { id: 'a', x: 3, y: 3 }] });
    assert.equal(fm.take(), null, 'taken: empty');
    for (let i = 0; i < MERGE_MAX_OBJECTS + 10; i++) fm.add({ frame: i, ts: i, sensor: 's1', objects: [{ id: `o${i}`, x: i, y: 0 }] });
    const big = fm.take()!;
    assert.equal((big.objects as unknown[]).length, MERGE_MAX_OBJECTS);
    assert.deepEqual((big.objects as Array<{ id: string }>)[0].id, 'o10', 'the least recently seen went first');
  });

  it('pipe with a Frame rate: one frame per sensor per slot, the ones between merged into the next and counted; events untouched', () => {
    const sources = [
      { name: 'tracks', parser: 'tracks' as const, frameGapMs: 100 },
      { name: 'ev', parser: 'events' as const },
    ];
    const m = SharedMetrics.create(ingressMetricSpec(2));
    const gates = CreditGate.perSource(new SharedArrayBuffer(CreditGate.bytes(2)), 2, 1000);
    const posted: IngressEvent[] = [];
    const clock = { t: 5000 };
    const timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
    const pipe = new IngressPipe(sources, gates, m, 1e6, {
      post: (e) => posted.push(e),
      defer: (f) => f(),
      now: () => clock.t,
      later: (fn, ms) => {
        const tm = { at: clock.t + ms, fn, live: true };
        timers.push(tm);
        return { cancel: () => (tm.live = false) };
      },
    });
    const run = (to: number): void => {
      for (;;) {
        const next = timers.filter((x) => x.live && x.at <= to).sort((a, b) => a.at - b.at)[0];
        if (!next) break;
        clock.t = next.at;
        next.live = false;
        next.fn();
      }
      clock.t = to;
    };
    const frames = (): Array<Record<string, unknown>> => posted.flatMap((e) => (e.t === 'batch' ? e.ev.filter((x) => x.s === 0).map((x) => x.p) : []));
    // 1 kHz of frames from two sensors for 1 s, object "a" moving; an event now and then
    for (let i = 1; i <= 1000; i++) {
      run(5000 + i);
      for (const sensor of ['s1', 's2']) pipe.receive(0, `store/${sensor}/tracks`, JSON.stringify({ frame: i, ts: clock.t, sensor, objects: [{ id: `${sensor}-a`, x: i, y: 0 }, ...(i === 3 ? [{ id: `${sensor}-b`, x: -1, y: -1 }] : [])] }));
      if (i % 250 === 0) pipe.receive(1, 'store/s1/events', JSON.stringify({ ...event, seq: i }));
    }
    run(7000);
    const out = frames();
    const per = (sensor: string): Array<Record<string, unknown>> => out.filter((f) => f.sensor === sensor);
    for (const sensor of ['s1', 's2']) {
      const fs = per(sensor);
      assert.ok(fs.length >= 10 && fs.length <= 12, `${sensor}: about 10 per second, got ${fs.length}`);
      assert.equal(fs[0].frame, 1, 'the first frame goes at once');
      assert.equal(fs[fs.length - 1].frame, 1000, 'the last frame is not held back');
      const merged = fs.reduce((a, f) => a + ((f.merged as number | undefined) ?? 1), 0);
      assert.equal(merged, 1000, 'every frame is in exactly one message');
      const second = fs[1];
      assert.deepEqual(
        (second.objects as Array<{ id: string; x: number }>).map((o) => [o.id, o.x]).sort(),
        [
          [`${sensor}-a`, second.frame],
          [`${sensor}-b`, -1],
        ],
        'the latest position of every object seen',
      );
    }
    assert.equal(m.counter('parsed.0'), 2000);
    assert.equal(m.counter('merged.0') + out.length + m.counter('dropped.0'), 2000, 'parsed = delivered + merged + dropped');
    assert.equal(m.counter('dropped.0'), 0);
    assert.equal(posted.flatMap((e) => (e.t === 'batch' ? e.ev.filter((x) => x.s === 1) : [])).length, 4, 'events are not rate-limited');
    // closing hands over what waits
    pipe.receive(0, 'store/s1/tracks', JSON.stringify({ frame: 1001, ts: clock.t, sensor: 's1', objects: [] }));
    pipe.receive(0, 'store/s1/tracks', JSON.stringify({ frame: 1002, ts: clock.t, sensor: 's1', objects: [] }));
    const before = frames().length;
    pipe.close();
    assert.equal(frames().length, before + 1);
    assert.equal(timers.filter((x) => x.live).length, 0, 'no timer left');
  });

  it('configs: embedded broker by default, problems for bad topics, parsers, sources and persistent sessions without an id', () => {
    const b = readBroker({ id: 'b', type: 'rt-mqtt-broker' });
    assert.equal(b.embedded, true);
    assert.equal(b.url, 'mqtt://127.0.0.1:1883');
    assert.deepEqual(b.problems, []);
    assert.equal(readBroker({ id: 'b', type: 'x', url: 'mqtt://broker:1883' }).embedded, false);
    assert.equal(readBroker({ id: 'b', type: 'x', url: 'http://x' }).problems[0].code, 'bad-url');
    assert.equal(readBroker({ id: 'b', type: 'x', clean: false }).problems[0].code, 'persistent-needs-id');
    const ok = readIngress({ id: 'i', type: 'x', subs: [{ topic: 'a/+', parser: 'events', qos: 1, source: 'ev' }, { topic: 'b', parser: 'events', qos: 0, source: 'ev' }], tcpPort: 0 }, true);
    assert.deepEqual(ok.problems, []);
    assert.equal(ok.sources.length, 2, 'two rows with one source share it; the TCP listener is its own');
    assert.deepEqual(ok.tcp, { host: '127.0.0.1', port: 0, source: 1, name: 'acc-tcp' });
    const codes = (subs: unknown[], hasBroker = true): string[] => readIngress({ id: 'i', type: 'x', subs: subs as never }, hasBroker).problems.map((p) => p.code);
    assert.deepEqual(codes([{ topic: 'a/#/b', parser: 'events' }]), ['bad-topic']);
    assert.deepEqual(codes([{ topic: 'a', parser: 'xml' }]), ['bad-parser']);
    assert.deepEqual(codes([{ topic: 'a', parser: 'events', qos: 3 }]), ['bad-qos']);
    assert.deepEqual(codes([{ topic: 'a', parser: 'events', source: 'bad label "x"' }]), ['bad-source']);
    assert.deepEqual(codes([{ topic: 'a', parser: 'events', source: 's' }, { topic: 'b', parser: 'auth', source: 's' }]), ['source-parser-clash']);
    assert.deepEqual(codes([]), ['nothing-to-do']);
    assert.deepEqual(codes([{ topic: 'a', parser: 'events' }], false), ['no-broker']);
  });
});

describe('docs/schemas (the wire formats)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { readFileSync } = require('node:fs') as typeof import('node:fs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { join } = require('node:path') as typeof import('node:path');
  const schema = (f: string): { required?: string[]; examples: unknown[]; $defs?: Record<string, { required: string[]; properties: Record<string, unknown> }>; properties?: Record<string, unknown> } =>
    JSON.parse(readFileSync(join(__dirname, '..', '..', '..', '..', 'docs', 'schemas', f), 'utf8'));
  it('each schema example is accepted by its parser, and dropping any required field is refused', () => {
    const cases: Array<[string, 'tracks' | 'events' | 'auth', string | null]> = [
      ['tracks-frame.schema.json', 'tracks', null],
      ['tracking-event.schema.json', 'events', 'event'],
      ['authorisation.schema.json', 'auth', 'auth'],
    ];
    for (const [file, parser, def] of cases) {
      const s = schema(file);
      const required = def ? s.$defs![def].required : s.required!;
      for (const ex of s.examples) {
        assert.deepEqual(parse(parser, JSON.stringify(ex), 1e6).bad, 0, `${file} example`);
        for (const f of required) {
          const copy = { ...(ex as Record<string, unknown>) };
          delete copy[f];
          assert.equal(parse(parser, JSON.stringify(copy), 1e6).error?.code, 'missing-field', `${file} without ${f}`);
        }
      }
    }
    assert.deepEqual(schema('ingress-message.schema.json').required, ['topic', 'source', 'kind', 'payload', 'ingress']);
  });
});
