/**
 * The options every command shares, checked in one place (optionsOf), and the host they open.
 *
 * Global (accepted before or after the command name, by every command):
 *   --json             machine-readable output (errors too, through handle-error)
 *   --sandbox          the embedded default: in-memory xenstored + simulated host, kept in
 *   --sandbox-dir DIR  DIR (implies --sandbox; default $XEN_SSHM_SANDBOX or ~/.xen-sshm/sandbox)
 * Host options (commands that talk to xenstore and Xen):
 *   --root PATH        where the records live (default /local/shared_mem)
 *   --xenstore PATH    xenstored's socket or /dev/xen/xenbus (default: libxenstore's discovery)
 *   --sim DIR          a simulated host kept in DIR, with whatever xenstored --xenstore names
 *                      (tests, and tools that bring their own xenstored)
 *
 * Without --sandbox or --sim the hypervisor is the real one (/dev/xen/privcmd), opened only
 * when a command first needs it: `ls` works wherever xenstore does, and without the native
 * addon. The simulated host is never chosen silently.
 *
 * This module is loaded by every command before it knows what it needs: it imports nothing
 * heavy at the top (the xenstore client, the hypervisor layer and the manager are loaded when a
 * command opens a host), which keeps `xen-sshm check` and `--version` fast.
 */
import type { Command } from 'commander';
import type { XenstoreClient } from '../../xenstore-wire';
import type { Hypervisor } from '../hypervisor/types';
import type { SimHypervisor } from '../hypervisor/sim';
import type { ProgressEvent, SharedMemoryManager } from '../manager';
import type { Sandbox } from '../sandbox/sandbox';
import { elide, UsageError } from './handle-error';
import { DOMID_FIRST_RESERVED, isDomid } from '../vocabulary';

export interface GlobalOptions {
  json?: boolean;
  sandbox?: boolean;
  sandboxDir?: string;
}

export interface CommonOptions extends GlobalOptions {
  root?: string;
  xenstore?: string;
  sim?: string;
}

/** The program-wide options; commander recognises program options before and after the command. */
export function addGlobalOptions(program: Command): Command {
  return program
    .option('--json', 'print the result (or the error) as JSON on stdout')
    .option('--sandbox', 'use the sandbox: an in-memory xenstored and a simulated Xen host, kept between runs')
    .option('--sandbox-dir <dir>', 'sandbox folder (implies --sandbox; default $XEN_SSHM_SANDBOX or ~/.xen-sshm/sandbox)');
}

/** --root, --xenstore and --sim, for the commands that talk to a host. */
export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--root <path>', 'xenstore folder of the records', '/local/shared_mem')
    .option('--xenstore <path>', 'xenstored socket or /dev/xen/xenbus (default: XENSTORED_PATH, then the usual places)')
    .option('--sim <dir>', 'simulated Xen host kept in DIR, with the xenstored of --xenstore');
}

/**
 * A command's options merged with the global ones, after the checks every command shares. Every
 * action starts with it; a bad combination is a UsageError (exit status 2).
 */
export function optionsOf<T extends object = Record<string, never>>(cmd: Command): T & CommonOptions {
  const o = cmd.optsWithGlobals() as T & CommonOptions;
  const sandbox = !!o.sandbox || o.sandboxDir !== undefined;
  if (o.sandboxDir !== undefined && o.sandboxDir.trim() === '') throw new UsageError('--sandbox-dir needs a folder', { option: '--sandbox-dir' });
  if (sandbox && o.xenstore !== undefined) {
    throw new UsageError('--xenstore and --sandbox exclude each other: the sandbox has its own xenstored', { option: '--xenstore' });
  }
  if (sandbox && o.sim !== undefined) throw new UsageError('--sim and --sandbox exclude each other: the sandbox has its own simulated host', { option: '--sim' });
  if (o.root !== undefined && !/^\/[^\0]*$/.test(o.root)) {
    throw new UsageError(`--root ${JSON.stringify(elide(o.root, 80))} is not an absolute xenstore path`, { option: '--root' });
  }
  return o;
}

/** The sandbox the options name, or null for a real host. */
export async function sandboxOf(opts: CommonOptions): Promise<Sandbox | null> {
  if (!opts.sandbox && opts.sandboxDir === undefined) return null;
  const { Sandbox: SandboxClass, defaultSandboxDir } = (require('../sandbox/sandbox') as typeof import('../sandbox/sandbox'));
  return new SandboxClass(opts.sandboxDir ?? defaultSandboxDir());
}

/** A hypervisor opened on first use (ls needs none, and no native addon). */
function lazyHypervisor(open: () => Hypervisor): Hypervisor {
  let hv: Hypervisor | null = null;
  const get = (): Hypervisor => (hv ??= open());
  return {
    get backend() {
      return get().backend;
    },
    xenVersion: () => get().xenVersion(),
    domctlInterfaceVersion: () => get().domctlInterfaceVersion(),
    domainInfo: (d) => get().domainInfo(d),
    domainInfoList: (d, n) => get().domainInfoList(d, n),
    populatePhysmap: (d, g, p) => get().populatePhysmap(d, g, p),
    decreaseReservation: (d, g, p) => get().decreaseReservation(d, g, p),
    addToPhysmapForeign: (r) => get().addToPhysmapForeign(r),
    removeFromPhysmap: (d, g, o) => get().removeFromPhysmap(d, g, o),
    setTarget: (d, t) => get().setTarget(d, t),
    setMaxMem: (d, k) => get().setMaxMem(d, k),
    mapForeign: (d, g) => get().mapForeign(d, g),
    borrowerSupport: (b) => get().borrowerSupport(b),
    evtchnAllocUnbound: (d, r) => get().evtchnAllocUnbound(d, r),
    evtchnStatus: (d, p) => get().evtchnStatus(d, p),
    close: async () => {
      if (hv) await hv.close();
    },
  };
}

/**
 * The host the options name: how to reach its xenstored, and its hypervisor. Every command that
 * talks to a host gets it here (the daemon too, which reconnects through `connect`).
 */
export interface Host {
  sandbox: Sandbox | null;
  connect(): Promise<XenstoreClient>;
  /** The simulated host (--sandbox, --sim), or the real one: privcmd, opened lazily unless `eager`. */
  openHypervisor(opts?: { eager?: boolean }): Promise<{ hv: Hypervisor; sim: SimHypervisor | null }>;
}

export async function hostOf(opts: CommonOptions): Promise<Host> {
  const sandbox = await sandboxOf(opts);
  const { connect } = (require('../../xenstore-wire') as typeof import('../../xenstore-wire'));
  return {
    sandbox,
    connect: () => (sandbox ? sandbox.connect() : connect(opts.xenstore ? { path: opts.xenstore } : {})),
    async openHypervisor(o = {}) {
      if (sandbox) {
        const sim = sandbox.openHypervisor();
        return { hv: sim, sim };
      }
      if (opts.sim !== undefined) {
        const { SimHypervisor: Sim } = (require('../hypervisor/sim') as typeof import('../hypervisor/sim'));
        const sim = new Sim({ dir: opts.sim, allowOnXenHost: true });
        return { hv: sim, sim };
      }
      const { openPrivcmd } = (require('../hypervisor') as typeof import('../hypervisor'));
      return { hv: o.eager ? openPrivcmd() : lazyHypervisor(() => openPrivcmd()), sim: null };
    },
  };
}

export interface Context {
  xs: XenstoreClient;
  hv: Hypervisor;
  /** The simulated host when --sandbox or --sim is in use. */
  sim: SimHypervisor | null;
  sandbox: Sandbox | null;
  manager: SharedMemoryManager;
  close(): Promise<void>;
}

/** Connects to xenstore and prepares the hypervisor the options name. */
export async function openContext(opts: CommonOptions): Promise<Context> {
  const host = await hostOf(opts);
  const xs = await host.connect();
  try {
    const { hv, sim } = await host.openHypervisor();
    const { SharedMemoryManager: Manager } = (require('../manager') as typeof import('../manager'));
    const manager = new Manager({ xenstore: xs, hypervisor: hv, root: opts.root });
    return {
      xs, hv, sim, sandbox: host.sandbox, manager,
      async close() {
        manager.dispose();
        await xs.close().catch(() => undefined);
        await hv.close().catch(() => undefined);
      },
    };
  } catch (e) {
    await xs.close().catch(() => undefined);
    throw e;
  }
}

/** Runs `fn` with a context, always closing it. */
export async function withContext<T>(opts: CommonOptions, fn: (ctx: Context) => Promise<T>): Promise<T> {
  const ctx = await openContext(opts);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/** JSON with bigints as 0x hex strings (addresses and sizes). */
export function toJSON(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v), 2) + '\n';
}

export function printJSON(value: unknown): void {
  process.stdout.write(toJSON(value));
}

/** A number of bytes: decimal or 0x hex, with an optional K/M/G suffix. */
export function parseBytes(text: string, what: string): bigint {
  const m = /^(0x[0-9a-fA-F]{1,16}|\d{1,20})([kKmMgG]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`${what} ${JSON.stringify(elide(text, 80))} is not a number of bytes (decimal or 0x hex, optionally K, M or G)`, { option: what });
  const mult: Record<string, bigint> = { '': 1n, k: 1024n, m: 1n << 20n, g: 1n << 30n };
  return BigInt(m[1]) * mult[m[2].toLowerCase()];
}

export function parseDomid(text: string, what = '--domid'): number {
  if (!/^\d{1,5}$/.test(text) || !isDomid(Number(text))) {
    throw new UsageError(`${what} ${JSON.stringify(elide(text, 80))} is not a domain id (0..${DOMID_FIRST_RESERVED - 1})`, { option: what });
  }
  return Number(text);
}

/** The apply options `apply` and `create` share. */
export interface ApplyCliOptions {
  allowSetTarget?: boolean;
  raiseMaxmem?: boolean;
  dom0less?: boolean;
  doorbell?: boolean;
}

export function withApplyOptions(cmd: Command): Command {
  return cmd
    .option('--allow-set-target', 'consent to XEN_DOMCTL_set_target for a domU borrower (never undone)')
    .option('--raise-maxmem', "raise an owner's max memory when its regions do not fit (XEN_DOMCTL_max_mem)")
    .option('--dom0less', 'also enforce the dom0less export limits (IDs <= 15 characters)')
    .option('--doorbell', 'doorbell=yes for every entry that does not say (static_shared_mem): an event channel per borrower');
}

export function applyFlags(o: ApplyCliOptions): { allowSetTarget: boolean; raiseMaxMem: boolean; dom0less: boolean; doorbell: boolean } {
  return { allowSetTarget: !!o.allowSetTarget, raiseMaxMem: !!o.raiseMaxmem, dom0less: !!o.dom0less, doorbell: !!o.doorbell };
}

/**
 * Shows cli-progress bars on stderr for large regions (at least `minPages`), only when stderr
 * is a terminal and the output is not JSON. Returns a function that stops them.
 */
export function attachProgress(manager: SharedMemoryManager, opts: { enabled: boolean; minPages?: number }): () => void {
  if (!opts.enabled) return () => undefined;
  // Loaded only when a terminal will show it.
  const { SingleBar, Presets } = require('cli-progress') as typeof import('cli-progress');
  const minPages = opts.minPages ?? 16384;
  const verbs: Record<ProgressEvent['op'], string> = { populate: 'populating', map: 'mapping', unmap: 'unmapping', free: 'freeing' };
  let bar: InstanceType<typeof SingleBar> | null = null;
  let key = '';
  const onProgress = (p: ProgressEvent): void => {
    if (p.total < minPages) return;
    const k = `${p.id}/${p.domid}/${p.op}`;
    if (k !== key) {
      bar?.stop();
      key = k;
      bar = new SingleBar(
        { stream: process.stderr, format: `${p.id} d${p.domid} ${verbs[p.op]} [{bar}] {percentage}% {value}/{total} pages`, hideCursor: true, clearOnComplete: false },
        Presets.shades_classic,
      );
      bar.start(p.total, 0);
    }
    bar!.update(p.done);
    if (p.done >= p.total) {
      bar!.stop();
      bar = null;
      key = '';
    }
  };
  manager.on('progress', onProgress);
  return () => {
    manager.off('progress', onProgress);
    bar?.stop();
  };
}

/** Whether progress bars may be drawn for these options. */
export function progressWanted(opts: CommonOptions): boolean {
  return !opts.json && process.stderr.isTTY === true;
}
