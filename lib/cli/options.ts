/**
 * Options every manager command shares, validated in one place, and the context they open:
 *
 *   --json             machine-readable output (errors too, through handle-error)
 *   --root PATH        where the records live (default /local/shared_mem)
 *   --xenstore PATH    xenstored's socket or /dev/xen/xenbus (default: libxenstore's discovery)
 *   --sandbox          the embedded default: in-memory xenstored + simulated host, kept in
 *   --sandbox-dir DIR  DIR (implies --sandbox; default $XEN_SSHM_SANDBOX or ~/.xen-sshm/sandbox)
 *   --sim DIR          a simulated host kept in DIR, with whatever xenstored --xenstore names
 *                      (tests, and tools that bring their own xenstored)
 *
 * Without --sandbox or --sim the hypervisor is the real one (/dev/xen/privcmd), opened only
 * when a command first needs it: `ls` works wherever xenstore does. The simulated host is
 * never chosen silently.
 */
import { Command, Option } from 'commander';
import { connect, type XenstoreClient } from '../../xenstore-wire';
import { openPrivcmd } from '../hypervisor';
import { SimHypervisor } from '../hypervisor/sim';
import type { Hypervisor } from '../hypervisor/types';
import { SharedMemoryManager, type ProgressEvent } from '../manager';
import { ManagerError } from '../manager/errors';
import { defaultSandboxDir, Sandbox } from '../sandbox/sandbox';
import { DOMID_FIRST_RESERVED, isDomid } from '../vocabulary';

export interface CommonOptions {
  json?: boolean;
  root?: string;
  xenstore?: string;
  sandbox?: boolean;
  sandboxDir?: string;
  sim?: string;
}

/** Adds the shared options to a command. */
export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result (or the error) as JSON on stdout')
    .option('--root <path>', 'xenstore folder of the records', '/local/shared_mem')
    .option('--xenstore <path>', 'xenstored socket or /dev/xen/xenbus (default: XENSTORED_PATH, then the usual places)')
    .option('--sandbox', 'use the sandbox: an in-memory xenstored and a simulated Xen host, kept between runs')
    .option('--sandbox-dir <dir>', 'sandbox folder (implies --sandbox; default $XEN_SSHM_SANDBOX or ~/.xen-sshm/sandbox)')
    .addOption(new Option('--sim <dir>', 'simulated Xen host kept in DIR, with the xenstored of --xenstore').conflicts(['sandbox', 'sandboxDir']));
}

/** The sandbox the options name, or null for a real host. */
export function sandboxOf(opts: CommonOptions): Sandbox | null {
  if (!opts.sandbox && !opts.sandboxDir) return null;
  return new Sandbox(opts.sandboxDir ?? defaultSandboxDir());
}

/** A hypervisor opened on first use (ls needs none). */
function lazyHypervisor(open: () => Hypervisor): Hypervisor & { opened(): Hypervisor | null } {
  let hv: Hypervisor | null = null;
  const get = (): Hypervisor => (hv ??= open());
  return {
    get backend() {
      return get().backend;
    },
    opened: () => hv,
    xenVersion: () => get().xenVersion(),
    domctlInterfaceVersion: () => get().domctlInterfaceVersion(),
    domainInfo: (d) => get().domainInfo(d),
    populatePhysmap: (d, g, p) => get().populatePhysmap(d, g, p),
    decreaseReservation: (d, g, p) => get().decreaseReservation(d, g, p),
    addToPhysmapForeign: (r) => get().addToPhysmapForeign(r),
    removeFromPhysmap: (d, g, o) => get().removeFromPhysmap(d, g, o),
    setTarget: (d, t) => get().setTarget(d, t),
    setMaxMem: (d, k) => get().setMaxMem(d, k),
    mapForeign: (d, g) => get().mapForeign(d, g),
    close: async () => {
      if (hv) await hv.close();
    },
  };
}

export interface Context {
  xs: XenstoreClient;
  hv: Hypervisor;
  /** The simulated host when --sandbox or --sim is in use (create, destroy, demo need it). */
  sim: SimHypervisor | null;
  sandbox: Sandbox | null;
  manager: SharedMemoryManager;
  close(): Promise<void>;
}

/** Connects to xenstore and prepares the hypervisor the options name. */
export async function openContext(opts: CommonOptions): Promise<Context> {
  const sandbox = sandboxOf(opts);
  let sim: SimHypervisor | null = null;
  let xs: XenstoreClient;
  if (sandbox) {
    if (opts.xenstore) {
      throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: '--xenstore and --sandbox exclude each other: the sandbox has its own xenstored' });
    }
    xs = await sandbox.connect();
    sim = sandbox.openHypervisor();
  } else {
    xs = await connect(opts.xenstore ? { path: opts.xenstore } : {});
    if (opts.sim) sim = new SimHypervisor({ dir: opts.sim, allowOnXenHost: true });
  }
  const hv: Hypervisor = sim ?? lazyHypervisor(() => openPrivcmd());
  const manager = new SharedMemoryManager({ xenstore: xs, hypervisor: hv, root: opts.root });
  return {
    xs, hv, sim, sandbox, manager,
    async close() {
      manager.dispose();
      await xs.close().catch(() => undefined);
      await hv.close().catch(() => undefined);
    },
  };
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
  const m = /^(0x[0-9a-fA-F]+|\d+)([kKmMgG]?)$/.exec(text.trim());
  if (!m) throw new ManagerError({ code: 'EINVAL', reason: 'mismatch', message: `${what} ${JSON.stringify(text)} is not a number (decimal or 0x hex, optionally K, M or G)` });
  const mult: Record<string, bigint> = { '': 1n, k: 1024n, m: 1n << 20n, g: 1n << 30n };
  return BigInt(m[1]) * mult[m[2].toLowerCase()];
}

export function parseDomid(text: string): number {
  if (!/^\d+$/.test(text) || !isDomid(Number(text))) {
    throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: `${JSON.stringify(text)} is not a domain id (0..${DOMID_FIRST_RESERVED - 1})` });
  }
  return Number(text);
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
