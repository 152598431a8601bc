/**
 * Environments for the manager tests: a xenstored (the in-memory server, or Debian's C
 * xenstored / oxenstored through the harness) plus a simulated Xen host, with helpers to make
 * domains as the toolstack would, dump both sides byte for byte, and check that the records and
 * the host agree.
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type XenstoreClient } from '../../xenstore-wire';
import { startServer, type FaultOptions, type XenstoreServer } from '../../xenstore-wire/server';
import { parseXlConfig, type XlConfig } from '../../lib/config';
import { HypercallError, SimHypervisor, type EvtchnStatus, type SimRelease, type XenArch } from '../../lib/hypervisor';
import { intercept } from '../../lib/hypervisor/intercept';
import { SharedMemoryManager, type ManagerOptions } from '../../lib/manager';
import { createDomain, type DomainSpec } from '../../lib/sandbox/toolstack';
import { dumpTree, expectedIndex, gfnsOf, indexProblems, KEPT_PORTS_NODE, listKeptPortOwners, listOptional, readAllRegions, readKeptPorts, readWholeIndex, StorePaths, type RegionRecord } from '../../lib/store';
import { projectRoot, startDaemon, type RunningDaemon } from '../harness/daemons';
import { seededRandom } from '../helpers/prng';
import { Steps, type StepHook } from './steps';

export type StoreKind = 'memory' | 'cxenstored' | 'oxenstored';

export interface EnvOptions {
  /** In-memory server faults (commit EAGAIN rate ...). */
  faults?: FaultOptions;
  /** oxenstored: commits fail with EAGAIN at random. */
  testEagain?: boolean;
  arch?: XenArch;
  /** The Xen release the simulated host models (default 4.17). */
  release?: SimRelease;
  /** Keep the simulated host in a folder (shared with child processes). Default: in-process. */
  simDir?: boolean;
  /** Domids the real daemons' fake hypervisor reports (default 1..40). */
  fakeDomains?: number[];
}

export interface Env {
  kind: StoreKind;
  socketPath: string;
  xs: XenstoreClient;
  hv: SimHypervisor;
  simDir?: string;
  server?: XenstoreServer;
  daemon?: RunningDaemon;
  /** Extra pages (RAM) of each domain made by vm(). */
  ram: Map<number, number>;
  /**
   * A manager on this environment's client and host. With `stepHook`, every request of the
   * client and every call the manager makes on the host is a step of that hook, until the
   * manager's dispose().
   */
  manager(opts?: Partial<ManagerOptions> & { stepHook?: StepHook }): SharedMemoryManager;
  /** xl create -p: a domain with records under /local/domain (introduced where the daemon allows). */
  vm(name: string, spec?: Omit<DomainSpec, 'name'>): Promise<number>;
  /** Every node from / with value and permissions, as xenstore-ls -f -p lines. */
  dumpStore(): Promise<string>;
  close(): Promise<void>;
}

const DEFAULT_FAKE = Array.from({ length: 40 }, (_, i) => i + 1);

export async function startEnv(kind: StoreKind, opts: EnvOptions = {}): Promise<Env> {
  let server: XenstoreServer | undefined;
  let daemon: RunningDaemon | undefined;
  let socketPath: string;
  const simDir = opts.simDir ? mkdtempSync(join(tmpdir(), 'xen-sshm-sim-')) : undefined;
  const hv = new SimHypervisor({ arch: opts.arch ?? 'arm', ...(opts.release ? { release: opts.release } : {}), ...(simDir ? { dir: simDir } : {}) });
  // The in-memory server's hypervisor: the domains vm() made.
  const live = new Set<number>();
  if (kind === 'memory') {
    server = await startServer({ domains: { exists: (d) => live.has(d) }, faults: opts.faults });
    socketPath = server.socketPath;
  } else {
    daemon = await startDaemon(kind, { testEagain: opts.testEagain, fakeDomains: opts.fakeDomains ?? DEFAULT_FAKE });
    socketPath = daemon.socketPath;
  }
  // The client's interceptor hands each request to the step hooks of the managers that want them.
  const hooked = new Set<Steps>();
  const xs = await connect({
    path: socketPath,
    interceptor: (req) => {
      const afters = [...hooked].map((st) => st.interceptor(req));
      return afters.length === 0 ? undefined : (outcome) => afters.forEach((a) => typeof a === 'function' && a(outcome));
    },
  });
  const ram = new Map<number, number>();
  const managers: SharedMemoryManager[] = [];
  const env: Env = {
    kind, socketPath, xs, hv, simDir, server, daemon, ram,
    manager({ stepHook, ...mopts } = {}) {
      const steps = stepHook ? new Steps(stepHook) : null;
      const m = new SharedMemoryManager({ xenstore: xs, hypervisor: steps ? intercept(hv, steps.hypervisorHooks) : hv, lockWaitMs: 10_000, ...mopts });
      if (steps) {
        hooked.add(steps);
        m.dispose = () => void hooked.delete(steps);
      }
      managers.push(m);
      return m;
    },
    async vm(name, spec = {}) {
      // oxenstored under the harness cannot INTRODUCE (it maps the ring): records only.
      const domid = spec.domid ?? Math.max(0, ...(await hv.domains()).map((d) => d.domid)) + 1;
      live.add(domid);
      const d = await createDomain(xs, hv, { name, memoryMiB: 16, maxmemMiB: 64, ...spec, domid }, { introduce: kind !== 'oxenstored' });
      ram.set(d.domid, (spec.memoryMiB ?? 16) * 256);
      return d.domid;
    },
    async dumpStore() {
      return (await dumpTree(xs, '/', { perms: true })).join('\n');
    },
    async close() {
      for (const m of managers) m.dispose();
      await xs.close().catch(() => undefined);
      await hv.close().catch(() => undefined);
      if (server) await server.close();
      if (daemon) await daemon.stop();
      if (simDir) rmSync(simDir, { recursive: true, force: true });
    },
  };
  return env;
}

export function config(text: string, file = 'test.cfg'): XlConfig {
  return parseXlConfig(text, { file });
}

/** The simulated host's persisted state, hashed: host.bin and the frames' bytes. */
export function simFingerprint(simDir: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(simDir, 'host.bin')));
  h.update(readFileSync(join(simDir, 'frames')));
  return h.digest('hex');
}

export interface Problem {
  what: string;
}

/**
 * The per-domain index against the regions under `root`: every mapping's domain (and each
 * region's owner) has its entry with the right range, no entry is stale, no index folder is
 * empty, and <root>/by-domain exists exactly while an entry does. These hold after every
 * committed transaction, crashes included (the index changes in the same transactions).
 */
export async function indexProblemsOf(env: Env, root = '/local/shared_mem'): Promise<string[]> {
  const paths = new StorePaths(root);
  const [regions, index] = await Promise.all([readAllRegions(env.xs, paths), readWholeIndex(env.xs, paths)]);
  const out = indexProblems(expectedIndex(regions), index).map((p) => `index d${p.domid}/${p.id}: ${p.found ?? 'missing'}, records say ${p.expected ?? 'none'}`);
  const folders = await listOptional(env.xs, paths.index());
  for (const d of folders) if ((await listOptional(env.xs, `${paths.index()}/${d}`)).length === 0) out.push(`index folder d${d} is empty`);
  if (regions.length > 0 && !(await env.xs.exists(paths.index()))) out.push('regions recorded but no index');
  if (regions.length === 0 && (await env.xs.exists(paths.index()))) out.push('an index is left with no region');
  return out;
}

/**
 * Checks that the records and the simulated host agree: every committed mapping is in the
 * physmap (owner RAM, borrower foreign frames of the owner's page at offset), nothing else is
 * mapped, no record holds a lock or an intermediate state, and the index agrees with the
 * records. Returns the problems found.
 */
export async function consistencyProblems(env: Env, root = '/local/shared_mem', domids?: number[]): Promise<string[]> {
  const problems: string[] = await indexProblemsOf(env, root);
  const regions = await readAllRegions(env.xs, new StorePaths(root));
  const expectMapped = new Map<number, number>();
  for (const r of regions) {
    if (r.state !== 'ready' && r.state !== 'orphaned') problems.push(`${r.id} is ${r.state}`);
    for (const m of r.mappings) {
      if (m.lock !== null || m.state !== 'mapped') problems.push(`${r.id}/mappings/${m.domid} is ${m.state} lock ${m.lock}`);
      const pages = Number((m.end - m.begin) >> 12n);
      expectMapped.set(m.domid, (expectMapped.get(m.domid) ?? 0) + pages);
      problems.push(...(await mappingProblems(env, r, m.domid)));
    }
    problems.push(...(await recordedPortProblems(env, r)));
  }
  // Kept ports (regions gone) are still their borrower's doorbell in the host.
  const paths = new StorePaths(root);
  for (const owner of await listKeptPortOwners(env.xs, paths)) {
    if (domids && !domids.includes(owner)) continue;
    const live = await simPorts(env, owner);
    for (const k of await readKeptPorts(env.xs, paths, owner)) {
      const s = live.get(k.port);
      if (!s || (s.state !== 'unbound' && s.state !== 'interdomain') || s.remoteDom !== k.borrower) problems.push(`kept port ${k.port} of d${owner} for d${k.borrower} is ${s ? JSON.stringify(s) : 'free'}`);
    }
  }
  for (const d of await env.hv.domains()) {
    if (d.domid === 0 || (domids && !domids.includes(d.domid))) continue;
    if (d.mappedGfns !== (expectMapped.get(d.domid) ?? 0)) problems.push(`d${d.domid} maps ${d.mappedGfns} gfns, records say ${expectMapped.get(d.domid) ?? 0}`);
  }
  return problems;
}

async function mappingProblems(env: Env, r: RegionRecord, domid: number): Promise<string[]> {
  const m = r.mappings.find((x) => x.domid === domid)!;
  const gfns = gfnsOf(m.begin, m.end - m.begin);
  const ownerGfns = gfnsOf(r.begin + m.offset, m.end - m.begin);
  const out: string[] = [];
  for (let i = 0; i < gfns.length; i++) {
    const e = await env.hv.physmapEntry(domid, gfns[i]);
    if (domid === r.owner) {
      if (e.kind !== 'ram') out.push(`${r.id}: owner d${domid} has no RAM at gfn ${gfns[i].toString(16)}`);
      continue;
    }
    if (e.kind !== 'foreign' || e.owner !== r.owner) {
      out.push(`${r.id}: d${domid} gfn ${gfns[i].toString(16)} is ${e.kind}`);
      continue;
    }
    if (r.state === 'ready') {
      const o = await env.hv.physmapEntry(r.owner, ownerGfns[i]);
      if (o.kind !== 'ram' || o.mfn !== e.mfn) out.push(`${r.id}: d${domid} gfn ${gfns[i].toString(16)} is not the owner's page ${ownerGfns[i].toString(16)}`);
    }
  }
  return out;
}

/**
 * Nothing left anywhere: no region, no index (when no domain is named, nothing at all under the
 * root), no mirror, no mapped gfn, every domain back to its RAM.
 */
export async function cleanProblems(env: Env, root = '/local/shared_mem', domids?: number[]): Promise<string[]> {
  const problems: string[] = [];
  const paths = new StorePaths(root);
  const regions = await readAllRegions(env.xs, paths);
  for (const r of regions) if (!domids || domids.includes(r.owner)) problems.push(`region ${r.id} left (${r.state})`);
  const indexed = await listOptional(env.xs, paths.index());
  for (const d of indexed) if (!domids || domids.includes(Number(d))) problems.push(`index of d${d} left`);
  // Kept ports stay while their owner lives (dom0 cannot close them): not a leftover.
  if (!domids && regions.length === 0) for (const c of await listOptional(env.xs, root)) if (c !== KEPT_PORTS_NODE) problems.push(`${root}/${c} left`);
  for (const d of await env.hv.domains()) {
    if (d.domid === 0 || (domids && !domids.includes(d.domid))) continue;
    if (d.dying) problems.push(`d${d.domid} is a dying zombie`);
    if (d.mappedGfns !== 0) problems.push(`d${d.domid} still maps ${d.mappedGfns} gfns`);
    const ram = env.ram.get(d.domid);
    if (ram !== undefined && d.totPages !== ram) problems.push(`d${d.domid} holds ${d.totPages} pages, its RAM is ${ram}`);
    const mirror = await env.xs.exists(`/local/domain/${d.domid}/shared_mem`);
    if (mirror) problems.push(`d${d.domid} still has a shared_mem mirror`);
  }
  return problems;
}

/** bigints as hex, for snapshot-like comparisons. */
export function plain<T>(v: T): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? '0x' + x.toString(16) : x)));
}

export const rng = seededRandom;

let snapshot: string | undefined;

/**
 * A private copy of the compiled code for child processes, so that a rebuild of dist/ while a
 * long test runs (other work in the same tree) cannot hand a child a half-written module.
 * Returns the path of `rel` (e.g. 'test/manager/crash-child.js') inside the copy.
 */
export function snapshotDist(rel: string): string {
  if (!snapshot) {
    const root = projectRoot();
    const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-dist-'));
    for (const sub of ['lib', 'xenstore-wire', 'test/manager']) cpSync(join(root, 'dist', sub), join(dir, 'dist', sub), { recursive: true });
    for (const link of ['node_modules', 'build', 'package.json']) symlinkSync(join(root, link), join(dir, link));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    snapshot = dir;
  }
  return join(snapshot, 'dist', rel);
}

/** A domain's ports in the simulated host that are not free: EVTCHNOP_status from port 1 to the first EINVAL. */
export async function simPorts(env: Env, domid: number): Promise<Map<number, EvtchnStatus>> {
  const out = new Map<number, EvtchnStatus>();
  for (let port = 1; ; port++) {
    let s: EvtchnStatus;
    try {
      s = await env.hv.evtchnStatus(domid, port);
    } catch (e) {
      if (e instanceof HypercallError && (e.code === 'EINVAL' || e.code === 'ESRCH')) return out;
      throw e;
    }
    if (s.state !== 'closed') out.set(port, s);
  }
}

/** No record lacks its port: no intent left, and every recorded port is its borrower's doorbell in the host. */
async function recordedPortProblems(env: Env, r: RegionRecord): Promise<string[]> {
  const out: string[] = [];
  if (!r.ports || r.ports.length === 0) return out;
  const live = await simPorts(env, r.owner);
  for (const p of r.ports) {
    if (p.port === 'allocating') {
      out.push(`${r.id}/ports/${p.borrower} is still allocating`);
      continue;
    }
    const s = live.get(p.port);
    if (!s || (s.state !== 'unbound' && s.state !== 'interdomain') || s.remoteDom !== p.borrower) out.push(`${r.id}/ports/${p.borrower} = ${p.port}, but that port of d${r.owner} is ${s ? JSON.stringify(s) : 'free'}`);
  }
  return out;
}

/** The ports of these domains now (for unrecordedPorts()). */
export async function portSnapshot(env: Env, domids: readonly number[]): Promise<Map<number, Set<number>>> {
  const out = new Map<number, Set<number>>();
  for (const d of domids) out.set(d, new Set((await simPorts(env, d)).keys()));
  return out;
}

/**
 * No port is unrecorded: every port of the snapshot's domains made since the snapshot is named
 * by a record of a region that domain owns under `root`, or kept under <root>/kept-ports.
 */
export async function unrecordedPorts(env: Env, root: string, before: Map<number, Set<number>>): Promise<string[]> {
  const regions = await readAllRegions(env.xs, new StorePaths(root));
  const out: string[] = [];
  for (const [domid, old] of before) {
    const kept = (await readKeptPorts(env.xs, new StorePaths(root), domid)).map((k) => k.port);
    const named = new Set([...kept, ...regions.filter((r) => r.owner === domid).flatMap((r) => (r.ports ?? []).map((p) => p.port))]);
    for (const [port, s] of await simPorts(env, domid)) if (!old.has(port) && !named.has(port)) out.push(`port ${port} of d${domid} (${JSON.stringify(s)}) is recorded nowhere`);
  }
  return out;
}
