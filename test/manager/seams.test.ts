/**
 * The two test seams, as options: the client's `interceptor` and `intercept(hypervisor)`. A
 * refused request is never sent (a refused commit is sent as an abort), a waiting interceptor
 * keeps requests in order, the after-hook sees the answer before the caller; a refused
 * hypervisor call never reaches the backend.
 */
import test from 'ava';
import { HypercallError, SimHypervisor } from '../../lib/hypervisor';
import { HYPERVISOR_METHODS, intercept, type InterceptedCall } from '../../lib/hypervisor/intercept';
import { connect, XenstoreError, type InterceptedRequest } from '../../xenstore-wire';
import { startServer } from '../../xenstore-wire/server';

test('client interceptor: a refused request is not sent, a refused commit is sent as an abort', async (t) => {
  const server = await startServer({});
  t.teardown(() => server.close());
  const seen: string[] = [];
  const xs = await connect({
    path: server.socketPath,
    interceptor: (req: InterceptedRequest) => {
      seen.push(`${req.op} ${req.path ?? ''}`.trim());
      if (req.path === '/refused') throw new XenstoreError('EIO', { op: req.op, path: req.path, source: 'client', detail: 'injected' });
      if (req.op === 'TRANSACTION_END' && req.payload.toString() === 'T\0') throw new XenstoreError('EIO', { op: req.op, source: 'client', detail: 'injected commit' });
    },
  });
  t.teardown(() => xs.close());
  const err = await t.throwsAsync(xs.write('/refused', 'x'));
  t.is((err as XenstoreError).code, 'EIO');
  const plain = await connect({ path: server.socketPath });
  t.teardown(() => plain.close());
  t.false(await plain.exists('/refused'), 'never sent');
  await t.throwsAsync(xs.transaction(async (tx) => tx.write('/in-tx', 'y'), { maxAttempts: 1 }));
  t.false(await plain.exists('/in-tx'), 'the refused commit committed nothing');
  t.is(server.core.connections.reduce((n, c) => n + c.transactions.length, 0), 0, 'and the daemon keeps no transaction');
  t.deepEqual(seen.slice(0, 1), ['WRITE /refused']);
});

test('client interceptor: a waiting interceptor keeps requests in order; the after-hook runs before the caller sees the reply', async (t) => {
  const server = await startServer({});
  t.teardown(() => server.close());
  const order: string[] = [];
  let delay = 30;
  const xs = await connect({
    path: server.socketPath,
    interceptor: async (req) => {
      if (req.op !== 'WRITE') return undefined;
      // Earlier requests wait longer: without ordering, the last write would land first.
      await new Promise((r) => setTimeout(r, (delay -= 10)));
      const value = req.payload.toString('utf8').split('\0')[1];
      return ({ reply }) => order.push(`after ${value} ${reply ? 'ok' : 'error'}`);
    },
  });
  t.teardown(() => xs.close());
  await Promise.all(['1', '2', '3'].map((v) => xs.write('/order', v).then(() => order.push(`caller ${v}`))));
  t.is(await xs.readString('/order'), '3', 'the last write issued is the last applied');
  t.deepEqual(order.filter((x) => x.startsWith('after')), ['after 1 ok', 'after 2 ok', 'after 3 ok'], 'sent and answered in order');
  for (const v of ['1', '2', '3']) t.true(order.indexOf(`after ${v} ok`) < order.indexOf(`caller ${v}`), `write ${v}: the hook before the caller`);
});

test('intercept(hypervisor): before may refuse (the backend is not called), after sees every outcome', async (t) => {
  const sim = new SimHypervisor({ arch: 'arm' });
  t.teardown(() => sim.close());
  const d = { domid: await sim.createDomain({ name: 'a', maxPages: 2048 }) };
  const outcomes: string[] = [];
  const hv = intercept(sim, {
    before: (c: InterceptedCall) => {
      if (c.method === 'setTarget') throw new HypercallError({ call: c.label, errno: 1, message: 'injected EPERM' });
    },
    after: (c, o) => void outcomes.push(`${c.label}: ${o.error ? (o.error as HypercallError).code : 'ok'}`),
  });
  t.is(hv.backend, 'sim');
  t.is((await hv.domainInfo(d.domid))?.domid, d.domid);
  await hv.populatePhysmap(d.domid, [0x60000, 0x60001]);
  const e = await t.throwsAsync(hv.setTarget(d.domid, 0));
  t.is((e as HypercallError).code, 'EPERM');
  t.is((await sim.domains()).find((x) => x.domid === d.domid)?.target, null, 'the refused call never reached the backend');
  await t.throwsAsync(hv.domainInfo(-1));
  t.deepEqual(outcomes.slice(0, 2), [`domainInfo d${d.domid}: ok`, `populatePhysmap d${d.domid} 2 pages: ok`]);
  t.regex(outcomes[2], /^domainInfo d-1: E/);
  for (const m of HYPERVISOR_METHODS) t.not(hv[m], sim[m], `${m} is wrapped`);
  const seen = outcomes.length;
  await hv.close();
  t.is(outcomes.length, seen, 'close passes through, unhooked');
});
