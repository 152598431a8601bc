/**
 * A raw xenstore wire connection for server tests: sends hand-built requests and records
 * every frame that comes back (replies and watch events) in arrival order. It uses only the
 * codec and framing modules, never the project's client, so the server is judged on bytes.
 */
import { connect as netConnect, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { encodeFrame, Frame } from '../../xenstore-wire/codec';
import { MessageType } from '../../xenstore-wire/constants';
import { FrameDecoder } from '../../xenstore-wire/framing';

/** req_ids at or above this are the sync probes', never recorded. */
const SYNC_REQ_BASE = 0x7f000000;

export class RawConn {
  /** Every frame received since the last take(), sync replies excluded. */
  private log: Frame[] = [];
  private readonly waiters = new Map<number, (f: Frame) => void>();
  private readonly decoder = new FrameDecoder();
  private nextReq = 1;
  private nextSync = SYNC_REQ_BASE;
  closed = false;
  private closeWaiters: (() => void)[] = [];

  private constructor(private readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) {
        const w = f.type !== MessageType.WATCH_EVENT ? this.waiters.get(f.reqId) : undefined;
        if (f.reqId < SYNC_REQ_BASE || f.type === MessageType.WATCH_EVENT) this.log.push(f);
        if (w) {
          this.waiters.delete(f.reqId);
          w(f);
        }
      }
    });
    stream.on('error', () => undefined);
    stream.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters) w();
      this.closeWaiters = [];
    });
  }

  /**
   * Connect; EAGAIN (C xenstored listens with a backlog of 1 and accepts one connection per
   * poll loop) is retried for a while.
   */
  static async open(path: string): Promise<RawConn> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise<RawConn>((resolve, reject) => {
          const s: Socket = netConnect(path);
          s.once('connect', () => resolve(new RawConn(s)));
          s.once('error', reject);
        });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt >= 200) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  static fromStream(stream: Duplex): RawConn {
    return new RawConn(stream);
  }

  /** Send one request; resolves with its reply (matched by req_id). Rejects if the peer closes. */
  request(type: number, payload: Buffer | string, txId = 0, reqId?: number): Promise<Frame> {
    const id = reqId ?? this.nextReq++;
    const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      this.waiters.set(id, resolve);
      this.closeWaiters.push(() => {
        if (this.waiters.delete(id)) reject(new Error('connection closed'));
      });
      this.stream.write(encodeFrame({ type, reqId: id, txId, payload: body }));
    });
  }

  /** Sends raw bytes (split frames, garbage). */
  writeRaw(buf: Buffer): void {
    this.stream.write(buf);
  }

  /** A side-effect-free round trip: once it returns, every earlier event has arrived. */
  async sync(): Promise<void> {
    if (this.closed) return;
    await this.request(MessageType.GET_DOMAIN_PATH, '0\0', 0, this.nextSync++);
  }

  /** Frames received since the last take(). */
  take(): Frame[] {
    const out = this.log;
    this.log = [];
    return out;
  }

  waitClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  close(): void {
    this.stream.destroy();
  }
}

/** A frame as one comparable line: `TYPE req tx "payload"` with non-printables escaped. */
export function showFrame(f: Frame): string {
  const names: Record<number, string> = {
    0: 'CONTROL', 1: 'DIRECTORY', 2: 'READ', 3: 'GET_PERMS', 4: 'WATCH', 5: 'UNWATCH', 6: 'TRANSACTION_START',
    7: 'TRANSACTION_END', 8: 'INTRODUCE', 9: 'RELEASE', 10: 'GET_DOMAIN_PATH', 11: 'WRITE', 12: 'MKDIR', 13: 'RM',
    14: 'SET_PERMS', 15: 'WATCH_EVENT', 16: 'ERROR', 17: 'IS_DOMAIN_INTRODUCED', 18: 'RESUME', 19: 'SET_TARGET',
    21: 'RESET_WATCHES', 22: 'DIRECTORY_PART',
  };
  const p = f.payload.toString('latin1').replace(/[^\x20-\x7e]/g, (c) => (c === '\0' ? '\\0' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  return `${names[f.type] ?? `TYPE${f.type}`} ${f.reqId} ${f.txId} "${p}"`;
}
