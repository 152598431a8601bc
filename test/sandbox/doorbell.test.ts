/**
 * Simulated guests ring each other (issue 16 point 5): on a sandbox (its own xenstored process
 * and a simulated host kept in its folder), each guest reads its doorbell from its own mirror
 * through its own unprivileged socket (DIR/domain-N.socket) and uses the sim's ports as itself.
 * One guest runs in another process, so the rings cross processes as they do between
 * `xen-sshm` commands of one sandbox.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseXlConfig } from '../../lib/config';
import { ManagerError, SharedMemoryManager } from '../../lib/manager';
import { createDomain, Sandbox, SimGuest } from '../../lib/sandbox';

const OWNER = 'name = "vm1"\nstatic_shared_mem = ["0x50000000+64K = ID1"]\n';
const BORROWER = (n: string) => `name = "${n}"\nstatic_shared_mem = ["0x60000000+64K = ID1"]\n`;

/** A guest in a child process: binds its doorbell, says so, waits for one ring, rings back. */
const CHILD = `
const { Sandbox, SimGuest } = require(${JSON.stringify(join(__dirname, '../../lib/sandbox'))});
(async () => {
  const [dir, domid] = process.argv.slice(1);
  const sb = new Sandbox(dir);
  const sim = sb.openHypervisor();
  const g = await SimGuest.open(sb, sim, Number(domid));
  const bell = await g.doorbell('ID1');
  const atBind = await bell.drain();
  process.stdout.write(JSON.stringify({ bound: bell.port, owner: bell.peer, atBind }) + '\\n');
  const heard = await bell.wait(20000);
  if (heard) await bell.ring();
  process.stdout.write(JSON.stringify({ heard }) + '\\n');
  await g.close();
  await sim.close();
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

test('simulated guests ring each other through their mirrors and the sim\'s ports, across processes', async (t) => {
  t.timeout(60_000);
  const sandbox = new Sandbox(mkdtempSync(join(tmpdir(), 'xen-sshm-bell-')));
  t.teardown(() => sandbox.remove());
  const xs = await sandbox.connect();
  const sim = sandbox.openHypervisor();
  t.teardown(async () => {
    await xs.close();
    await sim.close();
  });
  const m = new SharedMemoryManager({ xenstore: xs, hypervisor: sim });
  const vm = async (name: string) => (await createDomain(xs, sim, { name, memoryMiB: 16 })).domid;
  const [v1, v2, v3] = [await vm('vm1'), await vm('vm2'), await vm('vm3')];
  await m.apply({ config: parseXlConfig(OWNER), domid: v1, doorbell: true });
  const p2 = (await m.apply({ config: parseXlConfig(BORROWER('vm2')), domid: v2, allowSetTarget: true })).entries[0].port!;
  const p3 = (await m.apply({ config: parseXlConfig(BORROWER('vm3')), domid: v3, allowSetTarget: true })).entries[0].port!;
  await sim.close(); // the child's host state and ours meet in the folder

  // vm2 in another process.
  const child = spawn(process.execPath, ['-e', CHILD, sandbox.dir, String(v2)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const lines: string[] = [];
  const next = (): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const take = (): boolean => {
        const l = lines.shift();
        if (l === undefined) return false;
        resolve(JSON.parse(l));
        return true;
      };
      if (take()) return;
      const on = (): void => void (take() && child.stdout.off('data', on));
      child.stdout.on('data', on);
      child.once('exit', () => setTimeout(() => (take() ? undefined : reject(new Error(`child exited: ${stderr}`))), 10));
    });
  let buf = '';
  child.stdout.on('data', (b) => {
    buf += b;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const bound = await next();
  t.is(bound.owner, v1);
  // Xen sets a freshly bound port pending once: the child drained it.
  t.true(bound.atBind);

  const sim1 = sandbox.openHypervisor();
  t.teardown(() => sim1.close());
  const g1 = await SimGuest.open(sandbox, sim1, v1);
  t.teardown(() => g1.close());
  // The owner names the borrower whose doorbell it uses; it has one per borrower.
  await t.throwsAsync(g1.doorbell('ID1'), { instanceOf: ManagerError, message: /doorbells for d2, d3: name one/ });
  const to2 = await g1.doorbell('ID1', v2);
  t.is(to2.port, p2);
  t.deepEqual(await sim1.evtchnStatus(v1, p2), { state: 'interdomain', remoteDom: v2, remotePort: bound.bound as number });
  await to2.ring();
  t.true(await to2.wait(20_000), 'vm1 heard vm2 ringing back');
  t.deepEqual(await next(), { heard: true });

  // vm3's doorbell is another port: a ring on vm2's does not reach it.
  const g3 = await SimGuest.open(sandbox, sim1, v3);
  t.teardown(() => g3.close());
  const b3 = await g3.doorbell('ID1');
  t.is(b3.peer, v1);
  t.not(p3, p2);
  await b3.drain();
  await to2.ring();
  t.false(await b3.wait(50));
  // A guest cannot bind a port made for another (Xen: EINVAL).
  await t.throwsAsync(sim1.guestEvtchnBindInterdomain(v3, v1, p2), { code: 'EINVAL' });
  const code = child.exitCode ?? (await new Promise<number | null>((r) => child.once('exit', r)));
  t.is(code, 0, stderr);
});

/** The command line, as a user runs it. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(__dirname, '../../lib/cli/xen-sshm.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('create --doorbell, apply, ls and ls --json on the command line', async (t) => {
  t.timeout(90_000);
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-bellcli-'));
  const sandbox = new Sandbox(dir);
  t.teardown(() => sandbox.remove());
  writeFileSync(join(dir, 'vm1.cfg'), 'name = "vm1"\nmemory = 16\nstatic_shared_mem = ["0x50000000+64K = ID1"]\n');
  writeFileSync(join(dir, 'vm2.cfg'), 'name = "vm2"\nmemory = 16\nstatic_shared_mem = ["0x60000000+64K = ID1"]\n');
  const sb = ['--sandbox-dir', dir];
  const c1 = await cli(['create', join(dir, 'vm1.cfg'), '--doorbell', '--raise-maxmem', ...sb]);
  t.is(c1.code, 0, c1.stderr);
  t.regex(c1.stdout, /ID1: owner, 64 KiB populated at 0x50000000-0x50010000, with a doorbell/);
  const c2 = await cli(['create', join(dir, 'vm2.cfg'), '--allow-set-target', ...sb, '--json']);
  t.is(c2.code, 0, c2.stderr);
  const port = (JSON.parse(c2.stdout) as { applied: { entries: Array<{ port: number }> } }).applied.entries[0].port;
  t.true(port > 0, c2.stdout);
  const ls = await cli(['ls', ...sb]);
  t.regex(ls.stdout, new RegExp(`ID1: port ${port} of vm1 \\(d1\\) for vm2 \\(d2\\): unbound, for d2`));
  const rel = await cli(['release', '--domain', 'vm2', ...sb]);
  t.is(rel.code, 0, rel.stderr);
  const js = JSON.parse((await cli(['ls', '--json', ...sb])).stdout) as { ports: unknown[] };
  t.deepEqual(js.ports, [{ id: 'ID1', owner: 1, borrower: 2, port, kept: true, live: { state: 'unbound', remoteDom: 2 } }]);
});
