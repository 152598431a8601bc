/**
 * The simulated host's folder under crashes (issue 13, point 7 and the sim's part of point 5):
 * host.bin is only ever replaced whole, temporary files of dead processes are removed, and a
 * lock file that is empty (a process killed between creating and writing it, as older
 * versions could leave) does not jam later calls.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gfnRange, SimHypervisor } from '../../lib/hypervisor';
import { projectRoot } from '../harness/daemons';

const LIB = path.join(projectRoot(), 'dist', 'lib', 'hypervisor');
const tmp = (t: { teardown(fn: () => void): void }): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-simstate-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};
/** A pid that belonged to a process now gone. */
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim());

test('temporary files left by killed processes are removed by the next call', async (t) => {
  const dir = tmp(t);
  const hv = new SimHypervisor({ dir });
  await hv.createDomain({ domid: 3, maxPages: 16 });
  const dead = deadPid();
  // What a SIGKILL during a save, and during taking the lock, leave behind.
  fs.writeFileSync(path.join(dir, `host.bin.${dead}.tmp`), Buffer.alloc(100, 1));
  fs.writeFileSync(path.join(dir, `lock.${dead}.1.tmp`), String(dead));
  // A live process's temporary file is not touched (ava's main process is alive).
  fs.writeFileSync(path.join(dir, `host.bin.${process.ppid}.tmp`), 'in progress');
  await hv.populatePhysmap(3, [0x100]);
  const left = fs.readdirSync(dir).sort();
  t.deepEqual(left, ['frames', 'host.bin', `host.bin.${process.ppid}.tmp`]);
  t.is((await hv.domainInfo(3))!.totPages, 1);
  await hv.close();
});

test('an empty lock file (half-made by an older version) does not jam the folder', async (t) => {
  const dir = tmp(t);
  const hv = new SimHypervisor({ dir });
  await hv.createDomain({ domid: 3, maxPages: 16 });
  const lock = path.join(dir, 'lock');
  fs.writeFileSync(lock, '');
  // Old enough that no process can still be writing it.
  const old = new Date(Date.now() - 10_000);
  fs.utimesSync(lock, old, old);
  const t0 = Date.now();
  t.is((await hv.domainInfo(3))?.domid, 3);
  t.true(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  t.false(fs.existsSync(lock), 'released after the call');
  await hv.close();
});

test('a fresh empty lock is respected for a moment, then broken', async (t) => {
  const dir = tmp(t);
  const hv = new SimHypervisor({ dir });
  await hv.createDomain({ domid: 3, maxPages: 16 });
  fs.writeFileSync(path.join(dir, 'lock'), '');
  const t0 = Date.now();
  t.is((await hv.domainInfo(3))?.domid, 3);
  const waited = Date.now() - t0;
  t.true(waited >= 1500 && waited < 10_000, `waited ${waited} ms`);
  await hv.close();
});

test('processes killed at random while saving never leave a host.bin that does not load', async (t) => {
  const dir = tmp(t);
  const hv = new SimHypervisor({ dir });
  const d = await hv.createDomain({ maxPages: 1 << 20 });
  await hv.close();
  const worker = `
    const { SimHypervisor, gfnRange } = require(${JSON.stringify(LIB)});
    (async () => {
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      for (let i = 0; ; i++) {
        const base = 0x100000 + (i % 64) * 4096;
        await hv.populatePhysmap(${d}, gfnRange(base, 4096));
        await hv.decreaseReservation(${d}, gfnRange(base, 4096));
      }
    })();`;
  let kills = 0;
  for (let round = 0; round < 12; round++) {
    const child = spawn(process.execPath, ['-e', worker], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 150 + Math.floor((round * 97) % 250)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    kills++;
    // The state loads, and it is one of the consistent ones: every populate was undone, or
    // the last call's pages are all there.
    const check = new SimHypervisor({ dir });
    const info = (await check.domainInfo(d))!;
    t.true(info.totPages === 0 || info.totPages === 4096, `round ${round}: tot_pages ${info.totPages}`);
    if (info.totPages === 4096) {
      const view = (await check.domains()).find((x) => x.domid === d)!;
      t.is(view.mappedGfns, 4096);
      const left = [...Array(64).keys()].map((k) => 0x100000 + k * 4096);
      for (const base of left) {
        try {
          await check.decreaseReservation(d, gfnRange(base, 4096));
        } catch {
          // not this one
        }
      }
    }
    t.is((await check.domainInfo(d))!.totPages, 0);
    await check.close();
  }
  t.is(kills, 12);
  t.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file outlives the calls after it');
});
