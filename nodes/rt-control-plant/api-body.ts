// A JSON body reader for an HTTP API served by `http in` nodes, to register in
// settings.js as Node-RED's `httpNodeMiddleware` (and `httpAdminMiddleware`
// when the editor shares the API's root), loaded from this package's
// dist/nodes/rt-control-plant/api-body.js (the README's "Bodies that are not
// JSON" shows the settings.js lines):
//
//   httpNodeMiddleware: apiJsonBody({ prefix: '/api/', limit: 1024 }),
//
// Why: the core `http in` node parses a POST body with body-parser after the
// middleware, and its route error handler answers any parser error with a bare
// 500 (Node-RED 4.1 and 5 alike), so a malformed JSON body got a 500, an HTML
// one at that. For a write (POST/PUT/PATCH) under `prefix` this reads the body
// itself, with a byte limit, and answers what the client did wrong as JSON:
//   - not valid JSON                     -> 400 {error:'bad-json', field:'body', allowed, detail}
//   - more than `limit` bytes            -> 413 {error:'too-large', field:'body', limit}
//   - a body that is not application/json (or +json) -> 415 {error:'unsupported-media-type', field:'content-type', allowed, got}
// A parsed body is left in req.body with req._body set, which body-parser and
// Node-RED's raw body parser take as "already parsed" (body-parser 1.20 in
// both Node-RED 4.1 and 5). A write without a body, reads and every path
// outside `prefix` go on untouched. Schema checks stay with the node
// (rt-control-plant answers 400 naming the field).
//
// Plain Node: no Node-RED or express import, so settings.js can load it before
// the runtime starts.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface ApiBodyOptions {
  /** Paths (relative to httpNodeRoot) whose writes are read here. Default '/api/'. */
  prefix?: string;
  /** The largest body accepted, in bytes. Default 1024 (rt-control-plant's default maxBody). */
  limit?: number;
}

interface Req extends IncomingMessage {
  path?: string;
  body?: unknown;
  _body?: boolean;
}

type Next = (err?: unknown) => void;

const WRITES = new Set(['POST', 'PUT', 'PATCH']);
const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

/** True for application/json and any application/*+json, whatever the parameters. */
export function isJsonType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const semi = contentType.indexOf(';');
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return t === 'application/json' || (t.startsWith('application/') && t.endsWith('+json'));
}

function answer(res: ServerResponse, status: number, body: object): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  // A refused body is still read to its end (req.resume(), or data ignored past the limit), so a keep-alive
  // connection stays usable for the client's next request.
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The middleware (req, res, next) for settings.js's httpNodeMiddleware / httpAdminMiddleware. */
export function apiJsonBody(o: ApiBodyOptions = {}): (req: Req, res: ServerResponse, next: Next) => void {
  const prefix = o.prefix ?? '/api/';
  const limit = o.limit ?? 1024;
  const tooLarge = { error: 'too-large', field: 'body', limit };
  return function apiJsonBodyMiddleware(req: Req, res: ServerResponse, next: Next): void {
    if (req._body || !WRITES.has(req.method ?? '')) return next();
    const path = req.path ?? (req.url ?? '').split('?')[0];
    if (!path.startsWith(prefix)) return next();
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    // No body at all (a log toggle): nothing to read.
    if (te === undefined && (cl === undefined || cl === '0')) return next();
    const ct = req.headers['content-type'];
    if (!isJsonType(ct)) {
      answer(res, 415, { error: 'unsupported-media-type', field: 'content-type', allowed: 'application/json', got: ct ?? null });
      req.resume();
      return;
    }
    if (cl !== undefined && Number(cl) > limit) {
      answer(res, 413, tooLarge);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const onData = (c: Buffer): void => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        answer(res, 413, tooLarge);
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      cleanup();
      if (over) return;
      let text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)).toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a UTF-8 byte order mark, as body-parser drops it
      if (text.trim() === '') {
        req.body = {};
        req._body = true;
        next();
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(text) as unknown;
      } catch (e) {
        answer(res, 400, { error: 'bad-json', field: 'body', allowed: 'a JSON object', detail: (e as Error).message });
        return;
      }
      req.body = body;
      req._body = true;
      next();
    };
    const onError = (err: Error): void => {
      cleanup();
      // Already answered (413) and the client went away while the rest was drained: nothing more to say.
      if (over || res.headersSent) return;
      // The client went away mid-body: nothing to answer; the core error handler ends the request.
      next(err);
    };
    const cleanup = (): void => {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  };
}
