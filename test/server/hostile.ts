/**
 * Hostile clients for a xenstore daemon, the same against C xenstored (test/harness) and the
 * in-memory server (`xen-sshm xenstored` in its own process), so that their memory can be
 * compared in one run (issue 13):
 *
 * - `same-path`: a dom0 connection watches /h and never reads its socket; a writer writes one
 *   node over and over (every event identical);
 * - `distinct-paths`: the same watcher; the writer writes a new node each time (every event
 *   different), spread over 256 directories;
 * - `guest-distinct`: the watcher is guest domain 1 (over its ring for C xenstored, a domain
 *   socket for the in-memory server), watching /g (dom0's, readable by 1);
 * - `pipelined-reads`: a dom0 connection sends READs of a 4000-byte value and never reads
 *   the replies.
 *
 * Each run starts a fresh daemon. A probe client reads a node every 20 ms throughout and
 * records its latency: the daemon must keep serving others. `hostile: false` runs the same
 * workload without the hostile client, so the hostile client's own cost is the difference.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame } from '../../xenstore-wire/codec';
import { MessageType } from '../../xenstore-wire/constants';
import { projectRoot, startDaemon } from '../harness/daemons';
import { introduceGuests } from './guest-setup';
import { RawConn } from './wire';

export type HostileScenario = 'same-path' | 'distinct-paths' | 'guest-distinct' | 'pipelined-reads';
export const HOSTILE_SCENARIOS: HostileScenario[] = ['same-path', 'distinct-paths', 'guest-distinct', 'pipelined-reads'];
export type DaemonUnderTest = 'cxenstored' | 'in-memory';

interface Target {
  socketPath: string;
  pid: number;
  guestSocket(domid: number): Promise<string>;
  stop(): Promise<void>;
}

const GUEST = 1;

/** `xen-sshm xenstored` in a child process (its RSS is the daemon's alone). */
export async function startInMemoryProcess(args: string[] = []): Promise<Target & { rundir: string }> {
  const rundir = mkdtempSync(join(tmpdir(), 'xen-sshm-hostile-'));
  const cli = join(projectRoot(), 'dist', 'lib', 'cli', 'xen-sshm.js');
  const child = spawn(process.execPath, [cli, 'xenstored', '--rundir', rundir, '--json', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const socketPath = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]) as { xenstored: { socket: string } }).xenstored.socket);
    });
    child.once('exit', (code) => reject(new Error(`xen-sshm xenstored exited with ${code} before listening`)));
  });
  return {
    socketPath,
    rundir,
    pid: child.pid!,
    guestSocket: async (domid) => {
      const path = join(rundir, `domain-${domid}.socket`);
      for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
      return path;
    },
    stop: async () => {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await done;
      }
      rmSync(rundir, { recursive: true, force: true });
    },
  };
}

async function startTarget(kind: DaemonUnderTest): Promise<Target> {
  if (kind === 'in-memory') return startInMemoryProcess(['--domains', String(GUEST)]);
  const d = await startDaemon('cxenstored', { fakeDomains: [GUEST] });
  return { socketPath: d.socketPath, pid: d.pid, guestSocket: (id) => d.guestSocket(id), stop: () => d.stop() };
}

/** VmRSS of a process in KiB. */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** A connection that sends what it is told and never reads its socket. */
async function openNonReader(path: string): Promise<Socket> {
  const s = netConnect(path);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  s.pause();
  s.on('error', () => undefined);
  return s;
}

const frame = (type: number, reqId: number, payload: string) => encodeFrame({ type, reqId, txId: 0, payload: Buffer.from(payload, 'latin1') });

export interface HostileResult {
  daemon: DaemonUnderTest;
  scenario: HostileScenario;
  hostile: boolean;
  operations: number;
  rssStartKiB: number;
  rssEndKiB: number;
  rssPeakKiB: number;
  ms: number;
  /** The probe's READ latency while the workload ran (ms). */
  probe: { reads: number; meanMs: number; p99Ms: number; maxMs: number };
  /** Whether the daemon closed the hostile connection. */
  hostileDropped: boolean;
}

function stats(xs: number[]): { reads: number; meanMs: number; p99Ms: number; maxMs: number } {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    reads: s.length,
    meanMs: r(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
    p99Ms: r(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0),
    maxMs: r(s[s.length - 1] ?? 0),
  };
}

/** One run: fresh daemon, optional hostile client, `operations` writes (or pipelined reads). */
export async function runHostile(daemon: DaemonUnderTest, scenario: HostileScenario, operations: number, hostile = true): Promise<HostileResult> {
  const t = await startTarget(daemon);
  const sockets: Socket[] = [];
  const conns: RawConn[] = [];
  try {
    const dom0 = await RawConn.open(t.socketPath);
    conns.push(dom0);
    const must = async (type: number, payload: string) => {
      const r = await dom0.request(type, payload);
      if (r.type === MessageType.ERROR) throw new Error(`${MessageType[type]} ${JSON.stringify(payload)}: ${r.payload.toString()}`);
    };
    await must(MessageType.WRITE, '/probe\0p');
    await must(MessageType.WRITE, `/big\0${'x'.repeat(4000)}`);
    if (scenario === 'guest-distinct') {
      await introduceGuests(t.socketPath, [GUEST]);
      await must(MessageType.MKDIR, '/g\0');
      await must(MessageType.SET_PERMS, `/g\0n0\0r${GUEST}\0`);
    }
    let hostileSock: Socket | null = null;
    let dropped = false;
    if (hostile) {
      const path = scenario === 'guest-distinct' ? await t.guestSocket(GUEST) : t.socketPath;
      hostileSock = await openNonReader(path);
      sockets.push(hostileSock);
      hostileSock.once('close', () => (dropped = true));
      if (scenario !== 'pipelined-reads') hostileSock.write(frame(MessageType.WATCH, 1, scenario === 'guest-distinct' ? '/g\0tok\0' : '/h\0tok\0'));
    }
    const probe = await RawConn.open(t.socketPath);
    conns.push(probe);
    const latencies: number[] = [];
    let running = true;
    const probing = (async () => {
      while (running) {
        const t0 = process.hrtime.bigint();
        await probe.request(MessageType.READ, '/probe\0');
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        probe.take();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const rssStartKiB = rssKiB(t.pid);
    let rssPeakKiB = rssStartKiB;
    const t0 = Date.now();
    const batch = 250;
    for (let i = 0; i < operations; i += batch) {
      const n = Math.min(batch, operations - i);
      if (scenario === 'pipelined-reads') {
        // The hostile client's own requests: it never reads the 4 KB replies.
        if (hostileSock) hostileSock.write(Buffer.concat(Array.from({ length: n }, (_, j) => frame(MessageType.READ, i + j + 2, '/big\0'))));
        // ...while dom0 keeps working.
        await dom0.request(MessageType.WRITE, `/w\0${i}`);
      } else {
        const path = (k: number) =>
          scenario === 'same-path' ? '/h/x' : scenario === 'guest-distinct' ? `/g/d${k % 256}/n${k}` : `/h/d${k % 256}/n${k}`;
        await Promise.all(Array.from({ length: n }, (_, j) => dom0.request(MessageType.WRITE, `${path(i + j)}\0v${i + j}`)));
      }
      dom0.take();
      rssPeakKiB = Math.max(rssPeakKiB, rssKiB(t.pid));
    }
    await dom0.sync();
    const ms = Date.now() - t0;
    running = false;
    await probing;
    const rssEndKiB = rssKiB(t.pid);
    return {
      daemon,
      scenario,
      hostile,
      operations,
      rssStartKiB,
      rssEndKiB,
      rssPeakKiB: Math.max(rssPeakKiB, rssEndKiB),
      ms,
      probe: stats(latencies),
      hostileDropped: dropped,
    };
  } finally {
    for (const s of sockets) s.destroy();
    for (const c of conns) c.close();
    await t.stop();
  }
}

export interface HostileComparison {
  scenario: HostileScenario;
  operations: number;
  runs: HostileResult[];
  /** Peak RSS growth with the hostile client minus without, per daemon (MiB). */
  hostileCostMiB: Record<DaemonUnderTest, number>;
  /** Peak RSS (MiB) with the hostile client, per daemon. */
  peakMiB: Record<DaemonUnderTest, number>;
}

const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;

/** Both daemons, with and without the hostile client, under the same workload. */
export async function compareHostile(scenario: HostileScenario, operations: number): Promise<HostileComparison> {
  const runs: HostileResult[] = [];
  for (const daemon of ['cxenstored', 'in-memory'] as const) {
    for (const hostile of [false, true]) runs.push(await runHostile(daemon, scenario, operations, hostile));
  }
  const growth = (d: DaemonUnderTest, h: boolean) => {
    const r = runs.find((x) => x.daemon === d && x.hostile === h)!;
    return r.rssPeakKiB - r.rssStartKiB;
  };
  const cost = (d: DaemonUnderTest) => mib(Math.max(0, growth(d, true) - growth(d, false)));
  const peak = (d: DaemonUnderTest) => mib(runs.find((x) => x.daemon === d && x.hostile)!.rssPeakKiB);
  return {
    scenario,
    operations,
    runs,
    hostileCostMiB: { cxenstored: cost('cxenstored'), 'in-memory': cost('in-memory') },
    peakMiB: { cxenstored: peak('cxenstored'), 'in-memory': peak('in-memory') },
  };
}
