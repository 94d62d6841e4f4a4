// The store gate end to end, in a Node-RED process running the shipped flow
// (flows/store-gate.json) with its simulated parts replaced by real peers:
// a scripted store of 100 shoppers, 20 % of them not paying, published to a
// real mosquitto (started here) -> rt-mqtt-ingress -> rt-journey-tracker ->
// rt-gate-command -> a real TCP gate controller (another process); the door
// state from rt-rs485-watch polling a simulated door controller over a socat
// pty; rt-journey-egress writing the journeys to a JSONL file.
// Asserted: exactly the expected gate commands (none for the unauthorised,
// one per authorised shopper who reached the gate while the door was closed;
// the door stands open once, mid-run, while one paying shopper walks out), exactly one journey per
// shopper with the expected outcome and tracks in the file, and the metrics.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { DoorSim } from '../helpers/door-sim';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { type PtyPair, ptyPair } from '../helpers/pty';
import { makeScenario, playScenario, type Scenario } from '../helpers/store-scenario';
import { type Peer, startPeer } from '../helpers/tcp-peer';
import { repoRoot, sleep, tempDir, waitFor } from '../helpers/util';

type Flow = Record<string, unknown>;

/** Ids of the shipped flow's simulated parts, which real peers replace here. */
const SIMULATED = new Set(['sg_player_tick', 'sg_player', 'sg_mqtt_out', 'sg_core_broker', 'sg_sim_in', 'sg_sim_fn', 'sg_sim_out']);

export function storeGateFlow(o: { brokerUrl: string; gatePort: number; serialPath: string; journeyFile: string; tracker?: Flow }): Flow[] {
  const shipped = JSON.parse(readFileSync(join(repoRoot, 'flows', 'store-gate.json'), 'utf8')) as Flow[];
  return shipped
    .filter((n) => !SIMULATED.has(String(n.id)))
    .map((n) => {
      switch (n.id) {
        case 'sg_broker':
          return { ...n, url: o.brokerUrl };
        case 'sg_ep':
          return { ...n, port: o.gatePort };
        case 'sg_port':
          return { ...n, path: o.serialPath, baudRate: 115200 };
        case 'sg_watch':
          return { ...n, interval: 50 };
        case 'sg_egress':
          return { ...n, path: o.journeyFile, flushMs: 200 };
        case 'sg_tracker':
          return { ...n, ...o.tracker };
        default:
          return n;
      }
    });
}

/** When each shopper's (last) track is in the gate zone, in scenario time: [enter, leave). */
function gateStays(sc: Scenario): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  for (const sh of sc.shoppers) {
    const track = sh.tracks[sh.tracks.length - 1];
    const mine = sc.steps.filter((st) => st.topic === 'events' && st.payload.track === track);
    const enter = mine.find((st) => st.payload.type === 'zone-enter' && st.payload.zone === 'gate');
    if (!enter) continue;
    const leave = mine.find((st) => st.at > enter.at && (st.payload.type === 'zone-exit' || st.payload.type === 'track-delete' || st.payload.type === 'line-forward'));
    out.set(sh.n, [enter.at, leave ? leave.at : Infinity]);
  }
  return out;
}

/**
 * A window in which the simulated door stands open around the isolated shopper's walk through the gate
 * zone (it walks alone: no other gate-zone entry or exit within 2 s), with 700 ms and 500 ms margins
 * against the door's 50 ms polling and the delivery of the tracking events.
 */
function doorWindow(sc: Scenario): { open: number; close: number; shopper: number } {
  const sh = sc.shoppers.find((x) => x.isolated);
  if (!sh) throw new Error('no isolated shopper in this scenario');
  const [enter, leave] = gateStays(sc).get(sh.n)!;
  const win = { open: enter - 700, close: leave + 500, shopper: sh.n };
  for (const [n, [e, l]] of gateStays(sc)) {
    if (n === sh.n) continue;
    for (const t of [e, l]) assert.ok(t < win.open - 400 || t > win.close + 400, `shopper ${n} in the gate zone near the door window`);
  }
  return win;
}

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  assert.ok(found, `${name} ${JSON.stringify(labels)} not in /metrics`);
  return sum;
}

describe('store gate end to end: 100 shoppers over mosquitto, the tracker, a TCP gate controller, an RS485 door and the JSONL log', function () {
  this.timeout(180_000);
  let mq: Mosquitto;
  let peer: Peer;
  let pty: PtyPair;
  let door: DoorSim;
  let rt: ChildRuntime;
  let tmp: ReturnType<typeof tempDir>;
  let sc: Scenario;

  before(async () => {
    tmp = tempDir('rtedge-store-');
    mq = await startMosquitto({ persistence: false, extra: ['max_queued_messages 100000', 'max_inflight_messages 0'] });
    peer = await startPeer('ok', 2);
    pty = await ptyPair();
    door = new DoorSim({ path: pty.b });
    await door.start();
    sc = makeScenario({ shoppers: 100, unauthorised: 0.2, seed: 16, isolate: { kind: 'complete', after: 40, pauseMs: 2500 } });
    rt = await startNodeRed({ settings: { logging: { console: { level: 'info' } } } });
    await rt.deploy(
      storeGateFlow({
        brokerUrl: mq.url,
        gatePort: peer.port,
        serialPath: pty.a,
        journeyFile: join(tmp.dir, 'journeys.jsonl'),
        tracker: { authSlack: sc.assumes.authSlackMs, stitchMs: sc.assumes.stitchMs, stitchM: sc.assumes.stitchM, ttl: sc.assumes.ttlMs },
      }),
    );
    await waitFor(() => /Started flows/.test(rt.log()), 20_000, 'flows started');
    // the ingress connected (and subscribed right after)
    await waitFor(async () => /^rtedge_ingress_connected\{[^}]*\} 1$/m.test((await rt.get('/metrics')).text), 15_000, 'ingress connected', 100).catch((e: Error) => {
      throw new Error(`${e.message}\nmosquitto: ${mq.log()}\nnode-red: ${rt.log()}`);
    });
    await sleep(1000);
  });

  after(async () => {
    await rt?.kill('SIGTERM');
    rt?.cleanup();
    await door?.stop();
    await pty?.dispose();
    await peer?.stop();
    await mq?.close();
    tmp?.cleanup();
  });

  it('the scenario is what the test claims: 100 shoppers, 20 unauthorised, every outcome present', () => {
    assert.equal(sc.shoppers.length, 100);
    assert.equal(sc.shoppers.filter((s) => !s.authorised).length, 20);
    const outcomes = new Set(sc.shoppers.map((s) => s.outcome));
    for (const o of ['complete', 'exit-inferred', 'returned-store', 'returned-pos', 'returned-entry', 'lost']) assert.ok(outcomes.has(o as never), o);
    assert.ok(sc.shoppers.some((s) => s.late) && sc.shoppers.some((s) => s.tracks.length === 2) && sc.shoppers.some((s) => s.kind === 'pair'));
    assert.equal(new Set(sc.shoppers.map((s) => s.tracks[0])).size, 100);
  });

  it('exactly the expected gate opens, none for the unauthorised, one journey per shopper with the expected outcome', async () => {
    const file = join(tmp.dir, 'journeys.jsonl');
    // The door stands open for a while mid-run (read over the pty by rt-rs485-watch): an authorised
    // shopper who enters the gate zone then gets no command while it is open; one still there when it
    // closes gets it then; one who walked out through the open door gets none at all.
    const win = doorWindow(sc);
    const stays = gateStays(sc);
    const walkedThrough = new Set(
      sc.shoppers.filter((sh) => sh.gate && stays.has(sh.n) && stays.get(sh.n)![0] > win.open && stays.get(sh.n)![0] < win.close && stays.get(sh.n)![1] < win.close).map((sh) => sh.n),
    );
    assert.deepEqual([...walkedThrough], [win.shopper], 'the isolated shopper, and only it, walks through the open door');
    const timers: NodeJS.Timeout[] = [];
    await playScenario(sc, {
      url: mq.url,
      onStart: (t0) => {
        timers.push(setTimeout(() => (door.open = true), t0 + win.open - Date.now()));
        timers.push(setTimeout(() => (door.open = false), t0 + win.close - Date.now()));
      },
    });
    for (const t of timers) clearTimeout(t);
    const read = (): Array<Record<string, unknown>> =>
      existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [];
    await waitFor(() => read().length >= 100, sc.assumes.ttlMs + 20_000, 'journeys in the file', 200).catch((e: Error) => {
      throw new Error(`${e.message}: ${read().length} lines\n${rt.log().slice(-3000)}`);
    });
    await sleep(sc.assumes.ttlMs + 1000); // nothing more may come
    const journeys = read();
    assert.equal(journeys.length, 100, 'exactly one journey per shopper');

    // gate commands on the wire: "OPEN G1 <track>"
    const opened = peer.lines.map((l) => l.line.replace(/^OPEN G1 /, ''));
    const gated = (s: Scenario['shoppers'][number]): boolean => s.gate && !walkedThrough.has(s.n);
    const expected = sc.shoppers.filter(gated).map((s) => s.tracks[s.tracks.length - 1]);
    assert.equal(opened.length, expected.length, `gate commands: ${opened.length}, expected ${expected.length}`);
    assert.deepEqual([...opened].sort(), [...expected].sort());
    const unauthorisedTracks = new Set(sc.shoppers.filter((s) => !s.authorised).flatMap((s) => s.tracks));
    assert.deepEqual(
      opened.filter((t) => unauthorisedTracks.has(t)),
      [],
      'no gate for the unauthorised',
    );

    const byTrack = new Map(journeys.map((j) => [(j.tracks as string[])[0], j]));
    const wrong: string[] = [];
    for (const s of sc.shoppers) {
      const j = byTrack.get(s.tracks[0]);
      if (!j) {
        wrong.push(`${s.n} ${s.kind}: no journey`);
        continue;
      }
      if (j.outcome !== s.outcome) wrong.push(`${s.n} ${s.kind} ${s.tracks[0]}: ${String(j.outcome)}, expected ${s.outcome}`);
      if (JSON.stringify(j.tracks) !== JSON.stringify(s.tracks)) wrong.push(`${s.n} ${s.kind}: tracks ${JSON.stringify(j.tracks)}, expected ${JSON.stringify(s.tracks)}`);
      if (j.gate_opened !== gated(s)) wrong.push(`${s.n} ${s.kind}: gate_opened ${String(j.gate_opened)}`);
      if (j.late_auth !== s.late) wrong.push(`${s.n} ${s.kind}: late_auth ${String(j.late_auth)}`);
      if (j.auth !== s.auth) wrong.push(`${s.n} ${s.kind}: auth ${String(j.auth)}, expected ${String(s.auth)}`);
    }
    assert.deepEqual(wrong, []);
    assert.equal(new Set(journeys.map((j) => j.journey)).size, 100, 'journey ids unique');

    // the metrics agree
    const m = await rt.get('/metrics');
    assert.equal(m.status, 200);
    assert.equal(metric(m.text, 'rtedge_tracker_gate_opens_total'), expected.length);
    for (const o of ['complete', 'exit-inferred', 'returned-store', 'returned-pos', 'returned-entry', 'lost']) {
      assert.equal(metric(m.text, 'rtedge_tracker_journeys_total', { outcome: o }), sc.shoppers.filter((s) => s.outcome === o).length, o);
    }
    assert.equal(metric(m.text, 'rtedge_tracker_late_auths_total'), sc.shoppers.filter((s) => s.late).length);
    assert.equal(metric(m.text, 'rtedge_tracker_auths_total', { result: 'unmatched' }), 0);
    assert.equal(metric(m.text, 'rtedge_tracker_auths_total', { result: 'matched' }), new Set(sc.shoppers.filter((s) => s.auth).map((s) => s.auth)).size);
    assert.equal(metric(m.text, 'rtedge_tracker_stitches_total'), sc.shoppers.filter((s) => s.tracks.length === 2).length);
    assert.equal(metric(m.text, 'rtedge_tracker_tracks'), 0);
    assert.equal(metric(m.text, 'rtedge_gate_commands_total', { result: 'ok' }), expected.length);
    assert.equal(metric(m.text, 'rtedge_rs485_door_state'), 0, 'the door was read closed over the pty at the end');
    assert.ok(metric(m.text, 'rtedge_rs485_door_changes_total') >= 3, 'closed, open, closed');
    assert.match(rt.log(), /Door open[\s\S]*Door closed/, 'the tracker saw the door open and close');
    assert.ok(sc.shoppers.filter((s) => s.gate).length - expected.length === walkedThrough.size);
    assert.ok(/Gate entry not authorized/.test(rt.log()), 'the unauthorised entries are logged');
    assert.doesNotMatch(rt.log(), /\[error\]/);
  });
});
