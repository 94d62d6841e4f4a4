// Where GET /metrics is served, as the user chose in settings.js, and how it
// stays out of the way of another module that serves the same path (an
// exporter such as node-red-contrib-prometheus-exporter mounts its own
// `RED.httpNode.get('/metrics', ...)`, or a flow's http-in node does).
//
// Settings (both optional):
// - rtEdgeMetricsPath: the path under httpNodeRoot (default '/metrics'), or
//   false to not serve the metrics at all. A bad value is logged and the
//   nearest sensible path is used; it never stops the runtime.
// - rtEdgeMetricsAdmin: true to also serve it under httpAdminRoot, behind
//   adminAuth (it is always served there when httpNodeRoot is false).
//
// Clashes are checked on both sides of the load order: when we mount, an
// existing GET route for the same path means we do not mount there (and say
// so); when a request reaches our handler, a GET route for the same path
// mounted by someone else after us means we pass the request on with next(),
// so theirs answers (and we say so, once per episode).
import type { RedSettings } from './red-types';

export const DEFAULT_METRICS_PATH = '/metrics';

export interface MetricsEndpoint {
  /** The path under httpNodeRoot/httpAdminRoot, or false: not served. */
  path: string | false;
  /** Serve it on the HTTP node server (httpNodeRoot). */
  onNode: boolean;
  /** Serve it under httpAdminRoot, behind adminAuth. */
  onAdmin: boolean;
  /** What was wrong with the settings (one line each, for the log). */
  warnings: string[];
}

/** One path segment: unreserved URL characters only (no route patterns such as :x, *, (, ?, +). */
const SEGMENT = /^[A-Za-z0-9._~-]+$/;

function checkPath(p: string): string | null {
  const trimmed = p.trim();
  if (!trimmed.startsWith('/')) return null;
  const segs = trimmed.replace(/\/+$/, '').split('/').slice(1);
  if (segs.length === 0) return null; // '/' alone would take the whole root
  if (!segs.every((s) => SEGMENT.test(s) && !/^\.+$/.test(s))) return null;
  return '/' + segs.join('/');
}

/** A settings value as the log shows it: JSON where it can be, short, never a throw (a BigInt, a cycle). */
function show(v: unknown): string {
  let s: string;
  if (typeof v === 'function') s = 'a function';
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Reads and validates rtEdgeMetricsPath / rtEdgeMetricsAdmin / httpNodeRoot. Never throws. */
export function metricsEndpoint(settings: RedSettings | undefined): MetricsEndpoint {
  const warnings: string[] = [];
  const raw = settings?.rtEdgeMetricsPath;
  const rawAdmin = settings?.rtEdgeMetricsAdmin;
  let path: string | false = DEFAULT_METRICS_PATH;
  const how = "rtEdgeMetricsPath must be a path such as '/metrics' or '/rtedge/metrics' (letters, digits, . _ ~ -), or false to turn the metrics endpoint off";
  if (raw === false) path = false;
  else if (raw === undefined || raw === null || raw === true) path = DEFAULT_METRICS_PATH;
  else if (typeof raw === 'string' && /^\s*(false|off|no|none|disabled?)\s*$/i.test(raw)) {
    // a word meaning "off" (e.g. from an environment variable), not a path /off
    path = false;
    warnings.push(`rtEdgeMetricsPath ${show(raw)} is a string: taken as false (metrics endpoint off); write rtEdgeMetricsPath: false`);
  } else if (typeof raw === 'string') {
    const ok = checkPath(raw);
    const slashed = ok ?? (raw.trim() && !raw.trim().startsWith('/') ? checkPath('/' + raw.trim()) : null);
    if (ok) path = ok;
    else if (slashed) {
      path = slashed;
      warnings.push(`rtEdgeMetricsPath ${show(raw)} does not start with '/': serving the metrics at ${slashed}`);
    } else {
      warnings.push(`rtEdgeMetricsPath ${show(raw)} is not valid: ${how}; serving the metrics at ${DEFAULT_METRICS_PATH}`);
    }
  } else {
    warnings.push(`rtEdgeMetricsPath ${show(raw)} is not valid: ${how}; serving the metrics at ${DEFAULT_METRICS_PATH}`);
  }
  let admin = false;
  if (rawAdmin === true || rawAdmin === false || rawAdmin === undefined || rawAdmin === null) admin = rawAdmin === true;
  else warnings.push(`rtEdgeMetricsAdmin ${show(rawAdmin)} is not true or false: taken as false (not served under httpAdminRoot)`);
  const nodeServerOff = settings?.httpNodeRoot === false;
  if (path === false) return { path, onNode: false, onAdmin: false, warnings };
  return { path, onNode: !nodeServerOff, onAdmin: nodeServerOff || admin, warnings };
}

// ---- the express router, read (never changed) ------------------------------

type Handler = (...a: never[]) => unknown;
interface RouteLayer {
  route?: { path?: unknown; methods?: Record<string, boolean>; stack?: Array<{ handle?: unknown }> };
}

/** The layers of an express app's router (express 4: app._router; express 5: app.router). */
function routerStack(app: object): RouteLayer[] {
  const a = app as { _router?: { stack?: RouteLayer[] }; router?: { stack?: RouteLayer[] } };
  if (Array.isArray(a._router?.stack)) return a._router.stack;
  try {
    // express 4 throws on app.router ("removed"); express 5 has it
    const r = a.router;
    if (r && Array.isArray(r.stack)) return r.stack;
  } catch {
    /* express 4 without routes yet */
  }
  return [];
}

const norm = (p: string): string => p.toLowerCase().replace(/\/+$/, '') || '/';

function routeServes(routePath: unknown, path: string): boolean {
  if (typeof routePath === 'string') return norm(routePath) === norm(path);
  if (Array.isArray(routePath)) return routePath.some((p) => routeServes(p, path));
  return false;
}

/**
 * Whether a GET route for `path` on `app` belongs to someone else: a route
 * whose handlers include none of `ours`. Only exact routes count (a catch-all
 * middleware or a '/:param' pattern is not "another exporter"). With
 * `afterOurs`, only routes mounted after ours count: express runs routes in
 * mount order, so one mounted before ours has already answered or declined.
 */
export function otherGetRoute(app: object | undefined, path: string, ours: ReadonlySet<Handler>, afterOurs = false): boolean {
  if (!app) return false;
  let seenOurs = !afterOurs;
  for (const layer of routerStack(app)) {
    const r = layer.route;
    if (!r || !(r.methods?.get || r.methods?._all)) continue;
    if (!routeServes(r.path, path)) continue;
    if (r.stack?.some((l) => ours.has(l.handle as Handler))) {
      seenOurs = true;
      continue;
    }
    if (seenOurs) return true;
  }
  return false;
}
