// rt-perf-monitor core: histograms, hook bookkeeping, rules, sampling windows.
// No Node-RED.
import assert from 'node:assert/strict';

import { DeltaTracker, FINE_RELATIVE_ERROR, LocalHistogram, percentileMs, sampleFromPromBuckets, summarize } from '../../../nodes/rt-perf-monitor/hist-core';
import { HookBook, parseFilter } from '../../../nodes/rt-perf-monitor/hooks-core';
import { PerfMonitor } from '../../../nodes/rt-perf-monitor/monitor-core';
import { DEFAULT_RULES, parseRules, RulesEngine } from '../../../nodes/rt-perf-monitor/rules-core';
import { type Timers, WindowScheduler } from '../../../nodes/rt-perf-monitor/window-core';
import { en } from '../../helpers/catalog';

function exactPercentile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

describe('rt-perf-monitor core: LocalHistogram', () => {
  it('percentiles are within the stated relative error of the exact ones', () => {
    const h = new LocalHistogram();
    const xs: number[] = [];
    let seed = 42;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 20_000; i++) {
      const us = Math.exp(rnd() * Math.log(2_000_000)); // 1 us .. 2 s, log-uniform
      xs.push(us);
      h.observeUs(us);
    }
    xs.sort((a, b) => a - b);
    const s = h.total();
    for (const q of [0.5, 0.9, 0.95, 0.99]) {
      const exact = exactPercentile(xs, q) / 1000;
      const got = percentileMs(s, q * 100);
      assert.ok(got >= exact * (1 - 1e-9) - 0.001, `p${q * 100} ${got} >= exact ${exact}`);
      assert.ok(got <= exact * (1 + FINE_RELATIVE_ERROR) + 0.001, `p${q * 100} ${got} within ${FINE_RELATIVE_ERROR} of ${exact}`);
    }
    assert.equal(percentileMs(s, 100), xs[xs.length - 1] / 1000);
  });

  it('stays bounded after 1e6 observations: same arrays, exact count, sane percentiles', () => {
    const h = new LocalHistogram();
    const fine = h.fine;
    const prom = h.prom;
    const heap0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) h.observeUs(i % 2 === 0 ? 5000 : 20_000);
    assert.equal(h.count, 1_000_000);
    assert.equal(h.fine, fine);
    assert.equal(h.prom, prom);
    const sum = summarize(h.total());
    assert.ok(sum.p50 >= 5 && sum.p50 <= 5 * (1 + FINE_RELATIVE_ERROR), `p50 ${sum.p50}`);
    assert.ok(sum.p99 >= 20 && sum.p99 <= 20 * (1 + FINE_RELATIVE_ERROR), `p99 ${sum.p99}`);
    assert.ok(process.memoryUsage().heapUsed - heap0 < 5 * 2 ** 20, 'no per-observation memory');
  });

  it('Prometheus buckets match a plain bucket search (fast path table)', () => {
    const h = new LocalHistogram();
    const bounds = [100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1e6, 2.5e6, 5e6, 1e7];
    const naive = new Array(bounds.length + 1).fill(0);
    const vals = [0, 99.9, 100, 100.5, 249, 250, 250.2, 251, 999, 1000, 1000.7, 1001, 2500, 2500.01, 1e7, 1e7 + 0.5, 3e9, 5e9];
    for (let i = 0; i < 20_000; i++) vals.push(Math.random() * 2e5, Math.random() * 3000);
    for (const v of vals) {
      h.observeUs(v);
      const c = Math.min(v, 0xffffffff);
      let k = 0;
      while (k < bounds.length && c > bounds[k]) k++;
      naive[k]++;
    }
    assert.deepEqual(Array.from(h.prom), naive);
  });

  it('takePeriod gives only the observations since the last call, with their own max', () => {
    const h = new LocalHistogram();
    for (let i = 0; i < 100; i++) h.observeUs(30_000);
    const p1 = h.takePeriod();
    assert.equal(p1.count, 100);
    assert.equal(p1.maxUs, 30_000);
    for (let i = 0; i < 50; i++) h.observeUs(1000);
    const p2 = h.takePeriod();
    assert.equal(p2.count, 50);
    assert.equal(p2.maxUs, 1000);
    assert.ok(percentileMs(p2, 99) <= 1 * (1 + FINE_RELATIVE_ERROR));
    assert.equal(h.takePeriod().count, 0);
    assert.equal(h.count, 150);
  });

  it('DeltaTracker: differences of cumulative counts, restart when the count drops', () => {
    const src = new LocalHistogram();
    const d = new DeltaTracker();
    for (let i = 0; i < 10; i++) src.observeUs(2000);
    assert.equal(d.next(src.fine, src.count, src.sumUs, src.maxUs).count, 10);
    for (let i = 0; i < 5; i++) src.observeUs(500);
    const s = d.next(src.fine, src.count, src.sumUs, src.maxUs);
    assert.equal(s.count, 5);
    assert.ok(percentileMs(s, 99) <= 0.5 * (1 + FINE_RELATIVE_ERROR));
    const fresh = new LocalHistogram();
    fresh.observeUs(100);
    assert.equal(d.next(fresh.fine, fresh.count, fresh.sumUs, fresh.maxUs).count, 1);
  });

  it('reads Prometheus cumulative buckets at their upper bounds', () => {
    const s = sampleFromPromBuckets([0.001, 0.01, 0.1], [10, 90, 100, 100], 1);
    assert.equal(s.count, 100);
    assert.ok(percentileMs(s, 50) <= 10 * (1 + FINE_RELATIVE_ERROR) && percentileMs(s, 50) >= 10 * (1 - FINE_RELATIVE_ERROR));
    assert.ok(percentileMs(s, 99) >= 100 * (1 - FINE_RELATIVE_ERROR));
  });
});

describe('rt-perf-monitor core: HookBook', () => {
  it('times receive -> complete per node and matches by message id', () => {
    const b = new HookBook();
    b.receive('a', { type: 'function', name: 'slow' }, 'm1', () => 0);
    b.receive('b', { type: 'change' }, 'm1', () => 1);
    b.complete('b', 'm1', () => 1.5);
    b.complete('a', 'm1', () => 20);
    const a = b.trackers.get('a')!;
    assert.equal(a.completed, 1);
    assert.ok(Math.abs(a.hist.maxUs - 20_000) < 1);
    assert.ok(Math.abs(b.trackers.get('b')!.hist.maxUs - 500) < 1);
    assert.equal(b.pendingCount(), 0);
  });

  it('the same message id received twice by one node is timed FIFO', () => {
    const b = new HookBook();
    b.receive('a', { type: 't' }, 'm', () => 0);
    b.receive('a', { type: 't' }, 'm', () => 10);
    b.complete('a', 'm', () => 15);
    b.complete('a', 'm', () => 16);
    const t = b.trackers.get('a')!;
    assert.equal(t.completed, 2);
    assert.ok(Math.abs(t.hist.maxUs - 15_000) < 1);
    assert.equal(b.pendingCount(), 0);
  });

  it('filter by id or type; the monitor itself is excluded', () => {
    const b = new HookBook({ filter: parseFilter('fn1, change'), exclude: ['mon'] });
    for (const [id, type] of [['fn1', 'function'], ['fn2', 'function'], ['c1', 'change'], ['mon', 'rt-perf-monitor']]) b.receive(id, { type }, 'm', () => 0);
    assert.deepEqual([...b.trackers.keys()].sort(), ['c1', 'fn1']);
  });

  it('a busy node: every message counted, a random subset timed to the budget, unbiased percentiles', () => {
    const b = new HookBook({ timedPerSecond: 200 });
    let clockReads = 0;
    let now = 0;
    const clock = (): number => (clockReads++, now);
    let id = 0;
    // 100 ms slots of 2000 messages (20 000/s); every 10th message takes 20 ms, the others 5 ms
    for (let slot = 0; slot < 50; slot++) {
      for (let i = 0; i < 2000; i++) {
        const m = `m${id++}`;
        b.receive('n', { type: 'function' }, m, clock);
        now += i % 10 === 9 ? 20 : 5;
        b.complete('n', m, clock);
      }
      b.adapt(100);
    }
    const t = b.trackers.get('n')!;
    assert.equal(t.received, 100_000);
    assert.equal(t.stride, 100);
    // first slot timed in full (2000), then ~20 per slot
    assert.ok(t.completed > 2000 + 49 * 10 && t.completed < 2000 + 49 * 40, `timed ${t.completed}`);
    assert.ok(clockReads < 2 * (2000 + 49 * 40), `clock read ${clockReads} times for 100 000 messages`);
    const s = summarize(t.hist.total());
    assert.ok(s.p50 >= 5 && s.p50 <= 5 * (1 + FINE_RELATIVE_ERROR), `p50 ${s.p50}`);
    assert.ok(s.p99 >= 20 && s.p99 <= 20 * (1 + FINE_RELATIVE_ERROR), `p99 ${s.p99}`);
    b.adapt(100); // idle slot: back to timing every message
    assert.equal(t.stride, 1);
  });

  it('memory is bounded: max nodes, max pending stamps per node (oldest evicted)', () => {
    const b = new HookBook({ maxNodes: 5, maxPending: 100 });
    for (let i = 0; i < 1_000_000; i++) b.receive(`n${i % 10}`, { type: 't' }, `m${i}`, () => i); // never completed
    assert.equal(b.trackers.size, 5);
    assert.equal(b.pendingCount(), 5 * (100 + 1), 'the message in progress plus 100 waiting, per node');
    assert.equal(b.skipped, 500_000);
    assert.equal(b.evicted, 500_000 - 5 * 101);
    // the newest stamps are the ones kept
    b.complete('n0', 'm999990', () => 1_000_000);
    assert.equal(b.trackers.get('n0')!.completed, 1);
    b.complete('n0', 'm10', () => 1_000_000); // evicted long ago
    assert.equal(b.untimed, 1);
  });
});

describe('rt-perf-monitor core: rules', () => {
  it('the defaults parse', () => {
    const r = parseRules([...DEFAULT_RULES], 10);
    assert.deepEqual(r.problems, []);
    assert.equal(r.rules.length, 4);
    assert.deepEqual(
      r.rules.map((x) => [x.metric, x.threshold]),
      [
        ['eventloop.delay', 50],
        ['memory.rssGrowth', 100],
        ['rtedge_ws_latency_seconds', 50],
        ['rtedge_gate_queue_delay_seconds', 100],
      ],
    );
  });

  it('bad rules give one clear problem each', () => {
    const bad = [
      ['not json', /not valid JSON/],
      ['{}', /must be a JSON array/],
      ['[{"threshold": 5}]', /rule 1: metric is required/],
      ['[{"metric": "cpu", "threshold": 5}]', /rule 1: unknown metric "cpu"/],
      ['[{"metric": "eventloop.delay", "threshold": -1}]', /rule 1: threshold must be a number > 0/],
      ['[{"metric": "eventloop.delay", "threshold": "5"}]', /threshold must be a number/],
      ['[{"metric": "eventloop.delay", "threshold": 5, "percentile": 150}]', /percentile must be a number in \(0, 100\]/],
      ['[{"metric": "memory.rss", "threshold": 5, "percentile": 99}]', /percentile does not apply/],
      ['[{"metric": "node.latency", "threshold": 5}]', /needs "node"/],
      ['[{"metric": "eventloop.delay", "threshold": 5, "severity": "bad"}]', /severity must be one of info, warning, critical/],
      ['[{"metric": "eventloop.delay", "threshold": 5, "window": 1000}]', /more than 60 intervals/],
      ['[{"metric": "eventloop.delay", "threshold": 5, "treshold": 5}]', /unknown field "treshold"/],
      ['[{"metric": "eventloop.delay", "threshold": 5, "for": 0}]', /for must be a whole number/],
    ] as const;
    for (const [text, re] of bad) {
      const r = parseRules(text, 10);
      assert.equal(r.rules.length, 0, text);
      const texts = r.problems.map((p) => en('rt-perf-monitor', p));
      assert.ok(texts.some((p) => re.test(p)), `${text}: ${texts.join('; ')}`);
    }
  });

  it('fires once while violated, resolves once below the hysteresis band; no data keeps the state', () => {
    const { rules } = parseRules([{ metric: 'memory.rss', threshold: 100, severity: 'critical', category: 'memory' }], 10);
    const e = new RulesEngine(rules);
    const seq = [50, 120, 130, 125, null, 95, 89, 80, 150];
    const out = seq.map((v, i) => e.evaluate(() => (v === null ? null : { gauge: v }), i));
    assert.deepEqual(
      out.map((a) => a.map((x) => x.state)),
      [[], ['firing'], [], [], [], [], ['resolved'], [], ['firing']],
    );
    const f = out[1][0];
    assert.equal(f.severity, 'critical');
    assert.equal(f.category, 'memory');
    assert.equal(f.metric, 'memory.rss');
    assert.equal(f.value, 120);
    assert.equal(f.threshold, 100);
    assert.deepEqual(f.message, { code: 'alert-firing', params: { name: 'memory.rss', value: 120, unit: 'MB', threshold: 100 } });
    assert.match(en('rt-perf-monitor', f.message), /memory\.rss above threshold: 120 MB > 100 MB/);
    const resolved = out[6][0];
    assert.equal(en('rt-perf-monitor', resolved.message), 'memory.rss back below threshold: 89 MB <= 100 MB');
  });

  it('"for" needs N violating intervals; window merges intervals', () => {
    const { rules } = parseRules([{ metric: 'eventloop.delay', threshold: 10, for: 2, window: 20 }], 10);
    const e = new RulesEngine(rules);
    const dist = (ms: number) => {
      const h = new LocalHistogram();
      for (let i = 0; i < 100; i++) h.observeUs(ms * 1000);
      return { dist: h.total() };
    };
    assert.equal(e.evaluate(() => dist(50), 0).length, 0);
    assert.equal(e.evaluate(() => dist(50), 1)[0]?.state, 'firing');
    // window of two intervals: one quiet interval is not enough (p99 of both still 50)
    assert.equal(e.evaluate(() => dist(1), 2).length, 0);
    assert.equal(e.evaluate(() => dist(1), 3)[0]?.state, 'resolved');
  });
});

describe('rt-perf-monitor core: sampling windows', () => {
  function fakeTimers() {
    let now = 0;
    let seq = 0;
    const q = new Map<number, { at: number; fn: () => void; every?: number }>();
    const t: Timers = {
      setTimeout: (fn, ms) => (q.set(++seq, { at: now + ms, fn }), seq),
      clearTimeout: (id) => void q.delete(id as number),
      setInterval: (fn, ms) => (q.set(++seq, { at: now + ms, fn, every: ms }), seq),
      clearInterval: (id) => void q.delete(id as number),
    };
    const advance = (ms: number): void => {
      const end = now + ms;
      for (;;) {
        let next: [number, { at: number; fn: () => void; every?: number }] | null = null;
        for (const e of q) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
        if (!next) break;
        now = next[1].at;
        if (next[1].every) next[1].at += next[1].every;
        else q.delete(next[0]);
        next[1].fn();
      }
      now = end;
    };
    return { t, advance, pending: () => q.size };
  }

  it('sampling: hooks on for the window every period; ticks every interval; stop removes everything', () => {
    const ft = fakeTimers();
    const log: string[] = [];
    const s = new WindowScheduler({ mode: 'sampling', windowMs: 1000, periodMs: 10_000, intervalMs: 5000, attach: () => log.push('on'), detach: () => log.push('off'), tick: () => log.push('tick'), timers: ft.t });
    s.start();
    assert.equal(s.active, true);
    ft.advance(999);
    assert.equal(s.active, true);
    ft.advance(1);
    assert.equal(s.active, false);
    ft.advance(30_000);
    assert.deepEqual(log.slice(0, 3), ['on', 'off', 'tick']);
    assert.equal(log.filter((x) => x === 'tick').length, 6);
    assert.equal(log.filter((x) => x === 'off').length, 4);
    assert.equal(s.windows, 4);
    ft.advance(9500);
    assert.equal(s.active, true);
    s.stop();
    assert.equal(s.active, false);
    assert.equal(log[log.length - 1], 'off');
    assert.equal(ft.pending(), 0);
  });

  it('continuous: on until stopped', () => {
    const ft = fakeTimers();
    let on = 0;
    const s = new WindowScheduler({ mode: 'continuous', windowMs: 1000, periodMs: 10_000, intervalMs: 1000, attach: () => on++, detach: () => on--, tick: () => {}, timers: ft.t });
    s.start();
    ft.advance(60_000);
    assert.equal(on, 1);
    s.stop();
    assert.equal(on, 0);
  });
});

describe('rt-perf-monitor core: PerfMonitor', () => {
  it('node.latency rule on a slow node fires once and resolves once; health lists it', () => {
    const book = new HookBook();
    const { rules } = parseRules([{ metric: 'node.latency', node: 'slow', threshold: 10, severity: 'warning' }], 1);
    const m = new PerfMonitor({ rules, book, intervalMs: 1000, now: () => 0 });
    const input = { eventLoop: new LocalHistogram().total(), utilization: 0.1, memory: { rss: 50e6, heapUsed: 1, heapTotal: 1, external: 1 }, workers: new Map() };
    const run = (ms: number): string[] => {
      for (let i = 0; i < 100; i++) {
        book.receive('f1', { type: 'function', name: 'slow' }, `m${i}`, () => 0);
        book.complete('f1', `m${i}`, () => ms);
      }
      return m.tick(input).map((a) => a.state);
    };
    assert.deepEqual(run(20), ['firing']);
    assert.deepEqual(run(20), []);
    assert.equal(m.health().healthy, false);
    assert.equal(m.health().topSlowNodes[0].id, 'f1');
    assert.deepEqual(run(1), ['resolved']);
    assert.deepEqual(run(1), []);
    assert.equal(m.health().healthy, true);
    const snap = m.snapshot({ mode: 'continuous', windowMs: 0, periodMs: 0, hooksActive: true, windows: 1 });
    assert.equal(snap.nodes[0].received, 400);
    assert.equal(snap.memory.rssMB, 47.7);
  });

  it('default memory rule: a healthy runtime of any size never fires (151 MB with the dashboard, a page opened); a leak does', () => {
    const MB = 1024 * 1024;
    const { rules } = parseRules([...DEFAULT_RULES], 10);
    const monitor = (): PerfMonitor => new PerfMonitor({ rules, book: new HookBook(), intervalMs: 10_000, now: () => 0 });
    const input = (rssMB: number) => ({ eventLoop: new LocalHistogram().total(), utilization: 0.1, memory: { rss: rssMB * MB, heapUsed: 1, heapTotal: 1, external: 1 }, workers: new Map() });
    // healthy: 126-151 MB, GC saw-tooth of +-15 MB, a dashboard page opened (+30 MB), a big deploy (+60 MB for one interval)
    const healthy = monitor();
    for (let i = 0; i < 360; i++) {
      const rss = 126 + (i > 30 ? 25 : 0) + (i > 100 ? 30 : 0) + 15 * Math.sin(i / 3) + (i === 200 ? 60 : 0);
      assert.deepEqual(healthy.tick(input(rss)), [], `interval ${i}: ${rss.toFixed(0)} MB`);
    }
    // a leak of 8 MB per interval from a 151 MB baseline: fires once, after 100 MB of growth and 3 intervals over it
    const leaking = monitor();
    const alerts: Array<{ i: number; name: string; value: number }> = [];
    for (let i = 0; i < 30; i++) for (const a of leaking.tick(input(151 + 8 * i))) alerts.push({ i, name: a.name, value: a.value });
    assert.deepEqual(alerts.map((a) => a.name), ['memory.rssGrowth']);
    assert.equal(alerts[0].i, 15, JSON.stringify(alerts)); // 8 * 13 = 104 MB > 100 at i = 13, firing at the 3rd interval over
    assert.equal(alerts[0].value, 120);
    // the absolute 100 MB limit of before would have fired on the healthy runtime at once
    assert.ok(!DEFAULT_RULES.some((r) => r.metric === 'memory.rss'));
  });
});
