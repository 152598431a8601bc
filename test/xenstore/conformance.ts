/**
 * The client conformance suite, run unchanged against every xenstored: C xenstored and
 * oxenstored (conformance-*.test.ts) and the in-memory server. Nothing here depends on which
 * daemon answers, except the documented differences (docs/xenstore-client.md "Daemon
 * differences"), which are asserted as "either of these known answers":
 *
 * - a listing over 4096 bytes: C xenstored answers DIRECTORY with E2BIG and pages through
 *   DIRECTORY_PART; oxenstored 4.17 has no DIRECTORY_PART (ENOSYS) and sends one oversized reply;
 * - node-size quota: oxenstored refuses values over quota-maxsize (2048) for dom0 too (E2BIG);
 * - errors for domains that were never introduced (ENOENT or EINVAL), and the answer to a
 *   second INTRODUCE of dom0 (OK or EINVAL).
 *
 * Every test opens its own connection(s) and works under its own path, so ava may run them
 * concurrently against one daemon.
 */
import test, { ExecutionContext } from 'ava';
import {
  connect,
  ConnectionError,
  MessageType,
  ProtocolError,
  Watch,
  XenstoreClient,
  XenstoreError,
  XENSTORE_PAYLOAD_MAX,
  XenstoreFeature,
  request,
} from '../../xenstore-wire';
import { nextEvent, withTimeout } from './helpers/async';

export interface ConformanceTarget {
  socketPath: string;
  stop(): Promise<void>;
  /** Ends the daemon abruptly; stop() is used when absent. */
  kill?(): Promise<void>;
  /** True if start({ testEagain: true }) gives a daemon whose commits fail at random. */
  supportsTestEagain?: boolean;
  /**
   * What the daemon implements of the protocol added after Xen 4.17 (docs/misc/xenstore.txt):
   * GET/SET_FEATURE (C xenstored 4.21), GET/SET_QUOTA and watch depth with
   * `@releaseDomain/<domid>` (4.22). Default: none of it (Xen 4.17 and 4.20, oxenstored); the
   * suite then checks that each is refused with a typed error.
   */
  newerProtocol?: { features?: boolean; quotas?: boolean; watchDepth?: boolean };
}

export type StartTarget = (opts?: { testEagain?: boolean }) => Promise<ConformanceTarget>;

/** A node that exists on no daemon; domid 5 is never introduced in these tests. */
const NEVER_INTRODUCED = 5;

export function defineConformanceSuite(label: string, start: StartTarget): void {
  let target: ConformanceTarget | undefined;
  const extra: ConformanceTarget[] = [];
  const clients: XenstoreClient[] = [];

  test.before(async () => {
    target = await start();
  });

  test.after.always(async () => {
    for (const c of clients) await c.destroy().catch(() => undefined);
    for (const t of extra) await t.stop().catch(() => undefined);
    await target?.stop();
  });

  async function client(on: ConformanceTarget | undefined = target): Promise<XenstoreClient> {
    if (!on) throw new Error(`${label}: the daemon did not start (see test.before)`);
    const c = await connect({ path: on.socketPath });
    clients.push(c);
    return c;
  }

  async function startExtra(opts?: { testEagain?: boolean }): Promise<ConformanceTarget> {
    const t = await start(opts);
    extra.push(t);
    return t;
  }

  const name = (s: string) => `${label}: ${s}`;

  async function daemonError(t: ExecutionContext, p: Promise<unknown>, codes: string[], what: string): Promise<XenstoreError> {
    const e = await t.throwsAsync(p, { instanceOf: XenstoreError }, what);
    t.is(e?.source, 'daemon', what);
    t.true(codes.includes(e?.code ?? ''), `${what}: got ${e?.code}, expected one of ${codes.join(' ')}`);
    return e!;
  }

  // ------------------------------------------------------------------- values

  test(name('write then read: strings, bytes, overwrite'), async (t) => {
    const xs = await client();
    await xs.write('/conf/rw/s', 'hello');
    t.is(await xs.readString('/conf/rw/s'), 'hello');
    await xs.write('/conf/rw/s', 'héllo wörld');
    t.is(await xs.readString('/conf/rw/s'), 'héllo wörld');
    await xs.write('/conf/rw/b', new Uint8Array([1, 2, 3]));
    t.deepEqual(await xs.read('/conf/rw/b'), Buffer.from([1, 2, 3]));
    t.true(await xs.exists('/conf/rw/b'));
    t.false(await xs.exists('/conf/rw/nope'));
  });

  test(name('a value holding every byte value 0..255 round-trips'), async (t) => {
    const xs = await client();
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    await xs.write('/conf/bytes/all', all);
    t.deepEqual(await xs.read('/conf/bytes/all'), all);
    // NULs inside a value are data, not separators.
    const nuls = Buffer.from([0, 0, 65, 0]);
    await xs.write('/conf/bytes/nuls', nuls);
    t.deepEqual(await xs.read('/conf/bytes/nuls'), nuls);
  });

  test(name('empty values'), async (t) => {
    const xs = await client();
    await xs.write('/conf/empty/v', '');
    t.is((await xs.read('/conf/empty/v')).length, 0);
    await xs.write('/conf/empty/v', 'x');
    await xs.write('/conf/empty/v', Buffer.alloc(0));
    t.is((await xs.read('/conf/empty/v')).length, 0);
  });

  test(name('value sizes: 2048 bytes everywhere; the payload maximum; one byte over is refused before sending'), async (t) => {
    const xs = await client();
    const path = '/conf/size/v';
    const quotaSized = Buffer.alloc(2048, 0x5a);
    await xs.write(path, quotaSized);
    t.deepEqual(await xs.read(path), quotaSized);

    // The largest value one WRITE can carry: path NUL value = exactly 4096 bytes.
    const max = Buffer.alloc(XENSTORE_PAYLOAD_MAX - path.length - 1, 0x61);
    t.is(request.write(path, max).length, XENSTORE_PAYLOAD_MAX);
    try {
      await xs.write(path, max);
      t.deepEqual(await xs.read(path), max);
    } catch (e) {
      // oxenstored: quota-maxsize (2048) applies to dom0's node size too.
      t.true(e instanceof XenstoreError && e.code === 'E2BIG' && e.source === 'daemon', String(e));
      t.deepEqual(await xs.read(path), quotaSized);
    }

    const over = Buffer.alloc(max.length + 1, 0x62);
    const e = await t.throwsAsync(xs.write(path, over), { instanceOf: XenstoreError });
    t.is(e?.code, 'E2BIG');
    t.is(e?.source, 'client');
    t.is(e?.op, 'WRITE');
    t.is(e?.path, path);
    t.is(xs.inFlight, 0, 'nothing was sent');
    t.true(xs.isOpen, 'the connection is still up');
    t.not((await xs.read(path)).length, over.length);
  });

  // ------------------------------------------------------------------- errors

  test(name('missing paths: ENOENT'), async (t) => {
    const xs = await client();
    for (const [what, p] of [
      ['READ', xs.read('/conf/missing/a')],
      ['DIRECTORY', xs.directory('/conf/missing/a')],
      ['GET_PERMS', xs.getPerms('/conf/missing/a')],
      ['SET_PERMS', xs.setPerms('/conf/missing/a', ['n0'])],
      ['RM below a missing parent', xs.rm('/conf/missing/a/b')],
    ] as const) {
      const e = await daemonError(t, p, ['ENOENT'], what);
      t.true(e.path?.startsWith('/conf/missing/a'), what);
      t.is(e.kind, 'xenstore');
    }
    // RM of a missing leaf whose parent exists succeeds on every daemon.
    await xs.write('/conf/missing/parent', '');
    await t.notThrowsAsync(xs.rm('/conf/missing/parent/leaf'));
  });

  test(name('bad paths: EINVAL, refused by the client and by the daemon'), async (t) => {
    const xs = await client();
    for (const p of ['', '/a/', 'a//b', '/a b', '/a.b', '/ä', '/' + 'x'.repeat(3072), 'r'.repeat(2049), '@introduceDomain']) {
      const e = await t.throwsAsync(xs.read(p), { instanceOf: XenstoreError }, p.slice(0, 20));
      t.is(e?.code, 'EINVAL');
      t.is(e?.source, 'client');
    }
    t.is(xs.inFlight, 0);
    // The same paths sent raw: the daemon agrees.
    for (const p of ['', '/a/', '/a//b', '/a b', '/a.b']) {
      await daemonError(t, xs._request(MessageType.READ, request.read(p), 0, p), ['EINVAL'], `raw READ ${JSON.stringify(p)}`);
    }
    await daemonError(t, xs._request(MessageType.WATCH, request.watch('/a b', 'tok'), 0), ['EINVAL'], 'raw WATCH');
    t.true(xs.isOpen);
  });

  test(name('unknown and newer message types: ENOSYS'), async (t) => {
    const xs = await client();
    await daemonError(t, xs._request(20 as MessageType, request.read('/'), 0), ['ENOSYS'], 'type 20 (was RESTRICT)');
    if (!target?.newerProtocol?.features) {
      await daemonError(t, xs._request(MessageType.GET_FEATURE, request.getFeature(), 0), ['ENOSYS'], 'GET_FEATURE (Xen 4.21+)');
    }
    t.is(await xs.getDomainPath(0), '/local/domain/0', 'connection still usable');
  });

  // ------------------------------------------------------------------- tree shape

  test(name('writing under a node that has a value'), async (t) => {
    const xs = await client();
    await xs.write('/conf/under/v', 'value');
    await xs.write('/conf/under/v/child', 'c');
    t.is(await xs.readString('/conf/under/v'), 'value');
    t.is(await xs.readString('/conf/under/v/child'), 'c');
    t.deepEqual(await xs.directory('/conf/under/v'), ['child']);
  });

  test(name('write creates missing parents with empty values; mkdir is idempotent'), async (t) => {
    const xs = await client();
    await xs.write('/conf/mk/a/b/c', 'deep');
    t.is((await xs.read('/conf/mk/a/b')).length, 0);
    await xs.mkdir('/conf/mk/d');
    t.is((await xs.read('/conf/mk/d')).length, 0);
    await xs.mkdir('/conf/mk/d');
    await xs.write('/conf/mk/e', 'kept');
    await xs.mkdir('/conf/mk/e');
    t.is(await xs.readString('/conf/mk/e'), 'kept');
    t.deepEqual((await xs.directory('/conf/mk')).sort(), ['a', 'd', 'e']);
    t.deepEqual(await xs.directory('/conf/mk/a/b/c'), []);
  });

  test(name('rm removes a whole subtree'), async (t) => {
    const xs = await client();
    await Promise.all(['/conf/rm/a/b', '/conf/rm/a/c/d', '/conf/rm/e'].map((p) => xs.write(p, p)));
    await xs.rm('/conf/rm/a');
    for (const p of ['/conf/rm/a', '/conf/rm/a/b', '/conf/rm/a/c/d']) t.false(await xs.exists(p), p);
    t.deepEqual(await xs.directory('/conf/rm'), ['e']);
  });

  test(name('relative paths resolve under the connection home /local/domain/0'), async (t) => {
    const xs = await client();
    const home = await xs.getDomainPath(0);
    t.is(home, '/local/domain/0');
    await xs.write('conf-rel/x', 'r');
    t.is(await xs.readString(`${home}/conf-rel/x`), 'r');
    t.is(await xs.readString('conf-rel/x'), 'r');
    await xs.rm('conf-rel');
  });

  test(name('a directory over 4096 bytes of names is listed completely'), async (t) => {
    const xs = await client();
    const base = '/conf/bigdir';
    const names = Array.from({ length: 300 }, (_, i) => `child-${String(i).padStart(19, '0')}`); // 25 chars
    t.true(names.reduce((n, s) => n + s.length + 1, 0) > 4096);
    await Promise.all(names.map((n) => xs.write(`${base}/${n}`, '')));
    t.deepEqual((await xs.directory(base)).sort(), names);

    // Through DIRECTORY_PART explicitly, on daemons that have it (C xenstored, in-memory);
    // oxenstored 4.17 answers ENOSYS and lists the directory in one oversized reply instead.
    try {
      const parts = await xs.directoryParts(base);
      t.deepEqual(parts.sort(), names);
      t.deepEqual(await xs.directoryParts('/conf/bigdir/child-0000000000000000000'), []);
    } catch (e) {
      t.true(e instanceof XenstoreError && e.code === 'ENOSYS' && e.source === 'daemon', String(e));
      // The one-reply path really was oversized: more than the 4096 bytes libxenstore accepts.
      const raw = await xs._request(MessageType.DIRECTORY, request.directory(base), 0, base);
      t.true(raw.length > XENSTORE_PAYLOAD_MAX, `reply of ${raw.length} bytes`);
    }
  });

  // ------------------------------------------------------------------- permissions

  test(name('permissions: default, set, get'), async (t) => {
    // Domids 21..23 are used by no other test: oxenstored strips a domain's entries from every
    // node when that domain is released, which the domain-requests test does for NEVER_INTRODUCED.
    const xs = await client();
    await xs.write('/conf/perms/n', 'x');
    t.deepEqual(await xs.getPerms('/conf/perms/n'), [{ domid: 0, access: 'n' }]);
    await xs.setPerms('/conf/perms/n', ['n0', 'r21', 'w22', 'b23']);
    t.deepEqual(await xs.getPerms('/conf/perms/n'), [
      { domid: 0, access: 'n' },
      { domid: 21, access: 'r' },
      { domid: 22, access: 'w' },
      { domid: 23, access: 'b' },
    ]);
    await xs.setPerms('/conf/perms/n', [{ domid: 0, access: 'r' }, { domid: 21, access: 'b' }]);
    t.deepEqual(await xs.getPerms('/conf/perms/n'), [
      { domid: 0, access: 'r' },
      { domid: 21, access: 'b' },
    ]);
    const e = await t.throwsAsync(xs.setPerms('/conf/perms/n', ['x9']), { instanceOf: XenstoreError });
    t.is(e?.source, 'client');
    t.is(e?.code, 'EINVAL');
  });

  // ------------------------------------------------------------------- domains, control

  test(name('domain requests'), async (t) => {
    const xs = await client();
    t.is(await xs.getDomainPath(0), '/local/domain/0');
    t.is(await xs.getDomainPath(7), '/local/domain/7');
    t.true(await xs.isDomainIntroduced(0));
    t.false(await xs.isDomainIntroduced(NEVER_INTRODUCED));
    await daemonError(t, xs.release(NEVER_INTRODUCED), ['ENOENT', 'EINVAL'], 'RELEASE of a domain never introduced');
    await daemonError(t, xs.resume(NEVER_INTRODUCED), ['ENOENT', 'EINVAL'], 'RESUME of a domain never introduced');
    await daemonError(t, xs.setTarget(NEVER_INTRODUCED, 6), ['ENOENT', 'EINVAL'], 'SET_TARGET of a domain never introduced');
    // dom0 is introduced already: a second INTRODUCE is answered (OK or EINVAL), never fatal.
    // (Introducing a *new* domain needs a hypervisor to map its ring; see the notes.)
    try {
      await xs.introduce(0, 1, 1);
    } catch (e) {
      t.true(e instanceof XenstoreError && e.source === 'daemon' && e.code === 'EINVAL', String(e));
    }
    t.true(xs.isOpen);
    t.true(await xs.isDomainIntroduced(0));
  });

  test(name('control'), async (t) => {
    const xs = await client();
    t.is(typeof (await xs.control('print', 'xen-sshm conformance')), 'string');
    t.true(xs.isOpen);
  });

  // ------------------------------------------------------------------- transactions

  test(name('transaction: invisible until commit; abort discards; ended transactions refuse use'), async (t) => {
    const xs = await client();
    // The parent exists first: a transaction that creates it would also touch /conf, which
    // concurrent tests change, and C xenstored would then (rightly) fail the commit.
    await xs.mkdir('/conf/tx');
    const tx = await xs.transactionStart();
    t.true(tx.id > 0);
    await tx.write('/conf/tx/a', '1');
    t.is(await tx.readString('/conf/tx/a'), '1');
    t.false(await xs.exists('/conf/tx/a'));
    t.deepEqual(await tx.directory('/conf/tx'), ['a']);
    await tx.commit();
    t.is(await xs.readString('/conf/tx/a'), '1');
    const e = await t.throwsAsync(tx.read('/conf/tx/a'), { instanceOf: XenstoreError });
    t.is(e?.source, 'client');

    const tx2 = await xs.transactionStart();
    await tx2.write('/conf/tx/a', '2');
    await tx2.rm('/conf/tx/a');
    await tx2.abort();
    t.is(await xs.readString('/conf/tx/a'), '1');
  });

  test(name('conflict between two connections: the second commit gets EAGAIN'), async (t) => {
    const a = await client();
    const b = await client();
    await a.write('/conf/conflict/v', '0');
    const ta = await a.transactionStart();
    const tb = await b.transactionStart();
    t.is(await ta.readString('/conf/conflict/v'), '0');
    t.is(await tb.readString('/conf/conflict/v'), '0');
    await ta.write('/conf/conflict/v', 'a');
    await tb.write('/conf/conflict/v', 'b');
    await ta.commit();
    const e = await daemonError(t, tb.commit(), ['EAGAIN'], 'the conflicting commit');
    t.is(e.op, 'TRANSACTION_END');
    t.is(await a.readString('/conf/conflict/v'), 'a');
  });

  test(name('the transaction helper retries the conflict and converges'), async (t) => {
    const a = await client();
    const b = await client();
    await a.write('/conf/helper/v', '0');
    let retries = 0;
    let firstRun = true;
    const result = await a.transaction(
      async (tx) => {
        const v = Number(await tx.readString('/conf/helper/v'));
        if (firstRun) {
          firstRun = false;
          await b.write('/conf/helper/v', '10'); // a conflicting write from another connection
        }
        await tx.write('/conf/helper/v', String(v + 1));
        return v + 1;
      },
      { onRetry: () => retries++ },
    );
    t.is(retries, 1);
    t.is(result, 11);
    t.is(await b.readString('/conf/helper/v'), '11');
  });

  test(name('the transaction helper aborts when the function throws'), async (t) => {
    const xs = await client();
    await xs.mkdir('/conf/helper-abort');
    const boom = new Error('boom');
    const e = await t.throwsAsync(
      xs.transaction(async (tx) => {
        await tx.write('/conf/helper-abort/v', 'never');
        throw boom;
      }),
    );
    t.is(e, boom);
    t.false(await xs.exists('/conf/helper-abort/v'));
    // Daemon errors inside the function are not retried either.
    const e2 = await t.throwsAsync(xs.transaction((tx) => tx.read('/conf/helper-abort/missing')), { instanceOf: XenstoreError });
    t.is(e2?.code, 'ENOENT');
  });

  test(name('500 helper transactions converge (random EAGAIN where the daemon can inject it, else 5 contending connections)'), async (t) => {
    const base = await startExtraOrShared();
    const conns = await Promise.all(Array.from({ length: 5 }, () => client(base.target)));
    await conns[0].write('/conf/many/counter', '0');
    await conns[0].mkdir('/conf/many/log');
    let retries = 0;
    await Promise.all(
      conns.map(async (c) => {
        for (let i = 0; i < 100; i++) {
          await c.transaction(
            async (tx) => {
              const v = Number(await tx.readString('/conf/many/counter'));
              await tx.write('/conf/many/counter', String(v + 1));
              await tx.write(`/conf/many/log/${v + 1}`, '');
            },
            { onRetry: () => retries++ },
          );
        }
      }),
    );
    t.is(await conns[0].readString('/conf/many/counter'), '500');
    t.is((await conns[0].directory('/conf/many/log')).length, 500);
    t.log(`${retries} retries${base.testEagain ? ' (test-eagain)' : ''}`);
    if (base.testEagain) t.true(retries > 0, 'test-eagain made commits fail');
  });

  async function startExtraOrShared(): Promise<{ target: ConformanceTarget; testEagain: boolean }> {
    if (!target) throw new Error(`${label}: the daemon did not start`);
    if (target.supportsTestEagain) return { target: await startExtra({ testEagain: true }), testEagain: true };
    return { target, testEagain: false };
  }

  // ------------------------------------------------------------------- watches

  test(name('watch: initial firing, children, removals'), async (t) => {
    const xs = await client();
    await xs.write('/conf/watch/a/b', 'x');
    const w = xs.watch('/conf/watch');
    await w.ready;
    t.deepEqual(await nextEvent(w), { path: '/conf/watch', token: w.token });
    await xs.write('/conf/watch/c', '1');
    t.is((await nextEvent(w)).path, '/conf/watch/c');
    await xs.rm('/conf/watch/a');
    t.is((await nextEvent(w)).path, '/conf/watch/a');
    await w.close();
    t.true(w.ended);
    t.deepEqual(await w.next(), { value: undefined, done: true });
  });

  test(name('two watches with different tokens on one connection are routed by token'), async (t) => {
    const xs = await client();
    const x = xs.watch('/conf/two/x', 'token-x');
    const y = xs.watch('/conf/two/y', 'token-y');
    t.is((await nextEvent(x)).token, 'token-x');
    t.is((await nextEvent(y)).token, 'token-y');
    await xs.write('/conf/two/y/1', '');
    t.deepEqual(await nextEvent(y), { path: '/conf/two/y/1', token: 'token-y' });
    await xs.write('/conf/two/x/1', '');
    // Had x received y's event, it would come first: events arrive in order on a connection.
    t.deepEqual(await nextEvent(x), { path: '/conf/two/x/1', token: 'token-x' });
    t.is(x.queued, 0);
    t.is(y.queued, 0);
    const dup = t.throws(() => xs.watch('/conf/two/z', 'token-x'), { instanceOf: XenstoreError });
    t.is(dup?.code, 'EEXIST');
    await Promise.all([x.close(), y.close()]);
  });

  test(name('special watches @introduceDomain and @releaseDomain are accepted and fire once'), async (t) => {
    const xs = await client();
    for (const p of ['@introduceDomain', '@releaseDomain']) {
      const w = xs.watch(p);
      await w.ready;
      t.deepEqual(await nextEvent(w), { path: p, token: w.token });
      await w.close();
    }
  });

  test(name('break out of for-await unwatches (the token is free again in the daemon)'), async (t) => {
    const xs = await client();
    let seen = 0;
    for await (const ev of xs.watch('/conf/unwatch', 'tok-u')) {
      t.is(ev.path, '/conf/unwatch');
      seen++;
      break;
    }
    t.is(seen, 1);
    // Had UNWATCH not reached the daemon, the same path and token would get EEXIST.
    const again = xs.watch('/conf/unwatch', 'tok-u');
    await t.notThrowsAsync(again.ready);
    await again.close();
  });

  test(name('callback form and RESET_WATCHES'), async (t) => {
    const xs = await client();
    const events: string[] = [];
    let signal: (() => void) | undefined;
    const w = await xs.onWatch('/conf/cb', (ev) => {
      events.push(ev.path);
      signal?.();
    });
    const waitFor = (n: number) =>
      withTimeout(
        new Promise<void>((r) => {
          signal = () => events.length >= n && r();
          signal();
        }),
        5000,
        `${n} callback events`,
      );
    await waitFor(1);
    await xs.write('/conf/cb/k', 'v');
    await waitFor(2);
    t.deepEqual(events, ['/conf/cb', '/conf/cb/k']);
    const it = xs.watch('/conf/cb2');
    await it.ready;
    await xs.resetWatches();
    t.true(w.ended);
    t.true(it.ended);
    // The daemon dropped them too: the same tokens can be watched again.
    const again = xs.watch('/conf/cb', w.token);
    await t.notThrowsAsync(again.ready);
    await again.close();
  });

  // ------------------------------------------------------------------- Xen 4.21 / 4.22

  test(name('features and quotas: answered by a daemon that has them, ENOSYS from one that does not'), async (t) => {
    const xs = await client();
    const has = target?.newerProtocol ?? {};
    if (has.features) {
      const own = await xs.getFeature();
      t.true(Number.isInteger(own) && own >= 0);
      t.is((own & XenstoreFeature.WATCHDEPTH) !== 0, has.watchDepth === true, `feature bits ${own}`);
      t.is(await xs.getFeature(0), own, 'dom0 is this connection');
      t.is(await xs.hasFeature('WATCHDEPTH'), has.watchDepth === true);
      const e = await xs.setFeature(NEVER_INTRODUCED, 0).then(() => null, (err: unknown) => err);
      if (e !== null) t.true(e instanceof XenstoreError && e.source === 'daemon' && ['ENOENT', 'EBUSY'].includes(e.code), String(e));
    } else {
      await daemonError(t, xs.getFeature(), ['ENOSYS'], 'GET_FEATURE');
      await daemonError(t, xs.getFeature(0), ['ENOSYS'], 'GET_FEATURE of dom0');
      await daemonError(t, xs.setFeature(NEVER_INTRODUCED, 0), ['ENOSYS'], 'SET_FEATURE');
      t.false(await xs.hasFeature('WATCHDEPTH'), 'no GET_FEATURE: no features');
    }
    if (has.quotas) {
      const names = await xs.getQuotaNames();
      for (const q of ['nodes', 'watches']) t.true(names.includes(q), `${q} in ${names.join(' ')}`);
      const before = await xs.getQuota('watches');
      await xs.setQuota('watches', before + 7);
      t.is(await xs.getQuota('watches'), before + 7);
      await xs.setQuota('watches', before);
      t.is(await xs.getQuota('watches'), before);
      await daemonError(t, xs.getQuota('no-such-quota'), ['EINVAL'], 'GET_QUOTA of an unknown quota');
    } else {
      await daemonError(t, xs.getQuotaNames(), ['ENOSYS'], 'GET_QUOTA (names; an empty payload)');
      await daemonError(t, xs.getQuota('nodes'), ['ENOSYS'], 'GET_QUOTA nodes');
      await daemonError(t, xs.getQuota('nodes', 0), ['ENOSYS'], 'GET_QUOTA nodes of dom0');
      await daemonError(t, xs.setQuota('nodes', 1000), ['ENOSYS'], 'SET_QUOTA nodes');
      await daemonError(t, xs.setQuota('nodes', 1000, 0), ['ENOSYS'], 'SET_QUOTA nodes of dom0');
    }
    t.is(await xs.getDomainPath(0), '/local/domain/0', 'connection still usable');
  });

  test(name('watch depth and @releaseDomain/<domid>: honoured by a daemon that has them, else a typed ENOSYS before sending'), async (t) => {
    const xs = await client();
    if (target?.newerProtocol?.watchDepth) {
      const shallow = xs.watch('/conf/depth0', { depth: 0 });
      t.deepEqual(await nextEvent(shallow), { path: '/conf/depth0', token: shallow.token });
      await xs.write('/conf/depth0/child', 'c');
      await xs.write('/conf/depth0', 'self');
      t.is((await nextEvent(shallow)).path, '/conf/depth0', 'depth 0: the child did not fire, the node did');
      const one = xs.watch('/conf/depth1', { depth: 1 });
      t.is((await nextEvent(one)).path, '/conf/depth1');
      await xs.write('/conf/depth1/a/b', 'two levels down');
      await xs.write('/conf/depth1/c', 'one level down');
      t.is((await nextEvent(one)).path, '/conf/depth1/c', 'depth 1: /a/b did not fire');
      const release = xs.watchDomainRelease(NEVER_INTRODUCED);
      t.deepEqual(await nextEvent(release), { path: `@releaseDomain/${NEVER_INTRODUCED}`, token: release.token });
      await Promise.all([shallow.close(), one.close(), release.close()]);
      return;
    }
    for (const w of [xs.watch('/conf/depth0', { depth: 0, token: 'tok-depth' }), xs.watchDomainRelease(NEVER_INTRODUCED, { token: 'tok-rel' })]) {
      const e = await t.throwsAsync(w.ready, { instanceOf: XenstoreError });
      t.is(e?.code, 'ENOSYS');
      t.is(e?.source, 'client');
      t.is(e?.op, 'WATCH');
      t.is(e?.path, w.path);
      await t.throwsAsync(w.next(), { is: e }, 'the iterator reports it once');
      t.true(w.ended);
    }
    // The tokens are free again, and the connection works.
    const again = xs.watch('/conf/depth0', 'tok-depth');
    t.is((await nextEvent(again)).path, '/conf/depth0');
    await again.close();
    // What these daemons answer when asked anyway: a depth is EINVAL, while `@releaseDomain/5`
    // is accepted and fires once (then never, since they fire only `@releaseDomain`): the
    // reason the client checks the feature first.
    await daemonError(t, xs._request(MessageType.WATCH, request.watch('/conf/depth0', 'raw-depth', 1), 0), ['EINVAL'], 'raw WATCH with a depth');
    const raw = await xs._request(MessageType.WATCH, request.watch(`@releaseDomain/${NEVER_INTRODUCED}`, 'raw-rel'), 0);
    t.is(raw.toString('latin1'), 'OK\0', 'raw WATCH @releaseDomain/<domid> accepted');
    await xs._request(MessageType.UNWATCH, request.unwatch(`@releaseDomain/${NEVER_INTRODUCED}`, 'raw-rel'), 0);
  });

  // ------------------------------------------------------------------- pipelining, loss

  test(name('1000 pipelined reads come back matched to their requests'), async (t) => {
    const xs = await client();
    await Promise.all(Array.from({ length: 50 }, (_, i) => xs.write(`/conf/pipe/${i}`, `value-${i}`)));
    const got = await Promise.all(Array.from({ length: 1000 }, (_, i) => xs.readString(`/conf/pipe/${i % 50}`)));
    t.true(got.every((v, i) => v === `value-${i % 50}`));
    // Errors interleaved with successes are matched too.
    const mixed = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => xs.readString(i % 2 ? `/conf/pipe/${i % 50}` : `/conf/pipe/missing-${i}`)));
    t.true(mixed.every((r, i) => (i % 2 ? r.status === 'fulfilled' && r.value === `value-${i % 50}` : r.status === 'rejected' && (r.reason as XenstoreError).code === 'ENOENT')));
  });

  test(name('close(): requests in flight complete, watches end, later requests are refused'), async (t) => {
    const xs = await client();
    await xs.write('/conf/close/v', 'v');
    const w = xs.watch('/conf/close');
    await w.ready;
    const reads = Array.from({ length: 20 }, () => xs.readString('/conf/close/v'));
    const closing = xs.close();
    t.deepEqual(await Promise.all(reads), Array(20).fill('v'));
    await closing;
    t.is(await xs.closed, null);
    t.is((await nextEvent(w)).path, '/conf/close'); // the initial firing was already queued
    t.deepEqual(await w.next(), { value: undefined, done: true });
    const e = await t.throwsAsync(xs.read('/conf/close/v'), { instanceOf: ConnectionError });
    t.is(e?.code, 'ECONNABORTED');
  });

  test(name('the daemon dies mid-transaction with requests in flight: all rejected with ConnectionError'), async (t) => {
    const own = await startExtra();
    const xs = await client(own);
    await xs.write('/conf/kill/v', '0');
    const w = xs.watch('/conf/kill');
    await w.ready;
    await nextEvent(w);
    const tx = await xs.transactionStart();
    await tx.write('/conf/kill/v', '1');
    // A helper transaction that is inside its function when the daemon dies.
    let inside!: () => void;
    const insideP = new Promise<void>((r) => (inside = r));
    let resume!: () => void;
    const resumed = new Promise<void>((r) => (resume = r));
    let attempts = 0;
    const helper = xs.transaction(async (htx) => {
      attempts++;
      await htx.write('/conf/kill/h', 'x');
      inside();
      await resumed; // the daemon is killed while the function is here
      await htx.write('/conf/kill/h', 'y');
    });
    const helperResult = helper.catch((e: unknown) => e);
    await insideP;
    const inFlight = Array.from({ length: 100 }, (_, i) => xs.read(`/conf/kill/${i % 2 ? 'v' : 'missing'}`).catch((e: unknown) => e));
    const commit = tx.commit().catch((e: unknown) => e);
    const next = w.next().catch((e: unknown) => e);
    await (own.kill ? own.kill() : own.stop());
    const closedWith = await withTimeout(xs.closed, 5000, 'the client to notice');
    t.true(closedWith instanceof ConnectionError);
    for (const r of await Promise.all(inFlight)) {
      // Some reads may have been answered before the kill; the rest are ConnectionErrors.
      if (r instanceof Buffer) continue;
      if (r instanceof XenstoreError && r.code === 'ENOENT') continue;
      t.true(r instanceof ConnectionError, String(r));
    }
    const c = await commit;
    t.true(c instanceof ConnectionError, String(c));
    t.is((c as ConnectionError).op, 'TRANSACTION_END');
    t.true((await next) instanceof ConnectionError);
    // The helper's function resumes: its next request fails, and a lost connection is not retried.
    resume();
    const h = await withTimeout(helperResult, 5000, 'the helper transaction to fail');
    t.true(h instanceof ConnectionError, String(h));
    t.is(attempts, 1);
    const e = await t.throwsAsync(xs.read('/conf/kill/v'), { instanceOf: ConnectionError });
    t.is(e?.path, own.socketPath);
    t.is(e?.nodePath, '/conf/kill/v');
    t.false(xs.isOpen);
    t.true((await xs.closed) instanceof ConnectionError);
    t.false(closedWith instanceof ProtocolError);
    // A watch asked for now ends at once with the same kind of error.
    const late: Watch = xs.watch('/conf/kill');
    await t.throwsAsync(late.ready, { instanceOf: ConnectionError });
  });
}
