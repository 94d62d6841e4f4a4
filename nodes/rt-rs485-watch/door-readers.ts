// The two ways of reading a door over a shared RS485 port, as plain classes
// that report observations (state + reason) and frame outcomes through
// callbacks: PollReader (Modbus RTU requests at a fixed rate through the
// port's transaction queue) and PassiveReader (frames the controller pushes).
// No Node-RED import: the adapter turns observations into the watch value,
// context, messages and status. Reasons are coded (WATCH_REASONS) or a
// verbatim error of the port; the adapter words them.
import { isCoded, type Msg } from '../shared/coded';
import { FairTimer } from '../shared/fair-timer';
import { type LinkState, type LinkUser, TIMEOUT_GRACE_MS, type Transaction } from '../rt-rs485-port/port-link';
import { encodeRequest, type FrameResult, inputValue, type ReadRequest, ResponseReader } from './modbus-core';
import { type FrameMapping, Framer, type FramerOptions, mapFrame } from './passive-core';
import { type DoorState, mapValue, reason, type RegisterMapping, StallGuard } from './watch-core';

/** What a reader needs from rt-rs485-port. */
export interface Bus {
  register(u: LinkUser): void;
  deregister(u: LinkUser): void;
  request(tx: Transaction): Msg | null;
}

export interface ReaderSink {
  observe(state: DoorState, reason?: Msg): void;
  frame(result: FrameResult, n?: number): void;
  link(state: LinkState, error?: Msg): void;
}

const mono = (): number => performance.now();

/**
 * The grace of a stall or silence timer that fired late (event loop held up): longer than a request's
 * own (TIMEOUT_GRACE_MS), so an answer read in that time ends its request before the state is judged.
 */
const LATE_GRACE_MS = 2 * TIMEOUT_GRACE_MS;

export interface PollOptions extends RegisterMapping {
  request: ReadRequest;
  intervalMs: number;
  timeoutMs: number;
  stallMs: number;
}

export class PollReader implements LinkUser {
  private timer: NodeJS.Timeout | null = null;
  private readonly stallTimer = new FairTimer(LATE_GRACE_MS);
  private inFlight = false;
  private owed = false;
  private nextAt = 0;
  private readonly frame: Buffer;
  private readonly guard: StallGuard;
  private stopped = false;
  private linkUp = false;
  polls = 0;
  skipped = 0;

  constructor(
    private readonly bus: Bus,
    private readonly opt: PollOptions,
    private readonly sink: ReaderSink,
  ) {
    this.frame = encodeRequest(opt.request);
    this.guard = new StallGuard(opt.stallMs);
  }

  start(): void {
    this.bus.register(this);
  }

  onLink(state: LinkState, error?: Msg): void {
    if (this.stopped) return;
    this.sink.link(state, error);
    if (state === 'open') {
      if (!this.linkUp) {
        this.linkUp = true;
        this.nextAt = mono();
        this.schedule();
      }
      return;
    }
    this.linkUp = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clearStall();
    this.guard.good(); // a fresh stretch once the port is back
    if (state === 'down') this.sink.observe('unknown', reason('port-unavailable', { error: error ?? reason('unknown-error') }));
  }

  /** Poll now (msg.refresh), unless a request is already in flight. */
  pollNow(): void {
    if (!this.stopped && this.linkUp && !this.inFlight) this.poll();
  }

  private schedule(): void {
    if (this.stopped || !this.linkUp) return;
    const now = mono();
    // fixed rate: skip missed slots instead of bunching them up
    if (this.nextAt <= now) this.nextAt += Math.ceil((now - this.nextAt + 0.001) / this.opt.intervalMs) * this.opt.intervalMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.inFlight) {
        // a slow answer holds the bus: poll again as soon as it is in, instead of a slot later
        this.skipped++;
        this.owed = true;
      } else this.poll();
      // the next slot (a timer may fire a fraction of a ms early: never serve a slot twice)
      this.nextAt += this.opt.intervalMs;
      this.schedule();
    }, Math.max(0, this.nextAt - now));
  }

  private poll(): void {
    const reader = new ResponseReader(this.opt.request);
    const req = this.opt.request;
    let answer: { state: DoorState; reason?: Msg } | null = null;
    let exception: Msg | null = null;
    const handle = (evs: ReturnType<ResponseReader['push']>): void => {
      for (const e of evs) {
        if (e.result === 'garbage') this.sink.frame('garbage');
        else this.sink.frame(e.result);
        if (e.result === 'ok') answer = mapValue(inputValue(req.fn, e.data), this.opt);
        else if (e.result === 'exception') exception = e.reason;
      }
    };
    let failure: Msg | null = null;
    const tx: Transaction = {
      bytes: this.frame,
      timeoutMs: this.opt.timeoutMs,
      onData: (chunk) => {
        const evs = reader.push(chunk);
        handle(evs);
        if (evs.some((e) => e.result === 'bad_crc')) failure = reason('bad-crc');
        return reader.done;
      },
      onEnd: (outcome, error) => {
        this.inFlight = false;
        if (this.stopped) return;
        if (outcome === 'timeout') {
          handle(reader.timeout());
          this.sink.frame('timeout');
          failure ||= reason('no-answer-within', { ms: this.opt.timeoutMs });
        } else if (outcome === 'error') {
          // A verbatim error (the serial port's own message) still gets a code flows can switch on.
          failure = error === undefined ? reason('request-failed') : isCoded(error) ? error : reason('request-error', { error });
        }
        const now = mono();
        if (answer) {
          this.guard.good();
          this.clearStall();
          this.sink.observe(answer.state, answer.reason);
        } else if (exception) {
          // the controller answered that it cannot read the input: unknown now
          this.guard.bad(now, exception);
          this.sink.observe('unknown', exception);
        } else {
          const r = this.guard.bad(now, failure || reason('no-answer'));
          if (r) this.sink.observe('unknown', r);
        }
        // a skipped slot is made up at once after an answer (not after a timeout: no hammering a dead bus)
        if (this.owed && outcome === 'done' && this.linkUp) {
          this.owed = false;
          this.poll();
        } else this.owed = false;
      },
    };
    const now = mono();
    this.inFlight = true;
    this.polls++;
    if (this.guard.sent(now)) this.armStall();
    const refused = this.bus.request(tx);
    if (refused !== null) {
      this.inFlight = false;
      const r = this.guard.bad(now, refused);
      if (r) this.sink.observe('unknown', r);
    }
  }

  private armStall(): void {
    this.clearStall();
    const wait = this.guard.dueIn(mono());
    if (wait < 0) return;
    this.stallTimer.start(wait + 1, () => {
      if (this.stopped) return;
      const r = this.guard.check(mono());
      if (r) this.sink.observe('unknown', r);
    });
  }

  private clearStall(): void {
    this.stallTimer.stop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clearStall();
    this.bus.deregister(this);
  }
}

export interface PassiveOptions {
  framer: FramerOptions;
  mapping: FrameMapping;
  /** no valid frame for this long -> unknown; 0: off (a controller that only reports changes) */
  silenceMs: number;
}

export class PassiveReader implements LinkUser {
  private readonly framer: Framer;
  private gapTimer: NodeJS.Timeout | null = null;
  private readonly silenceTimer = new FairTimer(LATE_GRACE_MS);
  private stopped = false;
  frames = 0;

  constructor(
    private readonly bus: Bus,
    private readonly opt: PassiveOptions,
    private readonly sink: ReaderSink,
  ) {
    this.framer = new Framer(opt.framer);
  }

  start(): void {
    this.bus.register(this);
  }

  onLink(state: LinkState, error?: Msg): void {
    if (this.stopped) return;
    this.sink.link(state, error);
    if (state === 'open') {
      this.framer.reset();
      this.armSilence();
    } else {
      this.clearTimers();
      if (state === 'down') this.sink.observe('unknown', reason('port-unavailable', { error: error ?? reason('unknown-error') }));
    }
  }

  onData(chunk: Buffer, at: number): void {
    if (this.stopped) return;
    this.handle(this.framer.push(chunk, at));
    if (this.opt.framer.mode === 'timeout') this.armGap();
  }

  private handle(evs: ReturnType<Framer['push']>): void {
    for (const e of evs) {
      if ('garbage' in e) {
        this.sink.frame('garbage');
        continue;
      }
      const s = mapFrame(e.frame, this.opt.mapping);
      if (s === null) {
        this.sink.frame('garbage');
        continue;
      }
      this.frames++;
      this.sink.frame('ok');
      this.armSilence();
      this.sink.observe(s);
    }
  }

  private armGap(): void {
    if (this.gapTimer) return;
    const due = this.framer.dueIn(mono());
    if (due < 0) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      if (this.stopped) return;
      this.handle(this.framer.tick(mono()));
      if (this.framer.pending > 0) this.armGap();
    }, Math.ceil(due));
  }

  private armSilence(): void {
    if (this.opt.silenceMs <= 0) return;
    this.silenceTimer.start(this.opt.silenceMs, () => {
      if (!this.stopped) this.sink.observe('unknown', reason('no-frame-for', { ms: this.opt.silenceMs }));
    });
  }

  private clearTimers(): void {
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.silenceTimer.stop();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.bus.deregister(this);
  }
}
