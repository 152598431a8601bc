/**
 * `npm run bench:scale [-- --quick] [--servers memory,cxenstored-records,cxenstored] [--sizes 10,100,1000,4000]
 * [--introduced-sizes 10,100,1000]`:
 * what one apply, one release, `list`, `reconcile` and the daemon's cleanup of a dead domain cost
 * on hosts of growing size (issue 15 points 1, 2 and 6). A host of N domains is N/2 pairs of an
 * owner and a borrower sharing two regions (16 KiB and 8 KiB), applied through the library; the
 * host grows from one size to the next and every size is measured on the same host:
 *
 *   apply        a fresh pair: the owner's apply (2 regions populated), the borrower's (set_target,
 *                2 regions mapped); each by domid, as `xen-sshm apply --domid`
 *   release      the borrower's, then the owner's
 *   apply by name the owner's apply resolved by name (`xen-sshm apply CFG`), which lists
 *                /local/domain as xl does: shown apart, it grows with the host by design
 *   daemon cleanup  a running runDaemon() loop: from RELEASE (the last step of `xl destroy`, which
 *                fires @releaseDomain) to the loop's report of the dead domain's mappings released
 *   list         manager.list(): every region, its mappings, the domains' names and targets
 *   reconcile    manager.reconcile(): the whole host, the index checked, nothing to do
 *
 * on two xenstoreds: the in-memory server (the sandbox's daemon, in its own process) and Debian's
 * C xenstored 4.17 (test/harness), each with the simulated Xen host in this process. Each figure
 * is the mean and the 99th percentile of its samples; RSS of this process (the tool: manager,
 * daemon loop and simulated host) and of the xenstored, after each size. Then, unless --quick, the
 * in-memory host grows to 10,000 regions for one more `list`. Writes bench/results/scale.json,
 * scale.md and scale.svg (vega-lite, rendered headless to SVG).
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
import { startDaemon, type RunningDaemon } from '../test/harness/daemons';
import { connect, type XenstoreClient } from '../xenstore-wire';
import { startServer } from '../xenstore-wire/server';

/**
 * 'cxenstored' INTRODUCEs every domain, as on a real host: C xenstored's main loop then visits
 * every domain's connection for each request it handles (xenstored_core.c main(): the loop over
 * `connections` calling domain_can_read()), so its own round trip grows with the host.
 * 'cxenstored-records' writes the same records without INTRODUCE, which shows the tool's cost on
 * the same daemon without that growth (its dead-domain cleanup is timed as the daemon loop's
 * reconcile call: without INTRODUCE there is no RELEASE, hence no @releaseDomain).
 */
type ServerKind = 'memory' | 'cxenstored' | 'cxenstored-records';
const SERVER_LABEL: Record<ServerKind, string> = {
  memory: 'in-memory xenstored',
  cxenstored: 'C xenstored 4.17, domains introduced',
  'cxenstored-records': 'C xenstored 4.17, records only (no INTRODUCE)',
};
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

/** /proc/PID: resident set (MiB) and CPU time (ms). */
function procOf(pid: number): { rssMiB: number; cpuMs: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssMiB: round(rssKiB / 1024), cpuMs: (ticks * 1000) / 100 };
}

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
    return this.kind !== 'cxenstored-records';
  }

  async start(): Promise<void> {
    if (this.kind === 'memory') {
      this.child = spawn(process.execPath, [__filename, '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
      this.socketPath = await new Promise<string>((resolve, reject) => {
        this.child!.stdout!.once('data', (d) => resolve(String(d).trim()));
        this.child!.once('exit', (code) => reject(new Error(`in-memory xenstored exited (${code})`)));
      });
      this.serverPid = this.child.pid!;
    } else {
      this.daemon = await startDaemon('cxenstored', { fakeDomains: Array.from({ length: MAX_DOMID }, (_, i) => i + 1) });
      this.socketPath = this.daemon.socketPath;
      this.serverPid = this.daemon.pid;
    }
    this.xs = await connect({ path: this.socketPath });
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
  /** Wall time, and this process's CPU time into 'apply, tool CPU'. */
  const applyTimed = async (fn: () => Promise<unknown>): Promise<number> => {
    const c0 = process.cpuUsage();
    const wall = await timed(fn);
    const c = process.cpuUsage(c0);
    ms['apply, tool CPU (per domain)'].push((c.user + c.system) / 1000);
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
  for (let i = 0; i < budget.lists; i++) {
    const c0 = process.cpuUsage();
    const s0 = procOf(h.serverPid).cpuMs;
    ms.list.push(await timed(() => m.list()));
    const c = process.cpuUsage(c0);
    listCpuMs = { tool: round((c.user + c.system) / 1000), xenstored: round(procOf(h.serverPid).cpuMs - s0) };
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

/** Grows the in-memory host's pairs to 2 + extra regions each and lists it. */
async function tenThousand(h: Host, target: number, lists: number): Promise<{ regions: number; domains: number; list: Stats; listCpuMs: { tool: number; xenstored: number }; rssMiB: { tool: number; xenstored: number } }> {
  const extra = Math.ceil((target - h.regions) / h.pairs);
  for (const [k, { owner, borrower }] of h.background.entries()) {
    await h.manager.apply({ config: ownerCfg(`bg${k}o`, `G${k}`, extra), domid: owner });
    await h.manager.apply({ config: borrowerCfg(`bg${k}b`, `G${k}`, extra), domid: borrower, allowSetTarget: true });
    h.regions += extra;
  }
  const ms: number[] = [];
  let listCpuMs = { tool: 0, xenstored: 0 };
  let regions = 0;
  for (let i = 0; i < lists; i++) {
    const c0 = process.cpuUsage();
    const s0 = procOf(h.serverPid).cpuMs;
    ms.push(await timed(async () => (regions = (await h.manager.list()).regions.length)));
    const c = process.cpuUsage(c0);
    listCpuMs = { tool: round((c.user + c.system) / 1000), xenstored: round(procOf(h.serverPid).cpuMs - s0) };
  }
  return { regions, domains: h.domains, list: stats(ms), listCpuMs, rssMiB: { tool: round(process.memoryUsage().rss / MiB), xenstored: procOf(h.serverPid).rssMiB } };
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
    facet: { column: { field: 'server', type: 'nominal', title: null } },
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

function report(meta: Record<string, unknown>, points: SizePoint[], tenK: Awaited<ReturnType<typeof tenThousand>> | null): string {
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
  }
  if (tenK) {
    lines.push(
      '## list of 10,000 regions (in-memory xenstored)',
      '',
      `The in-memory host's pairs grown to ${tenK.regions} regions (${tenK.domains} domains, two mappings each): \`list\` mean ${tenK.list.mean} ms, p99 ${tenK.list.p99} ms (n ${tenK.list.n}); CPU of one list: tool ${tenK.listCpuMs.tool} ms, xenstored ${tenK.listCpuMs.xenstored} ms. RSS: tool ${tenK.rssMiB.tool} MiB, xenstored ${tenK.rssMiB.xenstored} MiB.`,
      '',
    );
  }
  const judged: string[] = [];
  for (const server of [...new Set(points.map((p) => p.server))]) {
    const ps = points.filter((p) => p.server === server);
    const a = ps[0].ops['apply (per domain)'];
    const z = ps[ps.length - 1].ops['apply (per domain)'];
    judged.push(`- ${SERVER_LABEL[server]}: apply at ${ps[ps.length - 1].domains} domains / at ${ps[0].domains}: mean ${round(z.mean / a.mean)}x, p99 ${round(z.p99 / a.p99)}x (target at most 1.5x: ${z.mean / a.mean <= 1.5 ? 'met' : 'not met'}).`);
  }
  if (tenK) judged.push(`- list of ${tenK.regions} regions on the in-memory xenstored: ${tenK.list.mean} ms mean (target under 1000 ms: ${tenK.list.mean < 1000 ? 'met' : 'not met'}).`);
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
  process.stdin.resume();
}

const started = performance.now();

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, servers: { type: 'string' }, sizes: { type: 'string' }, 'introduced-sizes': { type: 'string' }, serve: { type: 'boolean', default: false } },
  });
  if (values.serve) return serve();
  const quick = values.quick === true;
  const servers = (values.servers ?? 'memory,cxenstored-records,cxenstored').split(',') as ServerKind[];
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
  let tenK: Awaited<ReturnType<typeof tenThousand>> | null = null;
  for (const kind of servers) {
    const h = new Host(kind);
    await h.start();
    const serial = { n: 0 };
    try {
      for (const size of kind === 'cxenstored' ? introducedSizes : sizes) {
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
      if (kind === 'memory' && !quick) {
        tenK = await tenThousand(h, 10_000, budget.lists);
        process.stderr.write(`list of ${tenK.regions} regions: ${tenK.list.mean} ms\n`);
      }
    } finally {
      await h.stop();
    }
  }
  process.stdout.write(await writeResults(meta, points, tenK, true));
}

/** scale.json, scale.md and (at the end) scale.svg in bench/results; returns the markdown. */
async function writeResults(meta: Record<string, unknown>, points: SizePoint[], tenK: Awaited<ReturnType<typeof tenThousand>> | null, done: boolean): Promise<string> {
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
