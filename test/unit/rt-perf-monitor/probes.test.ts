// rt-perf-monitor probes: the event-loop probe sees a blocked loop; the
// registry reader turns the other nodes' histograms (worker-side shared ones
// and plain prom-client ones) into per-interval distributions.
import assert from 'node:assert/strict';

import { FINE_RELATIVE_ERROR, percentileMs } from '../../../nodes/rt-perf-monitor/hist-core';
import { EventLoopProbe, RegistryHistogramReader } from '../../../nodes/rt-perf-monitor/probes';
import type { NodeAPI } from '../../../nodes/shared/red-types';
import { runtimeMetrics } from '../../../nodes/shared/registry';
import { SharedMetrics } from '../../../nodes/shared/shared-metrics';
import { sleep } from '../../helpers/util';

describe('rt-perf-monitor probes', () => {
  it('EventLoopProbe: an idle loop shows ~0 delay; a 120 ms block shows as the max and p99', async () => {
    const p = new EventLoopProbe(10);
    try {
      await sleep(300);
      const idle = p.take();
      assert.ok(idle.delay.count > 10, `samples ${idle.delay.count}`);
      assert.ok(percentileMs(idle.delay, 50) < 5, `idle p50 ${percentileMs(idle.delay, 50)}`);
      await sleep(50);
      const end = Date.now() + 120;
      while (Date.now() < end) {
        /* block the loop */
      }
      await sleep(100);
      const busy = p.take();
      const max = busy.delay.maxUs / 1000;
      assert.ok(max >= 100 && max < 200, `max ${max}`);
      assert.ok(percentileMs(busy.delay, 99) >= 100, `p99 ${percentileMs(busy.delay, 99)}`);
      assert.ok(busy.utilization > 0.4 && busy.utilization <= 1, `utilization ${busy.utilization}`);
    } finally {
      p.stop();
    }
  });

  it('RegistryHistogramReader: worker-side and prom-client histograms, per interval, all label sets merged', async () => {
    const RED = { settings: {} } as unknown as NodeAPI;
    const m = runtimeMetrics(RED);
    const fam = m.sharedHistogramFamily('rtedge_test_queue_delay_seconds', 'test');
    const a = SharedMetrics.create({ histograms: ['d'] });
    const b = SharedMetrics.create({ histograms: ['d'] });
    fam.attach({ node: 'a' }, a.histogram('d'));
    fam.attach({ node: 'b' }, b.histogram('d'));
    const promH = m.histogram('rtedge_test_flush_seconds', 'test', ['node']);
    const perfOwn = m.sharedHistogramFamily('rtedge_perf_test_seconds', 'the monitor’s own: skipped');
    perfOwn.attach({ node: 'x' }, a.histogram('d'));
    const reader = new RegistryHistogramReader(m.registry as never);

    for (let i = 0; i < 90; i++) a.histogram('d').observeUs(2000);
    for (let i = 0; i < 10; i++) b.histogram('d').observeUs(40_000);
    for (let i = 0; i < 100; i++) promH.observe({ node: 'n' }, 0.003);
    const first = await reader.take();
    assert.ok(!first.samples.has('rtedge_perf_test_seconds'));
    const q = first.samples.get('rtedge_test_queue_delay_seconds')!;
    assert.equal(q.count, 100);
    assert.ok(Math.abs(percentileMs(q, 50) - 2) <= 2 * FINE_RELATIVE_ERROR);
    assert.ok(percentileMs(q, 99) >= 40 && percentileMs(q, 99) <= 40 * (1 + FINE_RELATIVE_ERROR));
    const f = first.samples.get('rtedge_test_flush_seconds')!;
    assert.equal(f.count, 100);
    assert.ok(percentileMs(f, 50) >= 3 && percentileMs(f, 50) <= 5 * (1 + FINE_RELATIVE_ERROR), `prom bucket upper bound ${percentileMs(f, 50)}`);

    for (let i = 0; i < 5; i++) a.histogram('d').observeUs(500);
    const second = await reader.take();
    const q2 = second.samples.get('rtedge_test_queue_delay_seconds')!;
    assert.equal(q2.count, 5, 'only the new observations');
    assert.ok(percentileMs(q2, 99) <= 0.5 * (1 + FINE_RELATIVE_ERROR));
    assert.equal(second.samples.get('rtedge_test_flush_seconds')!.count, 0);
    assert.equal(second.totals.get('rtedge_test_queue_delay_seconds'), 105);
  });
});
