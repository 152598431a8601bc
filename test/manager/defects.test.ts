/**
 * One test per defect of the 2017 libxl static shared memory patches (FACTS.md section 5):
 * - the owner domid written in decimal and read back as hex (wrong for domid >= 10);
 * - a `continue` inside the transaction loop leaked the transaction;
 * - return codes of writes ignored;
 * - hypercalls inside the retry loop, so a retried commit skipped remapping;
 * - a 16-bit batch size overflowed by regions above 65,535 pages.
 */
import test from 'ava';
import { HypercallError } from '../../lib/hypervisor';
import { ManagerError, SharedMemoryManager } from '../../lib/manager';
import { destroyDomain } from '../../lib/sandbox/toolstack';
import { gfnsOf } from '../../lib/store';
import { XenstoreError } from '../../xenstore-wire';
import { cleanProblems, config, consistencyProblems, startEnv, type Env, type StoreKind } from './helpers';
import type { StepHook, StepInfo } from './steps';


/** Open transactions on every connection of the in-memory server. */
function openTransactions(env: Env): number {
  return env.server!.core.connections.reduce((n, c) => n + c.transactions.length, 0);
}

for (const kind of ['memory', 'cxenstored'] as StoreKind[]) {
  test(`domids >= 10 are written and read back in decimal (${kind})`, async (t) => {
    const env = await startEnv(kind, { fakeDomains: [10, 16, 22, 255, 4095] });
    t.teardown(() => env.close());
    // d16 owns; d22 also exists: reading "16" as hex would name d22 and map its pages instead.
    const owner = await env.vm('vm16', { domid: 16 });
    const decoy = await env.vm('vm22', { domid: 22 });
    const borrowers = [await env.vm('vm10', { domid: 10 }), await env.vm('vm255', { domid: 255 }), await env.vm('vm4095', { domid: 4095 })];
    const m = env.manager();
    const ownerCfg = 'name = "vm16"\nstatic_shm = ["id=R, begin=0x60000000, size=64K, role=owner"]\n';
    const decoyCfg = 'name = "vm22"\nstatic_shm = ["id=D, begin=0x60000000, size=64K, role=owner"]\n';
    await m.apply({ config: config(ownerCfg), domid: owner });
    await m.apply({ config: config(decoyCfg), domid: decoy });
    t.is(await env.xs.readString('/local/shared_mem/R/owner'), '16');
    for (const b of borrowers) {
      await m.apply({ config: config(`name = "vm${b}"\nstatic_shm = ["id=R, begin=0x70000000, size=64K"]\n`), domid: b, allowSetTarget: true });
      t.is(await env.xs.readString(`/local/domain/${b}/target`), '16');
    }
    const region = await m.region('R');
    t.is(region.owner, 16);
    t.deepEqual(region.mappings.map((x) => x.domid), [10, 16, 255, 4095]);
    const ownerPage = await env.hv.physmapEntry(16, 0x60000);
    for (const b of borrowers) {
      const e = await env.hv.physmapEntry(b, 0x70000);
      t.true(e.kind === 'foreign' && e.owner === 16 && ownerPage.kind === 'ram' && e.mfn === ownerPage.mfn, `d${b} maps d16's frame`);
    }
    t.deepEqual(await consistencyProblems(env), []);
    for (const b of borrowers) await m.release({ domid: b });
    await m.release({ domid: 16 });
    await m.release({ domid: 22 });
    t.deepEqual(await cleanProblems(env), []);
  });
}

/** Counts hypercalls by kind (the manager's step hook sees every call). */
function hypercallCounter(): { hook: StepHook; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  return {
    calls,
    hook: (s: StepInfo, phase) => {
      if (s.kind !== 'hypercall' || phase !== 'before') return;
      const name = s.label.split(' ')[0];
      calls.set(name, (calls.get(name) ?? 0) + 1);
    },
  };
}

async function retriedApply(t: import('ava').ExecutionContext, env: Env): Promise<void> {
  const a = await env.vm('vma');
  const borrowers = [await env.vm('vmb'), await env.vm('vmc'), await env.vm('vmd')];
  const { hook, calls } = hypercallCounter();
  const m = env.manager({ stepHook: hook, batchPages: 64 });
  let retries = 0;
  m.on('retry', () => retries++);
  // 256 pages in 4 populate calls of 64; each borrower maps 128 pages in 2 calls.
  await m.apply({ config: config('name = "vma"\nstatic_shm = ["id=E, begin=0x60000000, size=1M, role=owner"]\n'), domid: a });
  for (const [i, b] of borrowers.entries()) {
    const name = ['vmb', 'vmc', 'vmd'][i];
    await m.apply({ config: config(`name = "${name}"\nstatic_shm = ["id=E, begin=0x70000000, size=512K, offset=512K"]\n`), domid: b, allowSetTarget: true });
  }
  for (const b of borrowers) await m.release({ domid: b });
  await m.release({ domid: a });
  t.true(retries > 0, 'the daemon made some commits fail with EAGAIN');
  t.log(`${retries} transaction retries`);
  t.is(calls.get('populatePhysmap'), 4);
  t.is(calls.get('addToPhysmapForeign'), 2 * borrowers.length);
  t.is(calls.get('setTarget'), borrowers.length);
  t.is(calls.get('removeFromPhysmap'), 2 * borrowers.length);
  t.is(calls.get('decreaseReservation'), 4);
  t.deepEqual(await cleanProblems(env), []);
}

test('a transaction retried after EAGAIN never repeats or skips hypercalls (in-memory fault injection)', async (t) => {
  const env = await startEnv('memory', { faults: { seed: 7, commitEagainRate: 0.4 } });
  t.teardown(() => env.close());
  await retriedApply(t, env);
  t.is(openTransactions(env), 0);
});

test('a transaction retried after EAGAIN never repeats or skips hypercalls (oxenstored test-eagain)', async (t) => {
  const env = await startEnv('oxenstored', { testEagain: true });
  t.teardown(() => env.close());
  await retriedApply(t, env);
});

test('a retried commit still leaves every page mapped', async (t) => {
  const env = await startEnv('memory', { faults: { seed: 3, commitEagainRate: 0.5 } });
  t.teardown(() => env.close());
  const a = await env.vm('vma');
  const b = await env.vm('vmb');
  const m = env.manager();
  let retries = 0;
  m.on('retry', () => retries++);
  await m.apply({ config: config('name = "vma"\nstatic_shared_mem = ["0x60000000+256K = S"]\n'), domid: a });
  await m.apply({ config: config('name = "vmb"\nstatic_shared_mem = ["0x70000000+256K = S"]\n'), domid: b, allowSetTarget: true });
  t.true(retries > 0);
  t.deepEqual(await consistencyProblems(env), []);
  t.is((await env.hv.domains()).find((d) => d.domid === b)!.mappedGfns, 64);
  t.is(openTransactions(env), 0);
});

/** A manager with a step hook for one operation only (the hook leaves the client afterwards). */
async function withManager<T>(env: Env, hook: StepHook, fn: (m: SharedMemoryManager) => Promise<T>): Promise<T> {
  const m = env.manager({ stepHook: hook });
  try {
    return await fn(m);
  } finally {
    m.dispose();
  }
}

/**
 * Every step (xenstore request or hypercall) of an apply is made to fail in turn: the apply
 * must reject with a typed error, leave no transaction open, and leave the store and the host
 * as they were.
 */
test('the error of every write (and every other step) is checked: a failure anywhere changes nothing', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('vma');
  await env.xs.mkdir('/local/shared_mem');
  const ownerCfg = config('name = "vma"\nstatic_shm = ["id=F1, begin=0x60000000, size=16K, role=owner", "id=F2, begin=0x61000000, size=8K, role=owner"]\n');
  // A fresh borrower each time: set_target is once per domain, and its steps must be covered too.
  let b = 0;
  let serial = 0;
  const borrowerCfg = () => config(`name = "vmb${serial}"\nstatic_shm = ["id=F1, begin=0x70000000, size=8K, offset=8K", "id=F2, begin=0x71000000, size=8K"]\n`);

  const scenarios: Array<{ label: string; before: () => Promise<void>; run: (hook: StepHook) => Promise<unknown>; after: () => Promise<void> }> = [
    {
      label: 'owner apply',
      before: async () => undefined,
      run: (hook) => withManager(env, hook, (m) => m.apply({ config: ownerCfg, domid: a })),
      after: async () => void (await env.manager().release({ domid: a, force: true })),
    },
    {
      label: 'borrower apply (with set_target)',
      before: async () => {
        b = await env.vm(`vmb${++serial}`);
        await env.manager().apply({ config: ownerCfg, domid: a });
      },
      run: (hook) => withManager(env, hook, (m) => m.apply({ config: borrowerCfg(), domid: b, allowSetTarget: true })),
      after: async () => {
        await env.manager().release({ domid: b });
        await env.manager().release({ domid: a });
        await destroyDomain(env.xs, env.hv, b);
      },
    },
  ];
  let failures = 0;
  for (const sc of scenarios) {
    // Count the steps of a clean run first.
    await sc.before();
    let total = 0;
    await sc.run((s, phase) => void (phase === 'before' && (total = s.n)));
    await sc.after();
    t.true(total > 10, `${sc.label}: ${total} steps`);
    for (let n = 1; n <= total; n++) {
      await sc.before();
      // The set_target record follows Xen's target, which stays: it may appear, nothing else.
      const storeView = async () => (await env.dumpStore()).split('\n').filter((l) => !l.startsWith(`/local/domain/${b}/target = "${a}"`)).join('\n');
      const base = await storeView();
      // set_target cannot be undone (Xen has no reverse): past that step it stays, on the owner.
      const hostView = async () => JSON.stringify((await env.hv.domains()).map(({ target: _t, ...d }) => d));
      const baseDomains = await hostView();
      let injected: Error | null = null;
      let stepLabel = '';
      const hook: StepHook = (s, phase) => {
        if (s.n !== n || phase !== 'before') return;
        stepLabel = s.label;
        injected = s.kind === 'xenstore'
          ? new XenstoreError('EIO', { op: s.label.split(' ')[0], path: s.label.split(' ')[1], source: 'client', detail: `injected at step ${n}` })
          : new HypercallError({ call: s.label, errno: 5, message: `injected EIO at step ${n}` });
        throw injected;
      };
      const err = await t.throwsAsync(sc.run(hook), undefined, `${sc.label}: step ${n} fails`);
      t.truthy(injected, `${sc.label}: step ${n} was reached`);
      const e = err as Error & { kind?: string; code?: string; cause?: unknown };
      t.true(e === injected || e.cause === injected || e instanceof ManagerError, `${sc.label}: step ${n}: the injected error surfaces (${e?.message})`);
      t.is(typeof e.kind, 'string');
      t.is(typeof e.code, 'string');
      t.is(openTransactions(env), 0, `${sc.label}: step ${n} (${stepLabel}): no transaction left open`);
      t.is(await storeView(), base, `${sc.label}: step ${n}: the store is as before`);
      if (await env.xs.exists(`/local/domain/${b}/target`)) t.is((await env.hv.domains()).find((d) => d.domid === b)?.target, a);
      t.is(await hostView(), baseDomains, `${sc.label}: step ${n}: the host is as before`);
      t.true((await env.hv.domains()).every((d) => d.target === null || d.target === a), 'a target is only ever the owner');
      t.deepEqual(await consistencyProblems(env), []);
      failures++;
      await sc.after();
    }
  }
  t.deepEqual(await cleanProblems(env), []);
  t.log(`${failures} injected failures, each rolled back`);
});

test('regions above 65,535 pages: one call of 66,048 pages is split into 16-bit batches and every page is mapped', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const pages = 65535 + 513;
  const a = await env.vm('big', { memoryMiB: 16, maxmemMiB: 16 + 260 });
  const b = await env.vm('peer', { memoryMiB: 16 });
  // One manager batch holds the whole region: the hypervisor layer must split it.
  const { hook, calls } = hypercallCounter();
  const m = env.manager({ batchPages: 1 << 20, stepHook: hook });
  const size = `0x${(pages * 4096).toString(16)}`;
  await m.apply({ config: config(`name = "big"\nstatic_shm = ["id=BIG, begin=0x100000000, size=${size}, role=owner"]\n`), domid: a });
  await m.apply({ config: config(`name = "peer"\nstatic_shm = ["id=BIG, begin=0x200000000, size=${size}"]\n`), domid: b, allowSetTarget: true });
  t.is(calls.get('addToPhysmapForeign'), 1);
  const peer = (await env.hv.domains()).find((d) => d.domid === b)!;
  t.is(peer.mappedGfns, pages);
  // Every page aliases: the owner stamps each page, the borrower reads each stamp.
  const ov = await env.hv.guestMap(a, gfnsOf(0x100000000n, BigInt(pages) * 4096n));
  for (let i = 0; i < pages; i++) ov.buffer.writeUInt32LE(i ^ 0x5a5a5a5a, i * 4096);
  ov.unmap();
  const bv = await env.hv.guestMap(b, gfnsOf(0x200000000n, BigInt(pages) * 4096n));
  let wrong = 0;
  for (let i = 0; i < pages; i++) if (bv.buffer.readUInt32LE(i * 4096) !== ((i ^ 0x5a5a5a5a) >>> 0)) wrong++;
  bv.unmap();
  t.is(wrong, 0);
  t.is((await env.xs.readString('/local/shared_mem/BIG/size')), size);
  await m.release({ domid: a, force: true });
  t.deepEqual(await cleanProblems(env), []);
});
