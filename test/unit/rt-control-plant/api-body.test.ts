// apiJsonBody (nodes/rt-control-plant/api-body.ts) on a real node:http server
// with real requests: what it answers itself, what it leaves to the route. The
// same middleware in a real Node-RED is covered by test/flows/control-api.test.ts.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { apiJsonBody, isJsonType } from '../../../nodes/rt-control-plant/api-body';

type Req = IncomingMessage & { body?: unknown; _body?: boolean };

describe('rt-control-plant apiJsonBody (settings.js httpNodeMiddleware)', () => {
  let server: Server;
  let port: number;
  // what reached the "route" after the middleware
  let seen: Array<{ path: string; body: unknown; parsed: boolean; rest: string }> = [];
  // errors the middleware passed on to the route's error handler
  let errors: unknown[] = [];

  before(async () => {
    const mw = apiJsonBody({ prefix: '/api/', limit: 64 });
    server = createServer((req: Req, res) => {
      mw(req, res, (err?: unknown) => {
        if (err) {
          errors.push(err);
          if (!res.headersSent) res.writeHead(500).end();
          return;
        }
        // the route reads what is left of the body (nothing, once the middleware has read it)
        let rest = '';
        const answer = (): void => {
          seen.push({ path: req.url ?? '', body: req.body, parsed: req._body === true, rest });
          res.writeHead(200, { 'content-type': 'text/plain' }).end('route');
        };
        if (req.readableEnded) return answer();
        req.on('data', (c: Buffer) => (rest += c.toString()));
        req.on('end', answer);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    seen = [];
    errors = [];
  });

  function send(method: string, path: string, body?: string | string[], headers: Record<string, string> = {}): Promise<{ status: number; text: string; type: string }> {
    return new Promise((resolve, reject) => {
      const r = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: String(res.headers['content-type'] ?? '') }));
      });
      r.on('error', reject);
      if (Array.isArray(body)) for (const part of body) r.write(part); // no Content-Length: chunked
      else if (body !== undefined) {
        r.setHeader('content-length', Buffer.byteLength(body));
        r.write(body);
      }
      r.end();
    });
  }

  it('isJsonType: application/json and +json, with parameters, nothing else', () => {
    assert.equal(isJsonType('application/json'), true);
    assert.equal(isJsonType('Application/JSON; charset=utf-8'), true);
    assert.equal(isJsonType('application/merge-patch+json'), true);
    assert.equal(isJsonType('text/plain'), false);
    assert.equal(isJsonType('application/x-www-form-urlencoded'), false);
    assert.equal(isJsonType('text/json+xml'), false);
    assert.equal(isJsonType(undefined), false);
  });

  it('parses a JSON write under the prefix into req.body and marks it parsed (body-parser then skips it)', async () => {
    const r = await send('POST', '/api/control', '{"rpm":100}', { 'content-type': 'application/json' });
    assert.equal(r.text, 'route');
    assert.deepEqual(seen, [{ path: '/api/control', body: { rpm: 100 }, parsed: true, rest: '' }]);
    const c = await send('PUT', '/api/x', ['{"a"', ':1}'], { 'content-type': 'application/json' });
    assert.equal(c.status, 200);
    assert.deepEqual(seen[1].body, { a: 1 });
  });

  it('answers malformed JSON 400, too large 413 (by length and while reading chunks), wrong type 415, all in JSON', async () => {
    const bad = await send('POST', '/api/control', '{"rpm":', { 'content-type': 'application/json' });
    assert.equal(bad.status, 400);
    assert.match(bad.type, /^application\/json/);
    const b = JSON.parse(bad.text) as Record<string, unknown>;
    assert.equal(b.error, 'bad-json');
    assert.equal(b.field, 'body');
    assert.equal(typeof b.detail, 'string');
    const big = await send('POST', '/api/control', JSON.stringify({ pad: 'x'.repeat(100) }), { 'content-type': 'application/json' });
    assert.equal(big.status, 413);
    assert.deepEqual(JSON.parse(big.text), { error: 'too-large', field: 'body', limit: 64 });
    const chunked = await send('POST', '/api/control', ['{"pad":"', 'y'.repeat(40), 'y'.repeat(40), '"}'], { 'content-type': 'application/json' });
    assert.equal(chunked.status, 413);
    const type = await send('POST', '/api/gpio', 'pin=relay1', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(type.status, 415);
    assert.deepEqual(JSON.parse(type.text), { error: 'unsupported-media-type', field: 'content-type', allowed: 'application/json', got: 'application/x-www-form-urlencoded' });
    const none = await send('POST', '/api/gpio', '{}');
    assert.equal(none.status, 415);
    assert.equal(seen.length, 0, 'none of them reached the route');
  });

  it('a UTF-8 byte order mark before the JSON is dropped, as body-parser does', async () => {
    const r = await send('POST', '/api/control', '\uFEFF{"rpm":5}', { 'content-type': 'application/json' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(seen[0].body, { rpm: 5 });
  });

  it('leaves reads, writes without a body and paths outside the prefix to the route, body unread', async () => {
    assert.equal((await send('GET', '/api/data')).text, 'route');
    assert.equal((await send('POST', '/api/log/start')).text, 'route');
    assert.equal((await send('POST', '/other', 'not json', { 'content-type': 'text/plain' })).text, 'route');
    assert.deepEqual(
      seen.map((s) => [s.path, s.parsed, s.rest]),
      [
        ['/api/data', false, ''],
        ['/api/log/start', false, ''],
        ['/other', false, 'not json'],
      ],
    );
  });
});
