// The MQTT outbox of rt-journey-egress (runs in the egress worker): every batch
// written to the journey file is also appended to an on-disk outbox and
// published to an MQTT topic at QoS 1, in order. A batch leaves the outbox
// when the broker acknowledges it (PUBACK); the acknowledged position is kept
// in a cursor file, so a restart (redeploy, crash, power loss) publishes again
// what was not acknowledged: at least once, as QoS 1 documents (a batch whose
// PUBACK was lost is published twice; nothing is lost). The outbox is bounded
// (batches): when full, a new batch is not queued for MQTT and is counted (it
// is still in the journey file). No Node-RED, no threads.
//
// Files: <dir>/<name>.outbox (one JSON line per batch: {"i":id,"b":"<jsonl>"})
// and <dir>/<name>.acked (the highest acknowledged id). The outbox file is
// rewritten without its acknowledged head once that head is most of it.
import * as fs from 'node:fs';
import { dirname } from 'node:path';

import { connect, type IClientOptions, type MqttClient } from 'mqtt';

import { reconnectDelay } from '../shared/backoff';
import { mqttClientOptions, readTlsFiles } from '../rt-mqtt-broker/broker-config';
import type { MqttSettings } from '../rt-mqtt-ingress/ingress-protocol';

export interface OutboxOptions {
  file: string;
  limit: number;
  topic: string;
  mqtt: MqttSettings;
  /** Batches published and not yet acknowledged, at most. */
  window: number;
}

export interface OutboxHooks {
  published(): void;
  acked(): void;
  dropped(): void;
  connected(up: boolean, error?: string): void;
  depth(n: number): void;
}

interface Rec {
  i: number;
  b: string;
}

export class MqttOutbox {
  private readonly queue: Rec[] = [];
  /** Index in queue of the first batch not yet handed to the client. */
  private sent = 0;
  private nextId = 1;
  private acked = 0;
  private ackedDirty = false;
  private ackTimer: NodeJS.Timeout | null = null;
  private fileRecords = 0;
  private client: MqttClient | null = null;
  private closing = false;
  private tlsRetry: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private attempt = 0;
  private needResend = false;
  private readonly ackFile: string;

  constructor(
    private readonly o: OutboxOptions,
    private readonly hooks: OutboxHooks,
  ) {
    this.ackFile = o.file.replace(/\.outbox$/, '') + '.acked';
  }

  /** Loads what a previous run left unacknowledged and connects. */
  start(): void {
    fs.mkdirSync(dirname(this.o.file), { recursive: true });
    try {
      this.acked = Number(fs.readFileSync(this.ackFile, 'utf8').trim()) || 0;
    } catch {
      this.acked = 0;
    }
    let text = '';
    try {
      text = fs.readFileSync(this.o.file, 'utf8');
    } catch {
      text = '';
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as Rec;
        this.fileRecords++;
        if (r.i > this.acked) this.queue.push(r);
        this.nextId = Math.max(this.nextId, r.i + 1);
      } catch {
        /* a torn last line (crash mid-append): that batch was never acknowledged and is in the journey file */
      }
    }
    this.nextId = Math.max(this.nextId, this.acked + 1);
    this.hooks.depth(this.queue.length);
    this.connect();
  }

  /** A batch of JSON lines (written to the journey file) to publish. */
  add(jsonl: string): void {
    if (this.queue.length >= this.o.limit) {
      this.hooks.dropped();
      return;
    }
    const r: Rec = { i: this.nextId++, b: jsonl };
    fs.appendFileSync(this.o.file, JSON.stringify(r) + '\n');
    this.fileRecords++;
    this.queue.push(r);
    this.hooks.depth(this.queue.length);
    this.pump();
  }

  private connect(): void {
    const s = this.o.mqtt;
    // our outbox holds the batches: nothing queued inside the client while offline; reconnects: ours (backoff)
    const opts: IClientOptions = mqttClientOptions(s, { queueQoSZero: false });
    try {
      readTlsFiles(s, opts);
    } catch (err) {
      // never connect without the TLS files the config names: try again later (the files may appear)
      this.hooks.connected(false, (err as Error).message);
      this.tlsRetry = setTimeout(() => {
        this.tlsRetry = null;
        if (!this.closing) this.connect();
      }, Math.max(100, s.backoffMaxMs));
      return;
    }
    const c = connect(s.url, opts);
    this.client = c;
    let lastError = '';
    c.on('connect', () => {
      this.attempt = 0;
      this.hooks.connected(true);
      // The client resends its own unacknowledged QoS 1 publishes after a reconnection; only what it
      // reported as failed is handed to it again (from the outbox, in order).
      if (this.needResend) {
        this.needResend = false;
        this.sent = 0;
      }
      this.pump();
    });
    c.on('error', (e) => (lastError = e.message));
    c.on('close', () => {
      if (this.closing) return;
      this.hooks.connected(false, lastError || undefined);
      lastError = '';
      // the ingress's doubling backoff (with jitter), the TLS files read again before each attempt
      if (this.retry) return;
      this.retry = setTimeout(() => {
        this.retry = null;
        if (this.closing) return;
        try {
          readTlsFiles(s, opts);
          Object.assign(c.options, { ca: opts.ca, cert: opts.cert, key: opts.key });
        } catch (err) {
          lastError = (err as Error).message;
        }
        c.reconnect();
      }, reconnectDelay(this.attempt++, Math.max(100, s.backoffMinMs), Math.max(100, s.backoffMaxMs)));
    });
  }

  private pump(): void {
    const c = this.client;
    if (!c || !c.connected || this.closing) return;
    while (this.sent < this.queue.length && this.sent < this.o.window) {
      const r = this.queue[this.sent++];
      this.hooks.published();
      c.publish(this.o.topic, r.b, { qos: 1 }, (err) => {
        if (err) {
          this.needResend = true; // resent from the outbox after the reconnection
          return;
        }
        this.ack(r.i);
      });
    }
  }

  private ack(id: number): void {
    const k = this.queue.findIndex((r) => r.i === id);
    if (k < 0) return; // a duplicate acknowledgement (already resent and acknowledged)
    this.hooks.acked();
    this.queue.splice(k, 1);
    if (k < this.sent) this.sent--;
    // The cursor is the highest id below which everything is acknowledged.
    const head = this.queue.length > 0 ? this.queue[0].i - 1 : this.nextId - 1;
    if (head > this.acked) {
      this.acked = head;
      this.ackedDirty = true;
      if (!this.ackTimer) {
        this.ackTimer = setTimeout(() => {
          this.ackTimer = null;
          this.saveAcked();
        }, 100);
      }
    }
    this.hooks.depth(this.queue.length);
    this.pump();
  }

  private saveAcked(): void {
    if (!this.ackedDirty) return;
    this.ackedDirty = false;
    const tmp = this.ackFile + '.tmp';
    fs.writeFileSync(tmp, String(this.acked));
    fs.renameSync(tmp, this.ackFile);
    // Compact: rewrite the outbox without its acknowledged head once that head is most of the file.
    if (this.fileRecords > 256 && this.queue.length * 2 < this.fileRecords) {
      const otmp = this.o.file + '.tmp';
      fs.writeFileSync(otmp, this.queue.map((r) => JSON.stringify(r) + '\n').join(''));
      fs.renameSync(otmp, this.o.file);
      this.fileRecords = this.queue.length;
    } else if (this.queue.length === 0 && this.fileRecords > 0) {
      fs.truncateSync(this.o.file, 0);
      this.fileRecords = 0;
    }
  }

  /** Waits up to graceMs for the unacknowledged batches, then closes (what is left stays in the outbox file). */
  async close(graceMs: number): Promise<void> {
    const end = Date.now() + graceMs;
    while (this.queue.length > 0 && this.client?.connected && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    this.closing = true;
    if (this.tlsRetry) clearTimeout(this.tlsRetry);
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.saveAcked();
    const c = this.client;
    if (c) await new Promise<void>((r) => c.end(true, {}, () => r()));
  }

  get depth(): number {
    return this.queue.length;
  }
}
