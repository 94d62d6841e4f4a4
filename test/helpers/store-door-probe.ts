// A minimal Modbus RTU master on a serial path, for tests of the simulated door
// controller: reads discrete input 0 of unit 1 (function 0x02) and says open/closed.
import { SerialPort } from 'serialport';

import { encodeRequest, FN_READ_DISCRETE_INPUTS } from '../../nodes/rt-rs485-watch/modbus-core';

export class DoorReaderProbe {
  private port: SerialPort | null = null;
  private rx = Buffer.alloc(0);
  constructor(readonly path: string) {}

  async open(): Promise<void> {
    const p = new SerialPort({ path: this.path, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => p.open((err) => (err ? reject(err) : resolve())));
    p.on('data', (d: Buffer) => (this.rx = Buffer.concat([this.rx, d])));
    this.port = p;
  }

  /** One poll: true open, false closed; throws after 2 s without a 6-byte answer. */
  async read(): Promise<boolean> {
    const p = this.port!;
    this.rx = Buffer.alloc(0);
    p.write(encodeRequest({ unit: 1, fn: FN_READ_DISCRETE_INPUTS, address: 0, count: 1 }));
    const end = Date.now() + 2000;
    while (this.rx.length < 6) {
      if (Date.now() > end) throw new Error(`no answer from the door controller (${this.rx.toString('hex')})`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return (this.rx[3] & 1) === 1;
  }

  async close(): Promise<void> {
    const p = this.port;
    this.port = null;
    if (p?.isOpen) await new Promise<void>((r) => p.close(() => r()));
  }
}
