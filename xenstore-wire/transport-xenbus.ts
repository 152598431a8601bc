/**
 * The /dev/xen/xenbus character device transport (Linux drivers/xen/xenbus/xenbus_dev_frontend.c,
 * FACTS.md section 2). How it differs from the socket, and what this file does about it:
 *
 * - The driver assembles one message in a 4096-byte buffer holding header *and* payload, and
 *   drops any bytes after the first whole message of a write. So every message goes out in a
 *   write() of its own, never coalesced; payloads are limited to 4080 bytes.
 * - ONE REQUEST IN FLIGHT AT A TIME. xenbus_write_transaction() hands the request to
 *   xenbus_dev_request_and_reply() (xenbus_xs.c), which copies the header but points the payload
 *   (`vec->iov_base = msg + 1`) into that same per-file buffer, queues it for the xenbus kernel
 *   thread (xs_send) and returns: write() completes before the payload has been copied to the
 *   ring, and the next write() overwrites it. Pipelined requests then go out with a later
 *   request's payload while their replies still match (seen on Xen 4.17 / Linux 6.1: writes
 *   landing on the wrong node, every promise resolving OK). So, as libxenstore does (it holds
 *   its request mutex from request to reply), the next request is written only once the reply
 *   to the previous one has been read; the rest wait in a queue. WATCH and UNWATCH are the
 *   exception: the kernel handles them inside write() (xenbus_write_watch) and queues its
 *   synthesised "OK" before write() returns, so they free the slot as soon as write() returns.
 *   So does a request with an empty payload: xs_send() has copied its header, and nothing of it
 *   is left in the buffer. Watch events are not replies and never free it.
 * - A write the driver refuses (E2BIG, EINVAL, EILSEQ ...) fails that write only: the driver
 *   resets its buffer and the file stays usable, so only that request fails (nothing was queued
 *   for the xenbus thread, so the slot is free again).
 * - WATCH/UNWATCH are answered by the kernel itself; watch events carry meaningless req_id /
 *   tx_id (the client recognises events by type on every transport). Replies to everything else
 *   carry the request's req_id (the kernel restores it), which is how the slot is released.
 * - Transactions and watches belong to the open file: closing it aborts and drops them.
 *
 * Reads block in libuv's thread pool (Node has no poll() for a character device). A blocked
 * read ends only when the kernel queues something for the file, and close() of the fd does not
 * end it. Two places need it to end: close(), and process exit (Node joins the pool's threads
 * at exit, so a process calling process.exit() with a blocked read would hang). Both wake it by
 * writing an UNWATCH of a watch that was never set: the kernel answers it at once with an "OK",
 * without involving xenstored. That write is itself a write into the shared buffer, so it obeys
 * the same rule: it is written only when no request is in flight. When one is, its reply will
 * end the read by itself, so nothing is written (see close() and wakeForExitSync()).
 */
import * as fs from 'node:fs';
import { MessageType, XENBUS_DEV_PAYLOAD_MAX, XS_HEADER_SIZE } from './constants';
import { encodeFrame } from './codec';
import { request } from './payload';
import { ConnectionError } from './errors';
import { Transport, TransportSink } from './transport';

/** The few file-descriptor operations the transport needs; tests substitute a fake driver. */
export interface FdIo {
  read(fd: number, buf: Buffer): Promise<number>;
  write(fd: number, buf: Buffer): Promise<number>;
  /**
   * Synchronous write, used only from the process 'exit' hook (no event loop runs there).
   * Without it the transport cannot wake its read at exit.
   */
  writeSync?(fd: number, buf: Buffer): number;
  close(fd: number): Promise<void>;
}

export const nodeFdIo: FdIo = {
  read: (fd, buf) =>
    new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)))),
  write: (fd, buf) =>
    new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)))),
  writeSync: (fd, buf) => fs.writeSync(fd, buf, 0, buf.length, null),
  close: (fd) => new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve()))),
};

/** Token of the wake-up UNWATCH sent at close() and at exit; no watch ever uses it. */
export const CLOSE_WAKEUP_TOKEN = 'xen-sshm-close-wakeup';
/** req_id of the wake-up UNWATCH; its reply is read while closing (or exiting) and dropped. */
const CLOSE_WAKEUP_REQ_ID = 0xfffffffe;

function wakeupFrame(): Buffer {
  return encodeFrame({ type: MessageType.UNWATCH, reqId: CLOSE_WAKEUP_REQ_ID, txId: 0, payload: request.unwatch('/', CLOSE_WAKEUP_TOKEN) });
}

/** Requests the kernel completes inside write(): they never hold the slot after it returns. */
function answeredInWrite(type: number): boolean {
  return type === MessageType.WATCH || type === MessageType.UNWATCH;
}

// ----------------------------------------------------------------------------- process exit

/**
 * Transports with a read loop running. One shared 'exit' listener serves them all: it is added
 * with the first and removed with the last, so open/close cycles leave no listener behind.
 */
const wakeAtExit = new Set<XenbusTransport>();

function onProcessExit(): void {
  for (const t of [...wakeAtExit]) t.wakeForExitSync();
}

function watchExit(t: XenbusTransport): void {
  if (wakeAtExit.size === 0) process.on('exit', onProcessExit);
  wakeAtExit.add(t);
}

function unwatchExit(t: XenbusTransport): void {
  if (wakeAtExit.delete(t) && wakeAtExit.size === 0) process.removeListener('exit', onProcessExit);
}

// ----------------------------------------------------------------------------- transport

export interface XenbusTransportOptions {
  io?: FdIo;
  /**
   * How long close() waits, in all, for a request in flight to be answered and for the read to
   * end, before closing the fd anyway. Default 2 s.
   */
  closeWaitMs?: number;
}

/** The request written to the device whose reply has not been read yet. */
interface InFlight {
  reqId: number;
  type: number;
}

export class XenbusTransport implements Transport {
  readonly kind = 'xenbus' as const;
  readonly maxPayload = XENBUS_DEV_PAYLOAD_MAX;
  readonly eventIdsMeaningful = false;
  private readonly io: FdIo;
  private readonly closeWaitMs: number;
  private sink: TransportSink | null = null;
  /** Requests waiting for the slot, in order. */
  private writes: { message: Buffer; reqId: number }[] = [];
  private writing = false;
  /** Set from just before write() until the reply is read (or write() failed). */
  private inFlight: InFlight | null = null;
  /** Woken whenever the slot frees or the read loop ends (close() waits on them). */
  private changeWaiters: (() => void)[] = [];
  private reading: Promise<void> | null = null;
  private readActive = false;
  private wakeSent = false;
  private ended = false;
  private closing: Promise<void> | null = null;
  private readonly readBuf = Buffer.allocUnsafe(64 * 1024);
  // Reply tracking: where the incoming byte stream is, frame by frame (header, then payload).
  private readonly rxHeader = Buffer.alloc(XS_HEADER_SIZE);
  private rxHeaderHave = 0;
  private rxBodyLeft = 0;

  /**
   * `readFd` and `writeFd` are the same descriptor for the device; tests may pass two (e.g.
   * the two ends of a pair of FIFOs) to stand in for the driver.
   */
  constructor(
    readonly path: string,
    private readonly readFd: number,
    private readonly writeFd: number = readFd,
    opts: XenbusTransportOptions = {},
  ) {
    this.io = opts.io ?? nodeFdIo;
    this.closeWaitMs = opts.closeWaitMs ?? 2000;
  }

  /** Opens the device read-write; rejects with ConnectionError (ENOENT, EACCES ...). */
  static open(path: string, opts: XenbusTransportOptions = {}): Promise<XenbusTransport> {
    return new Promise((resolve, reject) => {
      // A raw fd (not a FileHandle): the transport closes it itself, exactly once.
      fs.open(path, fs.constants.O_RDWR, (err, fd) => {
        if (err) reject(new ConnectionError(err.code ?? 'EIO', `cannot open ${path}: ${err.message}`, { path, cause: err }));
        else resolve(new XenbusTransport(path, fd, fd, opts));
      });
    });
  }

  start(sink: TransportSink): void {
    this.sink = sink;
    this.readActive = true;
    watchExit(this);
    this.reading = this.readLoop().finally(() => {
      this.readActive = false;
      unwatchExit(this); // no blocked read left to wake
      this.notifyChange();
    });
  }

  private async readLoop(): Promise<void> {
    while (!this.ended && this.closing === null) {
      let n: number;
      try {
        n = await this.io.read(this.readFd, this.readBuf);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EAGAIN' || err.code === 'EINTR') continue;
        this.fail(err.code ?? 'EIO', `reading ${this.path} failed: ${err.message}`, err);
        return;
      }
      if (this.closing !== null) return; // the wake-up reply, or a late reply nobody waits for
      if (n === 0) {
        this.fail('ECONNRESET', `${this.path} reported end of file`);
        return;
      }
      // Copy: the read buffer is reused, and frames may keep views into the chunk.
      const chunk = Buffer.from(this.readBuf.subarray(0, n));
      this.sink?.onData(chunk);
      this.trackReplies(chunk);
    }
  }

  /**
   * Follows frame boundaries in the incoming bytes (split anywhere) to see the reply to the
   * request in flight go by. Only the header matters here; the client decodes the frames.
   */
  private trackReplies(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.rxHeaderHave < XS_HEADER_SIZE) {
        const take = Math.min(XS_HEADER_SIZE - this.rxHeaderHave, chunk.length - off);
        chunk.copy(this.rxHeader, this.rxHeaderHave, off, off + take);
        this.rxHeaderHave += take;
        off += take;
        if (this.rxHeaderHave < XS_HEADER_SIZE) return;
        this.rxBodyLeft = this.rxHeader.readUInt32LE(12);
      } else {
        const take = Math.min(this.rxBodyLeft, chunk.length - off);
        this.rxBodyLeft -= take;
        off += take;
      }
      if (this.rxBodyLeft === 0) this.frameRead();
    }
  }

  private frameRead(): void {
    const type = this.rxHeader.readUInt32LE(0);
    const reqId = this.rxHeader.readUInt32LE(4);
    this.rxHeaderHave = 0;
    if (type === MessageType.UNWATCH && reqId === CLOSE_WAKEUP_REQ_ID) this.wakeSent = false; // answered: the read is awake
    // Watch events are not replies (and their req_id is garbage on the device).
    if (type !== MessageType.WATCH_EVENT && this.inFlight !== null && this.inFlight.reqId === reqId) this.releaseSlot(reqId);
  }

  send(message: Buffer, reqId: number): void {
    if (this.ended || this.closing) return;
    this.writes.push({ message, reqId });
    void this.pumpWrites();
  }

  /** Frees the slot held by `reqId` and writes the next queued request, if any. */
  private releaseSlot(reqId: number): void {
    if (this.inFlight === null || this.inFlight.reqId !== reqId) return;
    this.inFlight = null;
    this.notifyChange();
    void this.pumpWrites();
  }

  /** One write() per message, in order, and only into a free slot (see the file comment). */
  private async pumpWrites(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.writes.length > 0 && this.inFlight === null && !this.ended) {
        const { message, reqId } = this.writes.shift()!;
        const type = message.readUInt32LE(0);
        this.inFlight = { reqId, type };
        let sendError: NodeJS.ErrnoException | null = null;
        try {
          const n = await this.io.write(this.writeFd, message);
          if (n !== message.length) {
            // The driver takes a whole message or fails; a short write leaves it holding a
            // fragment that would corrupt the next message, so the file is no longer usable.
            this.fail('EIO', `short write to ${this.path}: ${n} of ${message.length} bytes`);
            return;
          }
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          if (err.code === 'EBADF' || err.code === 'EPIPE') {
            this.fail(err.code, `writing ${this.path} failed: ${err.message}`, err);
            return;
          }
          sendError = err;
        }
        // A refused write queued nothing; WATCH/UNWATCH are finished when write() returns; a
        // request with an empty payload leaves nothing in the driver's buffer to overwrite.
        if (sendError || answeredInWrite(type) || message.length === XS_HEADER_SIZE) this.releaseSlot(reqId);
        if (sendError) this.sink?.onSendError(reqId, sendError);
      }
    } finally {
      this.writing = false;
    }
  }

  private notifyChange(): void {
    for (const w of this.changeWaiters.splice(0)) w();
  }

  /** Resolves at the next slot release or read-loop end, or at `deadline` (ms since epoch). */
  private nextChange(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      timer.unref();
      this.changeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * @internal Called from the process 'exit' hook (synchronously: no event loop runs there).
   * Wakes the blocked read with the wake-up UNWATCH so Node's exit does not wait for it forever;
   * nothing is written while a request is in flight (its reply ends the read instead, and the
   * write would overwrite its payload if the kernel has not sent it yet). True if written.
   */
  wakeForExitSync(): boolean {
    if (!this.readActive || this.fdsReleased !== null || this.wakeSent || this.inFlight !== null || !this.io.writeSync) return false;
    this.wakeSent = true;
    try {
      this.io.writeSync(this.writeFd, wakeupFrame());
      return true;
    } catch {
      return false; // the fd is unusable: nothing to wake through it
    }
  }

  private fail(code: string, message: string, cause?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.writes = [];
    const err = new ConnectionError(code, message, { path: this.path, cause });
    void this.releaseFds();
    this.sink?.onClose(err);
  }

  private fdsReleased: Promise<void> | null = null;
  private releaseFds(): Promise<void> {
    // Never write to these fd numbers again (the exit hook included): they may be reused.
    unwatchExit(this);
    this.fdsReleased ??= (async () => {
      const closeOne = async (fd: number) => {
        try {
          await this.io.close(fd);
        } catch {
          // already closed: nothing left to release
        }
      };
      await closeOne(this.readFd);
      if (this.writeFd !== this.readFd) await closeOne(this.writeFd);
    })();
    return this.fdsReleased;
  }

  /**
   * Ends the read loop, then closes the fd. Choice made for a request still in flight (the
   * client's destroy(), or a close() racing a request): the wake-up UNWATCH is NOT written, since
   * the kernel may not have sent that request yet and the write would replace its payload (an
   * unrelated request, e.g. a WRITE, could go out with "/" as its path). Its reply ends the read
   * instead; close() waits for it, in all at most closeWaitMs. The wake-up is written only once
   * the slot is free. If the bound passes first, the fd is closed without waking: the read stays
   * parked in the thread pool until the reply arrives, which harms nothing but that thread.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasEnded = this.ended;
      this.ended = true;
      this.writes = [];
      if (!wasEnded && this.readActive) {
        const deadline = Date.now() + this.closeWaitMs;
        while (this.inFlight !== null && this.readActive && Date.now() < deadline) await this.nextChange(deadline);
        if (this.readActive && this.inFlight === null && !this.wakeSent) {
          this.wakeSent = true;
          await this.io.write(this.writeFd, wakeupFrame()).catch(() => undefined);
        }
        while (this.readActive && Date.now() < deadline) await this.nextChange(deadline);
      }
      await this.releaseFds();
      if (!wasEnded) this.sink?.onClose(null);
    })();
    return this.closing;
  }
}
