/**
 * The in-memory server's own API: in-process connections as a domain, the simulated
 * hypervisor (createDomain / introduceDomain / destroyDomain), domain sockets, typed errors,
 * and the C-compatible argument parsing its answers depend on.
 */
import test from 'ava';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType as T } from '../../xenstore-wire/constants';
import { startServer, XenstoredServerError } from '../../xenstore-wire/server';
import { atoi, atou, strtol } from '../../xenstore-wire/server/cstr';
import { RawConn } from './wire';

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');
const text = (f: { type: number; payload: Buffer }) => (f.type === T.ERROR ? `!${f.payload.toString('latin1').replace(/\0$/, '')}` : f.payload.toString('latin1'));

test('openStream(domid): an in-process connection as an unprivileged domain', async (t) => {
  const s = await startServer();
  try {
    s.introduceDomain(4);
    const dom0 = RawConn.fromStream(s.openStream());
    t.is(text(await dom0.request(T.WRITE, '/local/domain/4/name\0vm4')), 'OK\0');
    t.is(text(await dom0.request(T.SET_PERMS, nul('/local/domain/4', 'n4'))), 'OK\0');
    t.is(text(await dom0.request(T.SET_PERMS, nul('/local/domain/4/name', 'n4', 'r0'))), 'OK\0');
    const guest = RawConn.fromStream(s.openStream(4));
    t.is(text(await guest.request(T.READ, nul('name'))), 'vm4');
    t.is(text(await guest.request(T.READ, nul('/tool/xenstored'))), '!EACCES');
    t.is(text(await guest.request(T.INTRODUCE, nul('5', '1', '1'))), '!EACCES');
    t.is(text(await guest.request(T.WRITE, 'device/vif/0\0up')), 'OK\0');
    t.is(text(await dom0.request(T.GET_PERMS, nul('/local/domain/4/device/vif/0'))), 'n4\0');
    guest.close();
    dom0.close();
    t.throws(() => s.openStream(9), { instanceOf: XenstoredServerError, message: /domain 9 is not introduced/ });
  } finally {
    await s.close();
  }
});

test('the simulated hypervisor: domains exist, are introduced, and die', async (t) => {
  const s = await startServer({ domainSockets: true });
  try {
    const dom0 = await RawConn.open(s.socketPath);
    t.is(text(await dom0.request(T.WATCH, nul('@introduceDomain', 'in'))), 'OK\0');
    t.is(text(await dom0.request(T.WATCH, nul('@releaseDomain', 'out'))), 'OK\0');
    // A domain the hypervisor does not know cannot be introduced, nor own nodes.
    t.is(text(await dom0.request(T.INTRODUCE, nul('6', '1', '1'))), '!EINVAL');
    t.is(text(await dom0.request(T.WRITE, '/vm6\0x')), 'OK\0');
    t.is(text(await dom0.request(T.SET_PERMS, nul('/vm6', 'n6'))), '!ENOENT');
    s.createDomain(6);
    t.is(text(await dom0.request(T.SET_PERMS, nul('/vm6', 'n6'))), 'OK\0');
    t.is(text(await dom0.request(T.INTRODUCE, nul('6', '1', '1'))), 'OK\0');
    t.is(text(await dom0.request(T.IS_DOMAIN_INTRODUCED, nul('6'))), 'T\0');
    // Its socket appears (domainSockets) and speaks as domain 6.
    const sock = await s.domainSocketPath(6);
    t.true(existsSync(sock));
    const g = await RawConn.open(sock);
    t.is(text(await g.request(T.READ, nul('/vm6'))), 'x');
    // The domain dies: its connection closes, the nodes it owned go, @releaseDomain fires.
    s.destroyDomain(6);
    await g.waitClosed();
    t.is(text(await dom0.request(T.READ, nul('/vm6'))), '!ENOENT');
    t.is(text(await dom0.request(T.IS_DOMAIN_INTRODUCED, nul('6'))), 'F\0');
    await dom0.sync();
    const events = dom0.take().filter((f) => f.type === T.WATCH_EVENT).map((f) => f.payload.toString('latin1'));
    // Initial firings, then INTRODUCE, then the death (no event for /vm6: nobody watches it).
    t.deepEqual(events, ['@introduceDomain\0in\0', '@releaseDomain\0out\0', '@introduceDomain\0in\0', '@releaseDomain\0out\0']);
    t.throws(() => s.createDomain(0), { instanceOf: XenstoredServerError });
    dom0.close();
  } finally {
    await s.close();
  }
});

test('a second daemon on a live socket is refused; a stale socket file is replaced', async (t) => {
  const a = await startServer();
  try {
    const err = await t.throwsAsync(startServer({ rundir: a.rundir }), { instanceOf: XenstoredServerError });
    t.is(err?.code, 'EADDRINUSE');
    t.is(err?.path, a.socketPath);
  } finally {
    await a.close();
  }
  // Left behind by a crash: nothing answers on it, so the new daemon takes the path over.
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-stale-'));
  try {
    writeFileSync(join(dir, 'socket'), '');
    const b = await startServer({ rundir: dir });
    const c = await RawConn.open(b.socketPath);
    t.is(text(await c.request(T.DIRECTORY, nul('/'))), 'tool\0');
    c.close();
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('C-compatible number parsing (atoi, strtol base 0) used for domids, ports, permissions', (t) => {
  t.is(atoi('12abc'), 12);
  t.is(atoi('  -7'), -7);
  t.is(atoi('abc'), 0);
  t.is(atou('-1'), 0xffffffff);
  t.is(atoi('99999999999'), 1215752191); // the long truncated to an int, as on x86_64/arm64
  t.deepEqual(strtol('0x1f', 0), { value: 31n, end: 4 });
  t.deepEqual(strtol('010', 0), { value: 8n, end: 3 });
  t.deepEqual(strtol('0x', 0), { value: 0n, end: 1 });
  t.deepEqual(strtol('z', 0), { value: 0n, end: 0 });
  t.is(strtol('99999999999999999999', 10).value, (1n << 63n) - 1n);
});
