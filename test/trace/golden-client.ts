/**
 * The scripted session of the golden-output test, run as the command under
 * `xs-trace -- node golden-client.js`: hand-built frames with fixed req_ids sent to
 * $XENSTORED_PATH, one step at a time, so the trace is the same on every run.
 */
import { ScriptClient, T, f, nul } from './helpers';

const B = '/xs-trace-golden';

/**
 * `new-types`: Xen 4.21-4.22's requests against a daemon that answers them (the in-memory
 * xenstored with --release 4.22): features, quotas, a watch with a depth and its events, the
 * per-domain @releaseDomain watch.
 */
async function newTypes(socket: string): Promise<void> {
  const c = await ScriptClient.connect(socket);
  const call = (type: number, reqId: number, payload: Buffer) => c.call(f(type, reqId, 0, payload));
  await call(T.GET_FEATURE, 1, Buffer.alloc(0));
  await call(T.GET_FEATURE, 2, nul('0'));
  await call(T.SET_FEATURE, 3, nul('1', '4'));
  await call(T.GET_FEATURE, 4, nul('1'));
  await call(T.GET_QUOTA, 5, Buffer.alloc(0));
  await call(T.GET_QUOTA, 6, nul('nodes'));
  await call(T.SET_QUOTA, 7, nul('nodes', '2000'));
  await call(T.GET_QUOTA, 8, nul('nodes'));
  await call(T.GET_QUOTA, 9, nul('1', 'watches'));
  await call(T.GET_QUOTA, 10, nul('no-such-quota'));
  await call(T.WRITE, 11, Buffer.concat([nul(`${B}/depth/a/b`), Buffer.from('deep')]));
  // A watch with depth 1: the first event, then one for a child, none for a grandchild.
  c.send(f(T.WATCH, 12, 0, nul(`${B}/depth`, 'd1', '1')));
  await c.receive(2);
  c.send(f(T.WRITE, 13, 0, Buffer.concat([nul(`${B}/depth/c`), Buffer.from('child')])));
  await c.receive(2);
  await call(T.WRITE, 14, Buffer.concat([nul(`${B}/depth/a/b`), Buffer.from('grandchild')]));
  await call(T.UNWATCH, 15, nul(`${B}/depth`, 'd1'));
  c.send(f(T.WATCH, 16, 0, nul('@releaseDomain/1', 'rel1')));
  await c.receive(2);
  await call(T.UNWATCH, 17, nul('@releaseDomain/1', 'rel1'));
  await c.end();
}

async function main(): Promise<void> {
  const socket = process.env.XENSTORED_PATH;
  if (!socket) throw new Error('XENSTORED_PATH is not set');
  if (process.argv[2] === 'new-types') return newTypes(socket);
  const c = await ScriptClient.connect(socket);
  const call = (type: number, reqId: number, txId: number, payload: Buffer) => c.call(f(type, reqId, txId, payload));
  const write = (p: string, v: Buffer | string) => Buffer.concat([nul(p), typeof v === 'string' ? Buffer.from(v, 'latin1') : v]);

  await call(T.WRITE, 1, 0, write(`${B}/a`, 'hello'));
  await call(T.READ, 2, 0, nul(`${B}/a`));
  await call(T.WRITE, 3, 0, write(`${B}/bin`, Buffer.from([0, 1, 0xff, 0x0a, 0x22, 0x71, 0x22])));
  await call(T.READ, 4, 0, nul(`${B}/bin`));
  await call(T.WRITE, 5, 0, write(`${B}/long`, 'L'.repeat(200)));
  await call(T.DIRECTORY, 6, 0, nul(B));
  await call(T.SET_PERMS, 7, 0, nul(`${B}/a`, 'n0', 'r1'));
  await call(T.GET_PERMS, 8, 0, nul(`${B}/a`));
  await call(T.MKDIR, 9, 0, nul(`${B}/d`));
  await call(T.READ, 10, 0, nul(`${B}/missing`));
  await call(T.READ, 11, 0, nul('/bad//path'));

  // A transaction that commits.
  let tx = Number((await call(T.TRANSACTION_START, 12, 0, nul(''))).payload.toString('latin1').replace(/\0$/, ''));
  await call(T.WRITE, 13, tx, write(`${B}/t`, 'in-tx'));
  await call(T.READ, 14, tx, nul(`${B}/t`));
  await call(T.TRANSACTION_END, 15, tx, nul('T'));
  // One that aborts.
  tx = Number((await call(T.TRANSACTION_START, 16, 0, nul(''))).payload.toString('latin1').replace(/\0$/, ''));
  await call(T.WRITE, 17, tx, write(`${B}/never`, 'x'));
  await call(T.TRANSACTION_END, 18, tx, nul('F'));
  // One that conflicts: the node it read changes outside it before the commit.
  tx = Number((await call(T.TRANSACTION_START, 19, 0, nul(''))).payload.toString('latin1').replace(/\0$/, ''));
  await call(T.READ, 20, tx, nul(`${B}/a`));
  await call(T.WRITE, 21, 0, write(`${B}/a`, 'changed'));
  await call(T.WRITE, 22, tx, write(`${B}/a`, 'from-tx'));
  await call(T.TRANSACTION_END, 23, tx, nul('T'));
  // An operation in a transaction that does not exist.
  await call(T.READ, 24, 999, nul(`${B}/a`));

  // A watch: the reply, the event every new watch fires, then one per change.
  c.send(f(T.WATCH, 25, 0, nul(`${B}/a`, 'tok1')));
  await c.receive(2);
  c.send(f(T.WRITE, 26, 0, write(`${B}/a`, 'again')));
  await c.receive(2);
  await call(T.UNWATCH, 27, 0, nul(`${B}/a`, 'tok1'));

  // Pipelined requests with their own req_ids, and two with req_id 0 paired by order.
  c.send(f(T.READ, 30, 0, nul(`${B}/a`)), f(T.READ, 31, 0, nul(`${B}/missing`)), f(T.DIRECTORY, 32, 0, nul(`${B}/d`)));
  await c.receive(3);
  c.send(f(T.READ, 0, 0, nul(`${B}/a`)), f(T.READ, 0, 0, nul(`${B}/t`)));
  await c.receive(2);

  await call(T.GET_DOMAIN_PATH, 33, 0, nul('0'));
  await call(T.IS_DOMAIN_INTRODUCED, 34, 0, nul('0'));
  await call(T.RM, 35, 0, nul(`${B}/d`));
  // Type 20 was XS_RESTRICT, removed from the protocol.
  await call(20, 36, 0, nul('0'));
  // Xen 4.21-4.22: feature and quota requests, a watch with a depth. A 4.17 daemon answers
  // ENOSYS (unknown types) and EINVAL (a third WATCH field); xs-trace decodes them all.
  await call(T.GET_FEATURE, 37, 0, Buffer.alloc(0));
  await call(T.SET_FEATURE, 38, 0, nul('1', '4'));
  await call(T.GET_QUOTA, 39, 0, Buffer.alloc(0));
  await call(T.GET_QUOTA, 40, 0, nul('1', 'nodes'));
  await call(T.SET_QUOTA, 41, 0, nul('nodes', '2000'));
  await call(T.WATCH, 42, 0, nul(`${B}/a`, 'tok2', '1'));
  await c.end();

  // A second connection, numbered #2.
  const c2 = await ScriptClient.connect(socket);
  await c2.call(f(T.READ, 1, 0, nul(`${B}/a`)));
  await c2.end();
}

main().catch((e) => {
  process.stderr.write(`golden-client: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
