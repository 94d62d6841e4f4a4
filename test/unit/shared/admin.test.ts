import assert from 'node:assert/strict';

import { needs } from '../../../nodes/shared/admin';
import type { HttpRequest, HttpResponse } from '../../../nodes/shared/red-types';

describe('shared/admin needs()', () => {
  const req = {} as HttpRequest;
  const res = {} as HttpResponse;

  it("delegates to Node-RED's needsPermission with the permission asked for", () => {
    const asked: string[] = [];
    let called = 0;
    const mw = needs({ auth: { needsPermission: (p: string) => (asked.push(p), () => void called++) } }, 'rt-scale.read');
    assert.deepEqual(asked, ['rt-scale.read']);
    let passed = false;
    mw(req, res, () => (passed = true));
    assert.equal(called, 1, "Node-RED's middleware runs");
    assert.equal(passed, false, 'and decides: it did not call next here');
  });

  it('without adminAuth (no RED.auth) lets the request through', () => {
    let passed = false;
    needs({}, 'rt-dosing.write')(req, res, () => (passed = true));
    assert.equal(passed, true);
  });
});
