import assert from 'node:assert/strict';

import { nameList, readTrackerConfig } from '../../../nodes/rt-journey-tracker/tracker-config';
import { DEFAULTS } from '../../../nodes/rt-journey-tracker/tracker-core';
import { en } from '../../helpers/catalog';

describe('rt-journey-tracker config', () => {
  it('a config saved before versions gets the v1 defaults', () => {
    const c = readTrackerConfig({ id: 'n', type: 'rt-journey-tracker' });
    assert.deepEqual(c.problems, []);
    assert.equal(c.doorKey, 'door');
    assert.deepEqual([c.tracker.storeZones, c.tracker.posZones, c.tracker.gateZone, c.tracker.entryLine, c.tracker.exitLine, c.tracker.gate], [['store'], ['pos-1', 'pos-2'], 'gate', 'entry', 'exit', 'G1']);
    assert.equal(c.tracker.ttlMs, DEFAULTS.ttlMs);
    assert.equal(c.tracker.stitchM, DEFAULTS.stitchM);
  });
  it('zone lists: commas and spaces, trimmed, no duplicates', () => {
    assert.deepEqual(nameList(' a, b ,,c  a'), ['a', 'b', 'c']);
    const c = readTrackerConfig({ id: 'n', type: 'rt-journey-tracker', version: 1, storeZones: 'aisle-1, aisle-2', posZones: 'till-1 till-2', ttl: '5000', stitchM: '0.5' });
    assert.deepEqual(c.tracker.storeZones, ['aisle-1', 'aisle-2']);
    assert.deepEqual(c.tracker.posZones, ['till-1', 'till-2']);
    assert.equal(c.tracker.ttlMs, 5000);
    assert.equal(c.tracker.stitchM, 0.5);
  });
  it('problems are codes, worded by the catalog: limits, no POS zone, a zone with two roles, one line for both', () => {
    const c = readTrackerConfig({ id: 'n', type: 'rt-journey-tracker', version: 1, posZones: '', storeZones: 'gate', ttl: 5, maxTracks: 1.5, entryLine: 'x', exitLine: 'x' });
    const codes = c.problems.map((p) => p.code);
    assert.deepEqual(codes.sort(), ['no-pos-zones', 'out-of-range', 'out-of-range-whole', 'same-lines', 'zone-twice']);
    for (const p of c.problems) assert.doesNotMatch(en('rt-journey-tracker', p), /codes\./);
    assert.equal(en('rt-journey-tracker', c.problems.find((p) => p.code === 'zone-twice')!), 'zone gate is given more than one role');
  });
});
