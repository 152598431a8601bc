/**
 * connect(): transport discovery in libxenstore's order, explicit paths, connection errors,
 * and the process lifecycle (no event-loop leak after close(), no unhandled rejection when the
 * daemon dies) checked in child processes against a real C xenstored.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, ConnectionError, MessageType as T } from '../../xenstore-wire';
import { discoveryCandidates, discoverEndpoint, XENBUS_DEVICE } from '../../xenstore-wire/transport';
import { startDaemon, RunningDaemon } from '../harness/daemons';
import { FakeSocketPeer } from './helpers/fake-peer';
import { frameBytes } from './helpers/wire';
import { withTimeout } from './helpers/async';

test('discovery order follows libxenstore', (t) => {
  t.deepEqual(discoveryCandidates({ XENSTORED_PATH: '/x/sock', XENSTORED_RUNDIR: '/r' }), ['/x/sock']);
  t.deepEqual(discoveryCandidates({ XENSTORED_RUNDIR: '/r' }), ['/r/socket', '/dev/xen/xenbus']);
  t.deepEqual(discoveryCandidates({}), ['/var/run/xenstored/socket', '/dev/xen/xenbus']);
});

test('discoverEndpoint picks the transport by file type', async (t) => {
  const peer = await FakeSocketPeer.start();
  t.deepEqual(await discoverEndpoint({ XENSTORED_PATH: peer.path }), { path: peer.path, kind: 'socket' });
  t.deepEqual(await discoverEndpoint({ XENSTORED_RUNDIR: peer.dir }), { path: peer.path, kind: 'socket' });
  const fifo = join(peer.dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  t.deepEqual(await discoverEndpoint({ XENSTORED_PATH: fifo }), { path: fifo, kind: 'xenbus' });
  await peer.stop();
});

test('nothing to connect to: ConnectionError ENOENT naming what was tried', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'xen-sshm-norun-'));
  const env = { XENSTORED_RUNDIR: empty };
  if (existsSync(XENBUS_DEVICE)) {
    // On a Xen dom0 the device is the fallback, as in libxenstore.
    t.is((await discoverEndpoint(env)).kind, 'xenbus');
  } else {
    const e = await t.throwsAsync(connect({ env }), { instanceOf: ConnectionError });
    t.is(e?.code, 'ENOENT');
    t.regex(e?.message ?? '', new RegExp(`${empty}/socket.*${XENBUS_DEVICE}`));
  }
  const e2 = await t.throwsAsync(connect({ env: { XENSTORED_PATH: join(empty, 'nope') } }), { instanceOf: ConnectionError });
  t.like(e2, { code: 'ENOENT', path: join(empty, 'nope') });
  const e3 = await t.throwsAsync(connect(join(empty, 'nope')), { instanceOf: ConnectionError });
  t.like(e3, { code: 'ENOENT', kind: 'connection' });
  rmSync(empty, { recursive: true });
});

test('connect() with XENSTORED_PATH, and with a path string', async (t) => {
  const peer = await FakeSocketPeer.start();
  peer.onFrame = (f) => peer.send(frameBytes(T.GET_DOMAIN_PATH, f.reqId, 0, '/local/domain/0\0'));
  const a = await connect({ env: { XENSTORED_PATH: peer.path } });
  t.is(a.transportKind, 'socket');
  t.is(await a.getDomainPath(0), '/local/domain/0');
  await a.close();
  await peer.stop();
});

let daemon: RunningDaemon | undefined;
test.before(async () => {
  daemon = await startDaemon('cxenstored');
});
test.after.always(async () => {
  await daemon?.stop();
});

function runChild(mode: string, env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--unhandled-rejections=strict', join(__dirname, 'helpers', 'lifecycle-child.js'), mode], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const l of d.toString().split('\n')) if (l) onLine?.(l);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, ms: Date.now() - started });
    });
  });
}

test.serial('after close() the process exits by itself: nothing holds the event loop', async (t) => {
  const r = await runChild('close', daemon!.env);
  t.is(r.err, '');
  t.is(r.code, 0, 'killed by the 15 s guard means something kept the event loop alive');
  t.is(r.out, 'done\n');
});

test.serial('the daemon dying under a busy client: typed errors, no unhandled rejection, clean exit', async (t) => {
  const own = await startDaemon('cxenstored');
  let killed: Promise<void> | undefined;
  const r = await runChild('lost', own.env, (line) => {
    if (line === 'ready') killed = own.kill();
  });
  await killed;
  await own.stop();
  t.is(r.err, '');
  t.is(r.code, 0);
  t.regex(r.out, /^ready\nclosed (ECONNRESET|EPIPE) 21\/21\n$/);
});

test('a burst of 40 simultaneous connects to C xenstored all succeed (EAGAIN on a full backlog is retried)', async (t) => {
  // C xenstored accepts one connection per pass of its main loop; Node's non-blocking
  // connect() gets EAGAIN where libxenstore's blocking one would wait.
  const clients = await Promise.all(Array.from({ length: 40 }, () => connect({ path: daemon!.socketPath })));
  const paths = await Promise.all(clients.map((c) => c.getDomainPath(0)));
  t.true(paths.every((p) => p === '/local/domain/0'));
  await Promise.all(clients.map((c) => c.close()));
});
