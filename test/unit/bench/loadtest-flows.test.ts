import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readFlowsFile } from '../../../bench/lib/control-load';

// `npm run loadtest -- --flows FILE`: a bad file or a contradictory command line is one clear line and exit 2,
// before any runtime starts (not a stack trace, not a runtime answering 404 to every route).
describe('loadtest --flows FILE', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rtedge-loadtest-flows-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  it('reads a flow export with an http in node', () => {
    const f = write('ok.json', JSON.stringify([{ id: 't1', type: 'tab' }, { id: 'h1', type: 'http in', z: 't1', url: '/x', method: 'get' }]));
    const flows = readFlowsFile(f);
    assert.equal(flows.length, 2);
  });

  it('names the file and the fault: missing, not JSON, not an array of nodes, no http in', () => {
    assert.throws(() => readFlowsFile(join(dir, 'missing.json')), /--flows .*missing\.json: cannot read it \(ENOENT\)/);
    assert.throws(() => readFlowsFile(write('bad.json', '{ nope')), /bad\.json: not JSON/);
    assert.throws(() => readFlowsFile(write('obj.json', '{"id":"a","type":"tab"}')), /obj\.json: not a flow export/);
    assert.throws(() => readFlowsFile(write('empty.json', '[]')), /empty\.json: not a flow export/);
    assert.throws(() => readFlowsFile(write('elem.json', '[{"id":"a","type":"tab"}, 3]')), /elem\.json: element 1 is not a node/);
    assert.throws(() => readFlowsFile(write('nohttp.json', '[{"id":"a","type":"tab"}]')), /nohttp\.json: no "http in" node/);
  });

  const cli = (args: string[]) =>
    spawnSync(process.execPath, [join(__dirname, '..', '..', '..', 'bench', 'lib', 'loadtest-cli.js'), ...args], { encoding: 'utf8', timeout: 30_000 });

  it('the CLI exits 2 with one line for a file that is not JSON, before starting a runtime', () => {
    const r = cli(['--seconds', '1', '--flows', write('cli-bad.json', 'not json')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /cli-bad\.json: not JSON/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.doesNotMatch(r.stderr, /Node-RED with/, 'no runtime started');
  });

  it('the CLI refuses --core-floor with --flows (it used to take --core-floor without a word)', () => {
    const r = cli(['--seconds', '1', '--core-floor', '--flows', write('cli-ok.json', JSON.stringify([{ id: 'h', type: 'http in' }]))]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--core-floor and --flows both choose the flow to start: give one/);
    assert.doesNotMatch(r.stderr, /Node-RED with/);
  });
});
