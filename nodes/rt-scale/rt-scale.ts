// rt-scale (config): one load cell and its motor. It owns the scale's instance
// in the HAL worker (started by the first node that uses it, ended with the
// last), drains the sample ring on the main thread without ever making the
// worker wait, persists run-time calibration, and exports the scale's metrics.
import { join } from 'node:path';

import { needs } from '../shared/admin';
import { coreText } from '../shared/i18n';
import { clampInt } from '../shared/migrate';
import type { HttpRequest, HttpResponse, NodeAPI } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { SharedMetrics } from '../shared/shared-metrics';
import { SpscRing } from '../shared/spsc-ring';
import { WorkerLease } from '../shared/worker-host';
import { CalibrationStore } from './calibration-store';
import { hrNowUs } from './clock';
import { exitAckBuffer, guardExit, rearmSignals } from './exit-guard';
import { pwmOff } from './kernel-pwm';
import { BAD_REASONS, type Calibration } from './sampler-core';
import type { ConsumerLink, ConsumerOptions, DecodedSample, ScaleNode, ScaleNotice, ScaleUser } from './scale-api';
import type { ConsumerAttach } from './scale-consumer';
import { readScale, type ScaleDef } from './scale-config';
import type { SimChipOptions } from './sim-hx711';
import {
  REC_CG,
  REC_FILTERED,
  REC_FLAGS,
  REC_LAT_US,
  REC_RAW,
  REC_SEQ,
  REC_WORDS,
  recTimeUs,
  RING_CAPACITY,
  SCALE_METRICS,
  type ScaleCmd,
  type ScaleEvent,
  type ScaleInit,
} from './scale-protocol';

const TYPE = 'rt-scale';
// One HAL thread per process owns every scale's pins. The pigpio one is kept
// for the life of the process once pigpio is loaded in it (worker-host.ts).
const HAL_KEY = 'rt-scale-hal';
const PIGPIO_HAL_KEY = 'rt-scale-hal-pigpio';
const DRAIN_MS = 25;
/** The dialog's check: the longest window, and how long a stopped scale may take to start for it. */
const CHECK_MAX_S = 30;
const CHECK_START_MS = 10_000;

/** What the dialog's check (GET rt-scale/:id/check) answers. */
interface ScaleCheck {
  backend: string;
  /** The window read, s (0: figures since the scale started). */
  windowS: number;
  samples: number;
  /** Samples per second over the window (null for the since-start figures). */
  rate: number | null;
  bad: Record<string, number>;
  latencyMs: { p50: number | null; p99: number | null; max: number | null };
  clockHighMaxUs: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The test hook's simulated chip options of one scale: settings.rtEdgeSim[scale id] (plain JSON), or none. */
function simOptions(all: unknown, id: string): { sim?: Partial<SimChipOptions> } {
  const own = typeof all === 'object' && all !== null ? (all as Record<string, unknown>)[id] : undefined;
  return typeof own === 'object' && own !== null ? { sim: own as Partial<SimChipOptions> } : {};
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    samples: metrics.readerFamily('rtedge_hx711_samples_total', 'Good HX711 samples published', 'counter'),
    bad: metrics.readerFamily('rtedge_hx711_bad_reads_total', 'HX711 reads discarded or flagged (label reason)', 'counter'),
    faults: metrics.readerFamily('rtedge_hx711_faults_total', 'HX711 fault events (a run of bad reads)', 'counter'),
    lost: metrics.readerFamily('rtedge_hx711_samples_lost_total', 'Samples that did not reach the main thread (ring full)', 'counter'),
    missed: metrics.readerFamily('rtedge_hx711_conversions_missed_total', 'Conversions the sampler never read: overwritten before a late read (gaps between the data-ready edges read)', 'counter'),
    weight: metrics.readerFamily('rtedge_hx711_weight_grams', 'Latest filtered weight', 'gauge'),
    noise: metrics.readerFamily('rtedge_hx711_noise_grams', 'Reading noise: sigma of the last second of raw samples', 'gauge'),
    latency: metrics.sharedHistogramFamily('rtedge_hx711_sample_latency_seconds', 'Data-ready edge to sample in the ring (available to the controller)'),
    latP50: metrics.readerFamily('rtedge_hx711_sample_latency_p50_seconds', 'Sample latency p50 since start (within 6.25 %)', 'gauge'),
    latP95: metrics.readerFamily('rtedge_hx711_sample_latency_p95_seconds', 'Sample latency p95 since start (within 6.25 %)', 'gauge'),
    latP99: metrics.readerFamily('rtedge_hx711_sample_latency_p99_seconds', 'Sample latency p99 since start (within 6.25 %)', 'gauge'),
    latMax: metrics.readerFamily('rtedge_hx711_sample_latency_max_seconds', 'Largest sample latency since start', 'gauge'),
    clockHigh: metrics.readerFamily('rtedge_hx711_clock_high_max_seconds', 'Longest PD_SCK high time since start, timed from before the rising edge to after the falling edge (the chip powers down at 60 us)', 'gauge'),
  };
  const store = new CalibrationStore(join(RED.settings.userDir || process.cwd(), 'rtedge-calibration'));
  const testHooks = RED.settings.rtEdgeTestHooks === true;

  // The editor shows the calibration in use (config values or the stored run-time calibration).
  RED.httpAdmin?.get(
    '/rt-scale/:id/calibration',
    needs(RED, 'rt-scale.read'),
    (req: HttpRequest, res: HttpResponse) => {
      const id = req.params?.id ?? '';
      const node = RED.nodes.getNode(id) as ScaleNode | null;
      // asynchronous file reads: the flow engine's thread never waits for the disk
      void (async () => {
        const stored = await store.read(id);
        const body = node
          ? { active: node.calibration(), stored, source: (await store.effective(id, node.config.cal)).stored ? 'stored' : 'config' }
          : { active: null, stored, source: stored ? 'stored' : 'none' };
        res.set('Content-Type', 'application/json').send(JSON.stringify(body));
      })().catch((err: unknown) => res.status(500).send(JSON.stringify({ error: (err as Error).message })));
    },
  );

  // The dialog's "check" button: what npm run hw-check prints, read from the deployed scale over a
  // fresh window (?seconds=1-30, default 10): data rate, bad frames by cause, data-ready-to-read latency
  // p50/p99/max of the samples of the window, the longest clock-high time of the window. A scale that no
  // node uses yet is started for the window. ?seconds=0: the figures since the scale started.
  RED.httpAdmin?.get(
    '/rt-scale/:id/check',
    needs(RED, 'rt-scale.read'),
    (req: HttpRequest, res: HttpResponse) => {
      const node = RED.nodes.getNode(req.params?.id ?? '') as ScaleNode | null;
      const send = (status: number, body: unknown): void => {
        res.status(status).set('Content-Type', 'application/json').send(JSON.stringify(body));
      };
      if (!node) {
        send(404, { error: 'not deployed' });
        return;
      }
      const q = (req as HttpRequest & { query?: Record<string, unknown> }).query ?? {};
      const seconds = q.seconds === undefined ? 10 : Number(q.seconds);
      if (!Number.isInteger(seconds) || seconds < 0 || seconds > CHECK_MAX_S) {
        send(400, { error: RED._(`${TYPE}.errors.checkSeconds`, { max: CHECK_MAX_S }) });
        return;
      }
      void checkScale(node, seconds).then(
        (body) => send(200, body),
        (err: unknown) => send(409, { error: (err as Error).message }),
      );
    },
  );

  async function checkScale(node: ScaleNode, seconds: number): Promise<ScaleCheck> {
    const badKeys = [...BAD_REASONS, 'settling'];
    if (seconds === 0) {
      const m = node.sharedMetrics();
      if (!m) throw new Error(node.startError ?? RED._(`${TYPE}.errors.notReady`));
      const lat = m.histogram('latency').summaryMs();
      return {
        backend: node.config.backend,
        windowS: 0,
        samples: m.counter('samples'),
        rate: null,
        bad: Object.fromEntries(badKeys.map((r) => [r, m.counter(r)])),
        latencyMs: { p50: lat.p50, p99: lat.p99, max: lat.max },
        clockHighMaxUs: m.gauge('clock_high_max_us'),
      };
    }
    // a user of its own for the window: it keeps the scale running (or starts it) and sees every sample
    const latUs: number[] = [];
    let ready!: () => void;
    let failed!: (e: Error) => void;
    const started = new Promise<void>((res, rej) => {
      ready = res;
      failed = rej;
    });
    let window = false;
    const detach = node.attach({
      onSamples: (batch) => {
        if (window) for (const s of batch) latUs.push(s.latUs);
      },
      onNotice: (n) => {
        if (n.t === 'ready') ready();
        else if (n.t === 'error') failed(new Error(n.message));
      },
    });
    try {
      if (node.ready) ready();
      else if (node.startError) failed(new Error(node.startError));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        started,
        new Promise<never>((_r, rej) => {
          timer = setTimeout(() => rej(new Error(node.startError ?? RED._(`${TYPE}.errors.notReady`))), CHECK_START_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      const m = node.sharedMetrics();
      if (!m) throw new Error(node.startError ?? RED._(`${TYPE}.errors.notReady`));
      const before = Object.fromEntries(['samples', ...badKeys].map((k) => [k, m.counter(k)]));
      m.setGauge('clock_high_window_us', 0);
      const t0 = hrNowUs();
      window = true;
      await new Promise((r) => setTimeout(r, seconds * 1000));
      window = false;
      const secs = (hrNowUs() - t0) / 1e6;
      // the worker may have restarted during the window (new counters): report what this window saw
      const m2 = node.sharedMetrics() ?? m;
      const delta = (k: string): number => Math.max(0, m2.counter(k) - (m2 === m ? before[k] : 0));
      latUs.sort((a, b) => a - b);
      const pct = (p: number): number | null => (latUs.length ? latUs[Math.min(latUs.length - 1, Math.floor(p * latUs.length))] / 1000 : null);
      return {
        backend: node.config.backend,
        windowS: Math.round(secs * 10) / 10,
        samples: delta('samples'),
        rate: Math.round((delta('samples') / secs) * 10) / 10,
        bad: Object.fromEntries(badKeys.map((r) => [r, delta(r)])),
        latencyMs: { p50: pct(0.5), p99: pct(0.99), max: latUs.length ? latUs[latUs.length - 1] / 1000 : null },
        clockHighMaxUs: m2.gauge('clock_high_window_us'),
      };
    } finally {
      await detach();
    }
  }

  function ScaleConfigNode(this: Mutable<ScaleNode>, def: ScaleDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = readScale(def);
    node.config = config;
    const labels = { scale: node.id };
    const users = new Set<ScaleUser>();
    let lease: WorkerLease<ScaleEvent, ScaleCmd> | null = null;
    const halKey = config.backend === 'pigpio' ? PIGPIO_HAL_KEY : HAL_KEY;
    let unguard: (() => void) | null = null;
    /** gpiocdev backend: the motor's kernel PWM channel (sysfs directory), once the HAL has opened it. */
    let pwmDir: string | null = null;
    let leaseClosing: Promise<unknown> = Promise.resolve();
    let drainTimer: NodeJS.Timeout | null = null;
    let shared: SharedMetrics | null = null;
    let ring: SpscRing | null = null;
    let lastSeq = 0;
    let lost = 0;
    let latest: DecodedSample | null = null;
    let cal: Calibration = config.cal;
    // the stored run-time calibration (read asynchronously) before the instance starts
    const calLoaded = store.effective(node.id, config.cal).then(
      (e) => {
        cal = e.cal;
      },
      () => undefined,
    );
    node.ready = false;
    node.startError = config.problems.length ? RED._(`${TYPE}.errors.badConfig`, { problems: config.problems.map(t.text).join('; ') }) : null;
    if (node.startError) node.error(node.startError);
    // hrtime -> epoch ms for msg.ts
    const epochOffsetMs = Date.now() - hrNowUs() / 1000;

    const notify = (n: ScaleNotice): void => {
      for (const u of users) u.onNotice?.(n);
    };

    const drain = (): void => {
      if (!ring) return;
      const batch: DecodedSample[] = [];
      ring.drain((r) => {
        const seq = r[REC_SEQ];
        if (lastSeq !== 0 && seq > lastSeq + 1) lost += seq - lastSeq - 1;
        lastSeq = seq;
        const tUs = recTimeUs(r);
        batch.push({ seq, tUs, ts: Math.round(epochOffsetMs + tUs / 1000), raw: r[REC_RAW], filtered: r[REC_FILTERED], cg: r[REC_CG], flags: r[REC_FLAGS], latUs: r[REC_LAT_US] });
      });
      if (batch.length === 0) return;
      latest = batch[batch.length - 1];
      for (const u of users) u.onSamples?.(batch);
    };

    const attachMetrics = (m: SharedMetrics): void => {
      fam.samples.attach(labels, () => m.counter('samples'));
      for (const r of [...BAD_REASONS, 'settling']) fam.bad.attach({ ...labels, reason: r }, () => m.counter(r));
      fam.faults.attach(labels, () => m.counter('faults'));
      fam.lost.attach(labels, () => lost); // a full ring rejects a record: its seq is then missing downstream
      fam.missed.attach(labels, () => m.counter('missed'));
      fam.weight.attach(labels, () => m.gauge('weight_cg') / 100);
      fam.noise.attach(labels, () => m.gauge('noise_ug') / 1e6);
      const h = m.histogram('latency');
      fam.latency.attach(labels, h);
      fam.latP50.attach(labels, () => h.summaryMs().p50 / 1000);
      fam.latP95.attach(labels, () => h.summaryMs().p95 / 1000);
      fam.latP99.attach(labels, () => h.summaryMs().p99 / 1000);
      fam.latMax.attach(labels, () => h.summaryMs().max / 1000);
      fam.clockHigh.attach(labels, () => m.gauge('clock_high_max_us') / 1e6);
    };
    const detachMetrics = (): void => {
      for (const f of [fam.samples, fam.faults, fam.lost, fam.missed, fam.weight, fam.noise, fam.latency, fam.latP50, fam.latP95, fam.latP99, fam.latMax, fam.clockHigh]) f.detach(labels);
      for (const r of [...BAD_REASONS, 'settling']) fam.bad.detach({ ...labels, reason: r });
    };

    const startLease = (): void => {
      shared = SharedMetrics.create(SCALE_METRICS);
      ring = SpscRing.create(RING_CAPACITY, REC_WORDS);
      lastSeq = 0;
      attachMetrics(shared);
      const init: ScaleInit = {
        kind: 'scale',
        scaleId: node.id,
        name: node.name || node.id,
        hal: {
          backend: config.backend,
          doutPin: config.doutPin,
          sckPin: config.sckPin,
          motorPin: config.motorPin,
          motorHz: config.motorHz,
          sps: config.sps,
          heartbeatPin: config.heartbeatPin,
          ...(config.backend === 'gpiocdev' ? { gpioChip: config.gpioChip, doutBias: config.doutBias, pwmChip: config.pwmChip, pwmChannel: config.pwmChannel } : {}),
          // Test hooks (gpiocdev backend): a stand-in of the addon, a temp tree for /sys/class/pwm
          ...(testHooks && typeof RED.settings.rtEdgeGpiocdevModule === 'string' ? { gpiocdevModule: RED.settings.rtEdgeGpiocdevModule } : {}),
          ...(testHooks && typeof RED.settings.rtEdgePwmRoot === 'string' ? { pwmRoot: RED.settings.rtEdgePwmRoot } : {}),
          ...(testHooks && typeof RED.settings.rtEdgePigpioModule === 'string' ? { pigpioModule: RED.settings.rtEdgePigpioModule } : {}),
          ...(testHooks && typeof RED.settings.rtEdgeMotorTrace === 'string' ? { motorTrace: RED.settings.rtEdgeMotorTrace } : {}),
          // Test hook (simulated backend): the chip and material of this scale, e.g. a profile of the dosing envelope
          ...(testHooks && config.backend === 'simulated' ? simOptions(RED.settings.rtEdgeSim, node.id) : {}),
        },
        gain: config.gain,
        cal,
        sampler: config.sampler,
        ring: ring.sab,
        metrics: shared.sab,
        calSamples: config.sps === 80 ? 16 : 4,
        nice: clampInt(RED.settings.rtEdgeHalNice, -20, 0, -10),
        exitAck: exitAckBuffer(),
      };
      lease = new WorkerLease<ScaleEvent, ScaleCmd>({
        script: join(__dirname, 'scale.worker.js'),
        key: halKey,
        init,
        onEvent: (ev) => {
          if (ev.t === 'priority') {
            // Without root or CAP_SYS_NICE the HAL thread competes with every other process at niceness 0:
            // under CPU load (a browser on the same cores) its reads come late and conversions are lost.
            if (ev.nice === null) node.warn(RED._(`${TYPE}.priority-denied`, { nice: ev.asked }));
            else node.log(RED._(`${TYPE}.priority`, { nice: ev.nice }));
            return;
          }
          if (ev.t === 'pigpio') {
            rearmSignals(); // pigpio's C library has just replaced the process's signal handlers
            return;
          }
          if (ev.t === 'motor-pwm') {
            pwmDir = ev.dir; // gpiocdev: this thread can stop the kernel-PWM motor itself
            return;
          }
          if (ev.t === 'failed') {
            node.ready = false;
            node.startError = `${RED._(`${TYPE}.errors.failed`)}: ${t.text(ev.error)}`;
            node.error(node.startError);
            notify({ t: 'error', message: node.startError });
            return;
          }
          if (ev.t === 'calibration') {
            cal = ev.cal;
            init.cal = ev.cal; // a worker restart keeps the new calibration
            // asynchronous, atomic and durable (calibration-store.ts); writes are serialised
            store.write(node.id, ev.cal, config.cal, ev.how).catch((err: unknown) => node.error(RED._(`${TYPE}.errors.store`, { error: (err as Error).message })));
          }
          notify(ev);
        },
        onError: (err) => {
          if (pwmDir) void pwmOff(pwmDir); // the HAL thread died or failed: its kernel-PWM motor is stopped from here
          node.startError = `${RED._(`${TYPE}.errors.start`)}: ${t.errorText(err)}`;
          node.error(node.startError);
          notify({ t: 'error', message: node.startError });
        },
        onReady: () => {
          node.ready = true;
          node.startError = null;
          notify({ t: 'ready' });
        },
      });
      lease.start();
      const l = lease;
      // gpiocdev: the exit path also writes the kernel PWM off from this thread, whatever the HAL thread does
      unguard = guardExit({ allOff: () => l.post({ t: 'all-off' }), kernelPwm: () => pwmDir });
      drainTimer = setInterval(drain, DRAIN_MS);
    };

    const stopLease = (): Promise<unknown> => {
      if (!lease) return leaseClosing;
      const l = lease;
      lease = null;
      node.ready = false;
      unguard?.();
      unguard = null;
      pwmDir = null;
      if (drainTimer) clearInterval(drainTimer);
      drainTimer = null;
      leaseClosing = l.close(3000).then(
        () => {
          drain();
          detachMetrics();
          ring = null;
        },
        () => detachMetrics(),
      );
      return leaseClosing;
    };

    node.attach = (user: ScaleUser) => {
      users.add(user);
      if (config.problems.length === 0 && !lease) {
        // a previous instance may still be closing: start after it has released the pins
        void Promise.all([leaseClosing, calLoaded]).then(() => {
          if (users.size > 0 && !lease) startLease();
        });
      } else if (node.ready) user.onNotice?.({ t: 'ready' });
      else if (node.startError) user.onNotice?.({ t: 'error', message: node.startError });
      return () => {
        users.delete(user);
        return users.size === 0 ? stopLease().then(() => undefined) : Promise.resolve();
      };
    };
    node.request = <T>(cmd: ScaleCmd, timeoutMs = 5000): Promise<T> => {
      if (!lease || !node.ready) return Promise.reject(new Error(node.startError ?? RED._(`${TYPE}.errors.notReady`)));
      // errors of the worker (and of the lease) come as codes: worded here, from this node's catalog
      return lease.request<T>(cmd, timeoutMs).catch((err: unknown) => Promise.reject(t.error(err)));
    };
    node.attachConsumer = <Cmd, Ev>(o: ConsumerOptions<Ev>): ConsumerLink<Cmd> => {
      const attach: ConsumerAttach = { kind: 'consumer', scaleId: node.id, module: o.module, init: o.init };
      // a dead kept HAL (worker-dead) is worded here: the consumer's catalog does not know it
      const onError = (err: Error): void => o.onError((err as { code?: string }).code === 'worker-dead' ? new Error(t.errorText(err)) : err);
      const l = new WorkerLease<Ev, Cmd>({ script: join(__dirname, 'scale.worker.js'), key: halKey, init: attach, onEvent: o.onEvent, onError, onReady: o.onReady });
      l.start();
      return {
        request: <T>(cmd: Cmd, timeoutMs = 5000) => l.request<T>(cmd, timeoutMs),
        close: (timeoutMs = 3000) => l.close(timeoutMs).then(() => undefined),
      };
    };
    node.calibration = () => cal;
    node.latest = () => latest;
    node.sharedMetrics = () => shared;
    node.store = store;

    node.on('close', (_removed: boolean, done: () => void) => {
      users.clear();
      // a calibration just made is on disk before the scale is gone
      stopLease()
        .then(
          () => store.idle(),
          () => store.idle(),
        )
        .then(
          () => done(),
          () => done(),
        );
    });
  }

  RED.nodes.registerType(TYPE, ScaleConfigNode as never);
};
