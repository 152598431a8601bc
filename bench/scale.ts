/**
 * `npm run bench:scale [-- --quick] [--servers memory,cxenstored-records,cxenstored-4.20-records,cxenstored,cxenstored-4.20]
 * [--sizes 10,100,1000,4000] [--introduced-sizes 10,100,1000] [--ten-thousand] [--profile DIR]`:
 * what one apply, one release, `list`, `reconcile` and the daemon's cleanup of a dead domain cost
 * on hosts of growing size (issue 15 points 1, 2 and 6). A host of N domains is N/2 pairs of an
 * owner and a borrower sharing two regions (16 KiB and 8 KiB), applied through the library; the
 * host grows from one size to the next and every size is measured on the same host:
 *
 *   apply        a fresh pair: the owner's apply (2 regions populated), the borrower's (set_target,
 *                2 regions mapped); each by domid, as `xen-sshm apply --domid`. Per apply also:
 *                the requests sent, the client's socket reads (event-loop wake-ups), this
 *                process's CPU time and the xenstored's (so its CPU per request), which tells
 *                whose cost grows with the host
 *   release      the borrower's, then the owner's
 *   apply by name the owner's apply resolved by name (`xen-sshm apply CFG`), which lists
 *                /local/domain as xl does: shown apart, it grows with the host by design
 *   daemon cleanup  a running runDaemon() loop: from RELEASE (the last step of `xl destroy`, which
 *                fires @releaseDomain) to the loop's report of the dead domain's mappings released
 *   list         manager.list(): every region, its mappings, the domains' names and targets; its
 *                requests and the CPU per request of both sides
 *   reconcile    manager.reconcile(): the whole host, the index checked, nothing to do
 *
 * on the in-memory server (the sandbox's daemon, in its own process) and Debian's C xenstored 4.17
 * and 4.20 (test/harness), each with the simulated Xen host in this process; the C daemons with
 * the records only and with every domain INTRODUCEd. Each figure is the mean and the 99th
 * percentile of its samples, and each size's ratio to the smallest (the anchor, same run, same
 * host); RSS of this process (the tool: manager, daemon loop and simulated host) and of the
 * xenstored, after each size. Then (not with --quick) the in-memory host grows to 10,000 regions
 * for more `list`s. Writes bench/results/scale.json, scale.md and scale.svg (vega-lite, rendered
 * headless to SVG). --profile DIR: V8 CPU profiles of both processes around the 10,000-region
 * list and of five more applies at each server's largest size.
 *
 * Run it under the CPU lock (`flock /work/locks/cpu.lock npm run bench:scale`); the machine is
 * shared, so compare sizes within one run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseXlConfig, type XlConfig } from '../lib/config';
import { SimHypervisor } from '../lib/hypervisor';
import { runDaemon, SharedMemoryManager, type DaemonEvent } from '../lib/manager';
import { startDaemon, type RunningDaemon, type XenRelease } from '../test/harness/daemons';
import { connect, type XenstoreClient } from '../xenstore-wire';
import { startServer } from '../xenstore-wire/server';

/**
 * 'cxenstored' (4.17) and 'cxenstored-4.20' INTRODUCE every domain, as on a real host: C
 * xenstored's main loop then visits every connection, each domain's included, on every pass, and
 * a pass handles one request per connection (main() and initialize_fds() in
 * tools/xenstore/xenstored_core.c of 4.17, tools/xenstored/core.c of 4.20), and every write's
 * watch check walks every connection (fire_watches() in xenstored_watch.c / watch.c): its own
 * cost per request grows with the host. '-records' writes the same records without INTRODUCE:
 * the tool's cost on the same daemon without that growth; on 4.17 its TDB store still grows per
 * request (tdb.c: a fixed 7,919-bucket hash, tdb_find() walking the chains, tdb_allocate()
 * walking the free list), 4.20 keeps nodes in a growing hashtable (core.c `nodes`). Without
 * INTRODUCE there is no RELEASE, hence no @releaseDomain: the dead-domain cleanup is timed as
 * the daemon loop's reconcile call.
 */
type ServerKind = 'memory' | 'cxenstored' | 'cxenstored-records' | 'cxenstored-4.20' | 'cxenstored-4.20-records';
const SERVER_LABEL: Record<ServerKind, string> = {
  memory: 'in-memory xenstored',
  cxenstored: 'C xenstored 4.17, domains introduced',
  'cxenstored-records': 'C xenstored 4.17, records only (no INTRODUCE)',
  'cxenstored-4.20': 'C xenstored 4.20, domains introduced',
  'cxenstored-4.20-records': 'C xenstored 4.20, records only (no INTRODUCE)',
};
/** The real daemon's Xen release (test/harness), null for the in-memory server. */
const RELEASE_OF: Record<ServerKind, XenRelease | null> = {
  memory: null,
  cxenstored: '4.17',
  'cxenstored-records': '4.17',
  'cxenstored-4.20': '4.20',
  'cxenstored-4.20-records': '4.20',
};
const INTRODUCED = new Set<ServerKind>(['cxenstored', 'cxenstored-4.20']);
const DEFAULT_SERVERS: ServerKind[] = ['memory', 'cxenstored-records', 'cxenstored-4.20-records', 'cxenstored', 'cxenstored-4.20'];
/** Domids the daemons accept (INTRODUCE): the background pairs plus every measured pair. */
const MAX_DOMID = 12_000;
const MiB = 2 ** 20;

interface Stats {
  n: number;
  mean: number;
  p99: number;
}

interface SizePoint {
  server: ServerKind;
  domains: number;
  regions: number;
  ops: Record<string, Stats>;
  /** Transactions retried (EAGAIN from the daemon) during the measured applies and releases. */
  retries: number;
  /** CPU time of this process and of the xenstored during one list, ms. */
  listCpuMs: { tool: number; xenstored: number };
  rssMiB: { tool: number; xenstored: number };
  load: number[];
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const p99 = s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)];
  return { n: s.length, mean: round(mean), p99: round(p99) };
}

const round = (x: number): number => Math.round(x * 100) / 100;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * /proc/PID: resident set (MiB) and CPU time (ms), the latter summed over the process's threads
 * from the scheduler's se.sum_exec_runtime (/proc/PID/task/TID/sched, microsecond precision;
 * /proc/PID/stat counts 10 ms ticks, too coarse for one apply).
 */
function procOf(pid: number): { rssMiB: number; cpuMs: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMiB: round(rssKiB / 1024), cpuMs: cpuMsOf(pid) };
}

function cpuMsOf(pid: number): number {
  let ms = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ms += Number(/se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8'))?.[1] ?? 0);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ms;
}

/** This process's CPU time, ms. */
const toolCpuMs = (): number => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

const ownerCfg = (name: string, tag: string, extra = 0): XlConfig =>
  parseXlConfig(
    `name = "${name}"\nstatic_shm = [${[
      `"id=${tag}A, begin=0x60000000, size=16K, role=owner"`,
      `"id=${tag}B, begin=0x61000000, size=8K, role=owner"`,
      ...Array.from({ length: extra }, (_, i) => `"id=${tag}X${i}, begin=0x${(0x62 + i).toString(16)}000000, size=4K, role=owner"`),
    ].join(', ')}]\n`,
  );
const borrowerCfg = (name: string, tag: string, extra = 0): XlConfig =>
  parseXlConfig(
    `name = "${name}"\nstatic_shm = [${[
      `"id=${tag}A, begin=0x70000000, size=16K"`,
      `"id=${tag}B, begin=0x71000000, size=8K"`,
      ...Array.from({ length: extra }, (_, i) => `"id=${tag}X${i}, begin=0x${(0x72 + i).toString(16)}000000, size=4K"`),
    ].join(', ')}]\n`,
  );

/** A xenstored, the simulated host, a manager and a running daemon loop. */
class Host {
  readonly hv = new SimHypervisor({ arch: 'arm' });
  xs!: XenstoreClient;
  manager!: SharedMemoryManager;
  socketPath = '';
  serverPid = 0;
  domains = 0;
  regions = 0;
  pairs = 0;
  /** The background pairs' domids, in the order they were made. */
  readonly background: Array<{ owner: number; borrower: number }> = [];
  private nextDomid = 1;
  private child?: ChildProcess;
  private daemon?: RunningDaemon;
  private stopDaemon = new AbortController();
  private daemonDone?: Promise<void>;
  private waiters: Array<(e: DaemonEvent) => boolean> = [];

  /** Domains made but not INTRODUCEd yet (the host grows without them, then they are introduced). */
  private unintroduced: number[] = [];

  constructor(readonly kind: ServerKind) {}

  get introduces(): boolean {
    return INTRODUCED.has(this.kind);
  }

  /** While true, the manager's requests and its client's socket reads are counted. */
  counting = false;
  readonly counted = { requests: 0, reads: 0 };

  async start(): Promise<void> {
    if (this.kind === 'memory') {
      this.child = spawn(process.execPath, [__filename, '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
      this.socketPath = await new Promise<string>((resolve, reject) => {
        this.child!.stdout!.once('data', (d) => resolve(String(d).trim()));
        this.child!.once('exit', (code) => reject(new Error(`in-memory xenstored exited (${code})`)));
      });
      this.serverPid = this.child.pid!;
    } else {
      this.daemon = await startDaemon('cxenstored', { release: RELEASE_OF[this.kind]!, fakeDomains: Array.from({ length: MAX_DOMID }, (_, i) => i + 1) });
      this.socketPath = this.daemon.socketPath;
      this.serverPid = this.daemon.pid;
    }
    this.xs = await connect({ path: this.socketPath });
    // Requests sent, and the client's socket reads (each one wake-up of the event loop with one
    // or more replies): the bench wraps the transport's send and its sink, a function call each
    // (an interceptor would add its own promises to every request); nothing in the library does.
    // Path requests (READ, DIRECTORY, ...) go out through sendPath and replies come in through
    // onBytes where the transport has them: both doors are counted.
    const transport = this.xs.transport as unknown as { send(frame: Buffer, reqId: number): void };
    const send = transport.send.bind(transport);
    transport.send = (frame, reqId) => {
      if (this.counting) this.counted.requests++;
      send(frame, reqId);
    };
    // The client bound the transport's sendPath when it was made: its own reference is wrapped.
    const client = this.xs as unknown as {
      onData(chunk: Buffer): void;
      onBytes?(buf: Uint8Array, length: number): void;
      sendPath: ((type: number, reqId: number, txId: number, path: string) => void) | null;
    };
    const sendPath = client.sendPath;
    if (sendPath !== null) {
      client.sendPath = (type, reqId, txId, p) => {
        if (this.counting) this.counted.requests++;
        sendPath(type, reqId, txId, p);
      };
    }
    const onData = client.onData.bind(client);
    client.onData = (chunk) => {
      if (this.counting) this.counted.reads++;
      onData(chunk);
    };
    if (client.onBytes) {
      const onBytes = client.onBytes.bind(client);
      client.onBytes = (buf, length) => {
        if (this.counting) this.counted.reads++;
        onBytes(buf, length);
      };
    }
    this.manager = new SharedMemoryManager({ xenstore: this.xs, hypervisor: this.hv });
    let watching!: () => void;
    const ready = new Promise<void>((r) => (watching = r));
    this.daemonDone = runDaemon({
      connect: () => connect({ path: this.socketPath }),
      hypervisor: this.hv,
      signal: this.stopDaemon.signal,
      onEvent: (e) => {
        if (e.type === 'reconciled' && e.trigger === 'connect') watching();
        if (e.type === 'error') process.stderr.write(`daemon: ${e.message}\n`);
        this.waiters = this.waiters.filter((w) => !w(e));
      },
    });
    await ready;
  }

  /** A line to the in-memory xenstored's process (--serve); resolves on its answer. No-op on C. */
  async serverCommand(line: string): Promise<void> {
    if (!this.child) return;
    const answered = new Promise<void>((resolve) => this.child!.stdout!.once('data', () => resolve()));
    this.child.stdin!.write(line + '\n');
    await answered;
  }

  async stop(): Promise<void> {
    this.stopDaemon.abort();
    await this.daemonDone;
    this.manager.dispose();
    await this.xs.close();
    await this.hv.close();
    if (this.child) {
      this.child.kill('SIGTERM');
      await new Promise((r) => this.child!.once('exit', r));
    }
    await this.daemon?.stop();
  }

  /**
   * `xl create -p`, as the toolstack writes it (lib/sandbox/toolstack.ts), without listing the
   * host. `later`: INTRODUCE it in introduceAll() (growing a C xenstored host before its domains
   * slow every request down).
   */
  async createDomain(name: string, later = false): Promise<number> {
    const domid = this.nextDomid++;
    if (domid > MAX_DOMID) throw new Error(`more than ${MAX_DOMID} domids`);
    await this.hv.createDomain({ domid, name, maxPages: 65 * 256, extraPages: 16 * 256 });
    const base = `/local/domain/${domid}`;
    await Promise.all([
      this.xs.mkdir(base),
      this.xs.setPerms(base, ['n0', `r${domid}`]),
      this.xs.write(`${base}/name`, name),
      this.xs.write(`${base}/domid`, String(domid)),
      this.xs.write(`${base}/memory/static-max`, String(65 * 1024)),
      this.xs.write(`${base}/memory/target`, String(16 * 1024)),
    ]);
    if (this.introduces && later) this.unintroduced.push(domid);
    else if (this.introduces) await this.xs.introduce(domid, 0xfeffc, 1);
    this.domains++;
    return domid;
  }

  async introduceAll(): Promise<void> {
    await Promise.all(this.unintroduced.splice(0).map((d) => this.xs.introduce(d, 0xfeffc, 1)));
  }

  /**
   * `xl destroy` up to its RELEASE; returns once RELEASE is sent, with a promise of the daemon's
   * report that the domain's mappings are gone.
   */
  async destroyDomain(domid: number, expectActions: number): Promise<{ released: Promise<void>; sent: number }> {
    await this.hv.destroyDomain(domid);
    await this.xs.rm(`/local/domain/${domid}`);
    if (!this.introduces) {
      // No RELEASE without INTRODUCE: what the daemon loop runs on @releaseDomain, called here.
      const sent = performance.now();
      const r = await this.manager.reconcile({ scope: 'dead-domains' });
      if (r.actions.filter((a) => a.domid === domid).length < expectActions) throw new Error(`d${domid}: cleanup released ${JSON.stringify(r.actions)}`);
      this.domains--;
      return { released: Promise.resolve(), sent };
    }
    let seen = 0;
    const released = new Promise<void>((resolve) => {
      this.waiters.push((e) => {
        if (e.type !== 'reconciled') return false;
        seen += e.actions.filter((a) => a.domid === domid).length;
        if (seen < expectActions) return false;
        resolve();
        return true;
      });
    });
    const sent = performance.now();
    await this.xs.release(domid);
    this.domains--;
    return { released, sent };
  }

  /** One more background pair (its domains and regions stay). */
  async growPair(): Promise<void> {
    const k = this.pairs++;
    const o = await this.createDomain(`bg${k}o`, true);
    const b = await this.createDomain(`bg${k}b`, true);
    await this.manager.apply({ config: ownerCfg(`bg${k}o`, `G${k}`), domid: o });
    await this.manager.apply({ config: borrowerCfg(`bg${k}b`, `G${k}`), domid: b, allowSetTarget: true });
    this.background.push({ owner: o, borrower: b });
    this.regions += 2;
  }
}

/** Lists and reconciles of one size stop after this long (once there are two of each). */
const LIST_SECONDS = 8;

interface Budget {
  pairs: number;
  cleanups: number;
  byName: number;
  lists: number;
}

/** Every measured operation at the host's current size. */
async function measure(h: Host, budget: Budget, serial: { n: number }): Promise<SizePoint> {
  const ms: Record<string, number[]> = {
    'apply owner': [],
    'apply borrower': [],
    'release borrower': [],
    'release owner': [],
    'apply owner by name': [],
    'daemon cleanup': [],
    list: [],
    reconcile: [],
    'xenstored round trip (READ)': [],
    'xenstored round trip (WRITE)': [],
    'xenstored transaction (START, WRITE, END)': [],
    'apply, tool CPU (per domain)': [],
    'apply, requests (per domain)': [],
    'apply, client socket reads (per domain)': [],
    'apply, xenstored CPU (per domain)': [],
    'apply, xenstored CPU per request (µs)': [],
    'apply, tool CPU per request (µs)': [],
    'list, requests': [],
    'list, tool CPU per request (µs)': [],
    'list, xenstored CPU per request (µs)': [],
  };
  const m = h.manager;
  let retries = 0;
  const onRetry = (): void => void retries++;
  m.on('retry', onRetry);
  // The daemon's own service time at this size: sequential READs of one node.
  await h.xs.write('/bench-probe', 'x');
  for (let i = 0; i < 200; i++) ms['xenstored round trip (READ)'].push(await timed(() => h.xs.read('/bench-probe')));
  for (let i = 0; i < 200; i++) ms['xenstored round trip (WRITE)'].push(await timed(() => h.xs.write('/bench-probe', String(i))));
  // A transaction of one write: whether the daemon's transactions grow with the host.
  for (let i = 0; i < 100; i++) ms['xenstored transaction (START, WRITE, END)'].push(await timed(() => h.xs.transaction((tx) => tx.write('/bench-probe', String(i)))));
  /**
   * Wall time; and this process's CPU time, the requests it sent, its client's socket reads and
   * the xenstored's CPU time, each per apply: what grows, and on whose side.
   */
  const applyTimed = async (fn: () => Promise<unknown>): Promise<number> => {
    h.counted.requests = 0;
    h.counted.reads = 0;
    h.counting = true;
    const s0 = cpuMsOf(h.serverPid);
    const c0 = toolCpuMs();
    const wall = await timed(fn);
    const tool = toolCpuMs() - c0;
    const daemon = cpuMsOf(h.serverPid) - s0;
    h.counting = false;
    const n = Math.max(1, h.counted.requests);
    ms['apply, tool CPU (per domain)'].push(tool);
    ms['apply, requests (per domain)'].push(h.counted.requests);
    ms['apply, client socket reads (per domain)'].push(h.counted.reads);
    ms['apply, xenstored CPU (per domain)'].push(daemon);
    ms['apply, xenstored CPU per request (µs)'].push((daemon * 1000) / n);
    ms['apply, tool CPU per request (µs)'].push((tool * 1000) / n);
    return wall;
  };
  for (let i = 0; i < budget.pairs; i++) {
    const tag = `M${serial.n++}`;
    const o = await h.createDomain(`${tag}o`);
    const b = await h.createDomain(`${tag}b`);
    ms['apply owner'].push(await applyTimed(() => m.apply({ config: ownerCfg(`${tag}o`, tag), domid: o })));
    ms['apply borrower'].push(await applyTimed(() => m.apply({ config: borrowerCfg(`${tag}b`, tag), domid: b, allowSetTarget: true })));
    ms['release borrower'].push(await timed(() => m.release({ domid: b })));
    ms['release owner'].push(await timed(() => m.release({ domid: o })));
    if (i < budget.byName) {
      ms['apply owner by name'].push(await timed(() => m.apply({ config: ownerCfg(`${tag}o`, tag) })));
      await m.release({ domid: o });
    }
    for (const d of [b, o]) await (await h.destroyDomain(d, 0)).released.catch(() => undefined);
  }
  m.off('retry', onRetry);
  for (let i = 0; i < budget.cleanups; i++) {
    const tag = `M${serial.n++}`;
    const o = await h.createDomain(`${tag}o`);
    const b = await h.createDomain(`${tag}b`);
    await m.apply({ config: ownerCfg(`${tag}o`, tag), domid: o });
    await m.apply({ config: borrowerCfg(`${tag}b`, tag), domid: b, allowSetTarget: true });
    // The borrower dies first (its two mappings released), then the owner (its regions go).
    for (const d of [b, o]) {
      const { released, sent } = await h.destroyDomain(d, 2);
      await released;
      ms['daemon cleanup'].push(performance.now() - sent);
    }
  }
  let listCpuMs = { tool: 0, xenstored: 0 };
  // At least two lists and reconciles; at most budget.lists, and no more once they took
  // LIST_SECONDS (a C xenstored of thousands of domains takes seconds per list).
  const listsStart = performance.now();
  for (let i = 0; i < budget.lists && (i < 2 || performance.now() - listsStart < LIST_SECONDS * 1000); i++) {
    h.counted.requests = 0;
    h.counting = true;
    const c0 = toolCpuMs();
    const s0 = cpuMsOf(h.serverPid);
    ms.list.push(await timed(() => m.list()));
    const tool = toolCpuMs() - c0;
    const daemon = cpuMsOf(h.serverPid) - s0;
    h.counting = false;
    const n = Math.max(1, h.counted.requests);
    ms['list, requests'].push(h.counted.requests);
    ms['list, tool CPU per request (µs)'].push((tool * 1000) / n);
    ms['list, xenstored CPU per request (µs)'].push((daemon * 1000) / n);
    listCpuMs = { tool: round(tool), xenstored: round(daemon) };
    ms.reconcile.push(
      await timed(async () => {
        const r = await m.reconcile();
        if (r.actions.length > 0 || r.index) throw new Error(`reconcile found work on a settled host: ${JSON.stringify(r)}`);
      }),
    );
  }
  const ops: Record<string, Stats> = {};
  for (const [op, v] of Object.entries(ms)) if (v.length > 0) ops[op] = stats(v);
  ops['apply (per domain)'] = stats([...ms['apply owner'], ...ms['apply borrower']]);
  ops['release (per domain)'] = stats([...ms['release owner'], ...ms['release borrower']]);
  return {
    server: h.kind,
    domains: h.domains,
    regions: h.regions,
    ops,
    retries,
    listCpuMs,
    rssMiB: { tool: round(process.memoryUsage().rss / MiB), xenstored: procOf(h.serverPid).rssMiB },
    load: os.loadavg().map(round),
  };
}

/** --profile: five more pairs applied and released under the profiler, at the largest size. */
async function profiledApplies(h: Host, profile: Profiler, serial: { n: number }): Promise<void> {
  const pairs: Array<[number, number, string]> = [];
  for (let i = 0; i < 5; i++) {
    const tag = `P${serial.n++}`;
    pairs.push([await h.createDomain(`${tag}o`), await h.createDomain(`${tag}b`), tag]);
  }
  await profile.start(h, `apply-${h.domains}`);
  for (const [o, b, tag] of pairs) {
    await h.manager.apply({ config: ownerCfg(`${tag}o`, tag), domid: o });
    await h.manager.apply({ config: borrowerCfg(`${tag}b`, tag), domid: b, allowSetTarget: true });
  }
  await profile.stop(h, `apply-${h.domains}`);
  for (const [o, b] of pairs) {
    await h.manager.release({ domid: b });
    await h.manager.release({ domid: o });
    for (const d of [b, o]) await (await h.destroyDomain(d, 0)).released.catch(() => undefined);
  }
}

/** Grows the in-memory host's pairs to 2 + extra regions each and lists it. */
interface TenThousand {
  regions: number;
  domains: number;
  list: Stats;
  /** Requests of one list, and the CPU of each side per request (µs). */
  requests: number;
  perRequestUs: { tool: Stats; xenstored: Stats };
  listCpuMs: { tool: number; xenstored: number };
  rssMiB: { tool: number; xenstored: number };
  load: number[];
}

async function tenThousand(h: Host, target: number, lists: number, profile: Profiler | null): Promise<TenThousand> {
  const extra = Math.ceil((target - h.regions) / h.pairs);
  for (const [k, { owner, borrower }] of h.background.entries()) {
    await h.manager.apply({ config: ownerCfg(`bg${k}o`, `G${k}`, extra), domid: owner });
    await h.manager.apply({ config: borrowerCfg(`bg${k}b`, `G${k}`, extra), domid: borrower, allowSetTarget: true });
    h.regions += extra;
  }
  const ms: number[] = [];
  const toolUs: number[] = [];
  const daemonUs: number[] = [];
  let listCpuMs = { tool: 0, xenstored: 0 };
  let regions = 0;
  let requests = 0;
  for (let i = 0; i < lists; i++) {
    // The last list is profiled when asked (--profile): the others are timed without it.
    const profiled = profile !== null && i === lists - 1;
    if (profiled) await profile.start(h, 'list-10k');
    h.counted.requests = 0;
    h.counting = true;
    const c0 = toolCpuMs();
    const s0 = cpuMsOf(h.serverPid);
    const wall = await timed(async () => (regions = (await h.manager.list()).regions.length));
    const tool = toolCpuMs() - c0;
    const daemon = cpuMsOf(h.serverPid) - s0;
    h.counting = false;
    if (profiled) {
      await profile.stop(h, 'list-10k');
      break;
    }
    ms.push(wall);
    requests = h.counted.requests;
    toolUs.push((tool * 1000) / Math.max(1, requests));
    daemonUs.push((daemon * 1000) / Math.max(1, requests));
    listCpuMs = { tool: round(tool), xenstored: round(daemon) };
  }
  return {
    regions,
    domains: h.domains,
    list: stats(ms),
    requests,
    perRequestUs: { tool: stats(toolUs), xenstored: stats(daemonUs) },
    listCpuMs,
    rssMiB: { tool: round(process.memoryUsage().rss / MiB), xenstored: procOf(h.serverPid).rssMiB },
    load: os.loadavg().map(round),
  };
}

/**
 * --profile DIR: V8 CPU profiles (.cpuprofile, for Chrome's DevTools or speedscope) of this
 * process and, on the in-memory server, of the xenstored's process, around one operation.
 */
class Profiler {
  private session?: import('node:inspector').Session;
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  private post<T>(method: string, params?: object): Promise<T> {
    return new Promise((resolve, reject) => this.session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
  }

  async start(h: Host, _name: string): Promise<void> {
    const inspector = await import('node:inspector');
    this.session = new inspector.Session();
    this.session.connect();
    await this.post('Profiler.enable');
    await this.post('Profiler.setSamplingInterval', { interval: 200 });
    await this.post('Profiler.start');
    await h.serverCommand('profile-start');
  }

  async stop(h: Host, name: string): Promise<void> {
    const { profile } = await this.post<{ profile: object }>('Profiler.stop');
    this.session!.disconnect();
    fs.writeFileSync(path.join(this.dir, `${h.kind}-${name}-tool.cpuprofile`), JSON.stringify(profile));
    await h.serverCommand(`profile-stop ${path.join(this.dir, `${h.kind}-${name}-xenstored.cpuprofile`)}`);
  }
}

const OPS_CHARTED = ['apply (per domain)', 'release (per domain)', 'daemon cleanup', 'apply owner by name', 'list', 'reconcile', 'xenstored round trip (WRITE)', 'xenstored transaction (START, WRITE, END)'];

/** Cost against host size, one panel per xenstored, drawn by vega-lite and rendered to SVG by vega. */
async function chart(points: SizePoint[]): Promise<string> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const values = points.flatMap((p) => OPS_CHARTED.filter((op) => p.ops[op]).map((op) => ({ server: SERVER_LABEL[p.server], domains: p.domains, operation: op, ms: p.ops[op].mean, p99: p.ops[op].p99 })));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'xen-sshm: cost against host size (mean; whiskers to p99)', subtitle: `bench/scale.ts, ${new Date().toISOString().slice(0, 10)}` },
    data: { values },
    facet: { field: 'server', type: 'nominal', title: null },
    columns: 3,
    spec: {
      width: 360,
      height: 300,
      layer: [
        {
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'domains', type: 'quantitative', scale: { type: 'log' }, title: 'domains on the host' },
            y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'ms' },
            color: { field: 'operation', type: 'nominal', sort: OPS_CHARTED },
          },
        },
        {
          mark: { type: 'rule', opacity: 0.5 },
          encoding: {
            x: { field: 'domains', type: 'quantitative', scale: { type: 'log' } },
            y: { field: 'ms', type: 'quantitative', scale: { type: 'log' } },
            y2: { field: 'p99' },
            color: { field: 'operation', type: 'nominal', sort: OPS_CHARTED },
          },
        },
      ],
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'none' });
  return view.toSVG();
}

function report(meta: Record<string, unknown>, points: SizePoint[], tenK: TenThousand | null): string {
  const lines: string[] = [
    '# Scale: cost against host size',
    '',
    `Generated by \`npm run bench:scale${meta.quick ? ' -- --quick' : ''}\` on ${String(meta.date)}: Node ${String(meta.node)}, ${String(meta.cpus)} CPUs, load average at start ${String(meta.loadStart)}, at end ${String(meta.loadEnd)}; ${String(meta.seconds)} s in all.`,
    ...(meta.partial ? ['**Partial**: written while the run was still going (it stopped or is running); the sizes below are those measured so far.', ''] : []),
    'A host of N domains: N/2 pairs of an owner and a borrower sharing two regions, applied through the library in this process, with the simulated Xen host in this process and the xenstored in its own. Each size is measured on the same growing host. Times in ms, mean and p99 (nearest rank) over the samples; RSS after the size was measured. The chart is scale.svg.',
    '',
  ];
  for (const server of [...new Set(points.map((p) => p.server))]) {
    const ps = points.filter((p) => p.server === server);
    const ops = Object.keys(ps[0].ops);
    lines.push(`## ${SERVER_LABEL[server]}`, '');
    lines.push(`| operation | ${ps.map((p) => `${p.domains} domains (${p.regions} regions)`).join(' | ')} | ${ps[ps.length - 1].domains} / ${ps[0].domains}, mean | p99 |`);
    lines.push(`|---|${ps.map(() => '---:|').join('')}---:|---:|`);
    for (const op of ops) {
      const first = ps[0].ops[op];
      const last = ps[ps.length - 1].ops[op];
      lines.push(`| ${op} (n ${first.n}) | ${ps.map((p) => `${p.ops[op].mean} (p99 ${p.ops[op].p99})`).join(' | ')} | ${round(last.mean / first.mean)}x | ${round(last.p99 / first.p99)}x |`);
    }
    lines.push(`| transactions retried (EAGAIN) during the applies and releases | ${ps.map((p) => p.retries).join(' | ')} | | |`);
    lines.push(`| list: CPU ms, tool / xenstored | ${ps.map((p) => `${p.listCpuMs.tool} / ${p.listCpuMs.xenstored}`).join(' | ')} | | |`);
    lines.push(`| RSS MiB, tool / xenstored | ${ps.map((p) => `${p.rssMiB.tool} / ${p.rssMiB.xenstored}`).join(' | ')} | | |`);
    lines.push(`| load average (1 min) after | ${ps.map((p) => p.load[0]).join(' | ')} | | |`, '');
    // Every size against the smallest (the anchor, measured in the same run on the same host).
    lines.push(`Ratios to the ${ps[0].domains}-domain anchor, mean / p99:`, '');
    lines.push(`| operation | ${ps.slice(1).map((p) => `${p.domains} domains`).join(' | ')} |`);
    lines.push(`|---|${ps.slice(1).map(() => '---:|').join('')}`);
    for (const op of ops) {
      const a = ps[0].ops[op];
      const ratio = (x: number, y: number): string => (y > 0 ? `${round(x / y)}x` : '-');
      lines.push(`| ${op} | ${ps.slice(1).map((p) => `${ratio(p.ops[op].mean, a.mean)} / ${ratio(p.ops[op].p99, a.p99)}`).join(' | ')} |`);
    }
    lines.push('');
  }
  if (tenK) {
    lines.push(
      '## list of 10,000 regions (in-memory xenstored)',
      '',
      `The in-memory host's pairs grown to ${tenK.regions} regions (${tenK.domains} domains, two mappings each): \`list\` mean ${tenK.list.mean} ms, p99 ${tenK.list.p99} ms (n ${tenK.list.n}); ${tenK.requests} requests per list (${round(tenK.requests / tenK.regions)} per region); CPU of one list: tool ${tenK.listCpuMs.tool} ms, xenstored ${tenK.listCpuMs.xenstored} ms; CPU per request, mean (p99): tool ${tenK.perRequestUs.tool.mean} µs (${tenK.perRequestUs.tool.p99}), xenstored ${tenK.perRequestUs.xenstored.mean} µs (${tenK.perRequestUs.xenstored.p99}). RSS: tool ${tenK.rssMiB.tool} MiB, xenstored ${tenK.rssMiB.xenstored} MiB. Load average after: ${tenK.load.join(' ')}.`,
      '',
    );
  }
  const judged: string[] = [];
  for (const server of [...new Set(points.map((p) => p.server))]) {
    const ps = points.filter((p) => p.server === server);
    const a = ps[0].ops['apply (per domain)'];
    const z = ps[ps.length - 1].ops['apply (per domain)'];
    const rq = (p: SizePoint): number => p.ops['apply, requests (per domain)']?.mean ?? 0;
    const us = (p: SizePoint): number => p.ops['apply, xenstored CPU per request (µs)']?.mean ?? 0;
    const last = ps[ps.length - 1];
    judged.push(
      `- ${SERVER_LABEL[server]}: apply at ${last.domains} domains / at ${ps[0].domains}: mean ${round(z.mean / a.mean)}x, p99 ${round(z.p99 / a.p99)}x (target at most 1.5x: ${z.mean / a.mean <= 1.5 ? 'met' : 'not met'}); requests per apply ${rq(ps[0])} -> ${rq(last)}, the xenstored's CPU per request ${us(ps[0])} -> ${us(last)} µs (${us(ps[0]) > 0 ? round(us(last) / us(ps[0])) : '-'}x).`,
    );
  }
  if (tenK) judged.push(`- list of ${tenK.regions} regions on the in-memory xenstored: ${tenK.list.mean} ms mean, p99 ${tenK.list.p99} ms (target under 1000 ms: ${tenK.list.mean < 1000 ? 'met' : 'not met'}).`);
  lines.push('## Targets', '', ...judged, '');
  return lines.join('\n');
}

async function serve(): Promise<void> {
  // The in-memory xenstored as the sandbox runs it: its own process, its own socket.
  const server = await startServer({ domains: Array.from({ length: MAX_DOMID }, (_, i) => i + 1) });
  process.stdout.write(server.socketPath + '\n');
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  // Commands from the bench, one a line: profile-start, profile-stop FILE (--profile).
  const inspector = await import('node:inspector');
  let session: import('node:inspector').Session | null = null;
  const post = (method: string, params: object = {}): Promise<unknown> => new Promise((resolve, reject) => session!.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  const lines = (await import('node:readline')).createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    void (async () => {
      const [cmd, file] = line.split(' ');
      if (cmd === 'profile-start') {
        session = new inspector.Session();
        session.connect();
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 200 });
        await post('Profiler.start');
      } else if (cmd === 'profile-stop' && session) {
        const { profile } = (await post('Profiler.stop')) as { profile: object };
        session.disconnect();
        session = null;
        fs.writeFileSync(file, JSON.stringify(profile));
      }
      process.stdout.write('ok\n');
    })();
  });
}

const started = performance.now();

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      servers: { type: 'string' },
      sizes: { type: 'string' },
      'introduced-sizes': { type: 'string' },
      'ten-thousand': { type: 'boolean' },
      profile: { type: 'string' },
      serve: { type: 'boolean', default: false },
    },
  });
  if (values.serve) return serve();
  const quick = values.quick === true;
  const profile = values.profile ? new Profiler(path.resolve(values.profile)) : null;
  const servers = (values.servers ?? DEFAULT_SERVERS.join(',')).split(',') as ServerKind[];
  for (const k of servers) if (!(k in SERVER_LABEL)) throw new Error(`--servers: ${k} is not one of ${Object.keys(SERVER_LABEL).join(', ')}`);
  const sizes = (values.sizes ?? (quick ? '10,100,400' : '10,100,1000,4000')).split(',').map(Number);
  // C xenstored with every domain introduced visits each domain's connection per request it
  // handles: at 1,000 domains one apply costs some 300 ms and grows, so growing it to 4,000
  // would take an estimated 15-30 minutes; by default that server stops at 1,000 (the
  // records-only C xenstored goes to the end).
  const introducedSizes = (values['introduced-sizes'] ?? sizes.filter((n) => n <= 1000).join(',')).split(',').map(Number);
  for (const n of [...sizes, ...introducedSizes]) if (!Number.isInteger(n) || n < 2) throw new Error(`--sizes: ${n} is not a whole number of domains (2 or more)`);
  const budget: Budget = quick ? { pairs: 5, cleanups: 3, byName: 3, lists: 2 } : { pairs: 20, cleanups: 10, byName: 5, lists: 4 };
  const meta: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadStart: os.loadavg().map(round).join(' '), quick, sizes, introducedSizes, budget };
  const points: SizePoint[] = [];
  let tenK: TenThousand | null = null;
  for (const kind of servers) {
    const h = new Host(kind);
    await h.start();
    const serial = { n: 0 };
    try {
      const kindSizes = INTRODUCED.has(kind) ? introducedSizes : sizes;
      for (const size of kindSizes) {
        const t0 = performance.now();
        while (h.domains < size) await h.growPair();
        await h.introduceAll();
        const grown = performance.now() - t0;
        const p = await measure(h, budget, serial);
        points.push(p);
        process.stderr.write(`${kind} ${p.domains} domains (grown in ${Math.round(grown)} ms): apply ${p.ops['apply (per domain)'].mean} ms, release ${p.ops['release (per domain)'].mean}, cleanup ${p.ops['daemon cleanup'].mean}, list ${p.ops.list.mean}, reconcile ${p.ops.reconcile.mean}\n`);
        // Written after every size, so that a long run stopped early keeps what it measured.
        await writeResults({ ...meta, partial: true }, points, tenK, false);
      }
      if (profile) await profiledApplies(h, profile, serial);
      if (kind === 'memory' && (values['ten-thousand'] ?? !quick)) {
        tenK = await tenThousand(h, 10_000, budget.lists + (profile ? 1 : 0), profile);
        process.stderr.write(`list of ${tenK.regions} regions: ${tenK.list.mean} ms (p99 ${tenK.list.p99}; ${tenK.requests} requests; CPU per request: tool ${tenK.perRequestUs.tool.mean} µs, xenstored ${tenK.perRequestUs.xenstored.mean} µs)\n`);
      }
    } finally {
      await h.stop();
    }
  }
  process.stdout.write(await writeResults(meta, points, tenK, true));
}

/** scale.json, scale.md and (at the end) scale.svg in bench/results; returns the markdown. */
async function writeResults(meta: Record<string, unknown>, points: SizePoint[], tenK: TenThousand | null, done: boolean): Promise<string> {
  meta.loadEnd = os.loadavg().map(round).join(' ');
  meta.seconds = Math.round((performance.now() - started) / 1000);
  const out = path.join(__dirname, '..', '..', 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  const md = report(meta, points, tenK);
  fs.writeFileSync(path.join(out, 'scale.json'), JSON.stringify({ meta, points, tenThousand: tenK }, null, 2) + '\n');
  fs.writeFileSync(path.join(out, 'scale.md'), md);
  if (done) fs.writeFileSync(path.join(out, 'scale.svg'), await chart(points));
  return md;
}

main().catch((e) => {
  process.stderr.write(`bench:scale: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
