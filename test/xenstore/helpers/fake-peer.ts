/**
 * Fake xenstore peers for client tests: a real Unix socket server whose replies the test
 * scripts byte by byte, and an in-process Transport for fast fuzzing. Requests are decoded
 * with the test's own fixture reader (helpers/wire.ts layout), not with the client's codec.
 */
import { createServer, Server, Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transport, TransportSink, ConnectionError } from '../../../xenstore-wire';

export interface SeenFrame {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

/** Pulls whole frames out of a byte stream (test-side reader, little endian). */
export class FixtureReader {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): SeenFrame[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: SeenFrame[] = [];
    while (this.buf.length >= 16) {
      const len = this.buf.readUInt32LE(12);
      if (this.buf.length < 16 + len) break;
      out.push({
        type: this.buf.readUInt32LE(0),
        reqId: this.buf.readUInt32LE(4),
        txId: this.buf.readUInt32LE(8),
        payload: Buffer.from(this.buf.subarray(16, 16 + len)),
      });
      this.buf = this.buf.subarray(16 + len);
    }
    return out;
  }
}

export class FakeSocketPeer {
  readonly dir: string;
  readonly path: string;
  readonly frames: SeenFrame[] = [];
  /** Number of 'data' events the peer saw (how many bursts the requests came in). */
  dataEvents = 0;
  conn: Socket | null = null;
  private server: Server;
  private waiters: { n: number; resolve: () => void }[] = [];
  onFrame: (f: SeenFrame, peer: FakeSocketPeer) => void = () => undefined;
  private connected: Promise<Socket>;

  private constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'xen-sshm-fakepeer-'));
    this.path = join(this.dir, 'socket');
    let gotConn!: (s: Socket) => void;
    this.connected = new Promise((r) => (gotConn = r));
    this.server = createServer((s) => {
      this.conn = s;
      const reader = new FixtureReader();
      s.on('data', (d: Buffer) => {
        this.dataEvents++;
        for (const f of reader.push(d)) {
          this.frames.push(f);
          this.onFrame(f, this);
        }
        for (const w of this.waiters.filter((w) => this.frames.length >= w.n)) w.resolve();
        this.waiters = this.waiters.filter((w) => this.frames.length < w.n);
      });
      s.on('error', () => undefined);
      gotConn(s);
    });
  }

  static async start(): Promise<FakeSocketPeer> {
    const p = new FakeSocketPeer();
    await new Promise<void>((r) => p.server.listen(p.path, () => r()));
    return p;
  }

  /** The accepted connection (waits for the client to connect). */
  socket(): Promise<Socket> {
    return this.connected;
  }

  /** Resolves once `n` request frames have arrived in total. */
  waitFrames(n: number): Promise<void> {
    if (this.frames.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  send(bytes: Buffer): void {
    this.conn?.write(bytes);
  }

  async stop(): Promise<void> {
    this.conn?.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An in-process Transport: the test feeds bytes in and sees every message sent. */
export class FakeTransport implements Transport {
  readonly kind = 'socket' as const;
  readonly path = 'fake:transport';
  readonly maxPayload = 4096;
  readonly eventIdsMeaningful = true;
  sink: TransportSink | null = null;
  sent: Buffer[] = [];
  closed = false;
  start(sink: TransportSink): void {
    this.sink = sink;
  }
  send(message: Buffer): void {
    this.sent.push(message);
  }
  feed(chunk: Buffer): void {
    this.sink?.onData(chunk);
  }
  /** The peer goes away. */
  drop(): void {
    if (this.closed) return;
    this.closed = true;
    this.sink?.onClose(new ConnectionError('ECONNRESET', 'fake peer went away', { path: this.path }));
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sink?.onClose(null);
  }
}
