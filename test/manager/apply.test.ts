/**
 * apply and release, one behaviour each: idempotence, refusals before any change (memory,
 * x86 borrowers, set_target consent and single owner, ownership, overlaps, names), windows at
 * an offset, orphaned regions, --force, and domains that no longer exist.
 */
import test from 'ava';
import { ManagerError, openRegion, type ApplyResult } from '../../lib/manager';
import { destroyDomain } from '../../lib/sandbox/toolstack';
import { gfnsOf } from '../../lib/store';
import { cleanProblems, config, consistencyProblems, simFingerprint, startEnv, type Env } from './helpers';

const OWN = (name: string, extra = '') => config(`name = "${name}"\nstatic_shm = ["id=A, begin=0x60000000, size=64K, role=owner"${extra}]\n`);
const BORROW = (name: string, entry = 'id=A, begin=0x70000000, size=64K') => config(`name = "${name}"\nstatic_shm = ["${entry}"]\n`);

async function unchanged(t: import('ava').ExecutionContext, env: Env, fn: () => Promise<unknown>): Promise<ManagerError> {
  const store = await env.dumpStore();
  const host = env.simDir ? simFingerprint(env.simDir) : JSON.stringify(await env.hv.domains());
  const err = await t.throwsAsync(fn());
  t.true(err instanceof ManagerError, `a ManagerError: ${err?.message}`);
  t.is(await env.dumpStore(), store, 'the store is unchanged');
  t.is(env.simDir ? simFingerprint(env.simDir) : JSON.stringify(await env.hv.domains()), host, 'the host is unchanged');
  return err as ManagerError;
}

test('applying the same configs twice changes nothing, byte for byte', async (t) => {
  const env = await startEnv('memory', { simDir: true });
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const m = env.manager();
  await m.apply({ config: OWN('a'), domid: a });
  await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true });
  const store = await env.dumpStore();
  const host = simFingerprint(env.simDir!);
  const again: ApplyResult[] = [await m.apply({ config: OWN('a'), domid: a }), await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true })];
  t.deepEqual(again.flatMap((r) => r.entries.map((e) => e.action)), ['unchanged', 'unchanged']);
  t.is(await env.dumpStore(), store);
  t.is(simFingerprint(env.simDir!), host);
});

test('an owner without room is refused with the memory needed, before any change; --raise-maxmem makes room', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a', { memoryMiB: 16, maxmemMiB: 16 });
  const cfg = config('name = "a"\nstatic_shm = ["id=A, begin=0x60000000, size=2M, role=owner", "id=B, begin=0x60200000, size=1M, role=owner"]\n');
  const m = env.manager();
  const err = await unchanged(t, env, () => m.apply({ config: cfg, domid: a }));
  t.is(err.code, 'ENOMEM');
  t.is(err.reason, 'memory');
  t.regex(err.message, /needs 768 pages \(3 MiB\) for A, B, but its maximum memory leaves room for 256/);
  t.regex(err.hint!, /at least 2 MiB \(to 19 MiB\).*--raise-maxmem/);
  const r = await m.apply({ config: cfg, domid: a, raiseMaxMem: true });
  t.deepEqual(r.maxMemRaised, { fromPages: 17 * 256, toPages: 19 * 256 });
  const info = await env.hv.domainInfo(a);
  t.is(info!.totPages, 19 * 256);
  t.deepEqual(await consistencyProblems(env), []);
});

test('on x86 Xen 4.17 a domU borrower is refused before any change (the hypervisor layer\'s rule names 4.19), and dom0 is the peer through a region handle', async (t) => {
  const env = await startEnv('memory', { arch: 'x86' });
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const m = env.manager();
  const r = await m.apply({ config: OWN('a'), domid: a });
  t.is(r.entries[0].role, 'owner');
  t.is(await env.xs.readString('/local/shared_mem/A/cache_policy'), 'x86_normal');
  const err = await unchanged(t, env, () => m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true }));
  t.is(err.code, 'EPERM');
  t.is(err.reason, 'x86-borrower');
  t.regex(err.message, /on x86, Xen 4\.17\.\d+ maps another domain's frames only into the hardware domain: d\d+ cannot borrow A from d\d+; Xen 4\.19 and later let an HVM\/PVH domU borrow \(.*845a60b63b/);
  t.regex(err.hint!, /run Xen 4\.19 or later/);
  t.regex(err.hint!, /peek A/);
  // dom0 reads and writes the owner's bytes.
  const h = await openRegion(m, 'A', { offset: 4096n, length: 16n });
  h.buffer.write('from dom0');
  h.close();
  const g = await env.hv.guestMap(a, gfnsOf(0x60001000n, 4096n));
  t.is(g.buffer.toString('utf8', 0, 9), 'from dom0');
  g.unmap();
});

test('on x86 Xen 4.19 and later an HVM/PVH domU borrows (the manager asks the hypervisor layer); a PV domU is refused', async (t) => {
  for (const release of ['4.19', '4.20'] as const) {
    const env = await startEnv('memory', { arch: 'x86', release });
    t.teardown(() => env.close());
    const a = await env.vm('a');
    const b = await env.vm('b');
    const m = env.manager();
    await m.apply({ config: OWN('a'), domid: a });
    const r = await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true });
    t.like(r.entries[0], { id: 'A', role: 'borrower', action: 'mapped', setTarget: 'done' }, release);
    t.deepEqual(await consistencyProblems(env), [], release);
    const pv = await env.vm('pv', { type: 'pv' });
    const err = await unchanged(t, env, () => m.apply({ config: BORROW('pv'), domid: pv, allowSetTarget: true }));
    t.is(err.reason, 'x86-borrower');
    t.regex(err.message, /is an x86 PV domain/);
    t.regex(err.hint!, /type = "pvh" or "hvm"/);
  }
});

test('set_target: refused without consent, recorded once given, and a second owner is refused', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const c = await env.vm('c');
  const b = await env.vm('b');
  const m = env.manager();
  await m.apply({ config: OWN('a'), domid: a });
  await m.apply({ config: config('name = "c"\nstatic_shm = ["id=C, begin=0x60000000, size=64K, role=owner"]\n'), domid: c });
  const noConsent = await unchanged(t, env, () => m.apply({ config: BORROW('b'), domid: b }));
  t.is(noConsent.code, 'EPERM');
  t.is(noConsent.reason, 'set-target');
  t.regex(noConsent.hint!, /never undone.*device-model rights.*--allow-set-target/);
  // Two owners in one config.
  const two = config('name = "b"\nstatic_shm = ["id=A, begin=0x70000000, size=64K", "id=C, begin=0x71000000, size=64K"]\n');
  const twoErr = await unchanged(t, env, () => m.apply({ config: two, domid: b, allowSetTarget: true }));
  t.is(twoErr.reason, 'set-target');
  t.regex(twoErr.message, /one owner only/);
  const r = await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true });
  t.is(r.entries[0].setTarget, 'done');
  t.is(await env.xs.readString(`/local/domain/${b}/target`), String(a));
  t.is((await env.hv.domains()).find((d) => d.domid === b)!.target, a);
  // Later, another owner: refused, even after release (set_target is forever).
  await m.release({ domid: b });
  const later = await unchanged(t, env, () => m.apply({ config: BORROW('b', 'id=C, begin=0x70000000, size=64K'), domid: b, allowSetTarget: true }));
  t.is(later.reason, 'set-target');
  t.regex(later.message, /already has d1 as its target/);
  const list = await m.list();
  t.deepEqual(list.domains.map((d) => [d.domid, d.target]), [[a, null], [c, null]]);
});

test('ownership and records are checked against the store before any change', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const m = env.manager();
  const none = await unchanged(t, env, () => m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true }));
  t.is(none.code, 'ENOENT');
  t.is(none.reason, 'no-owner');
  await m.apply({ config: OWN('a'), domid: a });
  const second = await unchanged(t, env, () => m.apply({ config: config('name = "b"\nstatic_shm = ["id=A, begin=0x60000000, size=64K, role=owner"]\n'), domid: b }));
  t.is(second.code, 'EEXIST');
  t.is(second.reason, 'owner-exists');
  const moved = await unchanged(t, env, () => m.apply({ config: config('name = "a"\nstatic_shm = ["id=A, begin=0x68000000, size=64K, role=owner"]\n'), domid: a }));
  t.is(moved.reason, 'conflict');
  const window = await unchanged(t, env, () => m.apply({ config: BORROW('b', 'id=A, begin=0x70000000, size=64K, offset=4K'), domid: b, allowSetTarget: true }));
  t.is(window.reason, 'mismatch');
  const spelling = await unchanged(t, env, () => m.apply({ config: config('name = "b"\nstatic_shared_mem = ["0x70000000+64K = A"]\n'), domid: b, allowSetTarget: true }));
  t.is(spelling.reason, 'mismatch');
  t.regex(spelling.message, /static_shm/);
  const overlap = await unchanged(t, env, () => m.apply({ config: config('name = "a"\nstatic_shm = ["id=O, begin=0x60008000, size=64K, role=owner"]\n'), domid: a }));
  t.is(overlap.reason, 'overlap');
  const wrongName = await unchanged(t, env, () => m.apply({ config: BORROW('zz'), domid: b, allowSetTarget: true }));
  t.is(wrongName.reason, 'domain');
  const dom0 = await unchanged(t, env, () => m.apply({ config: BORROW('Domain-0'), domid: 0 }));
  t.is(dom0.reason, 'domain');
  const missing = await unchanged(t, env, () => m.apply({ config: BORROW('ghost'), domid: 77 }));
  t.is(missing.code, 'ESRCH');
  const byName = await unchanged(t, env, () => m.apply({ config: BORROW('ghost') }));
  t.is(byName.code, 'ESRCH');
  const bad = await unchanged(t, env, () => m.apply({ config: config('name = "a"\nstatic_shm = ["id=A, begin=0x60000800, size=64K, role=owner"]\n'), domid: a }));
  t.is(bad.reason, 'config');
  t.is((bad.errors![0] as { rule: string }).rule, 'align');
  // By name, through /local/domain/*/name.
  const r = await m.apply({ config: BORROW('b'), domain: 'b', allowSetTarget: true });
  t.is(r.domid, b);
  t.deepEqual(await m.apply({ config: config('name = "b"\n'), domid: b }), { domid: b, domain: 'b', entries: [] });
});

test("a borrower's window at an offset maps the owner's pages at that offset", async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const m = env.manager();
  await m.apply({ config: OWN('a'), domid: a });
  await m.apply({ config: BORROW('b', 'id=A, begin=0x80000000, size=8K, offset=0xc000, prot=r'), domid: b, allowSetTarget: true });
  const ov = await env.hv.guestMap(a, gfnsOf(0x60000000n, 0x10000n));
  ov.buffer.write('page 12', 0xc000);
  ov.buffer.write('page 13', 0xd000);
  ov.unmap();
  const bv = await env.hv.guestMap(b, gfnsOf(0x80000000n, 0x2000n));
  t.is(bv.buffer.toString('utf8', 0, 7), 'page 12');
  t.is(bv.buffer.toString('utf8', 0x1000, 0x1007), 'page 13');
  bv.unmap();
  t.is(await env.xs.readString(`/local/shared_mem/A/mappings/${b}`), '0x80000000-0x80002000');
  t.is(await env.xs.readString(`/local/shared_mem/A/mappings/${b}/offset`), '0xc000');
  t.is(await env.xs.readString(`/local/domain/${b}/shared_mem/A/prot`), 'r');
  t.deepEqual(await consistencyProblems(env), []);
});

test('an owner released before its borrowers leaves the region orphaned; --force releases the borrowers first', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const c = await env.vm('c');
  const m = env.manager();
  await m.apply({ config: OWN('a'), domid: a });
  await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true });
  const ov = await env.hv.guestMap(a, gfnsOf(0x60000000n, 4096n));
  ov.buffer.write('still here');
  ov.unmap();
  const r = await m.release({ domid: a });
  t.deepEqual(r.entries.map((e) => [e.id, e.role, e.action]), [['A', 'owner', 'orphaned']]);
  const region = await m.region('A');
  t.is(region.state, 'orphaned');
  t.deepEqual(region.mappings.map((x) => x.domid), [b]);
  t.false(await env.xs.exists(`/local/domain/${a}/shared_mem`));
  // The borrower keeps the frames (Xen holds them by its mapping's reference).
  const bv = await env.hv.guestMap(b, gfnsOf(0x70000000n, 4096n));
  t.is(bv.buffer.toString('utf8', 0, 10), 'still here');
  bv.unmap();
  t.is((await unchanged(t, env, () => m.apply({ config: OWN('a'), domid: a }))).reason, 'state');
  t.is((await unchanged(t, env, () => m.apply({ config: BORROW('c'), domid: c, allowSetTarget: true }))).reason, 'state');
  t.is((await unchanged(t, env, () => openRegion(m, 'A'))).reason, 'state');
  await m.release({ domid: b });
  t.deepEqual((await m.list()).regions, []);
  t.deepEqual(await cleanProblems(env), []);

  await m.apply({ config: OWN('a'), domid: a });
  await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true });
  await m.apply({ config: BORROW('c'), domid: c, allowSetTarget: true });
  const forced = await m.release({ domid: a, force: true });
  t.deepEqual(forced.entries.map((e) => [e.domid, e.role, e.action]), [[b, 'borrower', 'released'], [c, 'borrower', 'released'], [a, 'owner', 'released']]);
  t.deepEqual(await cleanProblems(env), []);
  t.deepEqual(await m.release({ domid: a }), { domid: a, entries: [] });
  const err = await t.throwsAsync(m.release({ domid: a, ids: ['NOPE'] }));
  t.is((err as ManagerError).code, 'ENOENT');
});

test('a domain that no longer exists counts as already unmapped; a dead owner turns its region orphaned', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const c = await env.vm('c');
  const m = env.manager();
  await m.apply({ config: OWN('a'), domid: a });
  await m.apply({ config: BORROW('b'), domid: b, allowSetTarget: true });
  await m.apply({ config: BORROW('c'), domid: c, allowSetTarget: true });
  await destroyDomain(env.xs, env.hv, b);
  const r = await m.release({ domid: b });
  t.deepEqual(r.entries.map((e) => [e.role, e.action, e.hypercalls]), [['borrower', 'released', false]]);
  // The owner dies while c still maps its pages: a zombie until c lets go.
  await destroyDomain(env.xs, env.hv, a);
  t.true((await env.hv.domainInfo(a))!.dying);
  const rec = await m.reconcile();
  t.deepEqual(rec.actions.map((x) => [x.domid, x.role, x.action]), [[a, 'owner', 'orphaned']]);
  t.is((await m.region('A')).state, 'orphaned');
  await m.release({ domid: c });
  // Its frames are free once unmapped; set_target still holds the dead owner (Xen keeps a
  // target referenced until the borrower itself is destroyed).
  const zombie = await env.hv.domainInfo(a);
  t.true(zombie!.dying);
  t.is(zombie!.totPages, 0);
  t.deepEqual((await m.list()).regions, []);
  await destroyDomain(env.xs, env.hv, c);
  t.is(await env.hv.domainInfo(a), null, 'gone with the last domain targeting it');
  t.deepEqual(await cleanProblems(env), []);
});
