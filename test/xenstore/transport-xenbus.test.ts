/**
 * The /dev/xen/xenbus transport against a fake driver that enforces the Linux driver's rules
 * (xenbus_dev_frontend.c, FACTS.md section 2): one whole message per write, header + payload
 * within 4096 bytes, WATCH/UNWATCH answered by the "kernel" with the request's header copied,
 * watch events with meaningless ids, reads returning any number of bytes. Then the same
 * transport over real file descriptors (a pair of FIFOs) with a driver on the other ends.
 */
import test from 'ava';
import * as fs from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
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
  TransportSink,
} from '../../xenstore-wire';
import { CLOSE_WAKEUP_TOKEN, nodeFdIo } from '../../xenstore-wire/transport-xenbus';
import { frameBytes, nul } from './helpers/wire';
import { FixtureReader, SeenFrame } from './helpers/fake-peer';
import { nextEvent, withTimeout } from './helpers/async';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code} (fake driver)`), { code });
}

/**
 * A tiny xenstore behind a fake xenbus driver that models how Linux (6.1) handles a request:
 * write() copies the message into the file's one buffer (u->u.buffer in xenbus_file_write) and
 * returns; the header is copied then (xs_send), but the payload is read from that buffer only
 * when the "xenbus thread" sends the request, later (a setImmediate here). A write arriving in
 * between overwrites the payload, as on the real device. WATCH/UNWATCH are handled inside
 * write() (xenbus_write_watch), their "OK" queued before it returns.
 */
class FakeXenbusDriver implements FdIo {
  readonly writes: Buffer[] = [];
  readonly violations: string[] = [];
  readonly closedFds: number[] = [];
  readonly store = new Map<string, Buffer>();
  /** Requests as the xenbus thread sent them to "xenstored", payload taken at send time. */
  readonly sent: SeenFrame[] = [];
  refuseNext: string | null = null;
  /** Largest chunk one read() returns, to split messages across reads. */
  maxRead = 7;
  /** While true the xenbus thread sends nothing (a request stays written but unsent). */
  holdSends = false;
  /** Requests written (WATCH/UNWATCH aside) whose reply the client has not finished reading. */
  outstanding = 0;
  maxOutstanding = 0;
  private readonly fileBuffer = Buffer.alloc(4096);
  private unsent: { type: number; reqId: number; txId: number; len: number }[] = [];
  private threadScheduled = false;
  private out: { bytes: Buffer; reply: boolean }[] = [];
  private waiting: (() => void) | null = null;
  private eof = false;

  private queue(b: Buffer, reply = false): void {
    this.out.push({ bytes: b, reply });
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  /** The daemon side went away: reads return 0. */
  hangUp(): void {
    this.eof = true;
    this.queue(Buffer.alloc(0));
  }

  /** A watch event; its ids are garbage on the device (`reqId` lets a test pick the garbage). */
  fire(path: string, token: string, reqId = 0xdeadbeef): void {
    this.queue(frameBytes(T.WATCH_EVENT, reqId, 0xfeed, nul(path, token)));
  }

  /** Requests written but not yet sent by the xenbus thread. */
  get unsentCount(): number {
    return this.unsent.length;
  }

  /** Lets the xenbus thread send again. */
  releaseSends(): void {
    this.holdSends = false;
    this.scheduleThread();
  }

  async write(_fd: number, buf: Buffer): Promise<number> {
    return this.accept(buf);
  }

  writeSync(_fd: number, buf: Buffer): number {
    return this.accept(buf);
  }

  private accept(buf: Buffer): number {
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
    const type = buf.readUInt32LE(0);
    const reqId = buf.readUInt32LE(4);
    const txId = buf.readUInt32LE(8);
    // Only a payload lives in the buffer until sent (xs_send copies the header at once).
    if (this.unsent.some((u) => u.len > 0)) {
      this.violations.push(
        `write of type ${type} req_id ${reqId} while req_id ${this.unsent.find((u) => u.len > 0)!.reqId} is not sent yet: its payload in the file's buffer is overwritten`,
      );
    }
    buf.copy(this.fileBuffer, 0, 0, 16 + len); // copy_from_user into u->u.buffer
    if (type === T.WATCH || type === T.UNWATCH) {
      // Kernel-handled, inside write(): "OK" (even for a watch never set), header copied.
      const [path, token] = this.fileBuffer.subarray(16, 16 + len).toString('latin1').split('\0');
      this.queue(frameBytes(type, reqId, txId, nul('OK')));
      if (type === T.WATCH) this.fire(path, token); // the initial firing
      return buf.length;
    }
    this.unsent.push({ type, reqId, txId, len });
    this.outstanding++;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
    this.scheduleThread();
    return buf.length;
  }

  private scheduleThread(): void {
    if (this.threadScheduled || this.holdSends) return;
    this.threadScheduled = true;
    setImmediate(() => {
      this.threadScheduled = false;
      // The xenbus thread: each queued request goes out with whatever the buffer holds now.
      while (!this.holdSends && this.unsent.length > 0) {
        const r = this.unsent.shift()!;
        const f: SeenFrame = { type: r.type, reqId: r.reqId, txId: r.txId, payload: Buffer.from(this.fileBuffer.subarray(16, 16 + r.len)) };
        this.sent.push(f);
        this.answer(f);
      }
    });
  }

  /** "xenstored". */
  private answer(f: SeenFrame): void {
    const [a] = f.payload.toString('latin1').split('\0');
    const reply = (type: number, body: Buffer | string) => this.queue(frameBytes(type, f.reqId, f.txId, body), true);
    switch (f.type) {
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
  }

  async read(_fd: number, buf: Buffer): Promise<number> {
    for (;;) {
      while (this.out.length > 0 && this.out[0].bytes.length === 0) {
        this.out.shift();
        if (this.eof) return 0;
      }
      if (this.out.length > 0) {
        const head = this.out[0];
        const n = Math.min(head.bytes.length, buf.length, this.maxRead);
        head.bytes.copy(buf, 0, 0, n);
        if (n === head.bytes.length) {
          this.out.shift();
          if (head.reply) this.outstanding--; // the client has now read the whole reply
        } else head.bytes = head.bytes.subarray(n);
        return n;
      }
      await new Promise<void>((r) => (this.waiting = r));
    }
  }

  async close(fd: number): Promise<void> {
    this.closedFds.push(fd);
  }
}

/** Polls `cond` until true, or fails after `ms`. */
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
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

test('pipelined requests: one in flight on the device, each sent with its own payload', async (t) => {
  // The real-Xen failure: 500 pipelined writes, some landing on another node's path.
  const { drv, xs } = fakeClient();
  drv.maxRead = 64;
  const burst = Array.from({ length: 200 }, (_, i) => [`/burst/n${i}`, `v${i}-${'y'.repeat(i % 37)}`] as const);
  const writes = Promise.all(burst.map(([p, v]) => xs.write(p, v)));
  t.is(xs.inFlight, 200, 'the caller pipelines; the transport queues');
  await writes;
  const back = await Promise.all(burst.map(([p]) => xs.readString(p)));
  t.deepEqual(drv.violations, [], 'no write while an earlier request was unsent');
  t.deepEqual(
    burst.filter(([p, v], i) => drv.store.get(p)?.toString() !== v || back[i] !== v).map(([p]) => p),
    [],
    'every value on its own node',
  );
  t.is(drv.maxOutstanding, 1, 'the next request is written only after the reply to the previous was read');
  t.is(drv.sent.length, 400);
  t.true(
    drv.sent.every((f, i) => f.payload.toString('latin1').startsWith(`${burst[i % 200][0]}\0`)),
    'each request went out with its own path',
  );
  await xs.close();
});

test('watch events are not replies: one with the in-flight req_id does not free the slot', async (t) => {
  const { drv, xs } = fakeClient();
  const w = xs.watch('/w', 'tw');
  t.deepEqual(await nextEvent(w), { path: '/w', token: 'tw' });
  await xs.write('/a', '1');
  drv.holdSends = true;
  const first = xs.readString('/a');
  const second = xs.readString('/a');
  await waitFor(() => drv.unsentCount === 1, 2000, 'the first READ to be written');
  const inFlightId = drv.writes[drv.writes.length - 1].readUInt32LE(4);
  drv.fire('/w/x', 'tw', inFlightId); // garbage ids that happen to equal the request's
  t.is((await nextEvent(w)).path, '/w/x');
  await new Promise((r) => setTimeout(r, 20));
  t.is(drv.unsentCount, 1, 'the second READ still waits');
  t.deepEqual(drv.violations, []);
  drv.releaseSends();
  t.deepEqual(await Promise.all([first, second]), ['1', '1']);
  t.is(drv.maxOutstanding, 1);
  await w.close();
  await xs.close();
  t.deepEqual(drv.violations, []);
});

test('a request with an empty payload frees the slot at write(); the nudge behind it goes out at once', async (t) => {
  // GET_FEATURE without a domid is a bare header: nothing of it stays in the driver's buffer.
  const { drv, xs } = fakeClient();
  drv.holdSends = true;
  const features = xs._request(T.GET_FEATURE, Buffer.alloc(0), 0);
  await waitFor(() => drv.unsentCount === 2, 2000, 'GET_FEATURE and the GET_DOMAIN_PATH nudge to be written');
  t.deepEqual(
    drv.writes.map((w) => [w.readUInt32LE(0), w.readUInt32LE(12)]),
    [
      [T.GET_FEATURE, 0],
      [T.GET_DOMAIN_PATH, 2],
    ],
  );
  drv.releaseSends();
  const e = await t.throwsAsync(features, { instanceOf: XenstoreError });
  t.is(e?.code, 'ENOSYS');
  await waitFor(() => xs.inFlight === 0, 2000, 'the nudge to be answered');
  t.deepEqual(drv.violations, []);
  await xs.close();
});

test('destroy() with a request in flight: no wake-up write over its unsent payload; its reply ends the read', async (t) => {
  const { drv, xs } = fakeClient();
  await xs.write('/x', 'v');
  drv.holdSends = true;
  const pending = xs.write('/y', 'w');
  await waitFor(() => drv.unsentCount === 1, 2000, 'the WRITE to be written');
  const writesBefore = drv.writes.length;
  const destroyed = xs.destroy();
  await t.throwsAsync(pending, { instanceOf: ConnectionError });
  await new Promise((r) => setTimeout(r, 50));
  t.is(drv.writes.length, writesBefore, 'nothing written while the WRITE is unsent');
  t.deepEqual(drv.closedFds, [], 'still waiting for the reply that ends the read');
  drv.releaseSends();
  await withTimeout(destroyed, 2000, 'destroy()');
  t.deepEqual(drv.violations, []);
  t.deepEqual(drv.closedFds, [42]);
  t.deepEqual(drv.sent[drv.sent.length - 1].payload, Buffer.from('/y\0w', 'latin1'), 'the WRITE went out intact');
  t.is(drv.store.get('/y')?.toString(), 'w');
  t.false(drv.store.has('/'), 'no request went out with the wake-up payload');
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

/**
 * A driver on the far ends of two FIFOs, in this process: answers READ with the path (after
 * `delayMs(path)`), anything else with OK. `stop()` ends it with a 1-byte poke.
 */
function fifoDriver(delayMs: (path: string) => number = () => 0) {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-xenbus-'));
  const toDriver = join(dir, 'to-driver');
  const toClient = join(dir, 'to-client');
  execFileSync('mkfifo', [toDriver, toClient]);
  // O_RDWR on a FIFO never blocks in open(), and keeps the FIFO from reporting EOF.
  const driverRead = fs.openSync(toDriver, fs.constants.O_RDWR);
  const driverWrite = fs.openSync(toClient, fs.constants.O_RDWR);
  const seen: SeenFrame[] = [];
  /** When each reply was written (Date.now()), by req_id. */
  const repliedAt = new Map<number, number>();
  let stopping = false;
  const loop = (async () => {
    const reader = new FixtureReader();
    const buf = Buffer.alloc(8192);
    while (!stopping) {
      const n = await nodeFdIo.read(driverRead, buf);
      if (stopping || n === 0) break;
      for (const f of reader.push(Buffer.from(buf.subarray(0, n)))) {
        seen.push(f);
        const path = f.payload.subarray(0, f.payload.indexOf(0));
        const body = f.type === T.READ ? path : nul('OK');
        const delay = f.type === T.READ ? delayMs(path.toString('latin1')) : 0;
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        await nodeFdIo.write(driverWrite, frameBytes(f.type, f.reqId, f.txId, body));
        repliedAt.set(f.reqId, Date.now());
      }
    }
  })();
  const stop = async () => {
    stopping = true;
    const poke = fs.openSync(toDriver, fs.constants.O_RDWR);
    fs.writeSync(poke, Buffer.from([0])); // wakes the driver's blocked read
    fs.closeSync(poke);
    await withTimeout(loop, 3000, 'the test driver to stop');
    fs.closeSync(driverRead);
    fs.closeSync(driverWrite);
    rmSync(dir, { recursive: true, force: true });
  };
  return { toDriver, toClient, seen, repliedAt, stop };
}

test.serial('over real file descriptors: two FIFOs with a driver on the other ends', async (t) => {
  const drv = fifoDriver();
  const clientRead = fs.openSync(drv.toClient, fs.constants.O_RDWR);
  const clientWrite = fs.openSync(drv.toDriver, fs.constants.O_RDWR);
  const tr = new XenbusTransport(drv.toDriver, clientRead, clientWrite);
  const xs = new XenstoreClient(tr);
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => xs.readString(`/fifo/${i}`)));
  t.true(got.every((v, i) => v === `/fifo/${i}`));
  await withTimeout(xs.close(), 3000, 'close() over real fds');
  t.is(drv.seen[drv.seen.length - 1].type, T.UNWATCH, 'the wake-up UNWATCH went through the real fd');
  t.is(await xs.closed, null);
  // Both client fds are closed: using them now fails with EBADF.
  t.throws(() => fs.fstatSync(clientRead), { code: 'EBADF' });
  t.throws(() => fs.fstatSync(clientWrite), { code: 'EBADF' });
  await drv.stop();
});

test.serial('process exit hook: one shared listener; wakes an idle read at once, never over a request in flight', async (t) => {
  const base = process.listenerCount('exit');
  const sink = (chunks: Buffer[]): TransportSink => ({ onData: (c) => chunks.push(c), onSendError: () => undefined, onClose: () => undefined });
  const drvA = new FakeXenbusDriver();
  const drvB = new FakeXenbusDriver();
  const a = new XenbusTransport('fake-a', 40, 40, { io: drvA, closeWaitMs: 1000 });
  const b = new XenbusTransport('fake-b', 41, 41, { io: drvB, closeWaitMs: 1000 });
  const gotA: Buffer[] = [];
  a.start(sink(gotA));
  b.start(sink([]));
  t.is(process.listenerCount('exit'), base + 1, 'one listener for any number of transports');
  // b: a READ written, not yet sent by the "kernel".
  drvB.holdSends = true;
  b.send(frameBytes(T.READ, 7, 0, nul('/x')), 7);
  await waitFor(() => drvB.unsentCount === 1, 2000, 'the READ to be written');
  t.false(b.wakeForExitSync(), 'a request in flight: its reply will wake the read');
  t.is(drvB.writes.length, 1);
  // a: idle, so the hook writes the wake-up synchronously.
  t.true(a.wakeForExitSync());
  t.is(drvA.writes.length, 1);
  t.is(drvA.writes[0].readUInt32LE(0), T.UNWATCH);
  t.deepEqual(drvA.writes[0].subarray(16), nul('/', CLOSE_WAKEUP_TOKEN));
  t.false(a.wakeForExitSync(), 'not twice while the first is unanswered');
  await waitFor(() => Buffer.concat(gotA).length === 16 + 3, 2000, "the kernel's OK to reach the read");
  drvB.releaseSends();
  await withTimeout(Promise.all([a.close(), b.close()]), 3000, 'both closes');
  t.deepEqual([...drvA.violations, ...drvB.violations], []);
  t.is(process.listenerCount('exit'), base, 'the listener goes with the last transport');
  t.false(a.wakeForExitSync(), 'closed: never writes to a released fd');
  t.is(drvA.writes.length, 2, 'the UNWATCH of close() and nothing after');
});

/** Runs `script` in a child node; resolves with how it ended, killing it after `limitMs`. */
function runChild(script: string, limitMs: number) {
  return new Promise<{ code: number | null; timedOut: boolean; stdout: string; stderr: string; lineAt: number; exitAt: number }>((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let lineAt = 0;
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      lineAt ||= Date.now();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, stdout, stderr, lineAt, exitAt: Date.now() });
    });
  });
}

/** A child that opens the FIFO pair as its "device", reads once, then calls `then`. */
function exitChild(toDriver: string, toClient: string, then: string): string {
  const wire = join(__dirname, '..', '..', 'xenstore-wire');
  return `
    const fs = require('fs');
    const { XenbusTransport, XenstoreClient } = require(${JSON.stringify(wire)});
    const r = fs.openSync(${JSON.stringify(toClient)}, fs.constants.O_RDWR);
    const w = fs.openSync(${JSON.stringify(toDriver)}, fs.constants.O_RDWR);
    const xs = new XenstoreClient(new XenbusTransport(${JSON.stringify(toDriver)}, r, w));
    xs.readString('/exit/a').then((v) => { ${then} });
  `;
}

test.serial('a process calling process.exit() with a device client open exits promptly', async (t) => {
  const drv = fifoDriver();
  try {
    const r = await runChild(exitChild(drv.toDriver, drv.toClient, "process.stdout.write('got ' + v + '\\n'); process.exit(0);"), 15000);
    t.false(r.timedOut, `the child hung in exit (stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)})`);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, 'got /exit/a\n');
    t.true(r.exitAt - r.lineAt < 3000, `exit took ${r.exitAt - r.lineAt} ms after the last request`);
    t.deepEqual(
      drv.seen.map((f) => [f.type, f.payload.toString('latin1')]),
      [
        [T.READ, '/exit/a\0'],
        [T.UNWATCH, `/\0${CLOSE_WAKEUP_TOKEN}\0`],
      ],
      'the exit hook woke the read with the UNWATCH',
    );
  } finally {
    await drv.stop();
  }
});

test.serial('process.exit() with a request in flight: no wake-up written; the reply ends the read', async (t) => {
  const drv = fifoDriver((path) => (path === '/exit/slow' ? 600 : 0));
  try {
    const then = "xs.read('/exit/slow').catch(() => undefined); setTimeout(() => { process.stdout.write('exiting\\n'); process.exit(0); }, 100);";
    const r = await runChild(exitChild(drv.toDriver, drv.toClient, then), 15000);
    t.false(r.timedOut, `the child hung in exit (stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)})`);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(
      drv.seen.map((f) => [f.type, f.payload.toString('latin1')]),
      [
        [T.READ, '/exit/a\0'],
        [T.READ, '/exit/slow\0'],
      ],
      'nothing written over the request in flight',
    );
    const slowId = drv.seen[1].reqId;
    await waitFor(() => drv.repliedAt.has(slowId), 3000, 'the slow reply');
    t.true(r.exitAt >= drv.repliedAt.get(slowId)!, 'the child exited once the slow reply woke its read');
  } finally {
    await drv.stop();
  }
});
