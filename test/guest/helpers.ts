/**
 * Shared by the guest-side tests: building guest/xen-sshm-guest.c with the project's script,
 * running the x86_64 build on this machine, and a small xenstore peer that answers the
 * program's requests with whatever bytes a test wants (hostile replies included).
 */
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const GUEST_DIR = path.join(REPO, 'guest');
export const BUILD_SCRIPT = path.join(REPO, 'scripts', 'build-guest.sh');

export interface BuildResult {
  status: number | null;
  stdout: string;
  stderr: string;
  dir: string;
}

/** Runs scripts/build-guest.sh into a fresh folder. */
export function buildGuest(arches: string[], env: NodeJS.ProcessEnv = process.env): BuildResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-build-'));
  const r = spawnSync('bash', [BUILD_SCRIPT, ...arches, '--out', dir], { encoding: 'utf8', env });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, dir };
}

let hostBinary: string | undefined;

/** The x86_64 build (this machine's), built once per test process. */
export function hostProgram(): string {
  if (!hostBinary) {
    const r = buildGuest(['x86_64']);
    if (r.status !== 0) throw new Error(`scripts/build-guest.sh x86_64 failed (exit ${r.status}):\n${r.stderr}`);
    hostBinary = path.join(r.dir, 'x86_64', 'xen-sshm-guest');
    process.on('exit', () => fs.rmSync(r.dir, { recursive: true, force: true }));
  }
  return hostBinary;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the program without blocking the event loop (the in-process xenstored must keep
 * answering while the program waits for it).
 */
export function runProgram(args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(hostProgram(), args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout,
        stderr,
      });
    });
  });
}

/** ELF facts of a built program, read from its headers. */
export function elfFacts(file: string): { machine: number; type: number; interp: boolean; dynamic: boolean } {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
  const type = b.readUInt16LE(16);
  const machine = b.readUInt16LE(18);
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  let interp = false;
  let dynamic = false;
  for (let i = 0; i < phnum; i++) {
    const t = b.readUInt32LE(phoff + i * phentsize);
    if (t === 3) interp = true; // PT_INTERP
    if (t === 2) dynamic = true; // PT_DYNAMIC
  }
  return { machine, type, interp, dynamic };
}

// ---- a scripted xenstore peer -------------------------------------------------------------

export interface SeenRequest {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

/** What the peer sends back for one request: raw bytes (any), bytes then hang up, or nothing. */
export type Answer = Buffer | { bytes: Buffer; hangUp: true } | null;

export function frame(type: number, reqId: number, payload: Buffer | string, txId = 0, len?: number): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const h = Buffer.alloc(16);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(reqId, 4);
  h.writeUInt32LE(txId, 8);
  h.writeUInt32LE(len ?? body.length, 12);
  return Buffer.concat([h, body]);
}

/**
 * A Unix-socket peer speaking the wire protocol: every request is passed to `answer`, which
 * returns the bytes to send (written in chunks of `chunk` bytes, to split the reply across the
 * program's reads). It records a violation when a request arrives before the previous one was
 * answered (the program must never pipeline: /dev/xen/xenbus loses payloads then).
 */
export class ScriptedPeer {
  readonly requests: SeenRequest[] = [];
  readonly violations: string[] = [];
  readonly socketPath: string;
  private server: Server | null = null;
  private readonly dir: string;

  constructor(private readonly answer: (req: SeenRequest, index: number) => Answer, private readonly chunk = 5, private readonly delayMs = 2) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-peer-'));
    this.socketPath = path.join(this.dir, 'socket');
  }

  async listen(): Promise<void> {
    this.server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve) => this.server!.listen(this.socketPath, resolve));
  }

  private serve(s: Socket): void {
    let buf = Buffer.alloc(0);
    let pending = false;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 16) {
        const len = buf.readUInt32LE(12);
        if (buf.length < 16 + len) break;
        const req: SeenRequest = { type: buf.readUInt32LE(0), reqId: buf.readUInt32LE(4), txId: buf.readUInt32LE(8), payload: buf.subarray(16, 16 + len) };
        buf = buf.subarray(16 + len);
        if (pending) this.violations.push(`request ${req.reqId} arrived before the previous reply`);
        pending = true;
        const index = this.requests.push(req) - 1;
        const out = this.answer(req, index);
        if (out === null) continue;
        const bytes = Buffer.isBuffer(out) ? out : out.bytes;
        setTimeout(() => {
          pending = false;
          for (let i = 0; i < bytes.length; i += this.chunk) s.write(bytes.subarray(i, i + this.chunk));
          if (!Buffer.isBuffer(out)) s.end();
        }, this.delayMs);
      }
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The request's path (its payload up to the NUL). */
export function pathOf(req: SeenRequest): string {
  const nul = req.payload.indexOf(0);
  return req.payload.subarray(0, nul < 0 ? req.payload.length : nul).toString('latin1');
}

/**
 * A well-behaved peer serving a tree of values (READ and DIRECTORY; ENOENT otherwise), as the
 * daemon answers a guest whose home is `home`: relative paths resolve there.
 */
export function treeAnswer(tree: Map<string, Buffer | string>, home: string): (req: SeenRequest) => Answer {
  return (req) => {
    let p = pathOf(req);
    if (!p.startsWith('/')) p = `${home}/${p}`;
    if (req.type === 2) {
      const v = tree.get(p);
      return v === undefined ? frame(16, req.reqId, 'ENOENT\0') : frame(2, req.reqId, typeof v === 'string' ? Buffer.from(v, 'latin1') : v);
    }
    if (req.type === 1) {
      const children = new Set<string>();
      for (const k of tree.keys()) if (k.startsWith(p + '/')) children.add(k.slice(p.length + 1).split('/')[0]);
      const known = tree.has(p) || children.size > 0;
      return known ? frame(1, req.reqId, [...children].map((c) => c + '\0').join('')) : frame(16, req.reqId, 'ENOENT\0');
    }
    return frame(16, req.reqId, 'EINVAL\0');
  };
}
