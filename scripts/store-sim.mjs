// The store gate's simulated hardware and a scenario player, for `npm start`
// and for trying the store gate flow by hand (build first: it uses the compiled
// helpers in dist/test/helpers). A simulator, not the product: no node reads it.
//
//   node scripts/store-sim.mjs [--door <dir>] [--gate-port <port>] [--door-open-ms 2000]
//                              [--play <shoppers>] [--unauthorised 0.2] [--seed 1] [--speed 1]
//                              [--broker mqtt://127.0.0.1:1883] [--loop]
//
// --door <dir>     a simulated door controller (Modbus RTU, unit 1, discrete input 0: 1 open)
//                  on a socat pty pair; the end for Node-RED is <dir>/door-pty (needs socat)
// --gate-port <p>  a simulated gate controller on 127.0.0.1:<p>: answers `OPEN <gate> <track>`
//                  with `OK <gate> <track>` and opens the simulated door for --door-open-ms
// --play <n>       publishes a seeded store of <n> shoppers (share --unauthorised do not pay)
//                  to --broker, as the people-tracking sensor and the checkout system would;
//                  --loop plays it again and again (new seed each time)
// Prints one line `ready {"door": "<path>" | null, "gatePort": <p> | null}` once listening.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const helpers = join(root, 'dist', 'test', 'helpers');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length && !args[i + 1].startsWith('--') ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);

const stops = [];
const stopAll = async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void stopAll().then(() => process.exit(0)));

let door = null;
let doorPath = null;
const doorDir = opt('door', null);
if (doorDir !== null) {
  const dir = resolve(doorDir);
  mkdirSync(dir, { recursive: true });
  const a = join(dir, 'door-pty');
  const b = join(dir, 'door-pty-sim');
  for (const p of [a, b]) rmSync(p, { force: true });
  const socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  let failed = false;
  socat.on('error', () => (failed = true));
  for (let i = 0; i < 100 && !failed && !(existsSync(a) && existsSync(b)); i++) await new Promise((r) => setTimeout(r, 50));
  if (failed || !existsSync(b)) {
    console.error('store-sim: socat is not available (apt-get install socat): no simulated door; the door state stays unknown');
  } else {
    stops.push(async () => void socat.kill('SIGTERM'));
    const { DoorSim } = require(join(helpers, 'door-sim.js'));
    door = new DoorSim({ path: b });
    await door.start();
    stops.unshift(() => door.stop());
    doorPath = a;
  }
}

let gatePort = null;
const gp = opt('gate-port', null);
if (gp !== null) {
  const openMs = Number(opt('door-open-ms', '2000'));
  let closeTimer = null;
  const server = createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.search(/\r\n|\n/)) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' ? 2 : 1));
        const m = /^OPEN (.+)$/.exec(line.trim());
        sock.write(m ? `OK ${m[1]}\r\n` : 'ERR\r\n');
        if (m && door) {
          // the gate controller opens the door, which closes by itself
          door.open = true;
          clearTimeout(closeTimer);
          closeTimer = setTimeout(() => (door.open = false), openMs);
        }
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise((r, j) => server.once('error', j).listen(Number(gp), '127.0.0.1', r));
  gatePort = server.address().port;
  stops.push(() => new Promise((r) => server.close(() => r())));
}

console.log(`ready ${JSON.stringify({ door: doorPath, gatePort })}`);

const play = opt('play', null);
if (play !== null) {
  const { makeScenario, playScenario } = require(join(helpers, 'store-scenario.js'));
  const url = opt('broker', 'mqtt://127.0.0.1:1883');
  let seed = Number(opt('seed', '1'));
  do {
    const sc = makeScenario({ shoppers: Number(play), unauthorised: Number(opt('unauthorised', '0.2')), seed });
    const r = await playScenario(sc, { url, speed: Number(opt('speed', '1')) });
    const gates = sc.shoppers.filter((s) => s.gate).length;
    console.log(`store-sim: played ${sc.shoppers.length} shoppers (seed ${seed}, ${r.published} messages); expected ${gates} gate opens`);
    seed++;
  } while (flag('loop'));
  if (doorDir === null && gp === null) await stopAll();
}
