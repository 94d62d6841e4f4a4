// ThrottledStatus and RateLimitedWarning on a simulated clock: the clock and
// the timers are injected, so 2 s of traffic run in a few milliseconds and the
// counts are exact.
import assert from 'node:assert/strict';

import type { NodeStatus } from '../../../nodes/shared/red-types';
import { RateLimitedWarning, shortText, type StatusTimers, ThrottledStatus } from '../../../nodes/shared/status';

/** A manual clock with a timer queue: advance(ms) runs due timers in time order. */
class FakeTime implements StatusTimers {
  t = 0;
  private seq = 0;
  private readonly queue = new Map<number, { at: number; fn: () => void }>();
  readonly now = (): number => this.t;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.queue.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.queue.delete(handle as number);
  }
  get pendingTimers(): number {
    return this.queue.size;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.queue) if (e[1].at <= end && (next === null || e[1].at < next[1].at)) next = e;
      if (next === null) break;
      this.queue.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}

interface Event {
  at: number;
  s: NodeStatus;
}

function setup(minIntervalMs = 500): { time: FakeTime; events: Event[]; st: ThrottledStatus } {
  const time = new FakeTime();
  const events: Event[] = [];
  const sink = { status: (s: NodeStatus): void => void events.push({ at: time.t, s }) };
  const st = new ThrottledStatus(sink, minIntervalMs, time.now, { timers: time });
  return { time, events, st };
}

/** Largest number of events in any 1 s window [t, t + 1000). */
function maxPerSecond(events: Event[]): number {
  let max = 0;
  for (let i = 0; i < events.length; i++) {
    let n = 0;
    for (let j = i; j < events.length && events[j].at < events[i].at + 1000; j++) n++;
    max = Math.max(max, n);
  }
  return max;
}

describe('ThrottledStatus', () => {
  it('a 10 000-call burst of immediate() and set() over 2 s: <= 4 events/s, the last requested is the last shown', () => {
    const { time, events, st } = setup();
    const N = 10_000;
    let lastText = '';
    let lastKind = '';
    for (let i = 0; i < N; i++) {
      // Every call differs, so nothing is deduplicated: the throttle alone must hold the rate.
      lastText = `e${i}`;
      if (i % 3 === 0) {
        lastKind = 'ok';
        st.set('ok', lastText);
      } else {
        lastKind = 'error';
        st.immediate('error', lastText);
      }
      time.advance(((i + 1) * 2000) / N - time.t); // 10 000 calls in 2 s = 5 kHz
    }
    assert.equal(time.t, 2000);
    time.advance(3000); // the burst is over: let the pending one out
    assert.ok(events.length >= 2, `${events.length} events`);
    assert.ok(maxPerSecond(events) <= 4, `at most 4 events in any second, got ${maxPerSecond(events)}`);
    assert.ok(events.length <= 4 * 2 + 1, `${events.length} events for a 2 s burst`);
    for (let sec = 0; sec < 5; sec++) {
      const n = events.filter((e) => e.at >= sec * 1000 && e.at < (sec + 1) * 1000).length;
      assert.ok(n <= 4, `${n} events in second ${sec}`);
    }
    const last = events[events.length - 1];
    assert.equal(last.s.text, lastText, 'the last requested status is the one left on display');
    assert.equal(last.s.fill, lastKind === 'error' ? 'red' : 'green');
    assert.equal(time.pendingTimers, 0, 'no timer left once the final status is out');
  });

  it('the first error is shown at once, and a later error still reaches the display', () => {
    const { time, events, st } = setup();
    st.set('ok', 'ready');
    time.advance(10);
    st.immediate('error', 'bad input');
    assert.equal(events.length, 2, 'the error is shown without waiting');
    assert.equal(events[1].s.fill, 'red');
    assert.equal(events[1].at, 10);
    // 10 000 identical errors at 10 kHz: the display already shows it, nothing more to send.
    for (let i = 0; i < 10_000; i++) {
      st.immediate('error', 'bad input');
      time.advance(0.1);
    }
    time.advance(2000);
    assert.equal(events.length, 2);
    // A new error after a quiet second is immediate as well.
    st.immediate('error', 'write error');
    assert.equal(events.length, 3);
    assert.equal(events[2].s.text, 'write error');
  });

  it('errors are prompt but budgeted: the 5th in a second waits, and the newest one wins', () => {
    const { time, events, st } = setup();
    for (let i = 1; i <= 8; i++) {
      st.immediate('error', `err ${i}`);
      time.advance(10);
    }
    assert.deepEqual(
      events.map((e) => e.s.text),
      ['err 1', 'err 2', 'err 3', 'err 4'],
    );
    time.advance(1000);
    assert.deepEqual(
      events.map((e) => e.s.text),
      ['err 1', 'err 2', 'err 3', 'err 4', 'err 8'],
      'the pending error shown is the newest; 5..7 were coalesced',
    );
    assert.equal(events[4].at, 1000, 'shown as soon as the 1 s window allows');
  });

  it('set() alone is coalesced to one update per 500 ms, ending on the latest', () => {
    const { time, events, st } = setup();
    for (let i = 0; i <= 1000; i++) {
      st.set('ok', `n ${i}`);
      time.advance(1);
    }
    time.advance(1000);
    for (let i = 1; i < events.length; i++) assert.ok(events[i].at - events[i - 1].at >= 500, `gap ${events[i].at - events[i - 1].at}`);
    assert.equal(events[events.length - 1].s.text, 'n 1000');
    assert.ok(events.length <= 4, `${events.length}`);
  });

  it('a status requested after an error wins once the burst ends (no stale red)', () => {
    const { time, events, st } = setup();
    st.immediate('error', 'bad input');
    st.set('ok', 'written 5');
    time.advance(100);
    st.immediate('error', 'bad input'); // same as shown: cancels the pending ok
    time.advance(1000);
    assert.equal(events[events.length - 1].s.text, 'bad input');
    st.set('ok', 'written 6');
    time.advance(1000);
    assert.equal(events[events.length - 1].s.text, 'written 6');
    assert.equal(events[events.length - 1].s.fill, 'green');
  });

  it('text longer than 19 characters is shortened', () => {
    const { events, st } = setup();
    const long = 'a status text that is far too long';
    st.immediate('error', long);
    const text = events[0].s.text!;
    assert.ok(text.length < 20, `${text.length} chars`);
    assert.equal(text.length, 19);
    assert.ok(long.startsWith(text.slice(0, -1)));
    assert.equal(shortText('exactly nineteen ch'), 'exactly nineteen ch');
    assert.equal(shortText('twenty characters!!'.padEnd(20, '!')).length, 19);
  });

  it('close() stops pending timers and may leave a final status', () => {
    const { time, events, st } = setup();
    st.set('ok', 'one');
    st.set('ok', 'two'); // pending behind the 500 ms interval
    for (let i = 0; i < 6; i++) st.immediate('error', `e${i}`); // budget spent: one pending
    assert.ok(time.pendingTimers >= 1, 'a timer is pending before close');
    const before = events.length;
    st.close({ fill: 'grey', shape: 'ring', text: 'closed' });
    assert.equal(time.pendingTimers, 0, 'close cleared the timer');
    assert.equal(events.length, before + 1);
    assert.equal(events[events.length - 1].s.text, 'closed');
    time.advance(5000);
    st.immediate('error', 'after close');
    st.set('ok', 'after close');
    assert.equal(events.length, before + 1, 'nothing after close');
  });

  it('with real timers, the pending final status is flushed and close() cancels it', async () => {
    const events: NodeStatus[] = [];
    const st = new ThrottledStatus({ status: (s: NodeStatus) => void events.push(s) }, 50, Date.now, { windowMs: 100 });
    for (let i = 0; i < 2000; i++) st.immediate('error', `e${i}`);
    assert.equal(events.length, 4);
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(events.length, 5);
    assert.equal(events[4].text, 'e1999');
    for (let i = 0; i < 10; i++) st.set('ok', `o${i}`);
    const n = events.length;
    st.close();
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(events.length, n, 'no status after close');
  });
});

describe('RateLimitedWarning', () => {
  it('warns at most once per interval, each warning carrying the running count', () => {
    let t = 0;
    const warnings: string[] = [];
    const w = new RateLimitedWarning((text) => warnings.push(text), 1000, () => t);
    const fmt = (n: number): string => `dropped ${n} so far`;
    assert.equal(w.hit(fmt), true);
    for (let i = 0; i < 4; i++) {
      t += 100;
      assert.equal(w.hit(fmt), false, 'no second warning within the second');
    }
    assert.deepEqual(warnings, ['dropped 1 so far']);
    t = 1000;
    assert.equal(w.hit(fmt), true);
    assert.deepEqual(warnings, ['dropped 1 so far', 'dropped 6 so far'], 'the count includes the silent hits');
    assert.equal(w.count, 6);
    // 12 000 drops over 3 s (4 kHz): one warning per second, counts increasing to the total.
    for (let i = 0; i < 12_000; i++) {
      t += 0.25;
      w.hit(fmt);
    }
    assert.equal(warnings.length, 2 + 3);
    const counts = warnings.map((s) => Number(/dropped (\d+)/.exec(s)![1]));
    for (let i = 1; i < counts.length; i++) assert.ok(counts[i] > counts[i - 1]);
    assert.equal(w.count, 12_006);
    assert.equal(counts[counts.length - 1], 12_006, 'the last warning (at t = 4 s) carries the total');
  });
});
