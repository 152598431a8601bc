/**
 * Cost independent of the host's size (issue 15 point 1), as counts rather than times: the
 * xenstore requests and hypercalls of one apply, release and dead domain's cleanup are the same
 * on a host of 2 domains and on hosts of tens or hundreds, on the in-memory xenstored and on C
 * xenstored (counted through the client's interceptor and intercept(hypervisor)). And the
 * per-domain index: kept right by apply, release, reconcile and the daemon; records of an older
 * version (no index) are indexed on first use; an index left behind by an older version is
 * repaired by reconcile. Speed is bench/scale.ts's job, not these tests'.
 */
import test from 'ava';
import { runDaemon, type DaemonEvent, type ReconcileReport, type SharedMemoryManager } from '../../lib/manager';
import { destroyDomain } from '../../lib/sandbox/toolstack';
import { READ_WINDOW, sharedMemoryTree, StorePaths } from '../../lib/store';
import { connect } from '../../xenstore-wire';
import { cleanProblems, config, consistencyProblems, indexProblemsOf, startEnv, type Env, type StoreKind } from './helpers';

const PAIR_OWNER = (name: string, k: number) =>
  config(`name = "${name}"\nstatic_shm = ["id=P${k}A, begin=0x60000000, size=16K, role=owner", "id=P${k}B, begin=0x61000000, size=8K, role=owner"]\n`);
const PAIR_BORROWER = (name: string, k: number) => config(`name = "${name}"\nstatic_shm = ["id=P${k}A, begin=0x70000000, size=16K", "id=P${k}B, begin=0x71000000, size=8K"]\n`);

/** `pairs` owner/borrower pairs sharing two regions each: the host around the measured pair. */
async function background(env: Env, m: SharedMemoryManager, pairs: number): Promise<void> {
  for (let k = 0; k < pairs; k++) {
    const o = await env.vm(`bo${k}`);
    const b = await env.vm(`bb${k}`);
    await m.apply({ config: PAIR_OWNER(`bo${k}`, k), domid: o });
    await m.apply({ config: PAIR_BORROWER(`bb${k}`, k), domid: b, allowSetTarget: true });
  }
}

interface Counts {
  xenstore: number;
  hypercalls: number;
}

/** Runs fn on a manager whose every request and hypercall is counted. */
async function counted(env: Env, fn: (m: SharedMemoryManager) => Promise<unknown>): Promise<Counts> {
  const c: Counts = { xenstore: 0, hypercalls: 0 };
  const m = env.manager({ stepHook: (s, phase) => void (phase === 'before' && (s.kind === 'xenstore' ? c.xenstore++ : c.hypercalls++)) });
  try {
    await fn(m);
  } finally {
    m.dispose();
  }
  return c;
}

/** The measured pair's life on a host of `pairs` other pairs: counts per operation. */
async function countsOnHost(kind: StoreKind, pairs: number): Promise<Record<string, Counts>> {
  const env = await startEnv(kind, { fakeDomains: Array.from({ length: 2 * pairs + 8 }, (_, i) => i + 1) });
  try {
    const setup = env.manager();
    await background(env, setup, pairs);
    const o = await env.vm('mo');
    const b = await env.vm('mb');
    const own = PAIR_OWNER('mo', 999);
    const borrow = PAIR_BORROWER('mb', 999);
    const out: Record<string, Counts> = {};
    out['apply owner'] = await counted(env, (m) => m.apply({ config: own, domid: o }));
    out['apply borrower (set_target)'] = await counted(env, (m) => m.apply({ config: borrow, domid: b, allowSetTarget: true }));
    out['apply again'] = await counted(env, (m) => m.apply({ config: borrow, domid: b, allowSetTarget: true }));
    out['release borrower'] = await counted(env, (m) => m.release({ domid: b }));
    out['release owner'] = await counted(env, (m) => m.release({ domid: o }));
    await setup.apply({ config: own, domid: o });
    await setup.apply({ config: borrow, domid: b, allowSetTarget: true });
    await destroyDomain(env.xs, env.hv, b);
    let report: ReconcileReport | undefined;
    const cleanup = await counted(env, async (m) => (report = await m.reconcile({ scope: 'dead-domains' })));
    if (report?.actions.length !== 2) throw new Error(`cleanup released ${JSON.stringify(report?.actions)}`);
    // Whether each indexed domain still runs is one getdomaininfolist (8,192 domains a call);
    // the dead domain's records are read alone.
    out['daemon cleanup of a dead borrower'] = cleanup;
    const problems = await consistencyProblems(env);
    if (problems.length > 0) throw new Error(problems.join('; '));
    return out;
  } finally {
    await env.close();
  }
}

// One pair at least: on a host with no record at all, the index is absent and telling that from
// older records costs one more request (a listing of the empty root).
for (const [kind, sizes] of [['memory', [1, 20, 100]], ['cxenstored', [1, 20]]] as const) {
  test(`one apply, release and dead domain's cleanup cost the same requests on hosts of ${sizes.map((p) => 2 * p + 2).join(', ')} domains (${kind})`, async (t) => {
    t.timeout(300_000);
    const runs: Array<Record<string, Counts>> = [];
    for (const pairs of sizes) runs.push(await countsOnHost(kind, pairs));
    for (const op of Object.keys(runs[0])) {
      t.log(`${op}: ${runs[0][op].xenstore} requests, ${runs[0][op].hypercalls} hypercalls`);
      t.true(runs[0][op].xenstore > 0, op);
      for (let i = 1; i < runs.length; i++) t.deepEqual(runs[i][op], runs[0][op], `${op} on a host of ${2 * sizes[i] + 2} domains`);
    }
  });
}

test('the index follows apply, release, orphaning, --force and the daemon; nothing is left once all is released', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const m = env.manager();
  const paths = new StorePaths();
  const o = await env.vm('o');
  const b = await env.vm('b');
  const c = await env.vm('c');
  await m.apply({ config: PAIR_OWNER('o', 1), domid: o });
  await m.apply({ config: PAIR_BORROWER('b', 1), domid: b, allowSetTarget: true });
  await m.apply({ config: PAIR_BORROWER('c', 1), domid: c, allowSetTarget: true });
  t.deepEqual(await indexProblemsOf(env), []);
  t.is(await env.xs.readString(paths.indexEntry(b, 'P1A')), '0x70000000-0x70004000');
  t.deepEqual((await env.xs.getPerms(paths.domainIndex(b))).map((x) => `${x.access}${x.domid}`), ['n0']);

  // The owner leaves first: its regions turn orphaned and stay in its index, so that a later
  // --force finds them without reading the host.
  const r = await m.release({ domid: o });
  t.deepEqual(r.entries.map((e) => e.action), ['orphaned', 'orphaned']);
  t.is(await env.xs.readString(paths.indexEntry(o, 'P1A')), '0x60000000-0x60004000');
  t.deepEqual(await indexProblemsOf(env), []);
  const forced = await m.release({ domid: o, force: true });
  t.deepEqual(forced.entries.map((e) => [e.id, e.domid, e.action]), [['P1A', b, 'released'], ['P1A', c, 'released'], ['P1B', b, 'released'], ['P1B', c, 'released']]);
  t.deepEqual(await cleanProblems(env), []);

  // The daemon's cleanup after @releaseDomain reads the dead domain's index.
  await m.apply({ config: PAIR_OWNER('o', 1), domid: o });
  await m.apply({ config: PAIR_BORROWER('b', 1), domid: b, allowSetTarget: true });
  const ac = new AbortController();
  const events: DaemonEvent[] = [];
  let seen!: () => void;
  const cleaned = new Promise<void>((r) => (seen = r));
  const daemon = runDaemon({
    connect: () => connect({ path: env.socketPath }),
    hypervisor: env.hv,
    signal: ac.signal,
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'reconciled' && e.actions.length > 0) seen();
    },
  });
  while (!events.some((e) => e.type === 'reconciled')) await new Promise((r) => setTimeout(r, 10));
  await destroyDomain(env.xs, env.hv, o);
  await cleaned;
  ac.abort();
  await daemon;
  const acts = events.flatMap((e) => (e.type === 'reconciled' ? e.actions : []));
  t.deepEqual(acts.map((a) => [a.id, a.domid, a.action]), [['P1A', o, 'orphaned'], ['P1B', o, 'orphaned']]);
  t.deepEqual(await indexProblemsOf(env), []);
  await m.release({ domid: b });
  // The dead owner lingers as a dying domain while b and c hold it as their target (set_target).
  await destroyDomain(env.xs, env.hv, b);
  await destroyDomain(env.xs, env.hv, c);
  t.deepEqual(await cleanProblems(env), []);
  t.deepEqual(await env.xs.directory('/local/shared_mem'), []);
});

test('records of an older version (no index) are indexed on first use, by apply, release or reconcile', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const m = env.manager();
  const paths = new StorePaths();
  const o = await env.vm('o');
  const b = await env.vm('b');
  const n = await env.vm('n');
  await m.apply({ config: PAIR_OWNER('o', 1), domid: o });
  await m.apply({ config: PAIR_BORROWER('b', 1), domid: b, allowSetTarget: true });
  // The same nodes, whatever the order the daemon lists them in.
  const nodes = async (): Promise<string> => (await env.dumpStore()).split('\n').sort().join('\n');
  const full = await nodes();

  // apply: the index is built before deciding, so the overlap check sees b's older mappings
  // (without it, b's own regions would look like none).
  await env.xs.rm(paths.index());
  t.true((await indexProblemsOf(env)).includes('regions recorded but no index'));
  const e = await t.throwsAsync(m.apply({ config: config('name = "b"\nstatic_shm = ["id=Q, begin=0x70002000, size=4K, role=owner"]\n'), domid: b }));
  t.is((e as { rule?: string }).rule, 'range.overlap');
  t.deepEqual(await indexProblemsOf(env), []);
  t.is(await nodes(), full, 'the index rebuilt is the one apply wrote');
  await m.apply({ config: PAIR_OWNER('n', 2), domid: n });
  await m.release({ domid: n });

  // release of a domain whose records predate the index.
  await env.xs.rm(paths.index());
  const rel = await m.release({ domid: b });
  t.deepEqual(rel.entries.map((x) => [x.id, x.action]), [['P1A', 'released'], ['P1B', 'released']]);
  t.deepEqual(await indexProblemsOf(env), []);

  // reconcile (and the daemon's dead-domains scope, which falls back to it) builds it too.
  await env.xs.rm(paths.index());
  const rec = await m.reconcile({ scope: 'dead-domains' });
  t.deepEqual(rec, { actions: [], index: { rebuilt: true, repaired: [] } });
  t.deepEqual(await indexProblemsOf(env), []);
  t.deepEqual(await m.reconcile(), { actions: [] });
});

test('reconcile repairs an index an older version left behind (missing, stale and wrong entries)', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const m = env.manager();
  const paths = new StorePaths();
  const o = await env.vm('o');
  const b = await env.vm('b');
  await m.apply({ config: PAIR_OWNER('o', 1), domid: o });
  await m.apply({ config: PAIR_BORROWER('b', 1), domid: b, allowSetTarget: true });
  const nodes = async (): Promise<string> => (await env.dumpStore()).split('\n').sort().join('\n');
  const full = await nodes();
  // An older version mapped b into a region it made, and released b's P1B: no index changes.
  await env.xs.rm(paths.indexEntry(b, 'P1A'));
  await env.xs.write(paths.indexEntry(b, 'GONE'), '0x80000000-0x80001000');
  await env.xs.write(paths.indexEntry(o, 'P1B'), '0x10000000-0x10002000');
  await env.xs.write(paths.indexEntry(77, 'P1A'), '0x90000000-0x90001000');
  t.is((await indexProblemsOf(env)).length, 4);
  const rec = await m.reconcile({ deadDomains: false });
  t.deepEqual(
    rec.index?.repaired.map((p) => [p.domid, p.id, p.expected, p.found]),
    [
      [o, 'P1B', '0x61000000-0x61002000', '0x10000000-0x10002000'],
      [b, 'GONE', null, '0x80000000-0x80001000'],
      [b, 'P1A', '0x70000000-0x70004000', null],
      [77, 'P1A', null, '0x90000000-0x90001000'],
    ],
  );
  t.deepEqual(await indexProblemsOf(env), []);
  t.is(await nodes(), full);
});

test('bulk reads are pipelined, a window at a time; claims and commits send their reads together', async (t) => {
  t.timeout(120_000);
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const setup = env.manager();
  await background(env, setup, 150);
  /** The most xenstore requests awaiting their answer at once while fn runs. */
  const inFlight = async (fn: (m: SharedMemoryManager) => Promise<unknown>): Promise<number> => {
    let now = 0;
    let most = 0;
    const m = env.manager({
      stepHook: (s, phase) => {
        if (s.kind !== 'xenstore') return;
        now += phase === 'before' ? 1 : -1;
        most = Math.max(most, now);
      },
    });
    try {
      await fn(m);
    } finally {
      m.dispose();
    }
    return most;
  };
  // 300 regions of two mappings: one request at a time would be 1 in flight; all at once, 4,800.
  // A window of READ_WINDOW regions keeps between one region's burst and the window's.
  for (const [what, fn] of [
    ['list', (m: SharedMemoryManager) => m.list()],
    ['reconcile', (m: SharedMemoryManager) => m.reconcile()],
    ['ls --tree', () => sharedMemoryTree(env.xs, '/local/shared_mem', [1, 2, 3])],
  ] as const) {
    const most = await inFlight(fn);
    t.log(`${what}: at most ${most} requests in flight`);
    t.true(most > 100, `${what} pipelines (${most})`);
    t.true(most <= READ_WINDOW * 16, `${what} stays within its window (${most})`);
  }
  // One apply: its snapshot, claims and commits send independent requests together.
  const o = await env.vm('po');
  const most = await inFlight((m) => m.apply({ config: PAIR_OWNER('po', 777), domid: o }));
  t.true(most >= 8, `apply sends its reads together (${most})`);
});
