/**
 * The /dev/xen/xenbus character device transport (Linux drivers/xen/xenbus/xenbus_dev_frontend.c,
 * FACTS.md section 2). How it differs from the socket, and what this file does about it:
 *
 * - The driver assembles one message in a 4096-byte buffer holding header *and* payload, and
 *   drops any bytes after the first whole message of a write. So every message goes out in a
 *   write() of its own, one at a time, never coalesced; payloads are limited to 4080 bytes.
 * - A write the driver refuses (E2BIG, EINVAL, EILSEQ ...) fails that write only: the driver
 *   resets its buffer and the file stays usable, so only that request fails.
 * - WATCH/UNWATCH are answered by the kernel itself; watch events carry meaningless req_id /
 *   tx_id (the client recognises events by type on every transport).
 * - Transactions and watches belong to the open file: closing it aborts and drops them.
 *
 * Reads block in libuv's thread pool (Node has no poll() for a character device). To end a
 * blocked read at close(), the transport writes an UNWATCH of a watch it never set: the kernel
 * answers it at once with a synthesised "OK", which wakes the read, and never involves xenstored.
 */
import * as fs from 'node:fs';
import { MessageType, XENBUS_DEV_PAYLOAD_MAX } from './constants';
import { encodeFrame } from './codec';
import { request } from './payload';
import { ConnectionError } from './errors';
import { Transport, TransportSink } from './transport';

/** The few file-descriptor operations the transport needs; tests substitute a fake driver. */
export interface FdIo {
  read(fd: number, buf: Buffer): Promise<number>;
  write(fd: number, buf: Buffer): Promise<number>;
  close(fd: number): Promise<void>;
}

export const nodeFdIo: FdIo = {
  read: (fd, buf) =>
    new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)))),
  write: (fd, buf) =>
    new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)))),
  close: (fd) => new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve()))),
};

/** Token of the wake-up UNWATCH sent at close(); no watch ever uses it. */
export const CLOSE_WAKEUP_TOKEN = 'xen-sshm-close-wakeup';
/** req_id of the wake-up UNWATCH; its reply is never matched because the client has gone. */
const CLOSE_WAKEUP_REQ_ID = 0xfffffffe;

export interface XenbusTransportOptions {
  io?: FdIo;
  /** How long close() waits for the wake-up reply before closing the fd anyway. Default 2 s. */
  closeWaitMs?: number;
}

export class XenbusTransport implements Transport {
  readonly kind = 'xenbus' as const;
  readonly maxPayload = XENBUS_DEV_PAYLOAD_MAX;
  readonly eventIdsMeaningful = false;
  private readonly io: FdIo;
  private readonly closeWaitMs: number;
  private sink: TransportSink | null = null;
  private writes: { message: Buffer; reqId: number }[] = [];
  private writing = false;
  private reading: Promise<void> | null = null;
  private ended = false;
  private closing: Promise<void> | null = null;
  private readonly readBuf = Buffer.allocUnsafe(64 * 1024);

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
    this.reading = this.readLoop();
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
      this.sink?.onData(Buffer.from(this.readBuf.subarray(0, n)));
    }
  }

  send(message: Buffer, reqId: number): void {
    if (this.ended || this.closing) return;
    this.writes.push({ message, reqId });
    if (!this.writing) void this.pumpWrites();
  }

  /** One write() per message, one at a time, in order. */
  private async pumpWrites(): Promise<void> {
    this.writing = true;
    try {
      while (this.writes.length > 0 && !this.ended) {
        const { message, reqId } = this.writes.shift()!;
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
          this.sink?.onSendError(reqId, err);
        }
      }
    } finally {
      this.writing = false;
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

  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasEnded = this.ended;
      this.ended = true;
      this.writes = [];
      if (!wasEnded && this.reading) {
        // Wake the blocked read (see the file comment), then wait for it, bounded.
        const wake = encodeFrame({
          type: MessageType.UNWATCH,
          reqId: CLOSE_WAKEUP_REQ_ID,
          txId: 0,
          payload: request.unwatch('/', CLOSE_WAKEUP_TOKEN),
        });
        await this.io.write(this.writeFd, wake).catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.reading,
          new Promise<void>((r) => {
            timer = setTimeout(r, this.closeWaitMs);
            timer.unref();
          }),
        ]);
        clearTimeout(timer);
      }
      await this.releaseFds();
      if (!wasEnded) this.sink?.onClose(null);
    })();
    return this.closing;
  }
}
