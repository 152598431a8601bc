/**
 * Locks, reconcile and the daemon: an intent is rolled back only once the process its lock
 * names is gone (a reused pid does not count as alive), never while it lives; apply waits for a
 * live one; the daemon cleans up after domains that die and survives xenstored restarts.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { formatLock, lockStatus, parseLock, processStartTime, runDaemon, selfIdentity, type DaemonEvent } from '../../lib/manager';
import { destroyDomain } from '../../lib/sandbox/toolstack';
import { connect } from '../../xenstore-wire';
import { cleanProblems, config, consistencyProblems, startEnv, type Env } from './helpers';

function sleeper(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  return new Promise((resolve) => child.once('spawn', () => resolve(child)));
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

function lockOf(pid: number, start?: string): string {
  return formatLock({ host: hostname(), pid, start: start ?? processStartTime(pid)! });
}

test('locks name host, pid and start time; a reused pid is not alive', async (t) => {
  const me = selfIdentity();
  t.is(me.pid, process.pid);
  t.regex(me.start, /^\d+$/);
  t.is(lockStatus(formatLock(me)), 'alive');
  t.deepEqual(parseLock(formatLock(me)), me);
  const child = await sleeper();
  const lock = lockOf(child.pid!);
  t.is(lockStatus(lock), 'alive');
  // Same pid, another start time: the pid was reused by someone else.
  t.is(lockStatus(lockOf(child.pid!, String(Number(processStartTime(child.pid!)) + 1))), 'dead');
  t.is(lockStatus(formatLock({ host: 'elsewhere', pid: child.pid!, start: '1' })), 'unknown');
  t.is(lockStatus('not a lock'), 'dead');
  child.kill('SIGKILL');
  await exited(child);
  t.is(lockStatus(lock), 'dead');
  t.is(processStartTime(child.pid!), null);
});

/** Makes an applied mapping look like an intent in progress, held by `lock`. */
async function intent(env: Env, id: string, domid: number, lock: string, region?: 'allocating'): Promise<void> {
  await env.xs.transaction(async (tx) => {
    await tx.write(`/local/shared_mem/${id}/mappings/${domid}/state`, 'mapping');
    await tx.write(`/local/shared_mem/${id}/mappings/${domid}/lock`, lock);
    if (region) await tx.write(`/local/shared_mem/${id}/state`, region);
  });
}

test('reconcile leaves a live intent alone and rolls it back once its process is gone', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const c = await env.vm('c');
  const m = env.manager();
  await m.apply({ config: config('name = "a"\nstatic_shm = ["id=R, begin=0x60000000, size=32K, role=owner", "id=S, begin=0x61000000, size=8K, role=owner"]\n'), domid: a });
  await m.apply({ config: config('name = "b"\nstatic_shm = ["id=R, begin=0x70000000, size=32K"]\n'), domid: b, allowSetTarget: true });
  await m.apply({ config: config('name = "c"\nstatic_shm = ["id=R, begin=0x70000000, size=16K"]\n'), domid: c, allowSetTarget: true });
  const live = await sleeper();
  const liveLock = lockOf(live.pid!);
  // b's mapping is half-done by a live process, c's by one on another host, S by a dead one.
  await intent(env, 'R', b, liveLock);
  await intent(env, 'R', c, formatLock({ host: 'other-host', pid: 1, start: '1' }));
  await intent(env, 'S', a, lockOf(live.pid!, '1'), 'allocating');
  const first = await m.reconcile();
  t.deepEqual(first.actions.map((x) => [x.id, x.domid, x.action]), [
    ['R', b, 'skipped-live'],
    ['R', c, 'skipped-unknown'],
    ['S', a, 'rolled-back'],
  ]);
  t.false(await env.xs.exists('/local/shared_mem/S'));
  t.is((await env.hv.physmapEntry(b, 0x70000)).kind, 'foreign', 'the live intent kept its pages');
  // Waiting applies: a second apply of b waits for the live lock, then reports it dead.
  let waited = 0;
  m.on('wait', () => waited++);
  const pending = m.apply({ config: config('name = "b"\nstatic_shm = ["id=R, begin=0x70000000, size=32K"]\n'), domid: b, allowSetTarget: true });
  await new Promise((r) => setTimeout(r, 150));
  live.kill('SIGKILL');
  await exited(live);
  const err = await t.throwsAsync(pending);
  t.true(waited > 0);
  t.is((err as { code?: string }).code, 'EBUSY');
  t.regex(err!.message, /is gone/);
  const second = await m.reconcile();
  t.deepEqual(second.actions.map((x) => [x.id, x.domid, x.action]), [
    ['R', b, 'rolled-back'],
    ['R', c, 'skipped-unknown'],
  ]);
  t.is((await env.hv.physmapEntry(b, 0x70000)).kind, 'none');
  t.false(await env.xs.exists(`/local/domain/${b}/shared_mem/R`));
  // Clear the foreign lock by hand (as an administrator would), then everything is consistent.
  await env.xs.write(`/local/shared_mem/R/mappings/${c}/state`, 'mapped');
  await env.xs.rm(`/local/shared_mem/R/mappings/${c}/lock`);
  t.deepEqual(await consistencyProblems(env), []);
});

test('apply waits while the owner of a region is still being applied by a live process', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const m = env.manager();
  await m.apply({ config: config('name = "a"\nstatic_shm = ["id=R, begin=0x60000000, size=16K, role=owner"]\n'), domid: a });
  const live = await sleeper();
  t.teardown(() => void live.kill('SIGKILL'));
  await intent(env, 'R', a, lockOf(live.pid!), 'allocating');
  const waits: string[] = [];
  m.on('wait', (w) => waits.push(w.why));
  const pending = m.apply({ config: config('name = "b"\nstatic_shm = ["id=R, begin=0x70000000, size=16K"]\n'), domid: b, allowSetTarget: true });
  await new Promise((r) => setTimeout(r, 150));
  // The "other process" commits.
  await env.xs.transaction(async (tx) => {
    await tx.write(`/local/shared_mem/R/mappings/${a}/state`, 'mapped');
    await tx.rm(`/local/shared_mem/R/mappings/${a}/lock`);
    await tx.write('/local/shared_mem/R/state', 'ready');
  });
  const r = await pending;
  t.is(r.entries[0].action, 'mapped');
  t.true(waits.length > 0);
  t.regex(waits[0], /owner's apply by process/);
  t.deepEqual(await consistencyProblems(env), []);
});

function collector(): { events: DaemonEvent[]; until: (pred: (e: DaemonEvent) => boolean, ms?: number) => Promise<void>; push: (e: DaemonEvent) => void } {
  const events: DaemonEvent[] = [];
  const waiters: Array<() => void> = [];
  return {
    events,
    push(e) {
      events.push(e);
      for (const w of waiters.splice(0)) w();
    },
    until(pred, ms = 10_000) {
      const start = events.length;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching daemon event in ${ms} ms: ${JSON.stringify(events.slice(start).map((e) => e.type))}`)), ms);
        const check = (): void => {
          if (events.slice(start).some(pred)) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

for (const kind of ['memory', 'cxenstored'] as const) {
  test(`the daemon releases what dying domains held and orphans a dead owner's region (${kind})`, async (t) => {
    const env = await startEnv(kind);
    t.teardown(() => env.close());
    const a = await env.vm('a');
    const b = await env.vm('b');
    const c = await env.vm('c');
    const m = env.manager();
    await m.apply({ config: config('name = "a"\nstatic_shm = ["id=R, begin=0x60000000, size=16K, role=owner"]\n'), domid: a });
    await m.apply({ config: config('name = "b"\nstatic_shm = ["id=R, begin=0x70000000, size=16K"]\n'), domid: b, allowSetTarget: true });
    await m.apply({ config: config('name = "c"\nstatic_shm = ["id=R, begin=0x70000000, size=8K"]\n'), domid: c, allowSetTarget: true });
    const ac = new AbortController();
    const log = collector();
    const done = runDaemon({ connect: () => connect({ path: env.socketPath }), hypervisor: env.hv, signal: ac.signal, onEvent: log.push });
    await log.until((e) => e.type === 'reconciled' && e.trigger === 'connect');
    await destroyDomain(env.xs, env.hv, b);
    await log.until((e) => e.type === 'reconciled' && e.actions.some((x) => x.domid === b && x.action === 'released'));
    t.deepEqual((await m.region('R')).mappings.map((x) => x.domid), [a, c]);
    await destroyDomain(env.xs, env.hv, a);
    await log.until((e) => e.type === 'reconciled' && e.actions.some((x) => x.domid === a && x.action === 'orphaned'));
    t.is((await m.region('R')).state, 'orphaned');
    await destroyDomain(env.xs, env.hv, c);
    await log.until((e) => e.type === 'reconciled' && e.actions.some((x) => x.domid === c && x.action === 'released'));
    t.deepEqual((await m.list()).regions, []);
    ac.abort();
    await done;
    t.is(log.events[log.events.length - 1].type, 'stopped');
    t.deepEqual(await cleanProblems(env), []);
  });
}

test('the daemon survives xenstored restarts: it reconnects and reconciles what happened meanwhile', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const a = await env.vm('a');
  const b = await env.vm('b');
  const m = env.manager();
  await m.apply({ config: config('name = "a"\nstatic_shm = ["id=R, begin=0x60000000, size=16K, role=owner"]\n'), domid: a });
  await m.apply({ config: config('name = "b"\nstatic_shm = ["id=R, begin=0x70000000, size=16K"]\n'), domid: b, allowSetTarget: true });
  const ac = new AbortController();
  const log = collector();
  const done = runDaemon({ connect: () => connect({ path: env.socketPath }), hypervisor: env.hv, signal: ac.signal, onEvent: log.push, reconnectDelayMs: 20 });
  await log.until((e) => e.type === 'reconciled');
  // xenstored goes away; meanwhile b dies (nobody tells the daemon).
  const server = env.server!;
  const restarted = log.until((e) => e.type === 'disconnected');
  await server.restart();
  await restarted;
  await env.hv.destroyDomain(b);
  await log.until((e) => e.type === 'reconciled' && e.trigger === 'connect' && e.actions.some((x) => x.domid === b && x.action === 'released'));
  t.true(log.events.filter((e) => e.type === 'connected').length >= 2);
  ac.abort();
  await done;
  // The test's own connection died with the restart: a new one sees the result.
  const xs = await connect({ path: env.socketPath });
  t.deepEqual((await xs.directory('/local/shared_mem/R/mappings')).map(Number), [a]);
  await xs.close();
});
