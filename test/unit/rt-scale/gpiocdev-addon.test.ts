// The real gpiocdev addon (native/gpiocdev/gpiocdev.c): built here as a user
// on a Pi builds it (npm run build:gpiocdev), loaded in the main thread and in
// worker threads (several at once, and again after they ended: it is
// context-aware), and its errors carry the errno code the backend words. This
// machine has no GPIO chip, so no line is driven here (verified on hardware:
// not yet).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { ADDON_PATH, type GpiocdevAddon, lineError, loadAddon } from '../../../nodes/rt-scale/gpiocdev-addon';
import { openGpiocdev } from '../../../nodes/rt-scale/hal-gpiocdev';
import { isCodedError } from '../../../nodes/shared/coded';
import { en } from '../../helpers/catalog';
import { makePwmTree, pwmState } from '../../helpers/pwm-tree';
import { repoRoot, tempDir } from '../../helpers/util';

const MISSING = '/dev/gpiochip-rtedge-missing';

/** Loads the addon in a fresh worker thread and reports what it saw there. */
function inWorker(path: string): Promise<{ keys: string[]; open: number; code: string; errno: number }> {
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const a = require(workerData.path);
    let code = '', errno = 0;
    try { a.chipInfo(workerData.missing); } catch (e) { code = e.code; errno = e.errno; }
    parentPort.postMessage({ keys: Object.keys(a).sort(), open: a.openHandles(), code, errno });`;
  return new Promise((resolve, reject) => {
    const w = new Worker(src, { eval: true, workerData: { path, missing: MISSING } });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (c) => (c !== 0 ? reject(new Error(`worker exit ${c}`)) : undefined));
  });
}

describe('gpiocdev addon (native, built here)', function () {
  this.timeout(120_000);
  let addon: GpiocdevAddon;

  before(() => {
    // node-gyp finds Node's headers beside this node when they are there (no download)
    const headers = join(dirname(dirname(process.execPath)), 'include', 'node', 'node_api.h');
    const env = { ...process.env, ...(existsSync(headers) ? { npm_config_nodedir: dirname(dirname(process.execPath)) } : {}) };
    const r = spawnSync('npm', ['run', 'build:gpiocdev'], { cwd: repoRoot, env, encoding: 'utf8' });
    assert.equal(r.status, 0, `npm run build:gpiocdev failed:\n${r.stdout}\n${r.stderr}`);
    assert.ok(existsSync(ADDON_PATH), ADDON_PATH);
    addon = loadAddon();
  });

  it('compiles with npm run build:gpiocdev and loads where the backend looks for it', () => {
    assert.deepEqual(Object.keys(addon).sort(), ['chipInfo', 'get', 'openHandles', 'release', 'requestLine', 'set']);
    assert.equal(addon.openHandles(), 0);
  });

  it('is context-aware: loads in two worker threads at once, and again after they ended', async () => {
    const both = await Promise.all([inWorker(ADDON_PATH), inWorker(ADDON_PATH)]);
    const again = await inWorker(ADDON_PATH);
    for (const r of [...both, again]) {
      assert.deepEqual(r.keys, ['chipInfo', 'get', 'openHandles', 'release', 'requestLine', 'set']);
      assert.equal(r.open, 0);
      assert.deepEqual([r.code, r.errno], ['ENOENT', 2], 'a working instance in that thread');
    }
  });

  it('a missing /dev/gpiochipN: an Error with code ENOENT, errno, syscall and path, worded by the backend', () => {
    assert.throws(
      () => addon.chipInfo(MISSING),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.errno === 2 && e.syscall === 'open' && e.path === MISSING && e.message === `open ${MISSING}: No such file or directory (ENOENT)`,
    );
    assert.throws(() => addon.requestLine(MISSING, 5, { output: false, bias: 'disabled' }), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    // the backend end to end on the real addon: the scale cannot open, says why, and leaves the motor off
    const tmp = tempDir('rtedge-gpiocdev-addon-');
    const root = join(tmp.dir, 'class', 'pwm');
    makePwmTree(root, [{ n: 0, device: 'fe20c000.pwm', npwm: 2 }]);
    let err: unknown;
    try {
      openGpiocdev({ backend: 'gpiocdev', doutPin: 5, sckPin: 6, motorPin: 18, motorHz: 10_000, sps: 80, gpioChip: MISSING, pwmChip: '0', pwmRoot: root }, 'A', () => undefined, { addon, board: 'pi1-4' });
    } catch (e) {
      err = e;
    }
    assert.equal(pwmState(root, 0, 0).enable, 0);
    tmp.cleanup();
    assert.ok(isCodedError(err) && err.code === 'gpiocdev-enoent', String(err));
    assert.match(en('rt-scale', err), new RegExp(`^could not open ${MISSING} line 5 \\(open ${MISSING}: No such file or directory \\(ENOENT\\)\\): no such GPIO chip or line`));
  });

  it('a file that is not a GPIO chip: ENOTTY from the ioctl; bad arguments are TypeErrors; a released handle is EBADF', () => {
    assert.throws(() => addon.chipInfo('/dev/null'), (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && /GPIO_GET_CHIPINFO_IOCTL/.test(e.message));
    assert.throws(() => addon.requestLine('/dev/null', 5, {}), (e: NodeJS.ErrnoException) => e.code === 'ENOTTY' && /GPIO_V2_GET_LINE_IOCTL.*line 5/.test(e.message));
    assert.equal(en('rt-scale', lineError(new Error('x'), 'w')), 'could not open w (x); or pick the "simulated" backend');
    assert.throws(() => addon.requestLine(5 as unknown as string, 5), TypeError);
    assert.throws(() => addon.requestLine('/dev/null', 5, { bias: 'sideways' as 'as-is' }), (e: Error) => e instanceof TypeError || (e as NodeJS.ErrnoException).code === 'ENOTTY');
    assert.throws(() => addon.get(3), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    assert.throws(() => addon.set(70, 1), TypeError);
    addon.release(3); // releasing a free handle is harmless
  });
});
