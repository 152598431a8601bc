/**
 * Helpers for the xs-trace tests. Frames and payloads are built here by hand (NUL-joined
 * latin1 strings and a header written field by field), not by the code under test.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Frame } from '../../xenstore-wire/codec';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const XS_TRACE = path.join(ROOT, 'dist', 'lib', 'cli', 'xs-trace.js');
export const FIXTURES = path.join(ROOT, 'fixtures', 'trace');

/** Type numbers from xs_wire.h, written out so the tests do not depend on the enum. */
export const T = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
  GET_FEATURE: 23,
  SET_FEATURE: 24,
  GET_QUOTA: 25,
  SET_QUOTA: 26,
} as const;

/** Each part followed by a NUL, bytes taken as latin1. */
export function nul(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => p + '\0').join(''), 'latin1');
}

export function f(type: number, reqId: number, txId: number, payload: Buffer | string): Frame {
  return { type, reqId, txId, payload: typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload };
}

/** Header (little endian: x86_64 and arm64) and payload. */
export function wire(fr: Frame): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(fr.type, 0);
  h.writeUInt32LE(fr.reqId, 4);
  h.writeUInt32LE(fr.txId, 8);
  h.writeUInt32LE(fr.payload.length, 12);
  return Buffer.concat([h, fr.payload]);
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the xs-trace CLI to completion. */
export function runXsTrace(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [XS_TRACE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    c.stdout.on('data', (b: Buffer) => out.push(b));
    c.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

export interface ListeningTrace {
  socketPath: string;
  /** Stops it (SIGTERM) and returns what it printed. */
  stop(): Promise<Run>;
}

/** Starts `xs-trace --listen` and resolves once its socket exists. */
export async function listenXsTrace(socketPath: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ListeningTrace> {
  const c = spawn(process.execPath, [XS_TRACE, '--listen', socketPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  c.stdout.on('data', (b: Buffer) => out.push(b));
  c.stderr.on('data', (b: Buffer) => err.push(b));
  const exited = new Promise<Run>((resolve) =>
    c.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    ),
  );
  const deadline = Date.now() + 20_000;
  // The socket file appears at bind(), a moment before listen(): wait for the line the
  // command prints once it listens (a probe connection would be numbered like a client).
  const listening = () => Buffer.concat(err).toString('utf8').includes('xs-trace: listening on');
  while (!fs.existsSync(socketPath) || !listening()) {
    if (c.exitCode !== null) {
      const r = await exited;
      throw new Error(`xs-trace --listen exited with ${r.code}: ${r.stderr}`);
    }
    if (Date.now() > deadline) {
      c.kill('SIGKILL');
      throw new Error(`xs-trace --listen did not create ${socketPath}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    socketPath,
    async stop() {
      c.kill('SIGTERM');
      return exited;
    },
  };
}

/** Both byte streams of one connection, as a dumb forwarder saw them. */
export interface RecordedConnection {
  fromClient: Buffer[];
  fromDaemon: Buffer[];
}

/**
 * A transparent forwarder that records every byte both ways: placed on each side of the
 * proxy, it shows what the client and the daemon really received.
 */
export class Recorder {
  readonly connections: RecordedConnection[] = [];
  private readonly server: net.Server;
  private readonly open = new Set<net.Socket>();

  private constructor(readonly socketPath: string, readonly upstream: string) {
    this.server = net.createServer({ allowHalfOpen: true }, (c) => {
      const rec: RecordedConnection = { fromClient: [], fromDaemon: [] };
      this.connections.push(rec);
      const u = net.createConnection({ path: upstream, allowHalfOpen: true });
      this.open.add(c);
      this.open.add(u);
      c.on('data', (b: Buffer) => {
        rec.fromClient.push(Buffer.from(b));
        u.write(b);
      });
      u.on('data', (b: Buffer) => {
        rec.fromDaemon.push(Buffer.from(b));
        c.write(b);
      });
      c.on('end', () => u.end());
      u.on('end', () => c.end());
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
      c.on('close', () => {
        this.open.delete(c);
        u.end();
      });
      u.on('close', () => {
        this.open.delete(u);
        c.end();
      });
    });
  }

  static async start(socketPath: string, upstream: string): Promise<Recorder> {
    const r = new Recorder(socketPath, upstream);
    await new Promise<void>((resolve, reject) => {
      r.server.once('error', reject);
      r.server.listen(socketPath, () => resolve());
    });
    return r;
  }

  /** Resolves when every recorded connection is closed on both sides. */
  async idle(timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.open.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    if (this.open.size > 0) throw new Error(`recorder ${this.socketPath}: ${this.open.size} sockets still open`);
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Connection `i`'s streams, concatenated. */
  bytes(i: number): { fromClient: Buffer; fromDaemon: Buffer } {
    const c = this.connections[i];
    return { fromClient: Buffer.concat(c.fromClient), fromDaemon: Buffer.concat(c.fromDaemon) };
  }

  /** Forget what was recorded so far. */
  reset(): void {
    this.connections.length = 0;
  }
}

/** A client that sends hand-built frames and waits for `n` messages back. */
export class ScriptClient {
  private buf = Buffer.alloc(0);
  private frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 16) {
        const len = this.buf.readUInt32LE(12);
        if (this.buf.length < 16 + len) break;
        this.frames.push({
          type: this.buf.readUInt32LE(0),
          reqId: this.buf.readUInt32LE(4),
          txId: this.buf.readUInt32LE(8),
          payload: Buffer.from(this.buf.subarray(16, 16 + len)),
        });
        this.buf = this.buf.subarray(16 + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('close', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static connect(p: string): Promise<ScriptClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p);
      s.once('connect', () => resolve(new ScriptClient(s)));
      s.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.sock.destroyed || this.sock.readableEnded;
  }

  send(...frames: Frame[]): void {
    this.sock.write(Buffer.concat(frames.map(wire)));
  }

  sendRaw(b: Buffer): void {
    this.sock.write(b);
  }

  /** Waits until `n` messages arrived (or the connection closed); returns and removes them. */
  async receive(n: number, timeoutMs = 10_000): Promise<Frame[]> {
    const end = Date.now() + timeoutMs;
    while (this.frames.length < n && !this.closed) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} messages, got ${this.frames.length}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.frames.splice(0, n);
  }

  /** Sends one request and waits for its reply. */
  async call(fr: Frame): Promise<Frame> {
    this.send(fr);
    const [r] = await this.receive(1);
    return r;
  }

  end(): Promise<void> {
    return new Promise((r) => {
      this.sock.once('close', () => r());
      this.sock.end();
    });
  }
}

/** Replaces times, latencies and durations in human output by fixed markers. */
export function normaliseHuman(text: string): string {
  return text
    .split('\n')
    .map((l) =>
      l
        .replace(/^\d\d:\d\d:\d\d\.\d{6}/, 'HH:MM:SS.uuuuuu')
        .replace(/\((\d+us|\d+\.\d{3}ms|\d+\.\d{3}s)\)$/, '(LATENCY)')
        .replace(/, (\d+us|\d+\.\d{3}ms|\d+\.\d{3}s)([\],])/g, ', DURATION$2'),
    )
    .join('\n');
}

/** Parses JSON lines and replaces time-dependent fields by fixed markers. */
export function normaliseJson(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const o = JSON.parse(l) as Record<string, unknown>;
      o.time = 'TIME';
      o.ts = 0;
      if (o.latencyUs !== undefined) o.latencyUs = 'LATENCY';
      const tx = o.tx as Record<string, unknown> | undefined;
      if (tx?.durationUs !== undefined) tx.durationUs = 'DURATION';
      return o;
    });
}

/** Records of a --json trace. */
export function parseJsonLines(text: string): Array<Record<string, any>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);
}
