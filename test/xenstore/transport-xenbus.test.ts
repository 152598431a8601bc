/**
 * The /dev/xen/xenbus transport against a fake driver that enforces the Linux driver's rules
 * (xenbus_dev_frontend.c, FACTS.md section 2): one whole message per write, header + payload
 * within 4096 bytes, WATCH/UNWATCH answered by the "kernel" with the request's header copied,
 * watch events with meaningless ids, reads returning any number of bytes. Then the same
 * transport over real file descriptors (a pair of FIFOs) with a driver on the other ends.
 */
import test from 'ava';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConnectionError,
  FdIo,
  MessageType as T,
  XenbusTransport,
  XenstoreClient,
  XenstoreError,
  XENBUS_DEV_PAYLOAD_MAX,
  nodeFdIo,
} from '../../xenstore-wire';
import { CLOSE_WAKEUP_TOKEN } from '../../xenstore-wire/transport-xenbus';
import { frameBytes, nul } from './helpers/wire';
import { FixtureReader, SeenFrame } from './helpers/fake-peer';
import { nextEvent, withTimeout } from './helpers/async';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code} (fake driver)`), { code });
}

/** A tiny xenstore behind a fake xenbus driver. */
class FakeXenbusDriver implements FdIo {
  readonly writes: Buffer[] = [];
  readonly violations: string[] = [];
  readonly closedFds: number[] = [];
  readonly store = new Map<string, Buffer>();
  refuseNext: string | null = null;
  /** Largest chunk one read() returns, to split messages across reads. */
  maxRead = 7;
  private out: Buffer[] = [];
  private waiting: (() => void) | null = null;
  private eof = false;

  private queue(b: Buffer): void {
    this.out.push(b);
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  /** The daemon side went away: reads return 0. */
  hangUp(): void {
    this.eof = true;
    this.queue(Buffer.alloc(0));
  }

  fire(path: string, token: string): void {
    // Event ids from the device are garbage: make them so.
    this.queue(frameBytes(T.WATCH_EVENT, 0xdeadbeef, 0xfeed, nul(path, token)));
  }

  async write(_fd: number, buf: Buffer): Promise<number> {
    this.writes.push(Buffer.from(buf));
    if (buf.length < 16) {
      this.violations.push(`write of ${buf.length} bytes: less than a header`);
      return buf.length;
    }
    const len = buf.readUInt32LE(12);
    if (16 + len > 4096) throw errno('E2BIG'); // the driver's buffer holds header + payload
    if (buf.length !== 16 + len) this.violations.push(`write of ${buf.length} bytes holding a ${16 + len}-byte message`);
    if (this.refuseNext) {
      const code = this.refuseNext;
      this.refuseNext = null;
      throw errno(code);
    }
    const f: SeenFrame = { type: buf.readUInt32LE(0), reqId: buf.readUInt32LE(4), txId: buf.readUInt32LE(8), payload: buf.subarray(16) };
    const [a, b] = f.payload.toString('latin1').split('\0');
    const reply = (type: number, body: Buffer | string) => this.queue(frameBytes(type, f.reqId, f.txId, body));
    switch (f.type) {
      case T.WATCH: // kernel-handled: synthesised OK, then the initial firing
        reply(T.WATCH, nul('OK'));
        this.fire(a, b);
        break;
      case T.UNWATCH: // OK even for a watch never set
        reply(T.UNWATCH, nul('OK'));
        break;
      case T.READ: {
        const v = this.store.get(a);
        if (v) reply(T.READ, v);
        else reply(T.ERROR, nul('ENOENT'));
        break;
      }
      case T.WRITE: {
        const i = f.payload.indexOf(0);
        this.store.set(a, Buffer.from(f.payload.subarray(i + 1)));
        reply(T.WRITE, nul('OK'));
        break;
      }
      default:
        reply(T.ERROR, nul('ENOSYS'));
    }
    return buf.length;
  }

  async read(_fd: number, buf: Buffer): Promise<number> {
    for (;;) {
      while (this.out.length > 0 && this.out[0].length === 0) {
        this.out.shift();
        if (this.eof) return 0;
      }
      if (this.out.length > 0) {
        const head = this.out[0];
        const n = Math.min(head.length, buf.length, this.maxRead);
        head.copy(buf, 0, 0, n);
        if (n === head.length) this.out.shift();
        else this.out[0] = head.subarray(n);
        return n;
      }
      await new Promise<void>((r) => (this.waiting = r));
    }
  }

  async close(fd: number): Promise<void> {
    this.closedFds.push(fd);
  }
}

function fakeClient(): { drv: FakeXenbusDriver; xs: XenstoreClient } {
  const drv = new FakeXenbusDriver();
  const tr = new XenbusTransport('/dev/xen/xenbus (fake)', 42, 42, { io: drv, closeWaitMs: 1000 });
  return { drv, xs: new XenstoreClient(tr) };
}

test('one write per message, never coalesced, even when pipelined; replies split across reads', async (t) => {
  const { drv, xs } = fakeClient();
  await Promise.all(Array.from({ length: 50 }, (_, i) => xs.write(`/x/${i}`, `v${i}`)));
  const got = await Promise.all(Array.from({ length: 50 }, (_, i) => xs.readString(`/x/${i}`)));
  t.true(got.every((v, i) => v === `v${i}`));
  t.is(drv.writes.length, 100);
  t.deepEqual(drv.violations, []);
  const reader = new FixtureReader();
  t.true(drv.writes.every((w) => reader.push(w).length === 1), 'each write holds exactly one whole message');
  await xs.close();
});

test('payload limit over the device is 4080: 4081 refused with E2BIG before writing', async (t) => {
  const { drv, xs } = fakeClient();
  t.is(xs.transport.maxPayload, XENBUS_DEV_PAYLOAD_MAX);
  const path = '/v';
  const fits = Buffer.alloc(XENBUS_DEV_PAYLOAD_MAX - path.length - 1, 1);
  await xs.write(path, fits);
  t.deepEqual(await xs.read(path), fits);
  const before = drv.writes.length;
  const e = await t.throwsAsync(xs.write(path, Buffer.alloc(fits.length + 1)), { instanceOf: XenstoreError });
  t.like(e, { code: 'E2BIG', source: 'client' });
  t.is(drv.writes.length, before);
  await xs.close();
});

test('kernel-handled watches: events with garbage ids are recognised by type and routed by token', async (t) => {
  const { drv, xs } = fakeClient();
  const a = xs.watch('/a', 'ta');
  const b = xs.watch('@releaseDomain', 'tb');
  t.deepEqual(await nextEvent(a), { path: '/a', token: 'ta' });
  t.deepEqual(await nextEvent(b), { path: '@releaseDomain', token: 'tb' });
  drv.fire('@releaseDomain', 'tb');
  drv.fire('/a/child', 'ta');
  t.is((await nextEvent(b)).path, '@releaseDomain');
  t.is((await nextEvent(a)).path, '/a/child');
  await a.close();
  await b.close();
  await xs.close();
  t.deepEqual(drv.violations, []);
});

test('a write the driver refuses fails that request only', async (t) => {
  const { drv, xs } = fakeClient();
  drv.refuseNext = 'EILSEQ';
  const e = await t.throwsAsync(xs.read('/x'), { instanceOf: XenstoreError });
  t.like(e, { code: 'EILSEQ', op: 'READ', path: '/x', source: 'client' });
  await xs.write('/x', 'fine');
  t.is(await xs.readString('/x'), 'fine');
  await xs.close();
});

test('close() wakes the blocked read with an UNWATCH the kernel answers, then closes the fd once', async (t) => {
  const { drv, xs } = fakeClient();
  await xs.write('/x', 'v');
  await withTimeout(xs.close(), 2000, 'close()');
  const last = drv.writes[drv.writes.length - 1];
  t.is(last.readUInt32LE(0), T.UNWATCH);
  t.deepEqual(last.subarray(16), nul('/', CLOSE_WAKEUP_TOKEN));
  t.deepEqual(drv.closedFds, [42]);
  t.is(await xs.closed, null);
  await t.throwsAsync(xs.read('/x'), { instanceOf: ConnectionError });
});

test('end of file on the device rejects pending requests with ConnectionError', async (t) => {
  const { drv, xs } = fakeClient();
  drv.maxRead = 4096;
  const w = xs.watch('/w');
  await w.ready;
  await nextEvent(w);
  drv.refuseNext = null;
  const pending = xs.transactionStart(); // answered ENOSYS by this fake, unless the device dies first
  drv.hangUp();
  const r = await pending.catch((e: unknown) => e);
  t.true(r instanceof XenstoreError || r instanceof ConnectionError);
  const closedWith = await withTimeout(xs.closed, 2000, 'the client to see EOF');
  t.true(closedWith instanceof ConnectionError);
  t.is((closedWith as ConnectionError).code, 'ECONNRESET');
  await t.throwsAsync(w.next(), { instanceOf: ConnectionError });
  t.deepEqual(drv.closedFds, [42]);
});

test.serial('over real file descriptors: two FIFOs with a driver on the other ends', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-xenbus-'));
  const toDriver = join(dir, 'to-driver');
  const toClient = join(dir, 'to-client');
  execFileSync('mkfifo', [toDriver, toClient]);
  // O_RDWR on a FIFO never blocks in open(), and keeps the FIFO from reporting EOF.
  const clientRead = fs.openSync(toClient, fs.constants.O_RDWR);
  const clientWrite = fs.openSync(toDriver, fs.constants.O_RDWR);
  const driverRead = fs.openSync(toDriver, fs.constants.O_RDWR);
  const driverWrite = fs.openSync(toClient, fs.constants.O_RDWR);

  // The driver: answers READ with the path, WATCH/UNWATCH with OK, stops on a 1-byte poke.
  const seen: SeenFrame[] = [];
  let stopping = false;
  const driver = (async () => {
    const reader = new FixtureReader();
    const buf = Buffer.alloc(8192);
    while (!stopping) {
      const n = await nodeFdIo.read(driverRead, buf);
      if (stopping || n === 0) break;
      for (const f of reader.push(Buffer.from(buf.subarray(0, n)))) {
        seen.push(f);
        const body = f.type === T.READ ? f.payload.subarray(0, f.payload.indexOf(0)) : nul('OK');
        await nodeFdIo.write(driverWrite, frameBytes(f.type, f.reqId, f.txId, body));
      }
    }
  })();

  const tr = new XenbusTransport(toDriver, clientRead, clientWrite);
  const xs = new XenstoreClient(tr);
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => xs.readString(`/fifo/${i}`)));
  t.true(got.every((v, i) => v === `/fifo/${i}`));
  await withTimeout(xs.close(), 3000, 'close() over real fds');
  t.is(seen[seen.length - 1].type, T.UNWATCH, 'the wake-up UNWATCH went through the real fd');
  t.is(await xs.closed, null);
  // Both client fds are closed: using them now fails with EBADF.
  t.throws(() => fs.fstatSync(clientRead), { code: 'EBADF' });
  t.throws(() => fs.fstatSync(clientWrite), { code: 'EBADF' });

  stopping = true;
  const poke = fs.openSync(toDriver, fs.constants.O_RDWR);
  fs.writeSync(poke, Buffer.from([0])); // wakes the driver's blocked read
  fs.closeSync(poke);
  await withTimeout(driver, 3000, 'the test driver to stop');
  fs.closeSync(driverRead);
  fs.closeSync(driverWrite);
  rmSync(dir, { recursive: true, force: true });
});
