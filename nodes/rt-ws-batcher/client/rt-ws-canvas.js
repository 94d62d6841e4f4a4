// rt-ws-canvas.js: a canvas renderer for numeric series from rt-ws-batcher
// (or anything else that pushes points). Plain ES module, no dependency, no
// DOM access at import time.
//
// - one fixed ring of points per topic (typed arrays, allocated once when the
//   topic first appears; a bounded number of topics), so the steady state
//   allocates nothing per point and never grows;
// - push() only copies points into the rings and asks for an animation frame;
//   the drawing happens at most once per requestAnimationFrame, whatever
//   arrived in between;
// - x is time (the newest point at the right edge, `windowMs` wide), y scales
//   to the visible points (or fixed yMin/yMax).
//
// Usage:
//   import { SeriesCanvas } from '/live/rt-ws-canvas.js';
//   const r = new SeriesCanvas(canvasElement, { windowMs: 20000 });
//   client.on('batch', (b) => r.pushBatch(b)); client.on('snapshot', (b) => r.pushBatch(b));
//   client.on('gap', () => r.breakLines());

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

const DEFAULT_COLORS = ['#0095FF', '#FF7F0E', '#2CA02C', '#D62728', '#A347E1', '#8C564B', '#E377C2', '#7F7F7F'];

/**
 * A fixed-capacity ring of (time, value) points.
 */
export class PointRing {
  /** @param {number} capacity */
  constructor(capacity) {
    this.capacity = capacity;
    this.t = new Float64Array(capacity);
    this.v = new Float64Array(capacity);
    /** next write index */
    this.head = 0;
    /** points held (<= capacity) */
    this.size = 0;
    /** points ever pushed */
    this.total = 0;
  }

  /** @param {number} t @param {number} v */
  push(t, v) {
    this.t[this.head] = t;
    this.v[this.head] = v;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    if (this.size < this.capacity) this.size++;
    this.total++;
  }

  /** Index (into t/v) of the i-th oldest point held. @param {number} i */
  at(i) {
    const j = this.head - this.size + i;
    return j < 0 ? j + this.capacity : j;
  }

  newestT() {
    return this.size ? this.t[this.at(this.size - 1)] : NaN;
  }

  clear() {
    this.head = 0;
    this.size = 0;
  }
}

/**
 * Draws numeric series on a canvas, at most once per animation frame.
 */
export class SeriesCanvas {
  /**
   * @param {any} canvas an HTMLCanvasElement (or anything with getContext('2d'), width, height)
   * @param {object} [o]
   * @param {number} [o.capacity]  points kept per topic (default 4096)
   * @param {number} [o.windowMs]  visible time span (default 20000: 1600 points at 80 SPS)
   * @param {number} [o.maxTopics] topics drawn; points of further topics are counted and ignored (default 8)
   * @param {string[]} [o.topics]  only these topics (default: any, first come first served)
   * @param {number} [o.yMin]      fixed y range (default: fit the visible points)
   * @param {number} [o.yMax]
   * @param {string} [o.unit]      shown after the y labels
   * @param {string[]} [o.colors]
   * @param {number} [o.lineWidth] CSS pixels (default 1.5)
   * @param {(item: {topic: string, payload: unknown, ts: number}) => number} [o.pointValue] numeric value of a JSON item (default: the payload when it is a number)
   * @param {(cb: FrameRequestCallback) => number} [o.requestAnimationFrame]
   * @param {(id: number) => void} [o.cancelAnimationFrame]
   * @param {number} [o.devicePixelRatio]
   */
  constructor(canvas, o = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.capacity = Math.max(2, Math.floor(o.capacity ?? 4096));
    this.windowMs = o.windowMs ?? 20000;
    this.maxTopics = o.maxTopics ?? 8;
    this.only = o.topics ? new Set(o.topics) : null;
    this.yMin = o.yMin;
    this.yMax = o.yMax;
    this.unit = o.unit ?? '';
    this.colors = o.colors ?? DEFAULT_COLORS;
    this.lineWidth = o.lineWidth ?? 1.5;
    this.pointValue = o.pointValue ?? ((it) => (typeof it.payload === 'number' ? it.payload : NaN));
    const g = /** @type {any} */ (globalThis);
    this.raf = o.requestAnimationFrame ?? (g.requestAnimationFrame ? g.requestAnimationFrame.bind(g) : (cb) => setTimeout(() => cb(Date.now()), 16));
    this.caf = o.cancelAnimationFrame ?? (g.cancelAnimationFrame ? g.cancelAnimationFrame.bind(g) : clearTimeout);
    this.dpr = o.devicePixelRatio;
    /** @type {Map<string, PointRing>} */
    this.series = new Map();
    /** @type {string[]} topic order (legend, colours) */
    this.order = [];
    this.rafId = 0;
    this.dirty = false;
    this.destroyed = false;
    this.stats = {
      draws: 0, // frames drawn
      pushes: 0, // pushBatch/push calls
      points: 0, // points taken into rings
      ignoredPoints: 0, // points of topics over maxTopics or filtered out
      visiblePoints: 0, // points drawn in the last frame (all topics)
      drawMs: 0, // time spent in draw(), total
      drawMsMax: 0, // the longest draw()
    };
    this.frame = () => {
      this.rafId = 0;
      if (this.destroyed || !this.dirty) return;
      this.dirty = false;
      const t0 = now();
      this.draw();
      const dt = now() - t0;
      this.stats.drawMs += dt;
      if (dt > this.stats.drawMsMax) this.stats.drawMsMax = dt;
    };
    // The canvas's CSS size, kept by a ResizeObserver: reading clientWidth in
    // every frame would force a synchronous layout of the whole page.
    this.cssW = 0;
    this.cssH = 0;
    this.resizeObserver = null;
    const RO = /** @type {any} */ (globalThis).ResizeObserver;
    if (typeof RO === 'function' && typeof canvas.getBoundingClientRect === 'function') {
      const r = canvas.getBoundingClientRect();
      this.cssW = r.width;
      this.cssH = r.height;
      this.resizeObserver = new RO((/** @type {any[]} */ entries) => {
        const e = entries[entries.length - 1];
        this.cssW = e.contentRect.width;
        this.cssH = e.contentRect.height;
        this.invalidate();
      });
      this.resizeObserver.observe(canvas);
    }
    // Bound once: pushBatch hands this to forEachPoint-style loops with no closure per call.
    this.addPoint = (/** @type {string} */ topic, /** @type {number} */ t, /** @type {number} */ v) => this.push(topic, t, v);
  }

  /** @param {string} topic @returns {PointRing|null} */
  ring(topic) {
    let r = this.series.get(topic);
    if (r) return r;
    if (this.only && !this.only.has(topic)) return null;
    if (this.series.size >= this.maxTopics) return null;
    r = new PointRing(this.capacity);
    this.series.set(topic, r);
    this.order.push(topic);
    return r;
  }

  /**
   * One point. Asks for a frame; draws nothing now.
   * @param {string} topic @param {number} t @param {number} v
   */
  push(topic, t, v) {
    const r = this.ring(topic);
    if (!r) {
      this.stats.ignoredPoints++;
      return;
    }
    r.push(t, v);
    this.stats.points++;
    this.invalidate();
  }

  /**
   * Every numeric point of a decoded batch or snapshot from rt-ws-client
   * (JSON items through `pointValue`, binary columns as they are).
   * @param {import('./rt-ws-client.js').Batch} b
   */
  pushBatch(b) {
    this.stats.pushes++;
    if (b.items) {
      const items = b.items;
      for (let i = 0; i < items.length; i++) {
        const it = items[i];
        const v = this.pointValue(it);
        if (typeof v === 'number' && Number.isFinite(v)) this.push(String(it.topic ?? ''), it.ts, v);
      }
    } else if (b.topics && b.topicIndex && b.times && b.values) {
      const { topics, topicIndex, times, values } = b;
      for (let i = 0; i < b.pointCount; i++) this.push(topics[topicIndex[i]], times[i], values[i]);
    }
  }

  /** A break in every line (after a gap: no line across missing data). */
  breakLines() {
    for (const r of this.series.values()) if (r.size) r.push(r.newestT(), NaN);
    this.invalidate();
  }

  clear() {
    for (const r of this.series.values()) r.clear();
    this.invalidate();
  }

  invalidate() {
    this.dirty = true;
    if (!this.rafId && !this.destroyed) this.rafId = this.raf(this.frame);
  }

  /** Draws now (normally called from the animation frame). */
  draw() {
    const c = this.canvas;
    const ctx = this.ctx;
    const dpr = this.dpr ?? (/** @type {any} */ (globalThis).devicePixelRatio || 1);
    const cssW = (this.resizeObserver ? this.cssW : c.clientWidth) || c.width / dpr;
    const cssH = (this.resizeObserver ? this.cssH : c.clientHeight) || c.height / dpr;
    const w = Math.max(1, Math.round(cssW * dpr));
    const h = Math.max(1, Math.round(cssH * dpr));
    if (c.width !== w) c.width = w;
    if (c.height !== h) c.height = h;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    this.stats.draws++;

    // the right edge: the newest point of any topic
    let tEnd = -Infinity;
    for (const r of this.series.values()) {
      const t = r.newestT();
      if (t > tEnd) tEnd = t;
    }
    if (!Number.isFinite(tEnd)) {
      this.stats.visiblePoints = 0;
      return;
    }
    const tStart = tEnd - this.windowMs;

    // y range over the visible points
    let lo = Infinity;
    let hi = -Infinity;
    let visible = 0;
    for (const r of this.series.values()) {
      for (let i = r.size - 1; i >= 0; i--) {
        const j = r.at(i);
        if (r.t[j] < tStart) break;
        const v = r.v[j];
        if (v !== v) continue; // NaN: a line break
        visible++;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    this.stats.visiblePoints = visible;
    if (this.yMin !== undefined) lo = this.yMin;
    if (this.yMax !== undefined) hi = this.yMax;
    if (!(hi > lo)) {
      const mid = Number.isFinite(lo) ? lo : 0;
      lo = mid - 1;
      hi = mid + 1;
    }
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;

    const left = 48;
    const right = 6;
    const top = 6;
    const bottom = 6;
    const pw = Math.max(1, cssW - left - right);
    const ph = Math.max(1, cssH - top - bottom);
    const sx = pw / this.windowMs;
    const sy = ph / (hi - lo);

    // axes and labels
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#e5e5e5';
    ctx.beginPath();
    for (let k = 0; k <= 4; k++) {
      const y = top + (ph * k) / 4;
      ctx.moveTo(left, y);
      ctx.lineTo(left + pw, y);
    }
    ctx.stroke();
    ctx.fillStyle = '#666';
    ctx.font = '11px sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const digits = hi - lo < 10 ? 2 : hi - lo < 100 ? 1 : 0;
    for (let k = 0; k <= 4; k++) {
      ctx.fillText((hi - ((hi - lo) * k) / 4).toFixed(digits) + this.unit, left - 4, top + (ph * k) / 4);
    }

    // the lines
    ctx.lineWidth = this.lineWidth;
    // Miter joins (limit 2: sharp noise turns into bevels) rasterise several times
    // faster than round ones in Chromium's software canvas.
    ctx.lineJoin = 'miter';
    ctx.miterLimit = 2;
    let n = 0;
    for (let s = 0; s < this.order.length; s++) {
      const r = /** @type {PointRing} */ (this.series.get(this.order[s]));
      ctx.strokeStyle = this.colors[s % this.colors.length];
      ctx.beginPath();
      let pen = false;
      // first visible point
      let i0 = r.size;
      while (i0 > 0 && r.t[r.at(i0 - 1)] >= tStart) i0--;
      for (let i = i0; i < r.size; i++) {
        const j = r.at(i);
        const v = r.v[j];
        if (v !== v) {
          pen = false;
          continue;
        }
        const x = left + (r.t[j] - tStart) * sx;
        const y = top + (hi - v) * sy;
        if (pen) ctx.lineTo(x, y);
        else {
          ctx.moveTo(x, y);
          pen = true;
        }
        n++;
      }
      ctx.stroke();
    }
    this.stats.visiblePoints = n;
  }

  /** Stops drawing and drops the rings. */
  destroy() {
    this.destroyed = true;
    if (this.resizeObserver) this.resizeObserver.disconnect();
    this.resizeObserver = null;
    if (this.rafId) this.caf(this.rafId);
    this.rafId = 0;
    this.series.clear();
    this.order.length = 0;
  }
}
