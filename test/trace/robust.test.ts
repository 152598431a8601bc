/**
 * The proxy never breaks a client: protocol misuse, undecodable streams, a daemon that is
 * missing or dies, and streams split into single bytes, against a real C xenstored. The
 * client must see through the proxy exactly what it sees on a direct connection.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { TraceProxy } from '../../lib/trace/proxy';
import { TraceRecord } from '../../lib/trace/record';
import { RunningDaemon, startDaemon } from '../harness/daemons';
import { PYTHON } from '../harness/clients';
import { ScriptClient, T, f, nul, tmpDir, wire } from './helpers';

let daemon: RunningDaemon;
let dir: string;
let seq = 0;

test.before(async () => {
  daemon = await startDaemon('cxenstored');
  dir = tmpDir('xs-trace-robust-');
});

test.after.always(async () => {
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const proxies = new Set<TraceProxy>();

async function proxyTo(upstream: string): Promise<{ proxy: TraceProxy; records: TraceRecord[] }> {
  const records: TraceRecord[] = [];
  const proxy = await TraceProxy.listen({ listenPath: path.join(dir, `p${++seq}`), upstreamPath: upstream, onRecord: (r) => records.push(r) });
  proxies.add(proxy);
  return { proxy, records };
}

// A failed assertion must not leave a proxy listening (the worker would never exit).
test.afterEach.always(async () => {
  for (const p of proxies) await p.close();
  proxies.clear();
});

/** Sends `bytes`, then collects everything the peer sends until it closes or 1.5 s pass. */
async function exchange(socketPath: string, bytes: Buffer): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    const got: Buffer[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ received: Buffer.concat(got), closed });
    };
    const timer = setTimeout(done, 1500);
    s.on('connect', () => s.write(bytes));
    s.on('data', (b: Buffer) => got.push(b));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      done();
    });
  });
}

function warnings(records: TraceRecord[]): string[] {
  return records.flatMap((r) => r.warnings.map((w) => w.code));
}

test.serial('a request over XENSTORE_PAYLOAD_MAX: warned, forwarded, the client sees what it would see directly', async (t) => {
  const { proxy, records } = await proxyTo(daemon.socketPath);
  const bytes = Buffer.concat([
    wire(f(T.WRITE, 1, 0, Buffer.concat([nul('/robust/big'), Buffer.alloc(5000, 0x61)]))),
    wire(f(T.READ, 2, 0, nul('/robust/big'))),
  ]);
  const direct = await exchange(daemon.socketPath, bytes);
  const proxied = await exchange(proxy.listenPath, bytes);
  t.true(direct.received.equals(proxied.received));
  t.is(proxied.closed, direct.closed);
  t.true(warnings(records).includes('payload-over-limit'));
  await proxy.close();
});

test.serial('a header announcing 2 MiB: decoding stops with a warning, bytes still flow, later connections decode', async (t) => {
  const { proxy, records } = await proxyTo(daemon.socketPath);
  const h = wire(f(T.WRITE, 1, 0, Buffer.alloc(0)));
  h.writeUInt32LE(2 * 1024 * 1024, 12);
  const bytes = Buffer.concat([h, Buffer.alloc(3000, 0x62)]);
  const direct = await exchange(daemon.socketPath, bytes);
  const proxied = await exchange(proxy.listenPath, bytes);
  t.true(direct.received.equals(proxied.received));
  t.is(proxied.closed, direct.closed);
  const w = records.find((r) => r.kind === 'warning');
  t.is(w?.warnings[0].code, 'undecodable-stream');
  t.regex(w?.text ?? '', /still forwarding/);
  // The next connection is decoded normally.
  const c = await ScriptClient.connect(proxy.listenPath);
  const reply = await c.call(f(T.GET_DOMAIN_PATH, 9, 0, nul('0')));
  t.is(reply.payload.toString('latin1'), '/local/domain/0\0');
  await c.end();
  await proxy.whenIdle(2000);
  const last = records.filter((r) => r.conn === 2 && r.kind === 'reply');
  t.like(last[0], { op: 'GET_DOMAIN_PATH', result: '/local/domain/0', domid: 0 });
  await proxy.close();
});

test.serial('a stream written one byte at a time decodes into the same messages', async (t) => {
  const { proxy, records } = await proxyTo(daemon.socketPath);
  const bytes = Buffer.concat([wire(f(T.WRITE, 5, 0, Buffer.concat([nul('/robust/bytes'), Buffer.from('v')]))), wire(f(T.READ, 6, 0, nul('/robust/bytes')))]);
  const c = await ScriptClient.connect(proxy.listenPath);
  for (const b of bytes) {
    c.sendRaw(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  const replies = await c.receive(2);
  t.deepEqual(
    replies.map((r) => [r.reqId, r.payload.toString('latin1')]),
    [
      [5, 'OK\0'],
      [6, 'v'],
    ],
  );
  await c.end();
  await proxy.whenIdle(2000);
  // The second request may be complete before or after the first reply: check each direction.
  const reqs = records.filter((r) => r.kind === 'request');
  const reps = records.filter((r) => r.kind === 'reply');
  t.deepEqual(
    reqs.map((r) => [r.type, r.reqId, r.path]),
    [
      ['WRITE', 5, '/robust/bytes'],
      ['READ', 6, '/robust/bytes'],
    ],
  );
  t.deepEqual(
    reps.map((r) => [r.op, r.reqId, r.requestSeq]),
    reqs.map((r) => [r.type, r.reqId, r.seq]),
  );
  t.deepEqual(reps[1].value, Buffer.from('v'));
  t.deepEqual(warnings(records), []);
  await proxy.close();
});

test.serial('many clients at once: each connection numbered, replies never mixed up', async (t) => {
  const { proxy, records } = await proxyTo(daemon.socketPath);
  // C xenstored listens with a backlog of 1: so many connects at once make some of the
  // proxy's own connects fail with EAGAIN, which it retries.
  const N = 16;
  const clients = await Promise.all(Array.from({ length: N }, () => ScriptClient.connect(proxy.listenPath)));
  await Promise.all(
    clients.map(async (c, i) => {
      await c.call(f(T.WRITE, 1, 0, Buffer.concat([nul(`/robust/many/${i}`), Buffer.from(String(i))])));
      const r = await c.call(f(T.READ, 2, 0, nul(`/robust/many/${i}`)));
      t.is(r.payload.toString(), String(i));
      await c.end();
    }),
  );
  await proxy.whenIdle(2000);
  t.is(proxy.connectionCount, N);
  t.deepEqual([...new Set(records.map((r) => r.conn))].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i + 1));
  t.is(records.filter((r) => r.kind === 'reply' && r.op === 'READ').length, N);
  for (const r of records.filter((x) => x.kind === 'reply' && x.op === 'READ')) {
    t.is(r.value?.toString(), r.path?.split('/').pop());
  }
  await proxy.close();
});

test.serial('no daemon behind the proxy: the client is disconnected, the proxy says why and keeps serving', async (t) => {
  const { proxy, records } = await proxyTo(path.join(dir, 'nothing-here'));
  for (let i = 0; i < 2; i++) {
    const r = await exchange(proxy.listenPath, wire(f(T.READ, 1, 0, nul('/a'))));
    t.true(r.closed);
    t.is(r.received.length, 0);
  }
  await proxy.whenIdle(2000);
  const failed = records.filter((r) => r.kind === 'warning');
  t.is(failed.length, 2);
  t.regex(failed[0].text ?? '', /daemon connection failed: ENOENT/);
  t.is(failed[0].warnings[0].code, 'daemon-unreachable');
  t.is(records.filter((r) => r.kind === 'disconnect').length, 2);
  await proxy.close();
});

test.serial('the daemon dies mid-session: the client sees the connection end, the trace lists what was unanswered', async (t) => {
  const own = await startDaemon('cxenstored');
  try {
    const { proxy, records } = await proxyTo(own.socketPath);
    const c = await ScriptClient.connect(proxy.listenPath);
    await c.call(f(T.WRITE, 1, 0, Buffer.concat([nul('/robust/dies'), Buffer.from('x')])));
    const tx = await c.call(f(T.TRANSACTION_START, 2, 0, nul('')));
    const txId = Number(tx.payload.toString('latin1').replace(/\0$/, ''));
    await own.kill();
    c.send(f(T.READ, 3, txId, nul('/robust/dies')));
    const after = await c.receive(1, 3000);
    t.deepEqual(after, []);
    t.true(c.closed);
    await proxy.whenIdle(3000);
    const end = records.filter((r) => r.kind === 'disconnect');
    t.is(end.length, 1);
    const abandoned = records.find((r) => r.tx?.event === 'abandoned');
    t.is(abandoned?.tx?.id, txId);
    await proxy.close();
  } finally {
    await own.stop();
  }
});

test.serial('listening: a stale socket file is replaced, a live one or a regular file is refused', async (t) => {
  const sock = path.join(dir, 'stale');
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(sock, () => r()));
  try {
    const busy = await t.throwsAsync(TraceProxy.listen({ listenPath: sock, upstreamPath: daemon.socketPath, onRecord: () => undefined }));
    t.like(busy as unknown as Record<string, unknown>, { kind: 'trace', code: 'EADDRINUSE', path: sock });
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
  // A socket file nobody listens on any more (left by a process that died).
  const stale = path.join(dir, 'stale2');
  const py = spawnSync(PYTHON, ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
  t.is(py.status, 0, String(py.stderr));
  t.true(fs.lstatSync(stale).isSocket());
  const p = await TraceProxy.listen({ listenPath: stale, upstreamPath: daemon.socketPath, onRecord: () => undefined });
  try {
    const c = await ScriptClient.connect(stale);
    t.is((await c.call(f(T.READ, 1, 0, nul('/robust/none')))).type, T.ERROR);
    await c.end();
  } finally {
    await p.close();
  }
  const file = path.join(dir, 'regular');
  fs.writeFileSync(file, 'not a socket');
  const e = await t.throwsAsync(TraceProxy.listen({ listenPath: file, upstreamPath: daemon.socketPath, onRecord: () => undefined }));
  t.like(e as unknown as Record<string, unknown>, { kind: 'trace', code: 'EEXIST', path: file });
  t.is(fs.readFileSync(file, 'utf8'), 'not a socket');
});
