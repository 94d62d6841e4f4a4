// The rt-ws-batcher consumer module, loaded into a scale's HAL worker by its
// path (nodes/rt-scale/scale-consumer.ts): every published sample goes into a
// shared ring that the batcher drains (in its own worker in worker mode), so
// the live weight never passes through the flow engine. O(1), no allocation
// per sample; a full ring drops the newest sample and counts it.
import type { ConsumerHost, ScaleConsumer } from '../rt-scale/scale-consumer';
import { SpscRing } from '../shared/spsc-ring';
import { SAMPLE_REC_WORDS, type SampleConsumerInit } from './ws-protocol';

const TWO32 = 4294967296;

export function createConsumer(host: ConsumerHost, raw: unknown): ScaleConsumer {
  const init = raw as SampleConsumerInit;
  const ring = SpscRing.attach(init.ring);
  const rec = new Int32Array(SAMPLE_REC_WORDS);
  const unsubscribe = host.subscribe((s) => {
    // the sample's data-ready edge on the epoch clock
    const ageUs = Math.max(0, host.clock.nowUs() - s.tUs);
    const epochUs = Math.round((performance.timeOrigin + performance.now()) * 1000 - ageUs);
    rec[0] = Math.floor(epochUs / TWO32);
    rec[1] = epochUs % TWO32 | 0;
    rec[2] = s.cg;
    rec[3] = s.seq;
    ring.push(rec);
  });
  return {
    onCommand: () => undefined,
    close: () => unsubscribe(),
  };
}
