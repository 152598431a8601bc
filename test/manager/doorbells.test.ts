/**
 * Doorbells in the manager (docs/doorbells.md, issue 16 point 3): a port per borrower allocated
 * in the owner between claim and commit, records and mirrors, reuse on re-apply, kept at
 * release, failures, a real SIGKILL right after the allocation with reconcile adopting the
 * port, and `ls` with each port's live state. Against the in-memory xenstored and Debian's C
 * xenstored, on the simulated host (whose ports follow xen/common/event_channel.c).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { ManagerError, type SharedMemoryManager } from '../../lib/manager';
import { renderList } from '../../lib/cli/commands/ls';
import { destroyDomain } from '../../lib/sandbox/toolstack';
import { cleanProblems, config, consistencyProblems, portSnapshot, simPorts, snapshotDist, startEnv, unrecordedPorts, type Env, type StoreKind } from './helpers';
import type { StepInfo } from './steps';

const OWNER = 'name = "vm1"\nstatic_shm = ["id=DB, begin=0x50000000, size=64K, role=owner, doorbell=yes", "id=PLAIN, begin=0x50100000, size=16K, role=owner"]\n';
const BORROWER = (name: string, extra = '') => `name = "${name}"\nstatic_shm = ["id=DB, begin=0x60000000, size=64K${extra}", "id=PLAIN, begin=0x60100000, size=16K"]\n`;

/** A manager that counts the allocations it makes (hypercall steps). */
function counting(env: Env): { m: SharedMemoryManager; allocs: () => number; labels: string[] } {
  const labels: string[] = [];
  const m = env.manager({ stepHook: (s: StepInfo, phase) => void (phase === 'before' && labels.push(s.label)) });
  return { m, allocs: () => labels.filter((l) => l.startsWith('evtchnAllocUnbound')).length, labels };
}

async function read(env: Env, path: string): Promise<string | null> {
  try {
    return (await env.xs.read(path)).toString();
  } catch {
    return null;
  }
}

for (const kind of ['memory', 'cxenstored'] as StoreKind[]) {
  test(`a port per borrower: records, mirrors, reuse, release keeps it (${kind})`, async (t) => {
    const env = await startEnv(kind);
    t.teardown(() => env.close());
    const [v1, v2, v3] = [await env.vm('vm1'), await env.vm('vm2'), await env.vm('vm3')];
    const { m, allocs } = counting(env);
    const before = await portSnapshot(env, [v1]);

    const owner = await m.apply({ config: config(OWNER), domid: v1 });
    t.deepEqual(owner.entries.map((e) => [e.id, e.doorbell ?? false]), [['DB', true], ['PLAIN', false]]);
    t.is(await read(env, '/local/shared_mem/DB/doorbell'), 'yes');
    t.is(await read(env, '/local/shared_mem/PLAIN/doorbell'), null);
    // The owner's mirror has doorbells (none yet); a region without one has no such node.
    t.deepEqual(await env.xs.directory(`/local/domain/${v1}/shared_mem/DB/doorbells`), []);
    t.is(await read(env, `/local/domain/${v1}/shared_mem/PLAIN/doorbells`), null);

    const b2 = await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });
    const p2 = b2.entries.find((e) => e.id === 'DB')!.port!;
    t.true(Number.isInteger(p2) && p2 > 0);
    t.is(b2.entries.find((e) => e.id === 'PLAIN')!.port, undefined);
    // vm3 declines: mapped, no port.
    const b3 = await m.apply({ config: config(BORROWER('vm3', ', doorbell=no')), domid: v3, allowSetTarget: true });
    t.is(b3.entries.find((e) => e.id === 'DB')!.port, undefined);
    t.is(allocs(), 1);

    t.is(await read(env, `/local/shared_mem/DB/ports/${v2}`), String(p2));
    t.is(await read(env, `/local/shared_mem/DB/ports/${v3}`), null);
    t.is(await read(env, `/local/domain/${v2}/shared_mem/DB/owner`), String(v1));
    t.is(await read(env, `/local/domain/${v2}/shared_mem/DB/doorbell`), String(p2));
    t.is(await read(env, `/local/domain/${v3}/shared_mem/DB/doorbell`), null);
    t.is(await read(env, `/local/domain/${v1}/shared_mem/DB/doorbells/${v2}`), String(p2));
    t.deepEqual(await env.xs.directory(`/local/domain/${v1}/shared_mem/DB/doorbells`), [String(v2)]);
    // The port is in the owner, unbound, for vm2 only (EVTCHNOP_status).
    t.deepEqual(await env.hv.evtchnStatus(v1, p2), { state: 'unbound', remoteDom: v2 });
    // The guests' mirrors are theirs to read (n0 r<domid>), the doorbell keys included.
    const perms = async (p: string) => (await env.xs.getPerms(p)).map((x) => `${x.access}${x.domid}`);
    t.deepEqual(await perms(`/local/domain/${v2}/shared_mem/DB/doorbell`), ['n0', `r${v2}`]);
    t.deepEqual(await perms(`/local/domain/${v1}/shared_mem/DB/doorbells/${v2}`), ['n0', `r${v1}`]);

    // Applying again changes nothing and allocates nothing.
    const again = await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });
    t.deepEqual(again.entries.map((e) => [e.id, e.action, e.port]), [['DB', 'unchanged', p2], ['PLAIN', 'unchanged', undefined]]);
    t.is(allocs(), 1);

    // vm2 binds it as a guest does; ls shows it bound.
    const local = await env.hv.guestEvtchnBindInterdomain(v2, v1, p2);
    let ls = await m.list();
    t.deepEqual(ls.ports, [{ id: 'DB', owner: v1, borrower: v2, port: p2, kept: false, live: { state: 'interdomain', remoteDom: v2, remotePort: local } }]);
    t.regex(renderList(ls), new RegExp(`DB: port ${p2} of vm1 \\(d${v1}\\) for vm2 \\(d${v2}\\): bound by d${v2} \\(its port ${local}\\)`));

    // Release: the mapping and vm2's mirror go, the port stays (dom0 cannot close it), recorded.
    await m.release({ domid: v2 });
    t.is(await read(env, `/local/domain/${v2}/shared_mem/DB/doorbell`), null);
    t.is(await read(env, `/local/domain/${v1}/shared_mem/DB/doorbells/${v2}`), null);
    t.is(await read(env, `/local/shared_mem/DB/ports/${v2}`), String(p2));
    ls = await m.list();
    t.is(ls.ports[0].kept, true);
    t.regex(renderList(ls), /kept: vm2 \(d\d+\) was released/);
    t.regex(renderList(ls), /dom0 cannot close them/);
    t.deepEqual(await consistencyProblems(env), []);

    // Re-apply reuses it (still bound by vm2's guest): no allocation, same port, mirrors back.
    const back = await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });
    t.is(back.entries.find((e) => e.id === 'DB')!.port, p2);
    t.is(allocs(), 1);
    t.is(await read(env, `/local/domain/${v1}/shared_mem/DB/doorbells/${v2}`), String(p2));

    // The owner closes its port (its own program may): the record is stale, ls says so, and a
    // borrower applied again after a release gets a new port.
    await env.hv.guestEvtchnClose(v1, p2);
    ls = await m.list();
    t.deepEqual(ls.ports[0].live, { state: 'closed' });
    await m.release({ domid: v2 });
    const fresh = await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });
    t.is(allocs(), 2);
    t.deepEqual(await env.hv.evtchnStatus(v1, fresh.entries[0].port!), { state: 'unbound', remoteDom: v2 });
    t.deepEqual(await consistencyProblems(env), []);
    t.deepEqual(await unrecordedPorts(env, '/local/shared_mem', before), []);

    // Everything released: the records go with the region, the ports stay in vm1 until it dies.
    await m.release({ domid: v2 });
    await m.release({ domid: v3 });
    await m.release({ domid: v1 });
    t.deepEqual(await cleanProblems(env), []);
    t.true((await simPorts(env, v1)).size >= 1);
  });
}

test('apply --doorbell for static_shared_mem; doorbell rules against the records', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const [v1, v2, v3, v4] = [await env.vm('vm1'), await env.vm('vm2'), await env.vm('vm3'), await env.vm('vm4')];
  const m = env.manager();
  const cfg = (name: string, begin: string) => config(`name = "${name}"\nstatic_shared_mem = ["${begin}+64K = S"]\n`);
  const o = await m.apply({ config: cfg('vm1', '0x50000000'), domid: v1, doorbell: true });
  t.true(o.entries[0].doorbell);
  // The borrower follows without --doorbell.
  const b = await m.apply({ config: cfg('vm2', '0x60000000'), domid: v2, allowSetTarget: true });
  t.truthy(b.entries[0].port);

  // A region without a doorbell: a borrower asking for one is refused before any change.
  const plain = config('name = "vm3"\nstatic_shm = ["id=N, begin=0x50000000, size=16K, role=owner"]\n');
  await m.apply({ config: plain, domid: v3 });
  const err = await t.throwsAsync(m.apply({ config: config('name = "vm4"\nstatic_shm = ["id=N, begin=0x60000000, size=16K, doorbell=yes"]\n'), domid: v4, allowSetTarget: true }));
  t.true(err instanceof ManagerError);
  t.is((err as ManagerError).rule, 'doorbell.owner');
  t.is((err as ManagerError).path, '/local/shared_mem/N/doorbell');
  t.is(await read(env, `/local/shared_mem/N/mappings/${v4}`), null);

  // The owner cannot change its mind on a recorded region.
  const changed = await t.throwsAsync(m.apply({ config: cfg('vm1', '0x50000000'), domid: v1 }));
  t.is((changed as ManagerError).reason, 'conflict');
  t.regex(changed!.message, /with a doorbell; the config now says doorbell=no/);
  t.deepEqual(await consistencyProblems(env), []);
});

test('a failed allocation undoes the mapping; a failed commit records the port it made', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  // An owner with no free port: max_event_channels 2 (ports 0, reserved, and 1).
  const v1 = await env.vm('vm1', { maxEvtchnPort: 1 });
  const [v2, v3] = [await env.vm('vm2'), await env.vm('vm3')];
  const m = env.manager();
  await m.apply({ config: config(OWNER), domid: v1 });
  // Port 1 taken by the owner's own software.
  t.is(await env.hv.evtchnAllocUnbound(v1, 0), 1);
  const err = await t.throwsAsync(m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true }));
  t.is((err as ManagerError).code, 'ENOSPC');
  t.regex((err as ManagerError).hint!, /max_event_channels/);
  t.is(await read(env, `/local/shared_mem/DB/ports/${v2}`), null);
  t.is(await read(env, `/local/shared_mem/DB/mappings/${v2}`), null);
  t.deepEqual(await consistencyProblems(env), []);

  // Room again (the owner closed its port); the commit's write of the port fails once.
  await env.hv.guestEvtchnClose(v1, 1);
  const before = await portSnapshot(env, [v1]);
  // The claim's write of the intent is the first WRITE of that path: let it through.
  let seen = 0;
  const m3 = env.manager({
    stepHook: (s, phase) => {
      if (phase !== 'before' || s.label !== `WRITE /local/shared_mem/DB/ports/${v3}`) return;
      if (++seen === 2) throw Object.assign(new Error('injected commit failure'), { code: 'EIO' });
    },
  });
  await t.throwsAsync(m3.apply({ config: config(BORROWER('vm3')), domid: v3, allowSetTarget: true }), { message: /injected commit failure/ });
  t.is(await read(env, `/local/shared_mem/DB/mappings/${v3}`), null);
  const kept = await read(env, `/local/shared_mem/DB/ports/${v3}`);
  t.regex(kept ?? '', /^\d+$/);
  t.deepEqual(await unrecordedPorts(env, '/local/shared_mem', before), []);
  t.deepEqual(await consistencyProblems(env), []);
  // Applied again: the kept port is reused.
  const again = await m.apply({ config: config(BORROWER('vm3')), domid: v3, allowSetTarget: true });
  t.is(String(again.entries[0].port), kept ?? 'none');
});

/** Runs the crash-safety child (a real process) once, killed by itself at step `at`. */
function crashChild(env: Env, spec: object): Promise<{ signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [snapshotDist('test/manager/crash-child.js'), JSON.stringify({ socket: env.socketPath, simDir: env.simDir, root: '/local/shared_mem', ...spec })], {
      env: { ...process.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (_c, signal) => resolve({ signal, stderr }));
  });
}

test('SIGKILL right after the port is allocated: reconcile finds it with EVTCHNOP_status and records it', async (t) => {
  const env = await startEnv('memory', { simDir: true });
  t.teardown(() => env.close());
  const [v1, v2, v3, v4] = [await env.vm('vm1'), await env.vm('vm2'), await env.vm('vm3'), await env.vm('vm4')];
  await env.manager().apply({ config: config(OWNER), domid: v1 });
  await env.manager().apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });

  for (const [domid, name, when] of [[v3, 'vm3', 'after'], [v4, 'vm4', 'before']] as const) {
    const before = await portSnapshot(env, [v1]);
    const r = await crashChild(env, { op: 'apply', cfg: BORROWER(name), domid, allowSetTarget: true, crashAtLabel: 'evtchnAllocUnbound', crashWhen: when });
    t.is(r.signal, 'SIGKILL', r.stderr);
    // Killed with the intent recorded and (after) the port made but recorded nowhere.
    t.is(await read(env, `/local/shared_mem/DB/ports/${domid}`), 'allocating');
    const made = await unrecordedPorts(env, '/local/shared_mem', before);
    t.is(made.length, when === 'after' ? 1 : 0, made.join('; '));
    const report = await env.manager().reconcile({ deadDomains: false });
    t.true(report.actions.some((a) => a.domid === domid && a.action === 'rolled-back'));
    t.deepEqual(await unrecordedPorts(env, '/local/shared_mem', before), []);
    t.deepEqual(await consistencyProblems(env), []);
    const port = await read(env, `/local/shared_mem/DB/ports/${domid}`);
    if (when === 'after') t.regex(port ?? '', /^\d+$/);
    else t.is(port, null);
    // Applied again: the adopted port is reused, nothing more allocated.
    const { m: m2, allocs } = counting(env);
    const again = await m2.apply({ config: config(BORROWER(name)), domid, allowSetTarget: true });
    t.is(allocs(), when === 'after' ? 0 : 1);
    if (when === 'after') t.is(String(again.entries[0].port), port ?? 'none');
  }
});

test('an intent nobody finishes (no lock) is settled by reconcile', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const [v1, v2] = [await env.vm('vm1'), await env.vm('vm2')];
  const m = env.manager();
  await m.apply({ config: config(OWNER), domid: v1 });
  const b = await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });
  const port = b.entries[0].port!;
  await m.release({ domid: v2 });
  // As if written by hand or by a tool that died between two transactions: the number lost.
  await env.xs.write('/local/shared_mem/DB/ports/' + v2, 'allocating');
  const report = await m.reconcile({ deadDomains: false });
  t.deepEqual(report.actions.map((a) => [a.domid, a.action]), [[v2, 'port-recorded']]);
  t.is(await read(env, `/local/shared_mem/DB/ports/${v2}`), String(port));
});

test('ports outlive their region: kept until the owner dies, taken back by the next apply, shown by ls', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const [v1, v2] = [await env.vm('vm1'), await env.vm('vm2')];
  const { m, allocs } = counting(env);
  await m.apply({ config: config(OWNER), domid: v1 });
  const port = (await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true })).entries[0].port!;
  await m.release({ domid: v2 });
  await m.release({ domid: v1 });
  // The region is gone; its port is not (dom0 cannot close it): kept, dom0's only.
  t.is(await read(env, `/local/shared_mem/kept-ports/${v1}/${port}`), String(v2));
  t.deepEqual((await env.xs.getPerms('/local/shared_mem/kept-ports')).map((p) => `${p.access}${p.domid}`), ['n0']);
  const ls = await m.list();
  t.deepEqual(ls.regions, []);
  t.deepEqual(ls.ports, [{ id: null, owner: v1, borrower: v2, port, kept: true, live: { state: 'unbound', remoteDom: v2 } }]);
  t.regex(renderList(ls), new RegExp(`\\(released\\): port ${port} of vm1 \\(d${v1}\\) for vm2 \\(d${v2}\\): unbound, for d${v2}, kept: its region was released`));
  t.deepEqual(await cleanProblems(env), []);

  // The region again: vm2 takes its kept port back, nothing is allocated.
  await m.apply({ config: config(OWNER), domid: v1 });
  const again = await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true });
  t.is(again.entries[0].port, port);
  t.is(allocs(), 1);
  t.is(await read(env, '/local/shared_mem/kept-ports'), null);
  t.deepEqual(await consistencyProblems(env), []);

  // Released again, then the owner dies: its ports went with it, and reconcile forgets them.
  await m.release({ domid: v2 });
  await m.release({ domid: v1 });
  await destroyDomain(env.xs, env.hv, v1);
  const report = await m.reconcile();
  t.deepEqual(report.actions.map((a) => [a.id, a.domid, a.action]), [['kept-ports', v1, 'ports-gone']]);
  t.is(await read(env, '/local/shared_mem/kept-ports'), null);
  t.deepEqual(await cleanProblems(env, '/local/shared_mem', [v2]), []);
});

test('the daemon\'s cleanup: an owner that dies takes its ports along; ls says so; nothing is left', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const [v1, v2] = [await env.vm('vm1'), await env.vm('vm2')];
  const m = env.manager();
  await m.apply({ config: config(OWNER), domid: v1 });
  const port = (await m.apply({ config: config(BORROWER('vm2')), domid: v2, allowSetTarget: true })).entries[0].port!;
  await destroyDomain(env.xs, env.hv, v1);
  // What the daemon runs after @releaseDomain: the dead domains' own records.
  await m.reconcile({ scope: 'dead-domains' });
  const ls = await m.list();
  t.is(ls.regions.find((r) => r.id === 'DB')!.state, 'orphaned');
  // The owner is a zombie while vm2 maps its frames: Xen closed its ports (evtchn_destroy).
  t.deepEqual(ls.ports.map((p) => [p.id, p.port, p.ownerGone]), [['DB', port, true]]);
  t.true(ls.ports[0].live!.state === 'closed' || ls.ports[0].live!.state === 'error');
  t.regex(renderList(ls), new RegExp(`port ${port} of d${v1} for vm2 \\(d${v2}\\): gone with the owner \\(d${v1} is dying or gone\\)`));
  await destroyDomain(env.xs, env.hv, v2);
  await m.reconcile({ scope: 'dead-domains' });
  t.deepEqual((await m.list()).ports, []);
  t.is(await read(env, '/local/shared_mem/kept-ports'), null);
  t.deepEqual(await env.xs.directory('/local/shared_mem').catch(() => []), []);
});
