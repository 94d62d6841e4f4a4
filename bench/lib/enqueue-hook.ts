// Preloaded into a Node-RED process (node -r) by the gate-command benchmark:
// stamps every message with the monotonic clock at the moment the node under
// test (id "sink") receives it, through Node-RED's own onReceive messaging
// hook, so that "enqueue" means the same instant for the core node and ours.
// The stamp replaces ENQ in a string payload, or sets payload.enq.
/* eslint-disable @typescript-eslint/no-require-imports */
const start = Date.now();
const timer = setInterval(() => {
  let RED: { hooks?: { add(name: string, fn: (ev: { destination: { id: string }; msg: { payload: unknown } }) => void): void } };
  try {
    RED = require('node-red');
  } catch {
    return;
  }
  if (!RED.hooks) {
    if (Date.now() - start > 30_000) clearInterval(timer);
    return;
  }
  clearInterval(timer);
  RED.hooks.add('onReceive.rtedgeBench', (ev) => {
    if (ev.destination.id !== 'sink') return;
    const us = Number(process.hrtime.bigint() / 1000n);
    const p = ev.msg.payload;
    if (typeof p === 'string') ev.msg.payload = p.replace('ENQ', String(us));
    else if (p && typeof p === 'object') (p as Record<string, unknown>).enq = us;
  });
}, 20);
timer.unref();
