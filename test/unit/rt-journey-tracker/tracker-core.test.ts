import assert from 'node:assert/strict';

import { CAPS, DEFAULTS, type GateCommand, type Journey, JourneyTracker, type TrackerConfig, TrackerInputError } from '../../../nodes/rt-journey-tracker/tracker-core';

interface Harness {
  tr: JourneyTracker;
  gates: GateCommand[];
  journeys: Journey[];
  events: Array<{ topic: string; payload: Record<string, unknown> }>;
  debugs: string[];
  clock: { t: number };
  /** advances the local clock and ticks */
  wait(ms: number): void;
  ev(type: string, track: string, extra?: Record<string, unknown>): void;
  /** a full walk: create in the store, POS, (auth), gate, exit line */
  journeys1(outcome: string): Journey;
}

function harness(over: Partial<TrackerConfig> = {}): Harness {
  const clock = { t: 1_764_270_000_000 };
  const h = { gates: [], journeys: [], events: [], debugs: [], clock } as unknown as Harness;
  const cfg: TrackerConfig = {
    storeZones: ['store'],
    posZones: ['pos-1', 'pos-2'],
    gateZone: 'gate',
    entryLine: 'entry',
    exitLine: 'exit',
    gate: 'G1',
    ...DEFAULTS,
    ...over,
  };
  h.tr = new JourneyTracker(
    cfg,
    {
      gate: (c) => h.gates.push(c),
      journey: (j) => h.journeys.push(j),
      event: (topic, payload) => h.events.push({ topic, payload }),
    },
    { debug: (code) => h.debugs.push(code) },
    () => clock.t,
  );
  h.tr.setDoor({ state: 'closed' });
  h.wait = (ms) => {
    const end = clock.t + ms;
    while (clock.t < end) {
      clock.t = Math.min(end, clock.t + 100);
      h.tr.tick();
    }
  };
  h.ev = (type, track, extra = {}) => {
    clock.t += 10;
    h.tr.event({ seq: 1, ts: clock.t, sensor: 's1', type, track, ...extra });
  };
  h.journeys1 = (outcome) => {
    const j = h.journeys.filter((x) => x.outcome === outcome);
    assert.equal(j.length, 1, `one ${outcome} journey: ${JSON.stringify(h.journeys)}`);
    return j[0];
  };
  return h;
}

const auth = (h: Harness, id: string, pos: string, count: number, extra: Record<string, unknown> = {}): void => {
  h.clock.t += 10;
  h.tr.auth({ id, ts: h.clock.t, pos, count, ...extra });
};

/** A shopper who comes from the store to POS `pos`, and stays there. */
function toPos(h: Harness, track: string, pos = 'pos-1'): void {
  h.ev('track-create', track, { x: 5, y: 5 });
  h.ev('zone-enter', track, { zone: 'store' });
  h.ev('zone-exit', track, { zone: 'store' });
  h.ev('zone-enter', track, { zone: pos });
}

function posToGate(h: Harness, track: string, pos = 'pos-1'): void {
  h.ev('zone-exit', track, { zone: pos });
  h.ev('zone-enter', track, { zone: 'gate' });
}

describe('rt-journey-tracker core', () => {
  describe('outcomes: every journey ends exactly once', () => {
    it('complete: paid at POS, gate opened on entering the gate zone, exit line crossed', () => {
      const h = harness();
      toPos(h, 't1');
      auth(h, 'a1', 'pos-1', 1);
      assert.equal(h.events.filter((e) => e.topic === 'auth-matched').length, 1);
      assert.deepEqual(h.gates, []);
      posToGate(h, 't1');
      assert.deepEqual(h.gates, [{ gate: 'G1', track_id: 't1' }]);
      h.ev('zone-exit', 't1', { zone: 'gate' });
      h.ev('line-forward', 't1', { line: 'exit' });
      h.ev('track-delete', 't1', { x: 9, y: 9 });
      h.wait(5000);
      const j = h.journeys1('complete');
      assert.equal(h.journeys.length, 1, 'the delete after the exit line is no second journey');
      assert.deepEqual(j.tracks, ['t1']);
      assert.equal(j.auth, 'a1');
      assert.equal(j.pos, 'pos-1');
      assert.equal(j.gate_opened, true);
      assert.equal(j.late_auth, false);
      assert.equal(j.gate_blocked, false);
      assert.ok(j.ended > j.entered);
      assert.equal(h.tr.counts.gateOpens, 1);
      assert.ok(h.events.some((e) => e.topic === 'journey-complete' && e.payload.journey === j.journey));
      assert.equal(h.tr.tracks, 0);
    });

    it('exit-inferred: deleted in the gate zone and not continued within the stitch window', () => {
      const h = harness();
      toPos(h, 't1');
      auth(h, 'a1', 'pos-1', 1);
      posToGate(h, 't1');
      h.ev('track-delete', 't1', { x: 1, y: 1 });
      h.wait(DEFAULTS.stitchMs - 200);
      assert.equal(h.journeys.length, 0, 'not before the stitch window ends');
      h.wait(400);
      assert.equal(h.journeys1('exit-inferred').gate_opened, true);
    });

    it('returned-store: an unauthorised shopper is blocked at the gate and walks back into the store', () => {
      const h = harness();
      h.ev('track-create', 't1', { x: 5, y: 5 });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.ev('zone-enter', 't1', { zone: 'gate' });
      assert.deepEqual(h.gates, [], 'no gate for the unauthorised');
      assert.equal(h.tr.counts.unauthorized, 1);
      const blocked = h.events.find((e) => e.topic === 'gate-blocked');
      assert.equal(blocked?.payload.reason, 'gate entry not authorized');
      h.ev('zone-exit', 't1', { zone: 'gate' });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.ev('track-delete', 't1', { x: 5, y: 0 });
      h.wait(2000);
      const j = h.journeys1('returned-store');
      assert.equal(j.gate_blocked, true);
      assert.equal(j.gate_opened, false);
      assert.equal(j.auth, null);
    });

    it('returned-pos: visited a POS, then went back into the store (or was deleted at the POS)', () => {
      const h = harness();
      toPos(h, 't1');
      h.ev('zone-exit', 't1', { zone: 'pos-1' });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.ev('track-delete', 't1', { x: 5, y: 0 });
      toPos(h, 't2', 'pos-2');
      h.ev('track-delete', 't2', { x: 50, y: 50 });
      h.wait(2000);
      assert.deepEqual(
        h.journeys.map((j) => [j.tracks[0], j.outcome, j.pos]),
        [
          ['t1', 'returned-pos', 'pos-1'],
          ['t2', 'returned-pos', 'pos-2'],
        ],
      );
    });

    it('returned-entry: came in through the entry line and went back out through it', () => {
      const h = harness();
      h.ev('line-forward', 't1', { line: 'entry' });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.ev('zone-exit', 't1', { zone: 'store' });
      h.ev('line-backward', 't1', { line: 'entry' });
      const j = h.journeys1('returned-entry');
      assert.deepEqual(j.tracks, ['t1']);
      assert.equal(h.journeys.length, 1);
    });

    it('lost: no event for the TTL; frames keep a track alive', () => {
      const h = harness({ ttlMs: 2000 });
      h.ev('track-create', 't1', { x: 1, y: 1 });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.ev('track-create', 't2', { x: 3, y: 3 });
      for (let i = 0; i < 30; i++) {
        h.wait(100);
        h.tr.frame({ frame: i, ts: h.clock.t, sensor: 's1', objects: [{ id: 't2', x: 3, y: 3 + i / 100, z: 1.7 }] });
      }
      assert.deepEqual(
        h.journeys.map((j) => [j.tracks[0], j.outcome]),
        [['t1', 'lost']],
      );
      assert.equal(h.tr.tracks, 1);
      h.wait(2100);
      assert.deepEqual(
        h.journeys.map((j) => [j.tracks[0], j.outcome]),
        [
          ['t1', 'lost'],
          ['t2', 'lost'],
        ],
      );
      assert.equal(h.tr.counts.journeys.lost, 2);
    });
  });

  describe('stitching', () => {
    it('a track deleted near where another is created within the window continues the same journey (one outcome)', () => {
      const h = harness();
      toPos(h, 't1');
      auth(h, 'a1', 'pos-1', 1);
      h.ev('zone-exit', 't1', { zone: 'pos-1' });
      h.ev('track-delete', 't1', { x: 2.0, y: 3.0 });
      h.wait(300);
      h.ev('track-create', 't9', { x: 2.4, y: 3.3 });
      h.ev('zone-enter', 't9', { zone: 'gate' });
      assert.deepEqual(h.gates, [{ gate: 'G1', track_id: 't9' }], 'the authorisation followed the stitched track');
      h.ev('line-forward', 't9', { line: 'exit' });
      h.wait(3000);
      assert.equal(h.journeys.length, 1);
      const j = h.journeys1('complete');
      assert.deepEqual(j.tracks, ['t1', 't9']);
      assert.equal(h.tr.counts.stitched, 1);
    });

    it('too far or too late: a new journey, and the deleted one ends by where it was', () => {
      const h = harness();
      toPos(h, 't1');
      h.ev('track-delete', 't1', { x: 2, y: 3 });
      h.ev('track-create', 't2', { x: 6, y: 3 }); // 4 m away
      h.wait(DEFAULTS.stitchMs + 200);
      h.ev('track-create', 't3', { x: 2, y: 3 }); // same place, too late
      assert.equal(h.tr.counts.stitched, 0);
      assert.deepEqual(
        h.journeys.map((j) => [j.tracks.join(','), j.outcome]),
        [['t1', 'returned-pos']],
      );
      assert.equal(h.tr.tracks, 2);
    });

    it('a track created without a position is stitched on its first frame', () => {
      const h = harness();
      h.ev('track-create', 't1', { x: 1, y: 1 });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.tr.frame({ frame: 1, ts: h.clock.t, sensor: 's1', objects: [{ id: 't1', x: 4, y: 4, z: 1.7 }] });
      h.ev('track-delete', 't1');
      h.ev('track-create', 't2');
      h.tr.frame({ frame: 2, ts: h.clock.t, sensor: 's1', objects: [{ id: 't2', x: 4.2, y: 4.1, z: 1.7 }] });
      h.ev('line-forward', 't2', { line: 'exit' });
      h.wait(3000);
      assert.deepEqual(
        h.journeys.map((j) => [j.tracks.join(','), j.outcome]),
        [['t1,t2', 'complete']],
      );
    });
  });

  describe('authorisations', () => {
    it('a group of N at a POS: the N earliest there are authorised, those queuing behind are not', () => {
      const h = harness();
      toPos(h, 'a');
      toPos(h, 'b');
      toPos(h, 'c');
      auth(h, 'g1', 'pos-1', 2);
      posToGate(h, 'a');
      posToGate(h, 'b');
      posToGate(h, 'c');
      assert.deepEqual(
        h.gates.map((g) => g.track_id),
        ['a', 'b'],
      );
      assert.equal(h.tr.counts.unauthorized, 1);
      const m = h.events.find((e) => e.topic === 'auth-matched');
      assert.deepEqual([m?.payload.auth, m?.payload.matched], ['g1', 2]);
    });

    it('the tracks at another POS, or there at another time, are not matched', () => {
      const h = harness();
      toPos(h, 'x', 'pos-2');
      toPos(h, 'y');
      posToGate(h, 'y');
      h.wait(DEFAULTS.authSlackMs + 500);
      auth(h, 'a1', 'pos-1', 1); // y left pos-1 too long ago
      h.wait(DEFAULTS.authHoldMs + 200);
      assert.deepEqual(h.gates, []);
      assert.equal(h.tr.counts.authUnmatched, 1);
      const u = h.events.find((e) => e.topic === 'auth-unmatched');
      assert.deepEqual([u?.payload.auth, u?.payload.pos], ['a1', 'pos-1']);
    });

    it('an authorisation that arrives before the tracking events waits for them (ordering across sources)', () => {
      const h = harness();
      h.ev('track-create', 't1', { x: 1, y: 1 });
      // paid "now", but the sensor's zone-enter (dated a little earlier) arrives after the ACC message
      const paidAt = h.clock.t + 20;
      h.clock.t += 30;
      h.tr.auth({ id: 'a1', ts: paidAt, pos: 'pos-1', count: 1 });
      assert.equal(h.tr.counts.authMatched, 0);
      h.tr.event({ seq: 2, ts: paidAt - 5, type: 'zone-enter', track: 't1', zone: 'pos-1' });
      assert.equal(h.tr.counts.authMatched, 1);
      posToGate(h, 't1');
      assert.equal(h.gates.length, 1);
    });

    it('a track deleted at the POS is not there for an authorisation dated after its delete', () => {
      const h = harness({ authSlackMs: 100 });
      toPos(h, 'gone');
      h.ev('track-delete', 'gone', { x: 1, y: 1 });
      h.wait(200);
      toPos(h, 'next');
      auth(h, 'a2', 'pos-1', 1);
      posToGate(h, 'next');
      assert.deepEqual(
        h.gates.map((g) => g.track_id),
        ['next'],
      );
    });

    it('an authorisation naming its tracks authorises exactly those', () => {
      const h = harness();
      toPos(h, 'a');
      toPos(h, 'b');
      auth(h, 'k', 'pos-1', 1, { tracks: ['b'] });
      posToGate(h, 'a');
      posToGate(h, 'b');
      assert.deepEqual(
        h.gates.map((g) => g.track_id),
        ['b'],
      );
    });

    it('late authorisation: the track is already in the gate zone; it still opens the gate, logged', () => {
      const h = harness();
      toPos(h, 't1');
      posToGate(h, 't1');
      assert.equal(h.gates.length, 0);
      assert.equal(h.tr.counts.unauthorized, 1);
      // the ACC's message is dated when the shopper paid (at the POS), and arrives now
      h.tr.auth({ id: 'a1', ts: h.clock.t - 25, pos: 'pos-1', count: 1 });
      assert.deepEqual(h.gates, [{ gate: 'G1', track_id: 't1' }]);
      assert.equal(h.tr.counts.lateAuths, 1);
      const late = h.events.find((e) => e.topic === 'late-auth');
      assert.deepEqual([late?.payload.opened, late?.payload.in_gate], [true, true]);
      assert.ok(h.events.some((e) => e.topic === 'gate-open' && e.payload.late === true && e.payload.auth === 'a1'));
      h.ev('line-forward', 't1', { line: 'exit' });
      const j = h.journeys1('complete');
      assert.equal(j.late_auth, true);
      assert.equal(j.gate_opened, true);
      assert.equal(j.gate_blocked, true);
    });

    it('a late authorisation for a track that left the gate zone opens nothing, and says so', () => {
      const h = harness();
      toPos(h, 't1');
      posToGate(h, 't1');
      h.ev('zone-exit', 't1', { zone: 'gate' });
      h.ev('zone-enter', 't1', { zone: 'store' });
      h.tr.auth({ id: 'a1', ts: h.clock.t - 45, pos: 'pos-1', count: 1 });
      assert.equal(h.gates.length, 0);
      assert.equal(h.events.find((e) => e.topic === 'late-auth')?.payload.opened, false);
    });
  });

  describe('door and gate', () => {
    it('door open: no command; when it closes, the authorised track still waiting gets one; re-entry within reopenMs does not repeat', () => {
      const h = harness();
      toPos(h, 't1');
      auth(h, 'a1', 'pos-1', 1);
      h.tr.setDoor({ state: 'open', since: 1, ts: 2 });
      posToGate(h, 't1');
      assert.equal(h.gates.length, 0);
      h.tr.setDoor({ state: 'closed', since: 3, ts: 4 });
      assert.equal(h.gates.length, 1);
      const changes = h.events.filter((e) => e.topic === 'door-change').map((e) => e.payload.state);
      assert.deepEqual(changes, ['closed', 'open', 'closed']);
      h.ev('zone-exit', 't1', { zone: 'gate' });
      h.ev('zone-enter', 't1', { zone: 'gate' });
      assert.equal(h.gates.length, 1, 'zone flapping does not repeat the command');
      h.wait(DEFAULTS.reopenMs + 100);
      h.ev('zone-exit', 't1', { zone: 'gate' });
      h.ev('zone-enter', 't1', { zone: 'gate' });
      assert.equal(h.gates.length, 2, 'after reopenMs it asks again');
    });

    it('door state repeated is no change; unknown still lets an authorised track out', () => {
      const h = harness();
      h.tr.setDoor({ state: 'closed' });
      h.tr.setDoor({ state: 'unknown' });
      h.tr.setDoor({ state: 'bogus' });
      assert.deepEqual(
        h.events.filter((e) => e.topic === 'door-change').map((e) => e.payload.state),
        ['closed', 'unknown'],
      );
      toPos(h, 't1');
      auth(h, 'a1', 'pos-1', 1);
      posToGate(h, 't1');
      assert.equal(h.gates.length, 1);
    });
  });

  describe('bounds and bad input', () => {
    it('the track table is bounded: the least recently active ends lost (evicted), never silently', () => {
      const h = harness({ maxTracks: 10 });
      for (let i = 0; i < 10; i++) h.ev('track-create', `t${i}`, { x: i * 10, y: 0 });
      h.ev('zone-enter', 't0', { zone: 'store' }); // t0 active again: t1 is now the oldest
      h.ev('track-create', 'new', { x: 500, y: 0 });
      assert.equal(h.tr.tracks, 10);
      assert.deepEqual(
        h.journeys.map((j) => [j.tracks[0], j.outcome]),
        [['t1', 'lost']],
      );
      assert.equal(h.tr.counts.evicted, 1);
    });

    it('100 000 events over 2 000 tracks: side lists stay within their caps, every journey ends once', () => {
      const h = harness({ maxTracks: 500 });
      let n = 0;
      for (let i = 0; i < 2000; i++) {
        const id = `t${i}`;
        h.ev('track-create', id, { x: i, y: 0 });
        h.ev('zone-enter', id, { zone: 'pos-1' });
        for (let k = 0; k < 40; k++) h.tr.frame({ frame: n++, ts: h.clock.t, objects: [{ id, x: i, y: k / 10 }] });
        if (i % 3 === 0) h.ev('line-forward', id, { line: 'exit' });
      }
      const inner = h.tr as unknown as { posLists: unknown[][]; pendingDeletes: unknown[]; pendingAuths: unknown[]; recentRing: unknown[] };
      assert.ok(inner.posLists[0].length <= CAPS.perPos, `pos list ${inner.posLists[0].length}`);
      assert.ok(inner.recentRing.length <= CAPS.recentEnded);
      assert.equal(h.tr.tracks, 500);
      h.wait(DEFAULTS.ttlMs + 500);
      assert.equal(h.tr.tracks, 0);
      assert.equal(h.journeys.length, 2000);
      assert.equal(new Set(h.journeys.map((j) => j.journey)).size, 2000);
    });

    it('bad input throws a coded TrackerInputError and changes nothing', () => {
      const h = harness();
      const code = (fn: () => void): string => {
        try {
          fn();
        } catch (e) {
          assert.ok(e instanceof TrackerInputError);
          return e.code;
        }
        return 'none';
      };
      assert.equal(
        code(() => h.tr.event('x')),
        'not-object',
      );
      assert.equal(
        code(() => h.tr.event({ type: 'zone-enter', zone: 'store' })),
        'no-track',
      );
      assert.equal(
        code(() => h.tr.event({ type: 'zone-enter', track: 't' })),
        'no-zone',
      );
      assert.equal(
        code(() => h.tr.event({ type: 'line-forward', track: 't' })),
        'no-line',
      );
      assert.equal(
        code(() => h.tr.event({ type: 'teleport', track: 't' })),
        'bad-type',
      );
      assert.equal(
        code(() => h.tr.frame({ frame: 1 })),
        'bad-frame',
      );
      assert.equal(
        code(() => h.tr.auth({ id: 'a', pos: 'pos-1', count: 0 })),
        'bad-auth',
      );
      assert.equal(
        code(() => h.tr.auth({ id: 'a', pos: 'pos-9', count: 1 })),
        'unknown-pos',
      );
      assert.equal(h.tr.tracks, 0);
      assert.equal(h.journeys.length, 0);
      h.ev('track-create', 't1', { x: 1, y: 1 });
      assert.equal(h.tr.tracks, 1, 'works after bad input');
    });

    it('per-event diagnostics are sampled at debug', () => {
      const h = harness({ debugEvery: 100 });
      for (let i = 0; i < 1000; i++) h.ev('zone-enter', 't1', { zone: 'store' });
      assert.deepEqual(h.debugs, Array(10).fill('event'));
    });
  });

  describe('handed over at a redeploy', () => {
    it('rebind: outputs go to the new sink, the new timings apply, live tracks and authorisations go on', () => {
      const h = harness({ ttlMs: 30_000 });
      toPos(h, 't1');
      auth(h, 'a1', 'pos-1', 1);
      const gates: GateCommand[] = [];
      const journeys: Journey[] = [];
      h.tr.rebind(
        { gate: (c) => gates.push(c), journey: (j) => journeys.push(j), event: () => undefined },
        { debug: () => undefined },
        { ...h.tr.cfg, ttlMs: 2000 },
      );
      posToGate(h, 't1');
      assert.deepEqual(gates, [{ gate: 'G1', track_id: 't1' }]);
      assert.equal(h.gates.length, 0, 'the old sink gets nothing after the rebind');
      toPos(h, 't2');
      h.wait(2100); // the new TTL, not the old 30 s
      assert.deepEqual(
        journeys.map((j) => [j.tracks[0], j.outcome]),
        [
          ['t1', 'lost'],
          ['t2', 'lost'],
        ],
      );
      assert.equal(journeys[0].auth, 'a1');
    });

    it('rebind refuses other zones, lines or gate', () => {
      const h = harness();
      const sink = { gate: () => undefined, journey: () => undefined, event: () => undefined };
      for (const over of [{ posZones: ['pos-1'] }, { gateZone: 'g2' }, { exitLine: 'out' }, { gate: 'G2' }, { storeZones: ['store', 'aisle'] }]) {
        assert.throws(() => h.tr.rebind(sink, { debug: () => undefined }, { ...h.tr.cfg, ...over }), /same zones/);
      }
    });

    it('endAll: every open journey ends once (live lost, deleted as the stitch window would end it), waiting authorisations unmatched', () => {
      const h = harness();
      toPos(h, 'live');
      h.ev('track-create', 'gone', { x: 1, y: 1 });
      h.ev('zone-enter', 'gone', { zone: 'gate' });
      h.ev('track-delete', 'gone');
      auth(h, 'nobody', 'pos-2', 2);
      assert.equal(h.tr.open, 2);
      assert.equal(h.tr.endAll(), 2);
      assert.equal(h.tr.open, 0);
      assert.deepEqual(h.journeys.map((j) => [j.tracks[0], j.outcome]).sort(), [
        ['gone', 'exit-inferred'],
        ['live', 'lost'],
      ]);
      assert.ok(h.events.some((e) => e.topic === 'auth-unmatched' && e.payload.auth === 'nobody'));
      assert.equal(h.tr.endAll(), 0);
      h.wait(40_000);
      assert.equal(h.journeys.length, 2, 'nothing ends twice');
    });
  });
});
